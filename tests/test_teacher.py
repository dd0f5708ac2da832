import pytest
import torch

from grmpiqa.config import CLIP_MEAN, CLIP_STD
from grmpiqa.model.maths import clip_logits
from grmpiqa.training.adaptation import pristine_reference, weights_to_save
from grmpiqa.training.regularisation import scene_prompts
from grmpiqa.training.trainable import trainable_names
from grmpiqa.weights.backbone import build_backbone


@pytest.fixture
def model(tiny_hub):
    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import parse_manifest

    manifest = parse_manifest(tiny_hub.manifest, str(tiny_hub.manifest_path))
    return load_model("grmp-tiny", device="cpu", manifest=manifest)


def _plain_clip_logits(pixels):
    """The original CLIP, the ordinary way: a second full backbone, no prompts."""
    from grmpiqa.weights.loading import load_model

    clip = build_backbone(load_model("grmp-tiny", device="cpu").backbone_spec)
    x = (pixels - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(
        1, 3, 1, 1)
    from open_clip import SimpleTokenizer

    with torch.no_grad():
        text = clip.encode_text(SimpleTokenizer()(scene_prompts()))
        return clip_logits(clip.encode_image(x), text, clip.logit_scale)


def test_teacher_is_the_original_clip_and_stays_so(model, use_tiny_manifest):
    _, teacher = pristine_reference(model, "full", True)
    pixels = torch.rand(3, 3, 32, 32)
    expected = _plain_clip_logits(pixels)
    assert torch.allclose(teacher.logits(pixels), expected, atol=1e-5)
    # Training changes the student's trainable blocks; the teacher must not follow.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in trainable_names(model, "full"):
                param.add_(torch.randn_like(param))
    student_block = model.clip.visual.transformer.resblocks[2].mlp.c_fc.weight.clone()
    model.train()
    out = teacher.logits(pixels)
    assert torch.allclose(out, expected, atol=1e-5)
    assert not out.requires_grad
    # The student's own tensors are back in place, and its mode is untouched.
    assert torch.equal(model.clip.visual.transformer.resblocks[2].mlp.c_fc.weight,
                       student_block)
    assert model.clip.visual.training


def test_teacher_holds_only_what_differs_or_trains(model, use_tiny_manifest):
    copies, teacher = pristine_reference(model, "full", True)
    trained = {n[len("clip."):] for n in trainable_names(model, "full") if n.startswith("clip.")}
    # The authors'-layout checkpoint changed the last block of each tower: the same set.
    assert set(copies) == trained
    assert set(teacher.overrides) == {k[len("visual."):] for k in trained
                                      if k.startswith("visual.")}
    visual_bytes = sum(p.numel() * 4 for p in model.clip.visual.parameters())
    held = sum(t.numel() * 4 for t in teacher.overrides.values())
    assert held < visual_bytes / 2
    assert teacher.held_bytes() == held + teacher.text_features.numel() * 4
    # Shared, not copied: the teacher's overrides are the very tensors kept for saving.
    key = "visual.ln_post.weight"
    assert teacher.overrides["ln_post.weight"] is copies[key]
    prompts_copies, none = pristine_reference(model, "prompts", False)
    assert none is None
    assert all(".resblocks.2." in k for k in prompts_copies)  # only what the file changed


def test_saved_tensors_are_what_differs_from_the_backbone(model, use_tiny_manifest):
    copies, _ = pristine_reference(model, "prompts", False)
    saved = weights_to_save(model, copies)
    learned = set(model.learned_state())
    clip_keys = {k for k in saved if k.startswith("clip.")}
    assert learned <= set(saved)
    assert clip_keys == {f"clip.{k}" for k in copies}
    assert set(saved) == learned | clip_keys
