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
from typing import Any

import torch

from grmpiqa.errors import ConfigError
from grmpiqa.io.images import DEFAULT_MAX_PIXELS
from grmpiqa.model.devices import resolve_device
from grmpiqa.training.data import decode_rows, split_validation
from grmpiqa.training.finetune import AdaptOptions, EvaluationRecord, FewShotTrainer, TrainingState
from grmpiqa.training.labels import LabelTable, read_labels, require_usable
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

log = logging.getLogger("grmpiqa")
PathLike = str | os.PathLike[str]


@dataclass
class AdaptResult:
    """The adapted model (best weights, eval mode, label scale set) and how it got there."""

    model: Any
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
        raise ConfigError(f"--out {out}: name it *.safetensors (grmpiqa's weights format), so "
                          "that `score --weights` reads it")
    if path.is_dir():
        raise ConfigError(f"--out {out}: is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {existing}")
    return path


def pristine_reference(model: Any, trainable: str, with_teacher: bool,
                       hf_cache: PathLike | None = None
                       ) -> tuple[dict[str, torch.Tensor], SceneTeacher | None]:
    """Pristine copies of the backbone tensors that differ or will train, and the teacher.

    The pristine backbone is built once, read, and dropped: afterwards only
    those copies (blocks 8..11, ``ln_post``, ``ln_final`` for ViT-B/16) and the
    teacher's constant scene text features remain.
    """
    from grmpiqa.model.backbone import build_backbone

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


def weights_to_save(model: Any, pristine_copies: Mapping[str, torch.Tensor]
                    ) -> dict[str, torch.Tensor]:
    """Every GRMP tensor plus the backbone tensors that differ from the pristine backbone."""
    state = model.state_dict()
    candidates = {key: value for key, value in state.items()
                  if not key.startswith("clip.") or key[len("clip."):] in pristine_copies}
    return differing_state(candidates, pristine_copies)


def adapt(labels: PathLike | LabelTable, out: PathLike | None = None, *,
          model: str | None = None, init: PathLike | None = None,
          image_column: str | None = None, score_column: str | None = None,
          root: PathLike | None = None, lower_is_better: bool = False,
          device: str | torch.device = "auto", workers: int = 1, resume: bool = False,
          checkpoint: PathLike | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
          hf_cache: PathLike | None = None,
          on_images: Callable[[int], None] | None = None,
          on_start: Callable[[dict[str, Any]], None] | None = None,
          on_evaluation: Callable[[EvaluationRecord], None] | None = None,
          on_epoch: Callable[[int, float], None] | None = None,
          **options: Any) -> AdaptResult:
    """Adapt a GRMP model to ``labels`` (a CSV path or a :class:`LabelTable`).

    Starts from the manifest model ``model`` (default: the manifest's default)
    or from the weights file ``init`` (read on ``model``'s backbone if it is an
    authors' ``.pt``). Keyword ``options`` are :class:`AdaptOptions` fields
    (``epochs``, ``lam``, ``lr``, ``batch_size``, ``seed``, ``val_fraction``,
    ``trainable``, ...). With ``out``, the best weights are written there
    (atomically) and a checkpoint beside it at every evaluation; ``resume``
    continues that checkpoint. Ctrl-C ends training early; the best weights
    so far are still returned and written.
    """
    opts = make_options(**options)
    out_path = check_output_path(out) if out is not None else None
    ckpt = Path(checkpoint) if checkpoint is not None else \
        checkpoint_path_for(out_path) if out_path is not None else None
    if resume and ckpt is None:
        raise ConfigError("--resume needs --out (the checkpoint lives beside it)")

    table = labels if isinstance(labels, LabelTable) else read_labels(
        labels, image_column=image_column, score_column=score_column, root=root,
        lower_is_better=lower_is_better)

    from grmpiqa.weights.loading import load_model

    # fp32 and unmodified modules: training needs them (no int8 or packed attention).
    start = load_model(init if init is not None else model, device="cpu", base=model,
                       hf_cache=hf_cache, precision="fp32")
    trainable_names(start, opts.trainable)  # a zero-shot model is refused here, not later
    pixels, problems = decode_rows(table.rows, start.preprocess, workers=workers,
                                   max_pixels=max_pixels, progress=on_images)
    require_usable(table, problems)

    targets = table.targets()
    train, val = split_validation(targets, opts.val_fraction, opts.seed)
    if init is None:
        start_desc = str(start.info.get("name", model))
    elif Path(init).suffix == ".safetensors":  # carries its own backbone
        start_desc = os.fspath(init)
    else:
        start_desc = f"{os.fspath(init)} (on {model or 'the default model'})"
    settings = {
        "labels": [[row.path, row.score] for row in table.rows],
        "higher_is_better": table.higher_is_better,
        "start": start_desc,
        "init_sha256": file_sha256(Path(init)) if init is not None else None,
        "options": opts.resume_key(),
    }
    run_id = fingerprint(settings)
    copies, teacher = pristine_reference(start, opts.trainable, opts.lam > 0, hf_cache)

    target_device = resolve_device(device)
    start.to(target_device)
    if teacher is not None:
        teacher.to(target_device)

    state, rng, current, best = None, None, None, None
    if resume:
        assert ckpt is not None
        current, best, rng, info = load_checkpoint(ckpt, run_id)
        state = TrainingState.from_dict(info["state"])
        state.stopped = ""
    elif ckpt is not None and ckpt.exists():
        log.warning("%s holds an earlier run's checkpoint; this run replaces it "
                    "(use --resume to continue that run instead)", ckpt)
    trainer = FewShotTrainer(start, pixels, targets, train, val, opts, teacher=teacher,
                             state=state)
    if current is not None and best is not None:
        trainer.load_tensors(current, best)

    if on_start is not None:
        on_start({"labels": len(table.rows), "train": len(train), "val": len(val),
                  "batch_size": trainer.batch_size, "device": str(target_device),
                  "start": start_desc, "resumed_at": state.epoch if state else None,
                  "trainable_parameters": sum(p.numel() for p in trainer.params),
                  "teacher_bytes": teacher.held_bytes() if teacher is not None else 0})

    def write_checkpoint(t: FewShotTrainer) -> None:
        assert ckpt is not None
        save_checkpoint(ckpt, current=t.current_tensors(), best=t.best, rng=t.rng_state(),
                        info={"fingerprint": run_id, "state": t.state.to_dict(),
                              "settings": {"start": start_desc, **opts.resume_key()}})

    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    final = trainer.run(on_evaluation=on_evaluation, on_epoch=on_epoch,
                        on_checkpoint=write_checkpoint if ckpt is not None else None,
                        rng_state=rng)
    trainer.restore_best()
    start.eval()
    for param in start.parameters():
        param.requires_grad_(False)
    start.label = table.scale()
    summary = _summary(table, opts, trainer, final, start_desc)
    start.info["training"] = summary
    if out_path is not None:
        metadata = WeightsMetadata(start.backbone_spec, start.config, start.preprocess,
                                   label=start.label, training=summary,
                                   source=f"grmpiqa adapt on {len(table.rows)} labels from "
                                          f"{Path(table.source).name}")
        save_weights(out_path, weights_to_save(start, copies), metadata)
    finished = final.stopped.startswith("learning rate")
    if ckpt is not None and finished:
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
        "label_file": Path(table.source).name,
        "label_columns": [table.image_column, table.score_column],
        "seconds_per_epoch": state.train_seconds / state.timed_epochs
        if state.timed_epochs else None,
        "grmpiqa_version": __version__,
    }
