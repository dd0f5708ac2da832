import os
import pickle

import pytest
import torch

from fakehub import (
    AUTHORS_FILE,
    TINY_GRMP_CONFIG,
    authors_state_dict,
    write_authors_checkpoint,
)
from grmpiqa.errors import WeightsError
from grmpiqa.weights.authors import authors_key, convert_state, read_checkpoint
from grmpiqa.weights.loading import load_model
from grmpiqa.weights.manifest import parse_manifest


def _manifest(tiny_hub, repo="zzhowe/GRMP-IQA"):
    data = dict(tiny_hub.manifest)
    data["models"] = {k: dict(v) for k, v in data["models"].items()}
    data["models"]["grmp-tiny"]["weights"] = {
        **data["models"]["grmp-tiny"]["weights"], "repo": repo}
    return parse_manifest(data, "test")


def test_authors_checkpoint_imports_exactly_without_the_backbone(tmp_path):
    """The checkpoint holds every tensor: scoring reads no pretrained backbone at all."""
    from fakehub import TINY_MODEL_CFG, write_backbone
    from grmpiqa.weights import hub
    from grmpiqa.weights.manifest import parse_backbone

    cache = tmp_path / "hub"
    backbone = write_backbone(cache, "test/clip-to-remove", TINY_MODEL_CFG, seed=3)
    _, original = write_authors_checkpoint(cache, backbone, TINY_GRMP_CONFIG,
                                           repo="test/authors-exact", seed=7)
    weights = parse_backbone("b", backbone, "b").weights
    hub.evict(hub.cached_path(weights, cache))
    assert hub.cached_path(weights, cache) is None
    data = {"schema_version": 1, "default": "m", "backbones": {"b": backbone}, "models": {"m": {
        "description": "d", "backbone": "b", "config": TINY_GRMP_CONFIG, "licence": "l",
        "source": "s", "preprocess": {"resize": 36, "crop": 32,
                                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "weights": {"repo": "test/authors-exact", "filename": AUTHORS_FILE, "revision": None,
                    "sha256": None, "format": "authors-pt"}}}}
    manifest = parse_manifest(data, "test")
    assert [f.filename for f in manifest.get("m").scoring_files()] == [
        AUTHORS_FILE, "open_clip_config.json"]
    model = load_model("m", device="cpu", manifest=manifest, hf_cache=cache)
    theirs, ours = original.state_dict(), model.state_dict()
    assert theirs.keys() == ours.keys()
    for key in theirs:
        assert torch.equal(theirs[key], ours[key]), key
    assert model.preprocess.mean == (0.485, 0.456, 0.406)  # the authors' normalisation
    original.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(original.encode_image(x), model.encode_image(x))
        assert torch.allclose(original.class_text_features(), model.class_text_features())
    assert hub.cached_path(weights, cache) is None  # never downloaded either


def test_legacy_pickle_checkpoints_are_read_too(tmp_path, tiny_model):
    """Files from torch.save before the zip format cannot be memory-mapped: read plainly."""
    path = tmp_path / "legacy.pt"
    torch.save(authors_state_dict(tiny_model), path, _use_new_zipfile_serialization=False)
    assert read_checkpoint(path).keys() == authors_state_dict(tiny_model).keys()


def test_module_prefix_is_stripped(tmp_path, tiny_model):
    state = authors_state_dict(tiny_model, module_prefix=True)
    path = tmp_path / "c.pt"
    torch.save(state, path)
    loaded = read_checkpoint(path)
    assert "prompt_learner2.ctx" in loaded and not any(k.startswith("module.") for k in loaded)


def test_wrapped_state_dict_is_accepted(tmp_path, tiny_model):
    path = tmp_path / "c.pt"
    torch.save({"state_dict": authors_state_dict(tiny_model)}, path)
    assert "logit_scale" in read_checkpoint(path)


def test_missing_key_is_named(tiny_model):
    state = authors_state_dict(tiny_model)
    del state["image_encoder.transformer.resblocks.1.mlp.c_fc.weight"]
    with pytest.raises(WeightsError, match=r"missing key 'image_encoder\.transformer\.resblocks"
                                           r"\.1\.mlp\.c_fc\.weight'"):
        convert_state(state, tiny_model, "ckpt")


def test_misshaped_key_is_named(tiny_model):
    state = authors_state_dict(tiny_model)
    state["image_encoder.deep_prompt_embeddings"] = torch.zeros(11, 100, 64)
    with pytest.raises(WeightsError, match=r"'image_encoder\.deep_prompt_embeddings' has shape"):
        convert_state(state, tiny_model, "ckpt")


def test_unexpected_key_is_refused(tiny_model):
    state = authors_state_dict(tiny_model)
    state["prompt_learner3.ctx"] = torch.zeros(4, 32)
    with pytest.raises(WeightsError, match="unexpected key"):
        convert_state(state, tiny_model, "ckpt")


def test_nan_is_refused(tiny_model):
    state = authors_state_dict(tiny_model)
    state["prompt_learner2.ctx"] = torch.full_like(state["prompt_learner2.ctx"], float("nan"))
    with pytest.raises(WeightsError, match="NaN"):
        convert_state(state, tiny_model, "ckpt")


def test_no_half_loaded_model_on_error(tiny_hub, tiny_model):
    """A bad checkpoint raises before any tensor is copied into the model."""
    state = authors_state_dict(tiny_model)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["prompt_learner2.ctx"] = torch.zeros(4, 32)
    del state["logit_scale"]
    with pytest.raises(WeightsError):
        convert_state(state, tiny_model, "ckpt")
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, before[key])


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/grmpiqa-pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"prompt_learner2.ctx": _Exploit()}, handle)
    with pytest.raises(WeightsError, match="refused"):
        read_checkpoint(path)
    assert not os.path.exists("/tmp/grmpiqa-pwned")


def test_malicious_pickle_through_load_model(tmp_path, use_tiny_manifest):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump(_Exploit(), handle)
    with pytest.raises(WeightsError, match="refused"):
        load_model(str(evil), device="cpu")


def test_every_model_key_has_an_authors_key(tiny_model):
    for key in tiny_model.state_dict():
        assert authors_key(key)


def test_the_manifest_entry_resolves_to_the_authors_file_offline(tiny_hub):
    from grmpiqa.weights import hub

    entry = _manifest(tiny_hub).get("grmp-tiny")
    path = hub.fetch(entry.weights.file, tiny_hub.hf_cache)
    assert path.name == AUTHORS_FILE and path.is_file()
