"""``grmpiqa.pretrain``: run meta-prompt pre-training to the end (or to Ctrl-C)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from grmpiqa.model.network import QualityModel
from grmpiqa.pretraining.meta import EpochReport, MetaTrainer, PretrainSettings
from grmpiqa.pretraining.tasks import TaskSet
from grmpiqa.progress import Progress as ProgressReceiver
from grmpiqa.progress import or_silent


@dataclass
class PretrainResult:
    """What :func:`pretrain` ran: the best epoch's learned state (``None`` when it was
    interrupted before one completed), the summary for the weights file, every epoch,
    and the interruption that stopped it early, if any."""

    tensors: dict[str, torch.Tensor] | None
    summary: dict[str, Any]
    history: list[EpochReport] = field(default_factory=list)
    best: EpochReport | None = None
    stopped_by: KeyboardInterrupt | None = None

    @property
    def interrupted(self) -> bool:
        return self.stopped_by is not None


def pretrain(model: QualityModel, tasks: TaskSet, settings: PretrainSettings,
             on_epoch: Callable[[EpochReport], None] | None = None, *,
             progress: ProgressReceiver | None = None,
             trainer: MetaTrainer | None = None) -> PretrainResult:
    """Meta-prompt pre-training: every epoch, then the best one by held-out loss.

    Parameters
    ----------
    model : QualityModel
        From :func:`model_for_pretraining`; only its prompts train.
    tasks : TaskSet
        ``SyntheticTasks`` (distortions of good photos) or ``LabelledTasks``.
    settings : PretrainSettings
        Epochs, inner steps, learning rates, batch size, hold-out, seed.
    on_epoch : callable, optional
        Called with each epoch's :class:`EpochReport`.
    progress : grmpiqa.progress.Progress, optional
        Told of every image forwarded and given one line per epoch.
    trainer : MetaTrainer, optional
        One already built on ``model``, ``tasks`` and ``settings`` (to size a progress
        bar with :meth:`MetaTrainer.total_images` first).

    Returns
    -------
    PretrainResult
        Ctrl-C (or SIGTERM raised as ``KeyboardInterrupt``) ends the run early; the
        result then keeps the best complete epoch and ``stopped_by``.
    """
    report_to = or_silent(progress)
    trainer = trainer or MetaTrainer(model, tasks, settings)
    stopped: KeyboardInterrupt | None = None
    try:
        base = trainer.evaluate_baseline(report_to.advance)
        report_to.message(f"before training: held-out loss {base.loss:.4f}, "
                          f"SRCC {base.srcc:.3f} ({trainer.describe_split()})")
        for epoch in range(1, settings.epochs + 1):
            report = trainer.run_epoch(epoch, report_to.advance)
            report_to.message(
                f"epoch {epoch}/{settings.epochs}: query loss {report.train_loss:.4f}, "
                f"held-out loss {report.heldout.loss:.4f}, SRCC {report.heldout.srcc:.3f}"
                f"{' (best)' if report.is_best else ''} [{report.seconds:.0f} s]")
            if on_epoch is not None:
                on_epoch(report)
    except KeyboardInterrupt as exc:
        stopped = exc
    tensors = trainer.best_tensors() if trainer.best is not None else None
    return PretrainResult(tensors, trainer.summary(stopped is not None), trainer.history,
                          trainer.best, stopped)
