import copy
import json

import pytest

from grmpiqa.config import IMAGENET_MEAN, ModelConfig, PreprocessConfig
from grmpiqa.errors import ManifestError
from grmpiqa.weights.manifest import load_manifest, manifest_path, parse_manifest


def _real():
    return json.loads(manifest_path().read_text())


def test_shipped_manifest_is_valid_and_faithful():
    manifest = load_manifest()
    assert manifest.default == "grmp-clive50"
    grmp = manifest.get("grmp-clive50")
    assert grmp.weights.file.repo == "zzhowe/GRMP-IQA"
    assert grmp.weights.file.filename == "clive_50_prompt_lda_5.0.pt"
    assert grmp.weights.format == "authors-pt"
    # Never invented: the authors published no revision or checksum.
    assert grmp.weights.file.revision is None and grmp.weights.file.sha256 is None
    assert grmp.config == ModelConfig(kind="grmp")
    assert grmp.preprocess.mean == IMAGENET_MEAN
    assert (grmp.preprocess.resize, grmp.preprocess.crop) == (244, 224)
    backbone = grmp.backbone
    assert backbone.weights.repo == "timm/vit_base_patch16_clip_224.openai"
    assert backbone.architecture == "ViT-B-16" and backbone.quick_gelu
    zeroshot = manifest.get("clip-zeroshot")
    assert zeroshot.weights is None and zeroshot.config.kind == "zeroshot"
    assert zeroshot.backbone == backbone
    assert zeroshot.preprocess == PreprocessConfig()


def test_every_revision_and_checksum_is_well_formed_or_null():
    for entry in load_manifest().models.values():
        for file in entry.hub_files():
            assert file.revision is None or len(file.revision) == 40
            assert file.sha256 is None or len(file.sha256) == 64


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["models"]["grmp-clive50"].update(colour="red"), "unknown key(s) 'colour'"),
        (lambda d: d["models"]["grmp-clive50"]["weights"].update(revision="main"),
         "full 40-character commit hash"),
        (lambda d: d["models"]["grmp-clive50"]["weights"].update(sha256="abc"),
         "not 64 lowercase hex digits"),
        (lambda d: d["models"]["grmp-clive50"]["weights"].update(format="pickle"),
         "is not one of"),
        (lambda d: d["models"]["grmp-clive50"].pop("preprocess"), "missing required key"),
        (lambda d: d["models"]["grmp-clive50"].update(backbone="nope"), "no backbone named"),
        (lambda d: d["models"]["grmp-clive50"].update(weights=None), "needs a 'weights' file"),
        (lambda d: d["models"]["grmp-clive50"]["config"].update(text_context_tokens=-1),
         "non-negative integer"),
        (lambda d: d["models"]["grmp-clive50"]["preprocess"].update(crop=300), "crop <= resize"),
        (lambda d: d.update(default="missing"), "is not one of the models"),
        (lambda d: d.update(schema_version=99), "not supported"),
        (lambda d: d["backbones"]["openai-vit-b-16"].update(config_file="x.json"),
         "exactly one of"),
        (lambda d: d["backbones"]["openai-vit-b-16"]["weights"].update(repo="no-slash"),
         "is not a Hub repo id"),
        (lambda d: d["models"]["clip-zeroshot"]["config"].update(zeroshot_prompts=[["a"]]),
         "pairs"),
        (lambda d: d["models"]["grmp-clive50"]["weights"].update(size=0), "not a size"),
        (lambda d: d["models"]["grmp-clive50"]["weights"].update(size="1 GB"), "expected int"),
    ],
)
def test_malformed_manifests_are_refused_with_a_clear_message(edit, message):
    data = copy.deepcopy(_real())
    edit(data)
    with pytest.raises(ManifestError) as info:
        parse_manifest(data, "test.json")
    assert message in str(info.value)


def test_manifest_file_errors(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.json")
    with pytest.raises(ManifestError, match="unknown model 'nope'"):
        load_manifest().get("nope")


def test_manifest_env_override(monkeypatch, tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_real()))
    monkeypatch.setenv("GRMPIQA_MANIFEST", str(path))
    assert load_manifest().path == str(path)


def test_which_commands_need_which_files():
    manifest = load_manifest()
    grmp, zeroshot = manifest.get("grmp-clive50"), manifest.get("clip-zeroshot")
    # the authors' checkpoint holds every tensor: scoring needs it alone
    assert [(f.role, f.needed_for) for f in grmp.files()] == [
        ("weights", ("score", "adapt")), ("backbone", ("adapt", "pretrain"))]
    assert [f.filename for f in grmp.scoring_files()] == ["clive_50_prompt_lda_5.0.pt"]
    assert [(f.role, f.needed_for) for f in zeroshot.files()] == [("backbone", ("score",))]
    data = copy.deepcopy(_real())
    data["models"]["grmp-clive50"]["weights"].update(format="grmpiqa-safetensors", size=1234)
    data["backbones"]["openai-vit-b-16"] = {
        **data["backbones"]["openai-vit-b-16"], "config_file": "c.json"}
    del data["backbones"]["openai-vit-b-16"]["architecture"]
    ours = parse_manifest(data, "test").get("grmp-clive50")
    # grmpiqa's own weights hold what differs from the backbone: it is needed to score
    assert [(f.role, f.needed_for) for f in ours.files()] == [
        ("weights", ("score", "adapt")), ("backbone", ("score", "adapt", "pretrain")),
        ("backbone config", ("score", "adapt", "pretrain"))]
    assert ours.weights.file.size == 1234
