"""The cached frozen prefix: training the tail alone is the same maths as the whole tower."""

import pytest
import torch

from grmpiqa.model.maths import clip_logits, quality_bce
from grmpiqa.training.adaptation import pristine_reference
from grmpiqa.training.data import random_crops
from grmpiqa.training.finetune import AdaptOptions, FewShotTrainer
from grmpiqa.training.tail import fast_block, plan_pool, split_block
from grmpiqa.training.trainable import set_trainable
from grmpiqa.weights.loading import load_model
from grmpiqa.weights.manifest import parse_manifest

TOL = 1e-5


@pytest.fixture
def model(tiny_hub):
    manifest = parse_manifest(tiny_hub.manifest, str(tiny_hub.manifest_path))
    return load_model("grmp-tiny", device="cpu", manifest=manifest, precision="fp32")


@pytest.fixture
def crops(model):
    g = torch.Generator().manual_seed(3)
    size = model.preprocess.resize
    pixels = torch.randint(0, 256, (6, 3, size, size), dtype=torch.uint8, generator=g)
    return random_crops(pixels, model.preprocess.crop, g).float().div_(255.0)


def _grads(model, params, features):
    loss = quality_bce(clip_logits(features, model.class_text_features(),
                                   model.clip.logit_scale), torch.linspace(0, 1, 6))
    return torch.autograd.grad(loss, params, allow_unused=True)


def _close(a, b):
    """Each gradient tensor within 1e-5 of its own largest entry (at least 1e-5 absolute):
    the logit scale (about 100) amplifies fp32 rounding in the large text-context grads."""
    return all((x is None and y is None) or
               (x - y).abs().max() <= TOL * max(1.0, float(y.abs().max()))
               for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_tail_from_cached_prefix_gives_the_full_forwards_logits_and_gradients(model, crops,
                                                                               mode):
    params = [p for _, p in set_trainable(model, "full")]
    split = split_block(model)
    assert split == (2 * len(model.clip.visual.transformer.resblocks)) // 3
    model.train(mode == "train")  # train: prompt dropout, drawn in the same order both ways
    x = model.normalize(crops)
    torch.manual_seed(0)
    full = model.encode_image(x)
    torch.manual_seed(0)
    with torch.no_grad():
        prefix = model.image_prefix(x, split, fast_block)
    tail = model.image_tail(prefix.clone(), split, fast_block)
    assert not prefix.requires_grad
    assert torch.allclose(tail, full, atol=TOL, rtol=TOL)
    logits = clip_logits(full, model.class_text_features(), model.clip.logit_scale)
    cached = clip_logits(tail, model.class_text_features(), model.clip.logit_scale)
    assert (cached - logits).abs().max() < TOL
    grads = _grads(model, params, tail)
    assert _close(grads, _grads(model, params, full))
    # and the tail does carry gradient to every trainable image block
    names = [n for n, _ in set_trainable(model, "full")]
    assert all(g is not None and g.abs().sum() > 0 for n, g in zip(names, grads, strict=True)
               if n.startswith("clip.visual.transformer"))


def test_the_last_block_for_the_cls_token_alone_is_the_same(model, crops):
    blocks = model.clip.visual.transformer.resblocks
    x = torch.randn(3, 20, blocks[0].ln_1.weight.shape[0])
    with torch.no_grad():
        assert torch.allclose(fast_block(blocks[-1], x, True)[:, 0], blocks[-1](x)[:, 0],
                              atol=TOL)
        assert torch.allclose(fast_block(blocks[-1], x, False), blocks[-1](x), atol=TOL)


def test_the_fast_teacher_is_the_plain_teacher(model, crops, tiny_hub):
    set_trainable(model, "full")
    _, teacher = pristine_reference(model, "full", True, tiny_hub.hf_cache)
    assert torch.allclose(teacher.logits(crops, fast_block), teacher.logits(crops), atol=TOL)


def test_a_cached_step_moves_the_weights_as_a_full_step(model, crops, tiny_hub):
    """The trainer's tail step from cached tokens and teacher logits == its full step."""
    _, teacher = pristine_reference(model, "full", True, tiny_hub.hf_cache)
    size = model.preprocess.resize
    pixels = torch.zeros(6, 3, size, size, dtype=torch.uint8)
    trainer = FewShotTrainer(model, pixels, [i / 5 for i in range(6)], list(range(6)), [],
                             AdaptOptions(lr=0.5, precision="fp32", cache=True), teacher=teacher)
    start = {n: t.clone() for n, t in trainer.current_tensors().items()}
    model.eval()  # no dropout: one forward of each kind, nothing random
    target = torch.linspace(0, 1, 6)
    trainer.optimizer = torch.optim.SGD(trainer.params, lr=0.5)
    trainer.step(crops, target)
    full = {n: t.clone() for n, t in trainer.current_tensors().items()}
    model.load_state_dict(start, strict=False)
    with torch.no_grad():
        tokens = model.image_prefix(model.normalize(crops), trainer.split, fast_block)
        scene = teacher.logits(crops, fast_block)
    trainer.optimizer = torch.optim.SGD(trainer.params, lr=0.5)
    trainer.step_tail(tokens, scene, target)
    moved = trainer.current_tensors()
    assert any(not torch.equal(full[n], start[n]) for n in full)
    assert all(torch.allclose(moved[n], full[n], atol=TOL, rtol=TOL) for n in full)


def test_the_pool_states_its_memory_and_falls_back_when_over_the_bound(model, tiny_hub):
    size = model.preprocess.resize
    pixels = torch.zeros(8, 3, size, size, dtype=torch.uint8)
    plan = plan_pool(model, 4, 6, 2, torch.float32)
    width = model.clip.visual.transformer.width
    assert plan.bytes_per_view == plan.tokens * width * 4
    assert plan.total_bytes == plan.bytes_per_view * (4 * 6 + 2)
    assert "MiB per view" in plan.describe()
    labels = [i / 7 for i in range(8)]
    fits = FewShotTrainer(model, pixels, labels, list(range(6)), [6, 7],
                          AdaptOptions(views=4, precision="fp32", cache=True), teacher=None)
    assert fits.pool is not None and fits.pool_plan.total_bytes == plan.total_bytes
    over = FewShotTrainer(model, pixels, labels, list(range(6)), [6, 7],
                          AdaptOptions(views=4, precision="fp32", cache_mib=0, cache=True),
                          teacher=None)
    assert over.pool is None and over.pool_plan is not None
    prompts = FewShotTrainer(model, pixels, labels, list(range(6)), [6, 7],
                             AdaptOptions(trainable="prompts"), teacher=None)
    assert prompts.pool is None  # the visual prompts train: nothing before them is frozen


def test_pool_views_are_fixed_by_the_seed_and_refill_identically(model, tiny_hub):
    size = model.preprocess.resize
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (4, 3, size, size), dtype=torch.uint8, generator=g)
    _, teacher = pristine_reference(model, "full", True, tiny_hub.hf_cache)

    def pool():
        return FewShotTrainer(model, pixels, [0, 0.3, 0.6, 1], [0, 1, 2, 3], [],
                              AdaptOptions(views=3, precision="fp32", cache=True),
                              teacher=teacher).pool

    a, b = pool(), pool()
    model.train()
    first, scene = a.batch(torch.tensor([2, 0]), 1)
    again, scene_again = b.batch(torch.tensor([0, 2]), 1)  # another order, a fresh pool
    assert torch.equal(first, again.flip(0)) and torch.equal(scene, scene_again.flip(0))
    assert a.held_bytes() == 2 * first[0].numel() * 4 + 2 * scene[0].numel() * 4


