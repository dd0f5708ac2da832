"""Peak memory of the Parquet writer: 100,000 rows vs 10,000 rows, measured in one run.

Each size runs in a fresh child process that writes synthetic rows (a
path like a tar member's, a float score, an error on every 50th row) through
``ParquetOutput`` exactly as ``grmpiqa score -o FILE.parquet`` does (parts
every 4,096 rows, then the merge into row groups) and reports its peak RSS
(``ru_maxrss``). A writer whose memory stays flat gives a ratio near 1.0.

    python benchmarks/parquet_memory.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(rows: int, folder: str) -> None:
    sys.path.insert(0, str(ROOT))
    import pyarrow.parquet as pq

    from grmpiqa.io.parquet import ParquetOutput
    from grmpiqa.results import ScoreResult

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = Path(folder) / f"scores-{rows}.parquet"
    start = time.perf_counter()
    writer = ParquetOutput(out, ["path", "score", "error"])
    for i in range(rows):
        path = f"/data/laion/shards/{i // 10_000:05d}.tar/{i:09d}.jpg"
        if i % 50 == 49:
            writer.write(ScoreResult(path, None, "cannot decode (OSError: truncated file)"))
        else:
            writer.write(ScoreResult(path, (i * 7919 % 10_000) / 10_000, None))
    writer.commit()
    elapsed = time.perf_counter() - start
    meta = pq.ParquetFile(out).metadata
    assert meta.num_rows == rows
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "peak_rss_kib": peak, "before_kib": before,
                      "seconds": round(elapsed, 3), "file_bytes": out.stat().st_size,
                      "row_groups": meta.num_row_groups}))


def measure(rows: int, folder: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(rows), folder],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        small, big = measure(10_000, folder), measure(100_000, folder)
    ratio = big["peak_rss_kib"] / small["peak_rss_kib"]
    for run in (small, big):
        print(f"{run['rows']:>7,} rows: peak RSS {run['peak_rss_kib'] / 1024:6.1f} MiB "
              f"(after imports {run['before_kib'] / 1024:6.1f} MiB), {run['seconds']:.2f} s, "
              f"{run['file_bytes'] / 1e6:.2f} MB, {run['row_groups']} row group(s)")
    print(f"peak RSS ratio 100,000 / 10,000 rows (target < 1.1): {ratio:.3f}")
    print(json.dumps({"small": small, "big": big, "ratio": round(ratio, 3),
                      "date": time.strftime("%Y-%m-%d")}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[3])
    else:
        main()
