"""grmpiqa's safetensors format, and bad weights files from the Hub cache."""

import json

import pytest
import torch
from safetensors.torch import save_file

from fakehub import (
    TINY_GRMP_CONFIG,
    TINY_MODEL_CFG,
    write_backbone,
    write_hub_file,
)
from grmpiqa.config import LabelScale
from grmpiqa.errors import WeightsError
from grmpiqa.weights.formats import WeightsMetadata, read_metadata, read_weights, save_weights
from grmpiqa.weights.loading import load_model
from grmpiqa.weights.manifest import parse_manifest


def _metadata(model, label=None):
    return WeightsMetadata(model.backbone_spec, model.config, model.preprocess, label=label,
                           training={"n": 3}, source="test")


def test_round_trip_gives_the_same_scores(tiny_model, tmp_path):
    from grmpiqa.weights.backbone import build_backbone
    from grmpiqa.weights.formats import differing_state

    base = build_backbone(tiny_model.backbone_spec).state_dict()
    tensors = differing_state(tiny_model.state_dict(), base)
    changed = {k for k in tensors if k.startswith("clip.")}
    assert changed and all(".resblocks.2." in k for k in changed)  # only the tuned blocks
    path = tmp_path / "w.safetensors"
    save_weights(path, tensors, _metadata(tiny_model, LabelScale(1, 5)))
    meta = read_metadata(path)
    assert meta.label == LabelScale(1.0, 5.0) and meta.training == {"n": 3}
    loaded = load_model(str(path), device="cpu")
    pixels = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    assert loaded.score(pixels) == pytest.approx(tiny_model.score(pixels), abs=1e-6)
    assert loaded.label == LabelScale(1.0, 5.0)


def test_preprocess_block_says_how_photos_were_squashed(tiny_model, tmp_path):
    from dataclasses import replace

    path = tmp_path / "w.safetensors"
    save_weights(path, tiny_model.learned_state(), _metadata(tiny_model))
    assert json.loads(read_metadata(path).to_json())["preprocess"]["antialias"] is False
    old = tmp_path / "old.safetensors"  # written before the field existed
    header = json.loads(_metadata(tiny_model).to_json())
    del header["preprocess"]["antialias"]
    save_file(tiny_model.learned_state(), old, metadata={"grmpiqa": json.dumps(header)})
    assert read_metadata(old).preprocess.antialias is False  # the authors' squash
    pillow = tmp_path / "pillow.safetensors"
    meta = _metadata(tiny_model)
    save_weights(pillow, tiny_model.learned_state(),
                 replace(meta, preprocess=replace(meta.preprocess, antialias=True)))
    assert load_model(str(pillow), device="cpu").preprocess.antialias is True


def test_metadata_header_problems(tiny_model, tmp_path):
    bare = tmp_path / "bare.safetensors"
    save_file({"x": torch.zeros(1)}, bare)
    with pytest.raises(WeightsError, match="not a grmpiqa weights file"):
        read_weights(bare)
    bad = tmp_path / "bad.safetensors"
    save_file({"x": torch.zeros(1)}, bad, metadata={"grmpiqa": "{not json"})
    with pytest.raises(WeightsError, match="not valid JSON"):
        read_weights(bad)
    future = tmp_path / "future.safetensors"
    header = json.loads(_metadata(tiny_model).to_json())
    header["format_version"] = 99
    save_file({"x": torch.zeros(1)}, future, metadata={"grmpiqa": json.dumps(header)})
    with pytest.raises(WeightsError, match="version 99"):
        read_weights(future)
    truncated = tmp_path / "t.safetensors"
    save_weights(truncated, tiny_model.learned_state(), _metadata(tiny_model))
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(WeightsError, match=str(truncated)):
        load_model(str(truncated), device="cpu")


def test_wrong_shapes_and_missing_tensors(tiny_model, tmp_path):
    state = tiny_model.learned_state()
    wrong = dict(state, **{"text_context.ctx": torch.zeros(3, 32)})
    path = tmp_path / "w.safetensors"
    save_weights(path, wrong, _metadata(tiny_model))
    with pytest.raises(WeightsError, match=r"'text_context\.ctx' has shape"):
        load_model(str(path), device="cpu")
    missing = {k: v for k, v in state.items() if k != "visual_prompts.prompt_norm.bias"}
    save_weights(path, missing, _metadata(tiny_model))
    with pytest.raises(WeightsError, match=r"missing tensor 'visual_prompts\.prompt_norm\.bias'"):
        load_model(str(path), device="cpu")
    extra = dict(state, **{"clip.nonsense": torch.zeros(1)})
    save_weights(path, extra, _metadata(tiny_model))
    with pytest.raises(WeightsError, match=r"unexpected tensor 'clip\.nonsense'"):
        load_model(str(path), device="cpu")


def test_save_is_atomic(tiny_model, tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    save_weights(path, tiny_model.learned_state(), _metadata(tiny_model))
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", fail)
    with pytest.raises(OSError):
        save_weights(path, tiny_model.learned_state(), _metadata(tiny_model))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def _manifest_with(tmp_path, backbone: dict, weights: dict | None, fmt="grmpiqa-safetensors"):
    model = {"description": "t", "backbone": "b", "config": TINY_GRMP_CONFIG,
             "preprocess": {"resize": 36, "crop": 32}, "licence": "t", "source": "t",
             "weights": None if weights is None else {**weights, "format": fmt}}
    if weights is None:
        model["config"] = {"kind": "zeroshot"}
    return parse_manifest({"schema_version": 1, "default": "m", "backbones": {"b": backbone},
                           "models": {"m": model}}, "test")


def test_truncated_backbone_in_the_cache_is_refused_and_evicted(tmp_path):
    cache = tmp_path / "hub"
    backbone = write_backbone(cache, "test/cut", TINY_MODEL_CFG)
    snapshot = next((cache / "models--test--cut" / "snapshots").iterdir())
    blob = (snapshot / "open_clip_model.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:1000])
    manifest = _manifest_with(tmp_path, backbone, None)
    with pytest.raises(WeightsError, match="removed from the Hugging Face cache"):
        load_model("m", device="cpu", manifest=manifest, hf_cache=cache)
    assert not blob.exists()
    assert not (snapshot / "open_clip_model.safetensors").exists()


def test_bad_grmpiqa_weights_from_the_hub_are_evicted(tiny_model, tmp_path):
    cache = tmp_path / "hub"
    backbone = write_backbone(cache, "test/bb", TINY_MODEL_CFG)
    state = dict(tiny_model.learned_state(), **{"text_context.ctx": torch.zeros(2, 32)})
    local = tmp_path / "w.safetensors"
    save_weights(local, state, _metadata(tiny_model))
    link, _ = write_hub_file(cache, "test/w", "w.safetensors", local.read_bytes())
    manifest = _manifest_with(tmp_path, backbone,
                              {"repo": "test/w", "filename": "w.safetensors"})
    with pytest.raises(WeightsError, match="has shape"):
        load_model("m", device="cpu", manifest=manifest, hf_cache=cache)
    assert not link.exists()
