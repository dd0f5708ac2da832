"""Meta-prompt pre-training (stage 1 of GRMP-IQA, docs/method.md, "Pre-train") on a QualityModel.

Only the prompts train (CoOp text context, every VPT tensor, ``prompt_proj``,
``prompt_norm``); CLIP stays frozen. Each epoch runs first-order Reptile over
all tasks (:mod:`grmpiqa.pretraining.reptile`), then scores the meta parameters on
held-out groups (photos never used for training, all their levels) with the
same BCE. The epoch kept is the one with the lowest held-out loss: selection
never looks at a downstream test set (the authors picked their epoch by SRCC
on the whole of LIVE Challenge).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from grmpiqa.metrics import srcc
from grmpiqa.model.maths import quality_bce
from grmpiqa.model.network import QualityModel
from grmpiqa.pretraining.reptile import (
    InnerLoop,
    adapt_to_task,
    batches_per_pass,
    cycle_batches,
    load_into,
    reptile_update,
    snapshot,
)
from grmpiqa.pretraining.tasks import TaskExamples, TaskSet, derived_seed
from grmpiqa.training.data import centre_crops, random_crops

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PretrainSettings:
    """``inner_steps=None``: one pass over each task's support set, as the authors do."""

    epochs: int = 50
    inner_steps: int | None = None
    inner_lr: float = 1e-4
    meta_lr: float = 1e-2
    batch_size: int = 16
    query_fraction: float = 0.2
    holdout: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.inner_steps is not None and self.inner_steps < 1:
            raise ValueError("inner_steps must be at least 1")
        if not (self.inner_lr > 0 and self.meta_lr > 0):
            raise ValueError("learning rates must be positive")
        if not 0 < self.query_fraction < 1:
            raise ValueError("query_fraction must be between 0 and 1")
        if self.holdout is not None and self.holdout < 1:
            raise ValueError("holdout must be at least 1")


@dataclass(frozen=True)
class Evaluation:
    loss: float
    srcc: float
    per_task: dict[str, float]


@dataclass(frozen=True)
class TaskPlan:
    task: int
    support: list[int]
    query: list[int]
    steps: int
    sizes: tuple[int, int]  # (support, query) example counts


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    train_loss: float  # mean query loss of the inner loops
    heldout: Evaluation
    seconds: float
    is_best: bool


def prompt_parameters(model: QualityModel) -> dict[str, torch.nn.Parameter]:
    """Freeze all but the prompts (docs/method.md, "Pre-train"); return them by name."""
    from grmpiqa.training.trainable import set_trainable

    return dict(set_trainable(model, "prompts"))


def model_for_pretraining(name: str | None = None, *, device: str | torch.device = "auto",
                          manifest: Any = None, hf_cache: Any = None) -> QualityModel:
    """Fresh prompts on the backbone of manifest model ``name`` (the manifest default if None).

    The model's prompt sizes and crop are kept; the normalisation is CLIP's own,
    as for every model grmpiqa trains (docs/method.md, "Preprocessing").
    """
    from grmpiqa.config import PreprocessConfig
    from grmpiqa.errors import ConfigError
    from grmpiqa.model.devices import resolve_device
    from grmpiqa.weights.loading import build_model
    from grmpiqa.weights.manifest import load_manifest

    manifest = manifest or load_manifest()
    entry = manifest.get(name or manifest.default)
    if entry.config.kind != "grmp":
        raise ConfigError(f"model {entry.name!r} is {entry.config.kind!r}; pre-training needs a "
                          "'grmp' model (learned prompts)")
    base = entry.preprocess
    preprocess = PreprocessConfig(resize=base.resize, crop=base.crop,
                                  interpolation=base.interpolation, antialias=base.antialias)
    target = resolve_device(device)
    model = build_model(entry.backbone, entry.config, preprocess, hf_cache=hf_cache,
                        info={"name": f"pre-training on {entry.name}"})
    return model.to(target)


def default_holdout(groups: int) -> int:
    """20% of the photos (or reference groups), at least 1, at most 8: evaluation stays cheap."""
    return max(1, min(8, round(0.2 * groups)))


def split_groups(groups: list[int], fraction: float, generator: torch.Generator
                 ) -> tuple[list[int], list[int]]:
    """Shuffle and split into (rest, part) with ``part`` about ``fraction``, both non-empty."""
    if len(groups) < 2:
        raise ValueError("need at least two groups to split")
    order = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
    part = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    return sorted(order[part:]), sorted(order[:part])


def heldout_srcc(quality: torch.Tensor, labels: torch.Tensor) -> float:
    """:func:`grmpiqa.metrics.srcc`, with 0 where it is undefined (a constant side), so
    the mean over tasks stays a number."""
    value = srcc(quality.double().tolist(), labels.double().tolist())
    return 0.0 if math.isnan(value) else value