class _WholeTower(FewShotTrainer):
    """The reference: the pool's own views, through the whole tower and the teacher
    every step, and evaluation on the centre crops through the whole tower."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.views_of, self.pool = self.pool, None

    def train_epoch(self) -> float:
        self.model.train()
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=self.generator)]
        v = self.state.epoch % self.options.views
        total = 0.0
        for chunk in order.split(self.batch_size):
            crops = torch.stack([self.views_of.view(int(i), v) for i in chunk])
            total += self.step(crops.float().div_(255.0), self.targets[chunk]) * len(chunk)
        return total / len(order)


def test_epochs_from_the_pool_train_as_the_whole_tower_on_the_pools_views(model, tiny_hub):
    """Several epochs (the views wrap around, two steps each) from cached tokens and
    teacher logits, evaluated from cached centre-crop tokens, follow the trajectory of
    whole-tower training on the same views: the cache changes the cost, not the maths."""
    model.visual_prompts.prompt_dropout.p = 0.0  # nothing random but the views and order
    _, teacher = pristine_reference(model, "full", True, tiny_hub.hf_cache)
    size = model.preprocess.resize
    g = torch.Generator().manual_seed(5)
    pixels = torch.randint(0, 256, (12, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.rand(12, generator=g).tolist()
    options = AdaptOptions(views=3, epochs=5, lr=0.05, batch_size=4, precision="fp32",
                           cache=True, stop_patience=100)
    start = {n: t.clone() for n, t in model.state_dict().items()}
    runs = []
    for kind in (FewShotTrainer, _WholeTower):
        model.load_state_dict(start)
        trainer = kind(model, pixels, labels, list(range(8)), list(range(8, 12)), options,
                       teacher=teacher)
        state = trainer.run()
        runs.append((trainer.current_tensors(), [r.val_srcc for r in state.history],
                     [r.loss for r in state.history]))
    (cached, cached_srcc, cached_loss), (whole, whole_srcc, whole_loss) = runs
    assert any(not torch.equal(whole[n], start[n]) for n in whole)
    # five epochs of SGD compound fp32 rounding: 1e-4 of each tensor's scale
    assert all((cached[n] - whole[n]).abs().max() <= 1e-4 * max(1.0, float(whole[n].abs().max()))
               for n in whole)
    assert cached_srcc == pytest.approx(whole_srcc, abs=1e-6)
    assert cached_loss[1:] == pytest.approx(whole_loss[1:], rel=1e-4)
