"""GPU paths; skipped where torch sees no CUDA device (run by benchmarks/gpu_check.sh)."""

import pytest
import torch

from grmpiqa.model.devices import resolve_device
from photos import write_photo_tree

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
    assert len(a) == len(b) > 0
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 5e-3


def test_fp32_and_bf16_on_gpu(manifest):
    from grmpiqa.weights.loading import load_model

    pixels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    exact = load_model("grmp-tiny", device="cuda", manifest=manifest, precision="fp32")
    bf16 = load_model("grmp-tiny", device="cuda", manifest=manifest, precision="bf16")
    a, b = exact.score(pixels), bf16.score(pixels)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 2e-2


def test_compiled_model_scores_the_same(manifest):
    from grmpiqa.weights.loading import load_model

    pixels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    plain = load_model("grmp-tiny", device="cuda", manifest=manifest, precision="fp32")
    compiled = load_model("grmp-tiny", device="cuda", manifest=manifest, precision="fp32",
                          compile=True)
    a, b = plain.score(pixels), compiled.score(pixels)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-3
