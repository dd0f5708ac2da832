"""How long ``grmpiqa adapt`` takes on this machine, and what caching and bf16 buy.

50 LIVE Challenge photos (40 training, 10 validation) on the default model's
ViT-B-16 with random weights (tests/fakehub.py: the real cost, meaningless
scores). Each measurement runs in its own process, one after the other:

1. ``default``: ``grmpiqa.adapt`` with its defaults (or those changed by
   ``--option KEY=VALUE``, e.g. ``--option cache=false``), end to end (imports,
   model load, photo reading, training, writing), its wall time and peak RSS;
2. ``baseline``: ``--baseline-epochs`` epochs with the prefix cache and reduced
   precision turned off (``cache=False, precision="fp32"``).

Prints the seconds per epoch of both (the default's split into the epochs
that still fill the view pool and the ones after) and their ratios, in wall
time and in process CPU time (less sensitive to other work on a shared machine).

    nice -n 5 python benchmarks/adapt_speed.py --json /tmp/adapt_speed.json
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # fakehub
LIVEC = ROOT.parent / "shared" / "data" / "livec"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--livec", type=Path, default=LIVEC)
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--hf-cache", type=Path, default=Path("/work/bench-hf"))
    parser.add_argument("--baseline-epochs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an adapt option for the default run (repeatable), e.g. cache=false")
    parser.add_argument("--child", choices=("default", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_labels(livec: Path, photos: int, folder: Path) -> Path:
    """The first ``photos`` rows of LIVEC's MOS table, with absolute image paths."""
    with (livec / "mos.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))[:photos]
    path = folder / "labels.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["image", "mos"])
        for row in rows:
            out.writerow([str(livec / "images" / row["image"]), row["mos"]])
    return path


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs as adapt keyword arguments; values are read as JSON when they
    parse (``false``, ``16``), else kept as text (``fp32``)."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            sys.exit(f"--option {pair!r}: write it KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def child(args: argparse.Namespace) -> None:
    """One measurement, in this process; prints one JSON line."""
    import grmpiqa

    epochs: list[float] = []
    cpu: list[float] = [time.process_time()]

    def on_progress(info: dict) -> None:
        epochs.append(info["seconds_per_epoch"])
        cpu.append(time.process_time())
        print(f"{args.child} epoch {info['epoch']}: {epochs[-1]:.1f} s wall, "
              f"{cpu[-1] - cpu[-2]:.1f} s CPU", file=sys.stderr, flush=True)

    options = parse_options(args.option) if args.child == "default" else {
        "cache": False, "precision": "fp32", "epochs": args.baseline_epochs}
    result = grmpiqa.adapt(args.labels, args.out, device="cpu", workers=0,
                           on_progress=on_progress, **options)
    # The first epoch's CPU time also holds the initial evaluation; drop it from the record.
    after_first = [b - a for a, b in itertools.pairwise(cpu[1:])]
    print(json.dumps({"epoch_seconds": epochs, "epoch_cpu": after_first,
                      "summary": result.summary}, default=str))


def measure(kind: str, args: argparse.Namespace, labels: Path, folder: Path) -> dict:
    env = {**os.environ, "HF_HUB_CACHE": str(args.hf_cache), "HF_HUB_OFFLINE": "1"}
    env.pop("GRMPIQA_MANIFEST", None)
    command = [sys.executable, __file__, "--child", kind, "--labels", str(labels),
               "--out", str(folder / f"{kind}.safetensors"),
               *(f"--option={pair}" for pair in args.option)]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    start = time.perf_counter()
    log = folder / f"{kind}.log"
    with log.open("w") as stderr:
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{kind} run failed:\n{log.read_text()[-4000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu_before
    data = json.loads(done.stdout.strip().splitlines()[-1])
    # ru_maxrss of children is the largest child so far: only meaningful while it grows.
    data.update(wall_seconds=wall, cpu_seconds=cpu,
                peak_rss_mib=peak / 1024 if peak > before else None)
    return data


def main() -> int:
    args = parse_args()
    if args.child:
        child(args)
        return 0
    from fakehub import ensure_vit_b16_cache
    from grmpiqa.model.cpu_features import cpu_name, detect

    ensure_vit_b16_cache(args.hf_cache)
    folder = Path(tempfile.mkdtemp(prefix="grmpiqa-adapt-speed-"))
    labels = write_labels(args.livec, args.photos, folder)
    print(f"logs in {folder}", file=sys.stderr)
    # The default first: peak RSS of children is a running maximum.
    fast = measure("default", args, labels, folder)
    slow = measure("baseline", args, labels, folder)
    views = fast["summary"]["cached_views"] or 0
    epochs = fast["epoch_seconds"]
    filling, steady = epochs[:views], epochs[views:]
    baseline = statistics.median(slow["epoch_seconds"])
    cpu_fast, cpu_slow = fast["epoch_cpu"], slow["epoch_cpu"] or slow["epoch_seconds"]
    cpu_baseline = statistics.median(cpu_slow)
    figures = {
        "cpu": cpu_name(), "cpu_features": detect().describe(), "threads": os.cpu_count(),
        "default_options": parse_options(args.option) or "the defaults",
        "photos": args.photos, "train": fast["summary"]["train_images"],
        "val": fast["summary"]["val_images"],
        "default_wall_seconds": fast["wall_seconds"],
        "default_cpu_seconds": fast["cpu_seconds"],
        "default_epochs": fast["summary"]["epochs"],
        "default_stopped": fast["summary"]["stopped"],
        "default_precision": fast["summary"]["precision"],
        "default_peak_rss_mib": fast["peak_rss_mib"],
        "default_epoch_seconds_mean": statistics.mean(epochs),
        "default_epoch_seconds_filling": statistics.median(filling) if filling else None,
        "default_epoch_seconds_steady": statistics.median(steady) if steady else None,
        "baseline_epoch_seconds": baseline,
        "baseline_wall_seconds": slow["wall_seconds"],
        "baseline_peak_rss_mib": slow["peak_rss_mib"],
        "ratio_mean": baseline / statistics.mean(epochs),
        "ratio_steady": baseline / statistics.median(steady) if steady else None,
        "cpu_epoch_default_steady": statistics.median(cpu_fast[views:])
        if len(cpu_fast) > views else None,
        "cpu_epoch_baseline": cpu_baseline,
        "cpu_ratio_steady": cpu_baseline / statistics.median(cpu_fast[views:])
        if len(cpu_fast) > views else None,
        "cpu_ratio_mean": cpu_baseline / statistics.mean(cpu_fast) if cpu_fast else None,
    }
    for key, value in figures.items():
        print(f"{key:>32}: {value:.3f}" if isinstance(value, float) else f"{key:>32}: {value}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "default": fast, "baseline": slow},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
