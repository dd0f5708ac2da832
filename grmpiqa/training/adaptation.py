"""``grmpiqa.adapt``: fine-tune GRMP-IQA on a user's own labels and save the result.

The steps: read and check the labels (every problem reported at once, before
anything trains); load the starting model; decode every photo once; split off
validation images; build the semantic teacher from the pristine backbone;
train (:mod:`grmpiqa.training.finetune`), checkpointing at each evaluation; write the
best weights, holding only what differs from the backbone, with the label
scale and a training summary in the file's metadata.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from grmpiqa.data.loader import default_workers
from grmpiqa.errors import ConfigError
from grmpiqa.io.atomic import write_problem
from grmpiqa.io.images import DEFAULT_MAX_PIXELS
from grmpiqa.model.devices import resolve_device
from grmpiqa.progress import Progress, or_silent
from grmpiqa.results import Ratings
from grmpiqa.training.data import decode_rows, split_validation
from grmpiqa.training.finetune import AdaptOptions, EvaluationRecord, FewShotTrainer, TrainingState
from grmpiqa.training.labels import LabelTable, ratings_table, read_labels, require_usable
from grmpiqa.training.schedule import schedule_ended
from grmpiqa.training.teacher import SceneTeacher, differing_keys
from grmpiqa.training.trainable import trainable_names
from grmpiqa.weights.checkpoints import (
    checkpoint_path_for,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from grmpiqa.weights.formats import WeightsMetadata, differing_state, save_weights
from grmpiqa.weights.hub import file_sha256

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel

log = logging.getLogger("grmpiqa")
PathLike = str | os.PathLike[str]


@dataclass
class AdaptResult:
    """The adapted model (best weights, eval mode, label scale set) and how it got there."""

    model: QualityModel
    out: Path | None
    summary: dict[str, Any]
    history: list[EvaluationRecord]
    checkpoint: Path | None

    @property
    def interrupted(self) -> bool:
        return self.summary.get("stopped") == "interrupted"


def make_options(**options: Any) -> AdaptOptions:
    """``AdaptOptions`` from keyword arguments; a bad value is a :class:`ConfigError`."""
    names = {f.name for f in dataclasses.fields(AdaptOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"unknown adapt option(s): {', '.join(unknown)}")
    try:
        return AdaptOptions(**options)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_output_path(out: PathLike) -> Path:
    """Refuse, before any training, an output that could not be written or read back."""
    path = Path(out)
    if path.suffix != ".safetensors":
        raise ConfigError(f"{out}: name it *.safetensors (grmpiqa's weights format), so that "
                          "scoring can read it", param="out")
    if path.is_dir():
        raise ConfigError(f"{out}: is a folder", param="out")
    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = write_problem(existing) if existing.is_dir() else "not a folder"
    if problem is not None:
        raise ConfigError(f"{out}: cannot write in {existing} ({problem})", param="out")
    return path


def pristine_reference(model: QualityModel, trainable: str, with_teacher: bool,
                       hf_cache: PathLike | None = None
                       ) -> tuple[dict[str, torch.Tensor], SceneTeacher | None]:
    """Pristine copies of the backbone tensors that differ or will train, and the teacher.

    The pristine backbone is built once, read, and dropped: afterwards only
    those copies (blocks 8..11, ``ln_post``, ``ln_final`` for ViT-B/16) and the
    teacher's constant scene text features remain.
    """
    from grmpiqa.weights.backbone import build_backbone

    pristine = build_backbone(model.backbone_spec, hf_cache)
    pristine_state = pristine.state_dict()
    trained = {name[len("clip."):] for name in trainable_names(model, trainable)
               if name.startswith("clip.")}
    keep = trained | differing_keys(model.clip.state_dict(), pristine_state)
    copies = {key: pristine_state[key].detach().clone() for key in sorted(keep)}
    teacher = SceneTeacher(model.clip, pristine, copies, model.tokenizer) if with_teacher \
        else None
    del pristine, pristine_state
    return copies, teacher


def weights_to_save(model: QualityModel, pristine_copies: Mapping[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """Every GRMP tensor plus the backbone tensors that differ from the pristine backbone."""
    state = model.state_dict()
    candidates = {key: value for key, value in state.items()
                  if not key.startswith("clip.") or key[len("clip."):] in pristine_copies}
    return differing_state(candidates, pristine_copies)


@dataclass
class _Start:
    """The starting model and everything derived from the labels before training."""

    model: QualityModel
    table: LabelTable
    pixels: torch.Tensor
    train: list[int]
    val: list[int]
    description: str
    run_id: str


def adapt(labels: PathLike | LabelTable | Ratings, out: PathLike | None = None, *,
          model: str | None = None, init: PathLike | None = None,
          image_column: str | None = None, score_column: str | None = None,
          root: PathLike | None = None, lower_is_better: bool = False,
          device: str | torch.device = "auto", workers: int | None = None, resume: bool = False,
          checkpoint: PathLike | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
          hf_cache: PathLike | None = None, progress: Progress | None = None,
          on_start: Callable[[dict[str, Any]], None] | None = None,
          on_evaluation: Callable[[EvaluationRecord], None] | None = None,
          on_epoch: Callable[[int, float], None] | None = None,
          on_progress: Callable[[dict[str, Any]], None] | None = None,
          **options: Any) -> AdaptResult:
    """Adapt a GRMP model to your labels (few-shot fine-tuning with quality-aware
    gradient regularisation) and, with ``out``, save it.

    Parameters
    ----------
    labels : path, LabelTable or Ratings
        A CSV of image paths and scores, a table from ``read_labels``, or the star
        ratings from ``grmpiqa.read_ratings`` (the weights then write stars on that
        scale with ``score --xmp``).
    out : path, optional
        Where to write the best weights (``*.safetensors``, atomically); a checkpoint is
        kept beside it at every evaluation.
    model : str, optional
        The manifest model to start from (default: the manifest's default).
    init : path, optional
        Start from this weights file instead (an authors' ``.pt`` is read on ``model``).
    image_column, score_column, root, lower_is_better
        How to read a CSV ``labels`` (see ``read_labels``).
    device : str or torch.device
        ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
    workers : int, optional
        Decoding processes (default: as for scoring on ``device``).
    resume : bool
        Continue the run whose checkpoint is beside ``out`` (or at ``checkpoint``).
    checkpoint : path, optional
        The checkpoint file (default: beside ``out``).
    max_pixels : int
        Refuse images with more pixels.
    hf_cache : path, optional
        The Hugging Face cache to read the backbone from.
    progress : grmpiqa.progress.Progress, optional
        Advanced by each photo decoded.
    on_start : callable, optional
        Called once before training with a dict describing the run.
    on_evaluation : callable, optional
        Called with each :class:`EvaluationRecord`.
    on_epoch : callable, optional
        Called with ``(epoch, loss)`` after each epoch.
    on_progress : callable, optional
        Called after each epoch with the measured time per epoch and how many epochs
        the schedule needs at least and at most (see ``FewShotTrainer.run``).
    **options
        :class:`AdaptOptions` fields: ``epochs``, ``lam``, ``lr``, ``batch_size``, ``seed``,
        ``val_fraction``, ``eval_every``, ``trainable``, ``schedule`` (``early`` or
        ``authors``), ``stop_patience``, ``cache``, ``views``, ``cache_mib``, ``precision``.

    Returns
    -------
    AdaptResult
        Ctrl-C ends training early; the best weights so far are still returned and
        written, and ``interrupted`` is true.
    """
    opts = make_options(**options)
    out_path = check_output_path(out) if out is not None else None
    ckpt = Path(checkpoint) if checkpoint is not None else \
        checkpoint_path_for(out_path) if out_path is not None else None
    if resume and ckpt is None:
        raise ConfigError("needs an output file (the checkpoint lives beside it)",
                          param="resume")
    if isinstance(labels, Ratings):
        labels = ratings_table(labels)
    table = labels if isinstance(labels, LabelTable) else read_labels(
        labels, image_column=image_column, score_column=score_column, root=root,
        lower_is_better=lower_is_better)
    target_device = resolve_device(device)
    if workers is None:
        workers = default_workers(target_device)
    begin = _prepare(table, opts, model, init, hf_cache, workers, max_pixels, progress)
    copies, teacher = pristine_reference(begin.model, opts.trainable, opts.lam > 0, hf_cache)
    begin.model.to(target_device)
    if teacher is not None:
        teacher.to(target_device)
    trainer, rng = _trainer(begin, opts, teacher, ckpt if resume else None)
    if not resume and ckpt is not None and ckpt.exists():
        log.warning("%s holds an earlier run's checkpoint; this run replaces it "
                    "(use --resume to continue that run instead)", ckpt)
    if on_start is not None:
        on_start({"labels": len(table.rows), "train": len(begin.train), "val": len(begin.val),
                  "batch_size": trainer.batch_size, "device": str(target_device),
                  "start": begin.description,
                  "resumed_at": trainer.state.epoch if resume else None,
                  "trainable_parameters": sum(p.numel() for p in trainer.params),
                  "teacher_bytes": teacher.held_bytes() if teacher is not None else 0,
                  "precision": trainer.precision.name, "schedule": opts.schedule,
                  "cache": trainer.pool_plan.describe() if trainer.pool is not None else None})
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    writer = _checkpoint_writer(ckpt, begin, opts)
    final = trainer.run(on_evaluation=on_evaluation, on_epoch=on_epoch, on_progress=on_progress,
                        on_checkpoint=writer, rng_state=rng)
    # Only a checkpoint of this run (or the one it resumed) can be resumed.
    resumable = ckpt if writer is not None and (resume or writer.written) else None
    return _finish(begin, opts, trainer, final, copies, out_path, resumable)


def _prepare(table: LabelTable, opts: AdaptOptions, model: str | None, init: PathLike | None,
             hf_cache: PathLike | None, workers: int, max_pixels: int,
             progress: Progress | None) -> _Start:
    """Load the starting model, decode every photo once and split off validation."""
    from grmpiqa.weights.loading import load_model

    # fp32 and unmodified modules: training needs them (no int8 or packed attention).
    start = load_model(init if init is not None else model, device="cpu", base=model,
                       hf_cache=hf_cache, precision="fp32")
    trainable_names(start, opts.trainable)  # a zero-shot model is refused here, not later
    pixels, problems = decode_rows(table.rows, start.preprocess, workers=workers,
                                   max_pixels=max_pixels, progress=or_silent(progress).advance)
    require_usable(table, problems)
    train, val = split_validation(table.targets(), opts.val_fraction, opts.seed)
    if init is None:
        description = str(start.info.get("name", model))
    elif Path(init).suffix == ".safetensors":  # carries its own backbone
        description = os.fspath(init)
    else:
        description = f"{os.fspath(init)} (on {model or 'the default model'})"
    run_id = fingerprint({
        "labels": [[row.path, row.score] for row in table.rows],
        "higher_is_better": table.higher_is_better,
        "start": description,
        "init_sha256": file_sha256(Path(init)) if init is not None else None,
        "options": opts.resume_key(),
    })
    return _Start(start, table, pixels, train, val, description, run_id)


def _trainer(begin: _Start, opts: AdaptOptions, teacher: SceneTeacher | None,
             resume_from: Path | None) -> tuple[FewShotTrainer, Any]:
    """A fresh trainer, or one continuing the checkpoint ``resume_from``."""
    state, rng, current, best = None, None, None, None
    if resume_from is not None:
        current, best, rng, info = load_checkpoint(resume_from, begin.run_id)
        state = TrainingState.from_dict(info["state"])
        state.stopped = ""
    trainer = FewShotTrainer(begin.model, begin.pixels, begin.table.targets(), begin.train,
                             begin.val, opts, teacher=teacher, state=state)
    if current is not None and best is not None:
        trainer.load_tensors(current, best)
    return trainer, rng


def _checkpoint_writer(ckpt: Path | None, begin: _Start, opts: AdaptOptions
                       ) -> _CheckpointWriter | None:
    return _CheckpointWriter(ckpt, begin, opts) if ckpt is not None else None


@dataclass
class _CheckpointWriter:
    """Writes the run's checkpoint; ``written`` says whether this run wrote one."""

    path: Path
    begin: _Start
    opts: AdaptOptions
    written: bool = False

    def __call__(self, t: FewShotTrainer) -> None:
        save_checkpoint(self.path, current=t.current_tensors(), best=t.best, rng=t.rng_state(),
                        info={"fingerprint": self.begin.run_id, "state": t.state.to_dict(),
                              "settings": {"start": self.begin.description,
                                           **self.opts.resume_key()}})
        self.written = True


def _finish(begin: _Start, opts: AdaptOptions, trainer: FewShotTrainer, final: TrainingState,
            copies: Mapping[str, torch.Tensor], out_path: Path | None, ckpt: Path | None
            ) -> AdaptResult:
    """Restore the best epoch, freeze, attach the label scale, write, drop a finished
    run's checkpoint."""
    start, table = begin.model, begin.table
    trainer.restore_best()
    start.eval()
    for param in start.parameters():
        param.requires_grad_(False)
    start.label = table.scale()
    summary = _summary(table, opts, trainer, final, begin.description)
    start.info["training"] = summary
    if out_path is not None:
        metadata = WeightsMetadata(start.backbone_spec, start.config, start.preprocess,
                                   label=start.label, training=summary,
                                   source=f"grmpiqa adapt on {len(table.rows)} labels from "
                                          f"{table.name}")
        save_weights(out_path, weights_to_save(start, copies), metadata)
    if ckpt is not None and schedule_ended(final.stopped):
        ckpt.unlink(missing_ok=True)
    return AdaptResult(start, out_path, summary, list(final.history),
                       ckpt if ckpt is not None and ckpt.exists() else None)


def _summary(table: LabelTable, opts: AdaptOptions, trainer: FewShotTrainer,
             state: TrainingState, start: str) -> dict[str, Any]:
    from grmpiqa import __version__

    first = state.history[0] if state.history else None
    has_val = len(trainer.val_idx) > 0
    return {
        "labels": len(table.rows),
        "train_images": len(trainer.train_idx),
        "val_images": len(trainer.val_idx),
        "selection": "validation SRCC + PLCC" if has_val else
                     "training loss (too few labels for a validation split)",
        "val_srcc": state.best_srcc,
        "val_plcc": state.best_plcc,
        "start_val_srcc": first.val_srcc if first else None,
        "start_val_plcc": first.val_plcc if first else None,
        "best_epoch": state.best_epoch,
        "epochs": state.epoch,
        "stopped": state.stopped,
        "lambda": opts.lam,
        "seed": opts.seed,
        "lr": opts.lr,
        "final_lr": state.lr,
        "weight_decay": opts.weight_decay,
        "batch_size": trainer.batch_size,
        "trainable": opts.trainable,
        "val_fraction": opts.val_fraction,
        "start": start,
        "label_file": table.name,
        "label_columns": [table.image_column, table.score_column],
        "seconds_per_epoch": state.train_seconds / state.timed_epochs
        if state.timed_epochs else None,
        "schedule": opts.schedule,
        "precision": trainer.precision.name,
        "cached_views": opts.views if trainer.pool is not None else None,
        "grmpiqa_version": __version__,
    }
