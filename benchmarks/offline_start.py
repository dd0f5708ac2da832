"""A newcomer's first `grmpiqa score` with no weights and no network: seconds to the error.

Runs ``grmpiqa score PHOTO`` with an empty Hugging Face cache and the default
manifest, ``HF_HUB_OFFLINE`` unset, against a Hub that cannot be reached:
``HF_ENDPOINT`` on a closed local port, then on a host name that does not
resolve; and once with ``HF_HUB_OFFLINE=1``. Each is run ``--repeat`` times;
printed: the median wall time of each, its ratio to the 5 s target, the
exit status and error line, and, for scale, the median time of ``python -c
"import torch"`` on this machine (most of what is left). Target: every case
under 5 s, exit status 2.

    python benchmarks/offline_start.py
    python benchmarks/offline_start.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case (median)")
    return parser.parse_args()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    return time.perf_counter() - start, out


def main() -> None:
    args = parse_args()
    from grmpiqa.model.cpu_features import cpu_name, detect

    work = Path(tempfile.mkdtemp(prefix="grmpiqa-offline-"))
    photo = work / "a.jpg"
    photo.write_bytes(b"never decoded: the model is needed first")
    base = {k: v for k, v in os.environ.items()
            if k not in ("HF_HUB_OFFLINE", "GRMPIQA_MANIFEST", "HF_ENDPOINT")}
    cases = {
        "closed port": {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"},
        "unresolvable host": {"HF_ENDPOINT": "http://no-such-host.invalid"},
        "HF_HUB_OFFLINE=1": {"HF_HUB_OFFLINE": "1"},
    }
    results = {}
    for name, extra in cases.items():
        times, last = [], None
        for n in range(args.repeat):
            env = {**base, **extra, "HF_HUB_CACHE": str(work / f"hub-{n}"),
                   "HF_HOME": str(work / "hf-home"), "GRMPIQA_CACHE": str(work / "cache")}
            seconds, last = timed([sys.executable, "-m", "grmpiqa", "score", str(photo)], env)
            times.append(seconds)
        results[name] = {"median_s": round(statistics.median(times), 2),
                         "ratio_to_target": round(statistics.median(times) / TARGET_S, 2),
                         "exit": last.returncode, "stderr_lines": last.stderr.count("\n"),
                         "error": last.stderr.strip()[:160]}
    torch_times = [timed([sys.executable, "-c", "import torch"], base)[0]
                   for _ in range(args.repeat)]
    features = detect()
    flags = ", ".join(f for f in ("avx2", "avx512", "native_bf16", "vnni", "amx")
                      if getattr(features, f, False)) or "none"
    load = os.getloadavg()
    print(f"first offline `grmpiqa score`, median of {args.repeat}, {time.strftime('%Y-%m-%d')}; "
          f"{cpu_name()} ({os.cpu_count()} CPUs; {flags}); load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, row in results.items():
        print(f"  {name:<18} {row['median_s']:6.2f} s  ({row['ratio_to_target']:.2f} of the "
              f"{TARGET_S:g} s target)  exit {row['exit']}, {row['stderr_lines']} stderr line(s)")
    print(f"  python -c 'import torch' {statistics.median(torch_times):6.2f} s (for scale)")
    for name, row in results.items():
        print(f"  {name}: {row['error']}...")
    print(json.dumps({"cases": results, "import_torch_s": round(statistics.median(torch_times), 2),
                      "cpu": cpu_name(), "features": flags, "load": [round(x, 2) for x in load],
                      "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    main()
