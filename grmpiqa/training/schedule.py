"""Training options and the learning-rate schedule: when to decay, when to stop.

``early`` (the default) stops once validation has not improved for
``stop_patience`` evaluations, one epoch apart; ``authors`` is the paper's
schedule: the lr times 0.3 after 6 evaluations without gain, 5 epochs apart,
until it falls below 5e-7 (at least 210 epochs). Both keep the best epoch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from grmpiqa.training.precision import TRAINING_PRECISIONS
from grmpiqa.training.trainable import TRAINABLE_MODES

SCHEDULES = ("early", "authors")
EARLY_MIN_GAIN = 1e-4  # a smaller gain of the selection metric is noise, not progress


@dataclass(frozen=True)
class AdaptOptions:
    """Training choices; docs/method.md, "Adapt" says which are the authors'."""

    trainable: str = "full"
    lam: float = 5.0  # lambda of the gradient rule; 0 turns the regularisation off
    epochs: int = 2000  # an upper bound: the schedule normally ends training first
    batch_size: int | None = None  # None: all training images at once, at most 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.2
    eval_every: int | None = None  # epochs between evaluations; None: 1 (early), 5 (authors)
    schedule: str = "early"
    stop_patience: int = 10  # early: evaluations without gain before stopping
    patience: int = 5  # authors: evaluations without improvement tolerated before the lr decays
    decay: float = 0.3
    min_lr: float = 5e-7
    # full mode: compute the frozen prefix once per pooled view (opt-in: the same maths, but
    # 8 fixed views per image ended lower more often than fresh crops on the tiny-model tests)
    cache: bool = False
    views: int = 8  # pooled augmentations per training image when caching
    cache_mib: int = 2048  # above this the prefix is recomputed every step instead
    precision: str = "auto"  # auto: bf16 on CPUs with native bf16, fp16 on CUDA, else fp32

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE_MODES:
            raise ValueError(f"trainable must be one of {', '.join(TRAINABLE_MODES)}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ValueError("lambda must be a number >= 0")
        for name in ("epochs", "views", "stop_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError("eval_every must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError("learning rate must be > 0")
        if not 0.0 <= self.val_fraction <= 0.5:
            raise ValueError("validation fraction must be between 0 and 0.5")
        if self.patience < 0 or not 0 < self.decay < 1 or self.weight_decay < 0:
            raise ValueError("need patience >= 0, 0 < decay < 1 and weight decay >= 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.precision not in TRAINING_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(TRAINING_PRECISIONS)}")
        if self.cache_mib < 0:
            raise ValueError("cache size must be >= 0 MiB")

    @property
    def interval(self) -> int:
        """Epochs between evaluations."""
        if self.eval_every is not None:
            return self.eval_every
        return 1 if self.schedule == "early" else 5

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
    pending_losses: list[float] = field(default_factory=list)  # since the last evaluation

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
        """Record an evaluation and apply the schedule; True if it is the best so far."""
        if options.schedule == "early":
            improved = metric > self.best_metric + EARLY_MIN_GAIN or math.isinf(self.best_metric)
        else:
            improved = metric > self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.bad_evaluations = metric, self.epoch, 0
            return True
        self.bad_evaluations += 1
        if options.schedule == "early":
            if self.bad_evaluations >= options.stop_patience:
                self.stopped = (f"validation stopped improving ({options.stop_patience} "
                                "evaluations without gain)")
        elif self.bad_evaluations > options.patience:
            self.lr *= options.decay
            self.bad_evaluations = 0
            if self.lr < options.min_lr:
                self.stopped = f"learning rate fell below {options.min_lr:g}"
        return False

    def fewest_epochs_left(self, options: AdaptOptions) -> int:
        """Epochs until the schedule ends if validation never improves again."""
        if self.stopped:
            return 0
        if options.schedule == "early":
            evaluations = options.stop_patience - self.bad_evaluations
        else:
            decays, lr = 0, self.lr
            while lr >= options.min_lr:
                lr *= options.decay
                decays += 1
            evaluations = (options.patience + 1) * decays - self.bad_evaluations
        to_next = options.interval - self.epoch % options.interval
        left = to_next + (max(evaluations, 1) - 1) * options.interval
        return max(0, min(left, options.epochs - self.epoch))


def schedule_ended(stopped: str) -> bool:
    """Did the schedule itself end training (not Ctrl-C, not the epoch limit)?"""
    return stopped.startswith(("learning rate", "validation stopped"))
