import pytest
import torch
from PIL import Image

from grmpiqa.config import ModelConfig
from grmpiqa.errors import ConfigError
from grmpiqa.model.network import QualityModel
from photos import texture
from score_checks import spread_photos


def test_prompt_tokens_are_inserted_and_replaced_per_layer(tiny_model):
    model = tiny_model
    n = model.config.visual_prompt_tokens
    patches = (32 // 8) ** 2
    blocks = model.clip.visual.transformer.resblocks
    seen = []
    hooks = [b.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
             for b in blocks]
    try:
        with torch.no_grad():
            model.eval()
            model.encode_image(torch.randn(2, 3, 32, 32))
    finally:
        for h in hooks:
            h.remove()
    assert [x.shape[1] for x in seen] == [1 + n + patches] * len(blocks)
    projected = model.visual_prompts.projected()
    # Block 0 gets the shallow prompts, blocks 1..depth a fresh deep set each.
    for layer in range(model.config.visual_prompt_depth + 1):
        assert torch.allclose(seen[layer][:, 1:1 + n], projected[layer].expand(2, -1, -1),
                              atol=1e-6), layer


def test_scores_are_probabilities(tiny_model):
    pixels = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        q = tiny_model.predict(pixels)
    assert q.shape == (5,) and bool(((q >= 0) & (q <= 1)).all())


def test_text_features_are_computed_once_per_loaded_model(tiny_model):
    before = tiny_model.text_encodings
    pixels = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    for _ in range(3):
        tiny_model.score(pixels)
    assert tiny_model.text_encodings - before <= 1
    tiny_model.score(pixels)
    assert tiny_model.text_encodings - before <= 1


def test_text_features_follow_training(tiny_model):
    tiny_model.train()
    try:
        count = tiny_model.text_encodings
        tiny_model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
        tiny_model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
        assert tiny_model.text_encodings == count + 2  # never cached while parameters move
    finally:
        tiny_model.eval()


def test_same_image_same_score_at_batch_size_1_and_16(tiny_model):
    torch.manual_seed(0)
    pixels = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    batched = tiny_model.score(pixels, batch_size=16)
    single = tiny_model.score(pixels, batch_size=1)
    assert max(abs(a - b) for a, b in zip(batched, single, strict=True)) < 1e-5


def test_score_accepts_pil_and_tensors_of_any_size(tiny_model):
    image = Image.new("RGB", (90, 50), (120, 30, 200))
    tensor = torch.full((3, 50, 90), 0.5)
    scores = tiny_model.score([image, tensor, torch.zeros(3, 32, 32, dtype=torch.uint8)])
    assert len(scores) == 3 and all(0 <= s <= 1 for s in scores)
    with pytest.raises(TypeError):
        tiny_model.score(["not an image"])


def test_zeroshot_model_has_no_learned_parameters(tiny_zeroshot):
    assert tiny_zeroshot.learned_state() == {}
    scores = tiny_zeroshot.score(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert all(0 <= s <= 1 for s in scores)


def test_prompt_depth_must_fit_the_backbone(tiny_model):
    config = ModelConfig(visual_prompt_depth=11)
    with pytest.raises(ConfigError, match="needs a backbone with at least 12"):
        QualityModel(tiny_model.clip, tiny_model.tokenizer, config, tiny_model.preprocess)


def test_coop_prompt_layout(tiny_model):
    ids = tiny_model.text_context.token_ids
    tok = tiny_model.tokenizer
    text = [tok.decode([i for i in row.tolist() if i]) for row in ids]
    assert "x x x x high quality ." in text[0]
    assert "x x x x low quality ." in text[1]


def test_embeddings_come_from_the_scoring_pass(tiny_model, tiny_zeroshot, tmp_path):
    from PIL import Image

    from grmpiqa.scoring.engine import score_paths

    pixels = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    for model in (tiny_model, tiny_zeroshot):
        with torch.inference_mode():
            quality, embeddings = model.predict_with_embedding(pixels)
            features = model.encode_image(model.normalize(pixels))
        assert torch.allclose(quality, model.predict(pixels), atol=1e-6)
        assert torch.allclose(embeddings, features / features.norm(dim=-1, keepdim=True),
                              atol=1e-6)
        assert torch.allclose(embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
    for i in range(3):
        Image.fromarray(pixels[i].permute(1, 2, 0).numpy()).save(tmp_path / f"{i}.png")
    (tmp_path / "3.png").write_bytes(b"broken")
    plain = list(score_paths([str(tmp_path)], tiny_model, workers=0))
    rich = list(score_paths([str(tmp_path)], tiny_model, workers=0, features=True))
    assert [r.score for r in plain] == [r.score for r in rich]
    assert all(r.embedding is None for r in plain) and rich[3].embedding is None
    assert [len(r.embedding) for r in rich[:3]] == [32, 32, 32]
    assert "embedding=" not in repr(rich[0])


def test_the_tiny_test_model_scores_generated_photos_far_apart(tiny_model):
    """Tolerances and thresholds in these tests mean something only where the test model
    tells photos apart (fakehub.spread_scores): on generated photos it was not fitted to,
    its scores span most of 0..1."""
    for photos in (spread_photos(), [Image.fromarray(texture(i)) for i in range(13)]):
        scores = tiny_model.score(photos)
        assert max(scores) - min(scores) >= 0.6, scores
