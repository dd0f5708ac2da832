import pytest
import torch

from grmpiqa.errors import ConfigError
from grmpiqa.training.trainable import last_third, set_trainable, trainable_names


def test_last_third_of_any_depth():
    assert list(last_third(12)) == [8, 9, 10, 11]  # ViT-B/16: the paper's blocks 8..11
    assert list(last_third(24)) == list(range(16, 24))
    assert list(last_third(3)) == [2]
    assert list(last_third(1)) == [0]
    with pytest.raises(ValueError):
        last_third(0)


def test_full_set_is_the_papers(tiny_model):
    names = trainable_names(tiny_model, "full")
    # The tiny backbone has 3 blocks per tower: the last third is block 2.
    assert "text_context.ctx" in names
    assert any(n.startswith("clip.transformer.resblocks.2.") for n in names)
    assert any(n.startswith("clip.visual.transformer.resblocks.2.") for n in names)
    assert {"clip.ln_final.weight", "clip.ln_final.bias", "clip.visual.ln_post.weight",
            "clip.visual.ln_post.bias"} <= set(names)
    assert not any(n.startswith(("clip.transformer.resblocks.1.", "visual_prompts.",
                                 "clip.visual.transformer.resblocks.1.")) for n in names)
    frozen = {"clip.logit_scale", "clip.visual.proj", "clip.text_projection",
              "clip.token_embedding.weight", "clip.visual.conv1.weight"}
    assert not frozen & set(names)
    for tower in ("clip.visual.transformer", "clip.transformer"):  # whole blocks, nothing less
        block = tiny_model.get_submodule(f"{tower}.resblocks.2")
        assert {f"{tower}.resblocks.2.{n}" for n, _ in block.named_parameters()} <= set(names)


def test_prompts_mode_and_set_trainable(tiny_model):
    names = trainable_names(tiny_model, "prompts")
    assert set(names) == {"text_context.ctx", "visual_prompts.prompt_embeddings",
                          "visual_prompts.deep_prompt_embeddings",
                          "visual_prompts.prompt_proj.weight", "visual_prompts.prompt_proj.bias",
                          "visual_prompts.prompt_norm.weight", "visual_prompts.prompt_norm.bias"}
    before = {n: p.requires_grad for n, p in tiny_model.named_parameters()}
    try:
        chosen = set_trainable(tiny_model, "full")
        assert [n for n, _ in chosen] == trainable_names(tiny_model, "full")
        assert {n for n, p in tiny_model.named_parameters() if p.requires_grad} == \
            {n for n, _ in chosen}
    finally:
        for n, p in tiny_model.named_parameters():
            p.requires_grad_(before[n])


def test_only_grmp_models_and_known_modes(tiny_model, tiny_zeroshot):
    with pytest.raises(ConfigError, match="only a GRMP model"):
        trainable_names(tiny_zeroshot, "full")
    with pytest.raises(ConfigError, match="trainable set 'everything'"):
        trainable_names(tiny_model, "everything")
    assert isinstance(tiny_model.clip.logit_scale, torch.nn.Parameter)