class MetaTrainer:
    """Runs Reptile epochs over a task set and keeps the best epoch by held-out loss."""

    def __init__(self, model: QualityModel, tasks: TaskSet, settings: PretrainSettings) -> None:
        self.model = model
        self.tasks = tasks
        self.settings = settings
        self.crop = model.preprocess.crop
        self.parameters = prompt_parameters(model)
        self.meta = snapshot(self.parameters)
        generator = torch.Generator().manual_seed(derived_seed(settings.seed, "holdout"))
        holdout = settings.holdout or default_holdout(tasks.group_count)
        if tasks.group_count - holdout < 2:
            raise ValueError(
                f"{tasks.group_count} photos (or groups) leave fewer than 2 for training after "
                f"holding out {holdout}; need at least {holdout + 2}")
        train, held = split_groups(list(range(tasks.group_count)),
                                   holdout / tasks.group_count, generator)
        self.train_groups, self.heldout_groups = train, held
        held_set, train_set = set(held), set(train)
        self.task_groups = {t: [g for g in tasks.groups_of(t) if g in train_set]
                            for t in range(len(tasks.names))}
        self.skipped = [tasks.names[t] for t, g in self.task_groups.items() if len(g) < 2]
        self.active = [t for t, g in self.task_groups.items() if len(g) >= 2]
        if not self.active:
            raise ValueError("no task has at least 2 training photos (or groups)")
        self.heldout_sets: dict[int, TaskExamples] = {}
        for t in self.active:
            groups = [g for g in tasks.groups_of(t) if g in held_set]
            if groups:
                examples = tasks.examples(t, groups, derived_seed(settings.seed, "eval", t))
                self.heldout_sets[t] = TaskExamples(
                    centre_crops(examples.pixels, self.crop).contiguous(),  # drop the margins
                    examples.labels)
        if not self.heldout_sets:
            raise ValueError("no task has a held-out photo (or group) to select the epoch on")
        self.history: list[EpochReport] = []
        self.best: EpochReport | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.baseline: Evaluation | None = None

    # ---------------------------------------------------------------- planning
    def plan(self, epoch: int) -> list[TaskPlan]:
        """The epoch's task order, support/query splits and inner steps (cheap, deterministic)."""
        s = self.settings
        order_gen = torch.Generator().manual_seed(derived_seed(s.seed, "order", epoch))
        order = [self.active[i] for i in torch.randperm(len(self.active),
                                                        generator=order_gen).tolist()]
        plans = []
        for t in order:
            g = torch.Generator().manual_seed(derived_seed(s.seed, "split", epoch, t))
            support, query = split_groups(self.task_groups[t], s.query_fraction, g)
            sizes = (self.tasks.count(t, support), self.tasks.count(t, query))
            steps = s.inner_steps or batches_per_pass(sizes[0], s.batch_size)
            plans.append(TaskPlan(t, support, query, steps, sizes))
        return plans

    def images_per_epoch(self, epoch: int) -> int:
        """Forward passes of one epoch (training batches and held-out images), for progress."""
        b = self.settings.batch_size
        total = sum(len(e.labels) for e in self.heldout_sets.values())
        for plan in self.plan(epoch):
            for count in plan.sizes:
                full, rest = divmod(count, b)
                per_pass = [b] * full + ([rest] if rest else [])
                whole, part = divmod(plan.steps, len(per_pass))
                total += whole * count + sum(per_pass[:part])
        return total

    def total_images(self) -> int:
        """Forward passes of a whole run (baseline and every epoch), for a progress bar."""
        baseline = sum(len(e.labels) for e in self.heldout_sets.values())
        return baseline + sum(self.images_per_epoch(e)
                              for e in range(1, self.settings.epochs + 1))

    def describe_split(self) -> str:
        n = len(self.active)
        return (f"{n} task{'' if n == 1 else 's'}, {len(self.train_groups)} training and "
                f"{len(self.heldout_groups)} held-out photos")

    # ---------------------------------------------------------------- training
    def _loss(self, progress: Progress | None) -> Callable:
        def loss_fn(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            pixels, labels = batch
            loss = quality_bce(self.model(pixels.to(self.model.device)),
                               labels.to(self.model.device))
            if progress is not None:
                progress(pixels.shape[0])
            return loss
        return loss_fn

    def _train_mode(self) -> None:
        self.model.train()
        self.model.clip.eval()  # frozen: only the prompts' dropout should be active

    def run_epoch(self, epoch: int, progress: Progress | None = None) -> EpochReport:
        started = time.perf_counter()
        s = self.settings
        torch.manual_seed(derived_seed(s.seed, "dropout", epoch))
        adapted, query_losses = [], []
        self._train_mode()
        for plan in self.plan(epoch):
            t = plan.task
            g = torch.Generator().manual_seed(derived_seed(s.seed, "batches", epoch, t))
            seed = derived_seed(s.seed, "distort", epoch, t)
            support = self.tasks.examples(t, plan.support, seed)
            query = self.tasks.examples(t, plan.query, seed)
            theta_i, query_loss = adapt_to_task(
                self.parameters, self.meta,
                cycle_batches(random_crops(support.pixels, self.crop, g), support.labels,
                              s.batch_size, g),
                cycle_batches(random_crops(query.pixels, self.crop, g), query.labels,
                              s.batch_size, g),
                self._loss(progress), InnerLoop(plan.steps, s.inner_lr))
            adapted.append(theta_i)
            query_losses.append(query_loss)
        self.meta = reptile_update(self.meta, adapted, s.meta_lr)
        load_into(self.parameters, self.meta)
        heldout = self.evaluate(progress)
        is_best = self.best is None or heldout.loss < self.best.heldout.loss
        report = EpochReport(epoch, sum(query_losses) / len(query_losses), heldout,
                             time.perf_counter() - started, is_best)
        self.history.append(report)
        if is_best:
            self.best, self.best_state = report, snapshot(self.parameters)
        return report

    @torch.no_grad()
    def evaluate(self, progress: Progress | None = None) -> Evaluation:
        """The current meta parameters on the held-out photos of every task (no adaptation)."""
        self.model.load_state_dict(self.meta, strict=False)  # also drops cached text features
        self.model.eval()
        losses, correlations, per_task = [], [], {}
        b = self.settings.batch_size
        for t, examples in self.heldout_sets.items():
            logits = []
            for start in range(0, len(examples.labels), b):
                pixels = examples.pixels[start:start + b].to(self.model.device)
                logits.append(self.model(pixels).cpu())
                if progress is not None:
                    progress(pixels.shape[0])
            all_logits = torch.cat(logits)
            loss = float(quality_bce(all_logits, examples.labels))
            quality = torch.softmax(all_logits, dim=-1)[:, 0]
            losses.append(loss)
            correlations.append(heldout_srcc(quality, examples.labels))
            per_task[self.tasks.names[t]] = round(loss, 5)
        return Evaluation(sum(losses) / len(losses), sum(correlations) / len(correlations),
                          per_task)

    def evaluate_baseline(self, progress: Progress | None = None) -> Evaluation:
        self.baseline = self.evaluate(progress)
        return self.baseline

    def summary(self, interrupted: bool = False) -> dict[str, Any]:
        """What goes into the weights file's ``training`` metadata."""
        s = self.settings
        best = self.best
        data: dict[str, Any] = {
            "stage": "meta-prompt pre-training",
            "method": "first-order Reptile, task model reset to the meta parameters before "
                      "every task; only the prompts train; BCE loss",
            **self.tasks.describe(),
            "skipped_tasks": self.skipped,
            "train_groups": len(self.train_groups),
            "heldout_groups": len(self.heldout_groups),
            "settings": {"epochs": s.epochs, "inner_steps": s.inner_steps or "one pass",
                         "inner_lr": s.inner_lr, "meta_lr": s.meta_lr,
                         "batch_size": s.batch_size, "query_fraction": s.query_fraction,
                         "seed": s.seed},
            "selection": "lowest mean BCE over tasks on held-out photos (or groups) of the "
                         "pre-training data, meta parameters without adaptation",
            "epochs_completed": len(self.history),
            "interrupted": interrupted,
            "history": [{"epoch": r.epoch, "train_loss": round(r.train_loss, 5),
                         "heldout_loss": round(r.heldout.loss, 5),
                         "heldout_srcc": round(r.heldout.srcc, 4),
                         "seconds": round(r.seconds, 1)} for r in self.history],
        }
        if self.baseline is not None:
            data["initial_heldout_loss"] = round(self.baseline.loss, 5)
            data["initial_heldout_srcc"] = round(self.baseline.srcc, 4)
        if best is not None:
            data.update(best_epoch=best.epoch, heldout_loss=round(best.heldout.loss, 5),
                        heldout_srcc=round(best.heldout.srcc, 4),
                        heldout_loss_per_task=best.heldout.per_task)
        return data

    def best_tensors(self) -> dict[str, torch.Tensor]:
        """The learned state of the best epoch, ready for
        :func:`grmpiqa.weights.formats.save_weights`."""
        if self.best_state is None:
            raise RuntimeError("no epoch has completed")
        current = snapshot(self.parameters)
        load_into(self.parameters, self.best_state)
        try:
            return {k: v.detach().cpu().clone() for k, v in self.model.learned_state().items()}
        finally:
            load_into(self.parameters, current)
