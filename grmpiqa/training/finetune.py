"""Few-shot fine-tuning with quality-aware gradient regularisation (docs/method.md, "Adapt").

:class:`FewShotTrainer` trains a loaded GRMP model on images already in
memory; ``grmpiqa.adapt`` wraps it with label reading, checkpoints and the
output file, and the few-shot benchmark calls it directly. Model selection
and the learning-rate schedule use the validation images only.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from grmpiqa.metrics import plcc, srcc
from grmpiqa.model.maths import clip_logits, quality_bce
from grmpiqa.training.data import centre_crops, random_crops
from grmpiqa.training.regularisation import regulate_gradients, scene_cross_entropy, scene_prompts
from grmpiqa.training.teacher import SceneTeacher
from grmpiqa.training.trainable import TRAINABLE_MODES, set_trainable

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel

AUTO_BATCH_LIMIT = 64
EVAL_BATCH = 64


@dataclass(frozen=True)
class AdaptOptions:
    """Training choices; the defaults are the authors' (docs/method.md, "Adapt")."""

    trainable: str = "full"
    lam: float = 5.0  # lambda of the gradient rule; 0 turns the regularisation off
    epochs: int = 2000  # an upper bound: training stops once the lr decays below min_lr
    batch_size: int | None = None  # None: all training images at once, at most 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.2
    eval_every: int = 5  # epochs between evaluations (and checkpoints)
    patience: int = 5  # evaluations without improvement tolerated before the lr decays
    decay: float = 0.3
    min_lr: float = 5e-7

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE_MODES:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE_MODES)}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ValueError("lambda must be a number >= 0")
        for name in ("epochs", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError("learning rate must be > 0")
        if not 0.0 <= self.val_fraction <= 0.5:
            raise ValueError("validation fraction must be between 0 and 0.5")
        if self.patience < 0 or not 0 < self.decay < 1 or self.weight_decay < 0:
            raise ValueError("need patience >= 0, 0 < decay < 1 and weight decay >= 0")

    def resume_key(self) -> dict[str, Any]:
        """What a resumed run must share with the original (it may only change ``epochs``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "epochs"}


@dataclass
class EvaluationRecord:
    """One row of the progress table. ``loss``: mean quality loss since the last evaluation."""

    epoch: int
    loss: float | None
    val_srcc: float | None
    val_plcc: float | None
    lr: float
    best: bool
    seconds: float


@dataclass
class TrainingState:
    """Everything that must survive a restart, besides the tensors."""

    lr: float
    epoch: int = 0
    bad_evaluations: int = 0
    best_metric: float = -math.inf
    best_epoch: int = 0
    best_srcc: float | None = None
    best_plcc: float | None = None
    stopped: str = ""
    train_seconds: float = 0.0
    timed_epochs: int = 0
    history: list[EvaluationRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["best_metric"] = None if math.isinf(self.best_metric) else self.best_metric
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingState:
        data = dict(data)
        data["history"] = [EvaluationRecord(**r) for r in data.get("history", [])]
        if data.get("best_metric") is None:
            data["best_metric"] = -math.inf
        return cls(**data)

    def after_evaluation(self, metric: float, options: AdaptOptions) -> bool:
        """Record an evaluation; decay the lr after ``patience`` evaluations without
        improvement (authors: x0.3) and stop once it falls below ``min_lr``. True if best."""
        improved = metric > self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.bad_evaluations = metric, self.epoch, 0
            return True
        self.bad_evaluations += 1
        if self.bad_evaluations > options.patience:
            self.lr *= options.decay
            self.bad_evaluations = 0
            if self.lr < options.min_lr:
                self.stopped = f"learning rate fell below {options.min_lr:g}"
        return False


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
        """One SGD step on the regulated gradient; returns the quality loss."""
        model = self.model
        image = model.encode_image(model.normalize(crops))
        logits = clip_logits(image, model.class_text_features(), model.clip.logit_scale)
        loss = quality_bce(logits, target)
        if self.teacher is None:
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        else:
            ids = self.scene_ids
            scene_text = model.encode_text_embeddings(model.clip.token_embedding(ids), ids)
            student = clip_logits(image, scene_text, model.clip.logit_scale)
            semantic = scene_cross_entropy(student, self.teacher.logits(crops))
            quality_grads = torch.autograd.grad(loss, self.params, retain_graph=True,
                                                allow_unused=True)
            semantic_grads = torch.autograd.grad(semantic, self.params, allow_unused=True) \
                if semantic.requires_grad else [None] * len(self.params)
            grads = regulate_gradients(quality_grads, semantic_grads, self.options.lam)
        for param, grad in zip(self.params, grads, strict=True):
            param.grad = grad
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def train_epoch(self) -> float:
        self.model.train()
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=self.generator)]
        total = 0.0
        for chunk in order.split(self.batch_size):
            crops = random_crops(self.pixels[chunk], self.crop, self.generator, include_last=False)
            crops = crops.float().div_(255.0).to(self.device)
            total += self.step(crops, self.targets[chunk].to(self.device)) * len(chunk)
        return total / len(order)

    @torch.no_grad()
    def predict(self, indices: torch.Tensor) -> np.ndarray:
        """Quality of the centre crops, in eval mode: what ``grmpiqa score`` would say."""
        self.model.eval()
        out = []
        for chunk in indices.split(EVAL_BATCH):
            crops = centre_crops(self.pixels[chunk], self.crop).to(self.device)
            out.append(self.model.predict(crops).float().cpu())
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
            rng_state: tuple[torch.Tensor, torch.Tensor] | None = None) -> TrainingState:
        """Train until the lr schedule ends or ``epochs``; Ctrl-C stops between steps.

        The best weights (by validation) stay in ``self.best``; call
        :meth:`restore_best` to put them in the model. ``rng_state`` resumes the
        random streams of a checkpoint, so a resumed run repeats the original.
        """
        state, options = self.state, self.options
        self.optimizer = torch.optim.SGD(self.params, lr=state.lr,
                                         weight_decay=options.weight_decay)
        devices = [] if self.device.type != "cuda" else [
            self.device.index if self.device.index is not None else torch.cuda.current_device()]
        started = time.perf_counter() - (state.history[-1].seconds if state.history else 0.0)
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
                losses: list[float] = []
                while state.epoch < options.epochs and not state.stopped:
                    tick = time.perf_counter()
                    losses.append(self.train_epoch())
                    state.epoch += 1
                    state.train_seconds += time.perf_counter() - tick
                    state.timed_epochs += 1
                    if on_epoch is not None:
                        on_epoch(state.epoch, losses[-1])
                    if state.epoch % options.eval_every and state.epoch != options.epochs:
                        continue
                    lr = state.lr
                    metric, s, p = self.evaluate()
                    best = state.after_evaluation(metric, options)
                    if best:
                        state.best_srcc, state.best_plcc = s, p
                        self.best = {n: t.clone() for n, t in self.current_tensors().items()}
                    for group in self.optimizer.param_groups:
                        group["lr"] = state.lr
                    record = EvaluationRecord(state.epoch, float(np.mean(losses)), s, p, lr,
                                              best, time.perf_counter() - started)
                    losses = []
                    state.history.append(record)
                    if on_checkpoint is not None and not state.stopped:
                        on_checkpoint(self)
                    if on_evaluation is not None:
                        on_evaluation(record)
            except KeyboardInterrupt:
                state.stopped = "interrupted"
        if not state.stopped:
            state.stopped = "epoch limit"
        return state

    def _report(self, record: EvaluationRecord,
                on_evaluation: Callable[[EvaluationRecord], None] | None) -> None:
        self.state.history.append(record)
        if on_evaluation is not None:
            on_evaluation(record)

    def rng_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The random streams now (inside :meth:`run`'s forked RNG), for a checkpoint."""
        return torch.get_rng_state(), self.generator.get_state()
