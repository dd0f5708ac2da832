"""Which precision each kind of machine gets, and what the CPU fast paths do to the model."""

import pytest
import torch

from grmpiqa.model.acceleration import prepare_for_inference, resolve_precision
from grmpiqa.model.cpu_features import CpuFeatures, detect, read_flags
from score_checks import assert_same_scores, spread_photos

AVX2_ONLY = CpuFeatures.from_flags(["sse4_2", "avx", "avx2", "fma"])
VNNI_NO_BF16 = CpuFeatures.from_flags(["avx2", "avx512f", "avx512_vnni"])  # e.g. Cascade Lake
ZEN4 = CpuFeatures.from_flags(["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"])
SAPPHIRE_RAPIDS = CpuFeatures.from_flags(
    ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"])
GRAVITON3 = CpuFeatures.from_flags(["fp", "asimd", "bf16", "i8mm", "sve"], machine="aarch64")
NOTHING = CpuFeatures()


@pytest.mark.parametrize(("features", "expected"), [
    (AVX2_ONLY, "int8"), (VNNI_NO_BF16, "int8"), (ZEN4, "bf16"), (SAPPHIRE_RAPIDS, "bf16"),
    (GRAVITON3, "bf16"), (NOTHING, "int8"),
])
def test_fast_on_each_kind_of_cpu(features, expected):
    assert resolve_precision("fast", torch.device("cpu"), features) == expected


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
@pytest.mark.parametrize("features", [AVX2_ONLY, ZEN4])
def test_fast_on_gpus_is_fp16_whatever_the_cpu(device, features):
    assert resolve_precision("fast", torch.device(device), features) == "fp16"


@pytest.mark.parametrize("features", [AVX2_ONLY, ZEN4, SAPPHIRE_RAPIDS])
def test_auto_stays_exact_on_every_cpu(features):
    assert resolve_precision("auto", torch.device("cpu"), features) == "fp32"
    assert resolve_precision("FAST", torch.device("cpu"), features) in ("bf16", "int8")


def test_features_from_flags():
    assert (ZEN4.avx512, ZEN4.native_bf16, ZEN4.vnni, ZEN4.amx) == (True, True, True, False)
    assert (AVX2_ONLY.avx2, AVX2_ONLY.native_bf16, AVX2_ONLY.vnni) == (True, False, False)
    assert SAPPHIRE_RAPIDS.amx and SAPPHIRE_RAPIDS.vnni
    assert CpuFeatures.from_flags(["avx_vnni", "avx2"]).vnni  # Alder Lake: VNNI without AVX-512
    assert ZEN4.describe() == "AVX-512, BF16, VNNI"
    assert AVX2_ONLY.describe() == "AVX2"
    assert GRAVITON3.describe() == "ARM, BF16"
    assert NOTHING.describe() == "no vector extensions detected"


def test_read_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n"
                       "flags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert read_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert detect(cpuinfo).native_bf16
    assert read_flags(tmp_path / "missing") == frozenset()
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert read_flags(arm) == {"fp", "asimd", "bf16"}


def _fresh(tiny_hub, precision, features):
    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import parse_manifest

    manifest = parse_manifest(tiny_hub.manifest, "m")
    model = load_model("grmp-tiny", device="cpu", manifest=manifest)
    return prepare_for_inference(model, precision, features=features)


@pytest.mark.parametrize(("features", "name"), [(ZEN4, "DynamicInt8Linear"),
                                                (AVX2_ONLY, "DynamicInt7Linear")])
def test_int8_uses_the_eighth_bit_only_with_vnni(tiny_hub, features, name):
    model = _fresh(tiny_hub, "fast" if features is AVX2_ONLY else "int8", features)
    assert model.precision == "int8"
    assert type(model.clip.visual.transformer.resblocks[1].mlp.c_fc).__name__ == name
    exact = _fresh(tiny_hub, "fp32", features)
    photos = spread_photos()
    assert_same_scores(exact.score(photos), model.score(photos), atol=0.05)


def test_bf16_on_cpu_packs_attention_and_scores_in_fp32(tiny_hub):
    from grmpiqa.model.acceleration import PackedSelfAttention, autocast_context

    fast = _fresh(tiny_hub, "fast", ZEN4)
    exact = _fresh(tiny_hub, "fp32", ZEN4)
    assert fast.precision == "bf16"
    assert all(isinstance(b.attn, PackedSelfAttention)
               for b in fast.clip.visual.transformer.resblocks)
    pixels = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    with torch.inference_mode(), autocast_context(fast.device, "bf16"):
        logits = fast(pixels)
        features = fast.encode_image(fast.normalize(pixels))
    assert logits.dtype == torch.float32 and features.dtype == torch.float32
    photos = spread_photos()
    assert_same_scores(exact.score(photos), fast.score(photos), atol=0.05)


def test_deprecated_torch_ao_dynamic_quantisation_is_still_there():
    """--precision int8 rests on torch.ao's eager dynamic quantisation, which PyTorch has
    deprecated. If this fails, torch removed it: move int8 to torchao (docs/performance.md
    says why it is not there yet) before upgrading torch."""
    try:
        from torch.ao.nn.quantized.dynamic import Linear
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as exc:
        pytest.fail(f"torch {torch.__version__} dropped torch.ao dynamic quantisation ({exc}); "
                    "--precision int8 needs a new implementation")
    assert callable(quantize_dynamic) and per_channel_dynamic_qconfig is not None
    assert hasattr(Linear, "from_float")
    assert hasattr(torch.ops.quantized, "linear_dynamic"), \
        f"torch {torch.__version__} lost quantized::linear_dynamic; int8 needs a new kernel"


def _mlp_block(act_layer):
    from open_clip.transformer import ResidualAttentionBlock

    torch.manual_seed(0)
    return ResidualAttentionBlock(16, 2, act_layer=act_layer, batch_first=True).eval()


def test_fold_quick_gelu_keeps_the_block_output_with_one_silu():
    import copy

    from open_clip.transformer import QuickGELU

    from grmpiqa.model.acceleration import fold_quick_gelu

    block = _mlp_block(QuickGELU)
    folded = copy.deepcopy(block)
    assert fold_quick_gelu([folded]) == 1
    assert isinstance(folded.mlp.gelu, torch.nn.SiLU)
    x = torch.randn(3, 7, 16) * 4
    with torch.inference_mode():
        assert torch.allclose(folded(x), block(x), atol=1e-5)


def test_fold_quick_gelu_leaves_other_activations_alone():
    from grmpiqa.model.acceleration import fold_quick_gelu

    block = _mlp_block(torch.nn.GELU)
    weight = block.mlp.c_fc.weight.clone()
    assert fold_quick_gelu([block]) == 0
    assert isinstance(block.mlp.gelu, torch.nn.GELU)
    assert torch.equal(block.mlp.c_fc.weight, weight)


@pytest.mark.parametrize(("precision", "folded"), [("int8", True), ("bf16", True),
                                                   ("fp32", False)])
def test_quick_gelu_is_folded_on_the_fast_cpu_paths_only(tiny_hub, precision, folded):
    from open_clip.transformer import QuickGELU

    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import parse_manifest

    model = load_model("grmp-tiny", device="cpu", manifest=parse_manifest(tiny_hub.manifest, "m"))
    blocks = model.clip.visual.transformer.resblocks
    for block in blocks:
        block.mlp.gelu = QuickGELU()
    prepare_for_inference(model, precision, features=ZEN4)
    assert all(isinstance(b.mlp.gelu, torch.nn.SiLU) == folded for b in blocks)
