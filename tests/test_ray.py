"""grmpiqa.ray.Scorer on a local Ray cluster the test starts: every row once, model per actor."""

import os
import sys
import time

import numpy as np
import pytest

from grmpiqa.io.inputs import DEFAULT_EXTENSIONS
from grmpiqa.io.shards import ShardIndex, expand_shards
from grmpiqa.ray import Scorer
from tarshards import good_samples, jpeg_bytes, write_shard

# each test runs the grmpiqa command in a subprocess: seconds to a minute apiece
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _photos(folder, count):
    """``count`` rows: JPEG files, tar members and one file that is not a photo."""
    folder.mkdir()
    paths = []
    for i in range(count - 11):
        path = folder / f"{i:03d}.jpg"
        path.write_bytes(jpeg_bytes(i))
        paths.append(str(path))
    (folder / "broken.jpg").write_bytes(b"not a photo")
    paths.append(str(folder / "broken.jpg"))
    shard = write_shard(folder / "00000.tar", good_samples(100, 10))
    paths += expand_shards([str(shard)], ShardIndex(DEFAULT_EXTENSIONS))
    assert len(paths) == count
    return paths


def test_scorer_in_process_scores_paths_and_images(use_tiny_manifest, tmp_path):
    scorer = Scorer("grmp-tiny", device="cpu", batch_size=4)
    paths = _photos(tmp_path / "p", 20)
    table = scorer({"path": np.array(paths, dtype=object), "id": np.arange(20)})
    assert table.column_names == ["path", "id", "score", "error"]
    assert str(table.schema.field("score").type) == "float"
    out = table.to_pydict()
    assert out["id"] == list(range(20))
    broken = paths.index(str(tmp_path / "p" / "broken.jpg"))
    assert out["score"][broken] is None and "not an image" in out["error"][broken]
    assert sum(e is None for e in out["error"]) == 19
    assert scorer(table.select(["path"])).column("score").to_pylist() == out["score"]
    from grmpiqa.scoring.engine import score_paths

    direct = [r.score for r in score_paths(paths, scorer.model, workers=0, expand=False)]
    kept = [i for i in range(20) if i != broken]
    np.testing.assert_allclose(np.array(out["score"], dtype=float)[kept],
                               np.array(direct, dtype=float)[kept], atol=1e-6)
    from PIL import Image

    arrays = np.empty(3, dtype=object)
    arrays[:] = [np.asarray(Image.open(paths[0]).convert("RGB")),
                 np.zeros((5, 0, 3), np.uint8), np.asarray(Image.open(paths[1]))]
    images = scorer({"image": arrays})
    np.testing.assert_allclose(images["score"][[0, 2]], out["score"][:2], atol=1e-6)
    assert np.isnan(images["score"][1]) and "expected an RGB uint8 array" in images["error"][1]
    with pytest.raises(ValueError, match="'path' column"):
        scorer({"file": np.array(paths)})


@pytest.mark.slow
def test_map_batches_on_local_ray_every_row_once(use_tiny_manifest, tmp_path):
    ray = pytest.importorskip("ray")
    pq = pytest.importorskip("pyarrow.parquet")
    paths = _photos(tmp_path / "p", 50)
    env = {name: os.environ[name] for name in ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE",
                                               "GRMPIQA_CACHE", "GRMPIQA_MANIFEST")}
    env |= {"PYTHONPATH": os.pathsep.join([REPO, *sys.path[1:]]), "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env},
             object_store_memory=200 * 1024 * 1024, logging_level="ERROR",
             configure_logging=False)
    try:
        ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=5)
        # half a CPU per actor: Ray Data's own tasks need the rest of the 2
        scored = ds.map_batches(Scorer, fn_constructor_kwargs={"model": "grmp-tiny",
                                                               "device": "cpu"},
                                batch_size=8, concurrency=2, num_cpus=0.5)
        out = tmp_path / "out"
        scored.write_parquet(str(out))
    finally:
        ray.shutdown()
    wall = time.monotonic() - started
    table = pq.read_table(str(out))
    assert str(table.schema.field("score").type) == "float"
    assert str(table.schema.field("error").type) in ("string", "large_string")
    rows = table.to_pylist()
    print(f"\nRay map_batches, 50 rows, 2 actors on 2 CPUs: {wall:.1f} s wall "
          "(ray.init to shutdown)")
    assert sorted(r["path"] for r in rows) == sorted(paths)
    failed = [r for r in rows if r["error"] is not None]
    assert [r["path"] for r in failed] == [str(tmp_path / "p" / "broken.jpg")]
    assert all(0.0 <= r["score"] <= 1.0 for r in rows if r["error"] is None)
