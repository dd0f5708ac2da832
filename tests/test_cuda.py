"""GPU paths; skipped where torch sees no CUDA device (run by benchmarks/gpu_check.sh)."""

import pytest
import torch

from grmpiqa.model.devices import resolve_device
from photos import write_photo_tree
from score_checks import assert_same_scores, spread_photos

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def manifest(tiny_hub):
    from grmpiqa.weights.manifest import parse_manifest

    return parse_manifest(tiny_hub.manifest, "tiny")


def test_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0").index == 0


def test_fp16_autocast_matches_fp32(manifest, tmp_path):
    from grmpiqa.scoring.engine import score_paths
    from grmpiqa.weights.loading import load_model

    write_photo_tree(tmp_path)
    cpu = load_model("grmp-tiny", device="cpu", manifest=manifest)
    gpu = load_model("grmp-tiny", device="cuda", manifest=manifest)
    assert gpu.precision == "fp16" and gpu.device.type == "cuda"
    a = [r.score for r in score_paths([str(tmp_path)], cpu, workers=0)]
    b = [r.score for r in score_paths([str(tmp_path)], gpu, workers=2)]
    assert_same_scores(a, b, atol=5e-3)


def test_fp32_and_bf16_on_gpu(manifest):
    from grmpiqa.weights.loading import load_model

    photos = spread_photos()
    exact = load_model("grmp-tiny", device="cuda", manifest=manifest, precision="fp32")
    bf16 = load_model("grmp-tiny", device="cuda", manifest=manifest, precision="bf16")
    assert_same_scores(exact.score(photos), bf16.score(photos), atol=0.05)  # as on the CPU


def test_compiled_model_scores_the_same(manifest):
    from grmpiqa.weights.loading import load_model

    photos = spread_photos()
    plain = load_model("grmp-tiny", device="cuda", manifest=manifest, precision="fp32")
    compiled = load_model("grmp-tiny", device="cuda", manifest=manifest, precision="fp32",
                          compile=True)
    assert_same_scores(plain.score(photos), compiled.score(photos), atol=1e-3)
