"""Few-shot fine-tuning with quality-aware gradient regularisation (docs/method.md, "Adapt").

:class:`FewShotTrainer` trains a loaded GRMP model on images already in
memory; ``grmpiqa.adapt`` wraps it with label reading, checkpoints and the
output file, and the few-shot benchmark calls it directly. Model selection
and the learning-rate schedule use the validation images only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from grmpiqa.metrics import plcc, srcc
from grmpiqa.model.maths import clip_logits, quality_bce, quality_from_logits
from grmpiqa.training.data import centre_crops, random_crops
from grmpiqa.training.precision import Precision, choose_precision
from grmpiqa.training.regularisation import regulate_gradients, scene_cross_entropy, scene_prompts
from grmpiqa.training.schedule import AdaptOptions, EvaluationRecord, TrainingState
from grmpiqa.training.tail import PoolPlan, ViewPool, fast_block, plan_pool, split_block
from grmpiqa.training.teacher import SceneTeacher
from grmpiqa.training.trainable import set_trainable

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel

__all__ = ["AdaptOptions", "EvaluationRecord", "FewShotTrainer", "TrainingState"]

log = logging.getLogger("grmpiqa")
AUTO_BATCH_LIMIT = 64
EVAL_BATCH = 64
CHECKPOINT_SECONDS = 60.0  # a checkpoint of the trainable tensors can be hundreds of MB


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


class FewShotTrainer:
    """Fine-tune ``model`` in place on ``pixels`` (uint8, squashed to the model's ``resize``).

    ``targets`` are labels normalised to [0, 1], 1 = best. Without validation
    indices, selection and the schedule use the training images' loss.
    """

    def __init__(self, model: QualityModel, pixels: torch.Tensor, targets: Sequence[float],
                 train: Sequence[int], val: Sequence[int], options: AdaptOptions, *,
                 teacher: SceneTeacher | None, state: TrainingState | None = None) -> None:
        if not train:
            raise ValueError("no training images")
        self.model = model
        self.options = options
        self.device = model.device
        self.pixels = pixels
        self.targets = torch.as_tensor(list(targets), dtype=torch.float32)
        self.train_idx = torch.as_tensor(list(train), dtype=torch.long)
        self.val_idx = torch.as_tensor(list(val), dtype=torch.long)
        self.crop = model.preprocess.crop
        self.batch_size = options.batch_size or min(len(train), AUTO_BATCH_LIMIT)
        self.named = set_trainable(model, options.trainable)
        self.params = [p for _, p in self.named]
        self.teacher = teacher if options.lam > 0 else None
        self.scene_ids = model.tokenizer(scene_prompts()).to(self.device) \
            if self.teacher is not None else None
        self.state = state or TrainingState(lr=options.lr)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.best = {name: p.detach().clone() for name, p in self.named}
        self.precision = Precision(choose_precision(self.device.type, options.precision),
                                   self.device.type)
        self.scaler: torch.amp.GradScaler | None = None
        self.pool, self.pool_plan, self.split = self._make_pool()

    def _make_pool(self) -> tuple[ViewPool | None, PoolPlan | None, int | None]:
        """The prefix cache, if the mode has a frozen prefix and it fits ``cache_mib``."""
        split = split_block(self.model) if self.options.cache else None
        if split is None:
            return None, None, None
        eval_images = len(self.val_idx) or len(self.train_idx)
        plan = plan_pool(self.model, self.options.views, len(self.train_idx), eval_images,
                         self.precision.cache_dtype)
        if plan.total_bytes > self.options.cache_mib * 2 ** 20:
            log.info("not caching the frozen image blocks (%s, over %d MiB): recomputing "
                     "them every step", plan.describe(), self.options.cache_mib)
            return None, plan, None
        pool = ViewPool(self.model, self.teacher, self.pixels, split, self.options.views,
                        self.options.seed, self.precision.cache_dtype,
                        self.precision.autocast_factory())
        return pool, plan, split

    # ------------------------------------------------------------------ tensors
    def current_tensors(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.named}

    def load_tensors(self, current: dict[str, torch.Tensor], best: dict[str, torch.Tensor]
                     ) -> None:
        # Through load_state_dict, which also drops the model's cached text features.
        self.model.load_state_dict({name: current[name] for name, _ in self.named},
                                   strict=False)
        self.best = {name: best[name].to(p.device).clone() for name, p in self.named}

    def restore_best(self) -> None:
        """Put the best weights back (and drop cached text features computed from others)."""
        self.model.load_state_dict(self.best, strict=False)

    # ------------------------------------------------------------------ training
    def step(self, crops: torch.Tensor, target: torch.Tensor) -> float:
        """One SGD step on the regulated gradient from whole crops; returns the quality loss."""
        model = self.model
        with self.precision.autocast():
            image = self._whole_tower(model.normalize(crops))
            teacher = self.teacher.logits(crops, fast_block) if self.teacher is not None \
                else None
        return self._descend(image, target, teacher)

    def _whole_tower(self, x: torch.Tensor) -> torch.Tensor:
        """``encode_image`` through :func:`fast_block` (the same maths; under CPU autocast
        ``nn.MultiheadAttention`` is far slower), where the model has visual prompts."""
        if self.model.visual_prompts is None:
            return self.model.encode_image(x)
        depth = len(self.model.clip.visual.transformer.resblocks)
        return self.model.image_tail(self.model.image_prefix(x, depth, fast_block), depth)

    def step_tail(self, tokens: torch.Tensor, teacher_logits: torch.Tensor | None,
                  target: torch.Tensor) -> float:
        """:meth:`step` from cached prefix tokens and teacher logits: the tail only."""
        with self.precision.autocast():
            image = self.model.image_tail(tokens.float(), self.split, fast_block)
        return self._descend(image, target, teacher_logits)

    def losses(self, image: torch.Tensor, target: torch.Tensor,
               teacher_logits: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(quality loss, semantic loss or None), both fp32, from the image features."""
        model = self.model
        logits = clip_logits(image, model.class_text_features(), model.clip.logit_scale)
        loss = quality_bce(logits, target)
        if teacher_logits is None:
            return loss, None
        ids = self.scene_ids
        with self.precision.autocast():
            scene_text = model.encode_text_embeddings(model.clip.token_embedding(ids), ids)
        student = clip_logits(image, scene_text.float(), model.clip.logit_scale)
        return loss, scene_cross_entropy(student, teacher_logits)

    def _descend(self, image: torch.Tensor, target: torch.Tensor,
                 teacher_logits: torch.Tensor | None) -> float:
        loss, semantic = self.losses(image, target, teacher_logits)
        scaler = self.scaler
        scaled = scaler.scale(loss) if scaler is not None else loss
        if semantic is None:
            grads = torch.autograd.grad(scaled, self.params, allow_unused=True)
        else:
            quality_grads = torch.autograd.grad(scaled, self.params, retain_graph=True,
                                                allow_unused=True)
            semantic = scaler.scale(semantic) if scaler is not None else semantic
            semantic_grads = torch.autograd.grad(semantic, self.params, allow_unused=True) \
                if semantic.requires_grad else [None] * len(self.params)
            # Both scaled by the same factor: the rule is homogeneous, so scaling commutes.
            grads = regulate_gradients(quality_grads, semantic_grads, self.options.lam)
        for param, grad in zip(self.params, grads, strict=True):
            param.grad = None if grad is None else grad.float()
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def train_epoch(self) -> float:
        self.model.train()
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=self.generator)]
        view = self.state.epoch % self.options.views
        total = 0.0
        for chunk in order.split(self.batch_size):
            target = self.targets[chunk].to(self.device)
            if self.pool is not None:
                tokens, scene = self.pool.batch(chunk, view)
                total += self.step_tail(tokens, scene, target) * len(chunk)
                continue
            crops = random_crops(self.pixels[chunk], self.crop, self.generator, include_last=False)
            crops = crops.float().div_(255.0).to(self.device)
            total += self.step(crops, target) * len(chunk)
        return total / len(order)

    @torch.no_grad()
    def predict(self, indices: torch.Tensor) -> np.ndarray:
        """Quality of the centre crops, in eval mode: what ``grmpiqa score`` would say."""
        self.model.eval()
        out = []
        for chunk in indices.split(EVAL_BATCH):
            with self.precision.autocast():
                if self.pool is not None:
                    image = self.model.image_tail(self.pool.eval_batch(chunk).float(),
                                                  self.split, fast_block)
                    q = quality_from_logits(clip_logits(
                        image, self.model.class_text_features(), self.model.clip.logit_scale))
                else:
                    q = self.model.predict(centre_crops(self.pixels[chunk], self.crop)
                                           .to(self.device))
            out.append(q.float().cpu())
        return torch.cat(out).numpy() if out else np.zeros(0)

    def evaluate(self) -> tuple[float, float | None, float | None]:
        """(selection metric, val SRCC, val PLCC): SRCC + PLCC as the authors select,
        or minus the training images' loss when there is no validation split."""
        if len(self.val_idx):
            q = self.predict(self.val_idx)
            y = self.targets[self.val_idx].numpy()
            s, p = srcc(q, y), plcc(q, y)
            metric = s + p if math.isfinite(s + p) else -math.inf
            return metric, _finite(s), _finite(p)
        q = np.clip(self.predict(self.train_idx), 1e-7, 1 - 1e-7)
        y = self.targets[self.train_idx].numpy()
        return float(np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))), None, None

    def run(self, *, on_evaluation: Callable[[EvaluationRecord], None] | None = None,
            on_checkpoint: Callable[[FewShotTrainer], None] | None = None,
            on_epoch: Callable[[int, float], None] | None = None,
            on_progress: Callable[[dict[str, float]], None] | None = None,
            rng_state: tuple[torch.Tensor, torch.Tensor] | None = None,
            checkpoint_seconds: float = CHECKPOINT_SECONDS) -> TrainingState:
        """Train until the schedule ends or ``epochs``; Ctrl-C stops between steps.

        The best weights (by validation) stay in ``self.best``; call
        :meth:`restore_best` to put them in the model. ``rng_state`` resumes the
        random streams of a checkpoint, so a resumed run repeats the original.
        A checkpoint is written after the first epoch, then at an evaluation
        once ``checkpoint_seconds`` have passed since the last one. ``on_progress``
        gets, after each epoch, ``seconds_per_epoch`` (the last epoch's), and
        ``fewest_left`` / ``most_left``: epochs until the schedule ends if validation
        never improves again, and until ``epochs``.
        """
        state, options = self.state, self.options
        self.optimizer = torch.optim.SGD(self.params, lr=state.lr,
                                         weight_decay=options.weight_decay)
        self.scaler = self.precision.scaler()
        devices = [] if self.device.type != "cuda" else [
            self.device.index if self.device.index is not None else torch.cuda.current_device()]
        started = time.perf_counter() - (state.history[-1].seconds if state.history else 0.0)
        last_checkpoint = time.perf_counter()
        with torch.random.fork_rng(devices=devices):
            if rng_state is None:
                torch.manual_seed(options.seed)
            else:
                torch.set_rng_state(rng_state[0])
                self.generator.set_state(rng_state[1])
            try:
                if not state.history:
                    metric, s, p = self.evaluate()
                    state.after_evaluation(metric, options)
                    state.best_srcc, state.best_plcc = s, p
                    self._report(EvaluationRecord(0, None, s, p, state.lr, True, 0.0),
                                 on_evaluation)
                while state.epoch < options.epochs and not state.stopped:
                    tick = time.perf_counter()
                    state.pending_losses.append(self.train_epoch())
                    state.epoch += 1
                    state.train_seconds += time.perf_counter() - tick
                    state.timed_epochs += 1
                    if on_epoch is not None:
                        on_epoch(state.epoch, state.pending_losses[-1])
                    evaluating = not (state.epoch % options.interval
                                      and state.epoch != options.epochs)
                    record = self._evaluation(started) if evaluating else None
                    due = state.epoch == 1 or (evaluating and time.perf_counter()
                                               - last_checkpoint >= checkpoint_seconds)
                    if on_checkpoint is not None and due and not state.stopped:
                        on_checkpoint(self)
                        last_checkpoint = time.perf_counter()
                    if record is not None and on_evaluation is not None:
                        on_evaluation(record)
                    if on_progress is not None:
                        on_progress({"epoch": state.epoch,
                                     "seconds_per_epoch": time.perf_counter() - tick,
                                     "fewest_left": state.fewest_epochs_left(options),
                                     "most_left": options.epochs - state.epoch})
            except KeyboardInterrupt:
                state.stopped = "interrupted"
        if not state.stopped:
            state.stopped = "epoch limit"
        return state

    def _evaluation(self, started: float) -> EvaluationRecord:
        state, options = self.state, self.options
        lr = state.lr
        metric, s, p = self.evaluate()
        best = state.after_evaluation(metric, options)
        if best:
            state.best_srcc, state.best_plcc = s, p
            self.best = {n: t.clone() for n, t in self.current_tensors().items()}
        for group in self.optimizer.param_groups:
            group["lr"] = state.lr
        record = EvaluationRecord(state.epoch, float(np.mean(state.pending_losses)), s, p, lr,
                                  best, time.perf_counter() - started)
        state.pending_losses = []
        state.history.append(record)
        return record

    def _report(self, record: EvaluationRecord,
                on_evaluation: Callable[[EvaluationRecord], None] | None) -> None:
        self.state.history.append(record)
        if on_evaluation is not None:
            on_evaluation(record)

    def rng_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The random streams now (inside :meth:`run`'s forked RNG), for a checkpoint."""
        return torch.get_rng_state(), self.generator.get_state()
