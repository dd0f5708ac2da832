"""What the score catalogue saves and costs, measured in one run.

Wall times of whole ``grmpiqa score`` commands (start-up included) over the LIVE
Challenge photos with the random-weight ViT-B-16: the first run with
``--no-cache``, the first run remembering (a fresh catalogue), the second run;
``cull --dry-run`` then ``cull`` over other photos (one scoring pass, not two);
the catalogue's own work in a first run (hashing, lookups, writes) timed in process,
as a share of the first run (the wall-time difference drowns in a loaded machine's noise);
then the lookup cost per photo in a catalogue of 100,000 synthetic photos and
the catalogue's bytes per photo.

    GRMPIQA_BENCH_HF_CACHE=/work/bench-hf nice -n 5 python benchmarks/catalogue.py \
        --images 150 --cull 100 --precision fast
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
DEFAULT_LIVEC = ROOT.parent / "shared" / "data" / "livec" / "images"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=627, help="LIVEC photos scored")
    p.add_argument("--cull", type=int, default=300, help="other photos culled")
    p.add_argument("--precision", default="auto")
    p.add_argument("--synthetic", type=int, default=100_000, help="rows for the lookup cost")
    p.add_argument("--livec", type=Path, default=DEFAULT_LIVEC)
    return p.parse_args()


ARGS = parse_args()
WORK = Path(tempfile.mkdtemp(prefix="grmpiqa-catalogue-bench-"))
HF_CACHE = Path(os.environ.get("GRMPIQA_BENCH_HF_CACHE", WORK / "hf"))
ENV = {**os.environ, "HF_HUB_CACHE": str(HF_CACHE), "HF_HUB_OFFLINE": "1",
       "GRMPIQA_CACHE": str(WORK / "cache"), "PYTHONPATH": str(ROOT)}
ENV.pop("GRMPIQA_MANIFEST", None)


def grmpiqa(*args: str, catalogue: Path) -> float:
    """Seconds of one whole command (a fresh process: start-up counts)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grmpiqa", *args, "-q", "--precision",
                    ARGS.precision], env={**ENV, "GRMPIQA_CATALOGUE": str(catalogue)},
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def lookup_cost(paths: list[str]) -> dict[str, float]:
    """Seconds per photo to look photos up among ``ARGS.synthetic`` synthetic rows, and the
    file's bytes per photo, without and with features (embedding and burst signals)."""
    import numpy as np

    from grmpiqa.catalogue.lookup import Lookup
    from grmpiqa.catalogue.store import Catalogue, Entry, FileStat, Remembered

    figures = {}
    rng = np.random.default_rng(0)
    for features in (False, True):
        where = WORK / f"synthetic-{features}.sqlite"
        catalogue = Catalogue(where, print)
        key = "grmp-clive50:fp32:exact:0123456789ab"
        extra = {"phash": 2**63 + 5, "layout": bytes(768), "capture_time": 1.7e9,
                 "camera": "Canon EOS R5 0123",
                 "embedding": rng.standard_normal(512).astype(np.float32).tobytes()}
        for start in range(0, ARGS.synthetic, 5000):
            catalogue.remember(key, [
                Remembered(Entry(f"/photos/{i}.jpg", FileStat(1, i, 5_000_000, i, i),
                                 rng.bytes(16)), float(rng.random()), None,
                           extra if features else None)
                for i in range(start, min(start + 5000, ARGS.synthetic))])
        catalogue.remember(key, [])
        sample = paths
        lookup = Lookup(catalogue, key, sample, features=features)
        rows = [Remembered(lookup.pending[p], 0.5, None, extra if features else None)
                for p in sample]
        catalogue.remember(key, rows)
        start = time.perf_counter()
        found = Lookup(catalogue, key, sample, features=features)
        seconds = time.perf_counter() - start
        assert len(found.hits) == len(sample)
        catalogue.close()
        name = "features" if features else "score"
        figures[f"lookup_us_per_photo_{name}"] = seconds / len(sample) * 1e6
        figures[f"bytes_per_photo_{name}"] = where.stat().st_size / (ARGS.synthetic + len(sample))
    return figures


def make_cull_set(photos: list[Path], folder: Path) -> Path:
    """Photos the catalogue has not seen: LIVEC photos mirrored and saved again (other
    bytes), beginning after the scored ones and wrapping around."""
    from PIL import Image, ImageOps

    folder.mkdir()
    for i in range(ARGS.cull):
        source = photos[(ARGS.images + i) % len(photos)]
        with Image.open(source) as image:
            ImageOps.mirror(image.convert("RGB")).save(folder / f"m{i:04d}.jpg", quality=92)
    return folder


def catalogue_work(paths: list[str]) -> float:
    """Seconds of the catalogue's own work in a first run, in process: every photo looked up
    and hashed in a fresh catalogue, then remembered in the run's transactions."""
    from grmpiqa.catalogue.lookup import COMMIT_ROWS, Lookup
    from grmpiqa.catalogue.store import Catalogue, Remembered

    catalogue = Catalogue(WORK / "work.sqlite", print)
    key = "grmp-clive50:fp32:exact:0123456789ab"
    start = time.perf_counter()
    lookup = Lookup(catalogue, key, paths, features=False)
    rows = [Remembered(lookup.pending[p], 0.5, None) for p in lookup.misses]
    for first in range(0, len(rows), COMMIT_ROWS):
        catalogue.remember(key, rows[first:first + COMMIT_ROWS])
    seconds = time.perf_counter() - start
    catalogue.close()
    return seconds


def main() -> None:
    from fakehub import ensure_vit_b16_cache

    ensure_vit_b16_cache(HF_CACHE)
    photos = sorted(ARGS.livec.glob("*.[jJ][pP][gG]"))
    scored = WORK / "shoot"
    scored.mkdir()
    for p in photos[:ARGS.images]:
        os.symlink(p, scored / p.name)
    shoot = [str(p) for p in sorted(scored.iterdir())]
    grmpiqa("score", shoot[0], catalogue=WORK / "warm.sqlite")  # caches digests, page cache
    figures: dict[str, float] = {}
    figures["no_cache_s"] = grmpiqa("score", str(scored), "-o", str(WORK / "a.csv"),
                                    "--no-cache", catalogue=WORK / "unused.sqlite")
    assert not (WORK / "unused.sqlite").exists()
    figures["first_s"] = grmpiqa("score", str(scored), "-o", str(WORK / "b.csv"),
                                 catalogue=WORK / "catalogue.sqlite")
    figures["second_s"] = grmpiqa("score", str(scored), "-o", str(WORK / "c.csv"),
                                  catalogue=WORK / "catalogue.sqlite")
    culled = make_cull_set(photos, WORK / "cull")
    figures["cull_dry_run_s"] = grmpiqa("cull", str(culled), "--below", "0.5", "--move-to",
                                        str(WORK / "rejects"), "--dry-run",
                                        catalogue=WORK / "catalogue.sqlite")
    figures["cull_s"] = grmpiqa("cull", str(culled), "--below", "0.5", "--move-to",
                                str(WORK / "rejects"), catalogue=WORK / "catalogue.sqlite")
    figures.update(lookup_cost(shoot))
    figures["catalogue_work_s"] = catalogue_work(shoot)
    figures["catalogue_work_pct_of_no_cache"] = (100 * figures["catalogue_work_s"]
                                                 / figures["no_cache_s"])
    figures["second_speedup"] = figures["first_s"] / figures["second_s"]
    figures["first_overhead_pct"] = 100 * (figures["first_s"] / figures["no_cache_s"] - 1)
    figures["cull_after_dry_run_ratio"] = figures["cull_s"] / figures["cull_dry_run_s"]
    from grmpiqa.model.cpu_features import detect

    print(f"cpu: {detect()}; {len(shoot)} photos scored, {ARGS.cull} culled, precision "
          f"{ARGS.precision}; load average {os.getloadavg()}")
    for name, value in figures.items():
        print(f"{name:32s} {value:12.3f}")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
