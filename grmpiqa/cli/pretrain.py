"""``grmpiqa pretrain PHOTOS_DIR --out meta.safetensors``: meta-prompt pre-training (stage 1)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from grmpiqa.cli.common import (
    EXIT_OK,
    cli_errors,
    configure_logging,
    install_signal_handlers,
    interrupt_exit_code,
    say,
)
from grmpiqa.cli.options import (
    DeviceOption,
    LowerIsBetterOption,
    ModelOption,
    QuietOption,
    SeedOption,
    TrainingBatchSizeOption,
)
from grmpiqa.errors import ConfigError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.model.network import QualityModel
    from grmpiqa.pretraining.run import PretrainResult


def _column(what: str) -> object:
    return typer.Option(f"--{what}-column", help=f"The {what} column of --labels "
                        "(default: found by its usual names).", show_default=False)


PhotosDirArgument = Annotated[Path, typer.Argument(
    help="Folder of good photos (searched recursively); with --labels, the folder the "
         "CSV's image paths are relative to.", show_default=False)]
OutOption = Annotated[Path, typer.Option(
    "--out", "-o", help="Where to write the meta-prompts (grmpiqa .safetensors), atomically.",
    show_default=False)]
LabelsOption = Annotated[Path | None, typer.Option(
    "--labels", help="Pre-train on a real labelled set instead: a CSV with image, label and "
                     "task columns (e.g. KADID-10k with its distortion type).")]
EpochsOption = Annotated[int, typer.Option("--epochs", "-e", min=1, help="Reptile epochs.")]
InnerStepsOption = Annotated[int | None, typer.Option(
    "--inner-steps", min=1, show_default="one pass over the support set",
    help="Per task: pairs of Adam steps, one on a support batch, then one on a query batch.")]
InnerLrOption = Annotated[float, typer.Option(
    "--inner-lr", help="Adam learning rate within a task.")]
MetaLrOption = Annotated[float, typer.Option(
    "--meta-lr", help="Reptile step eps: theta <- theta - eps * mean_i(theta - theta_i).")]
HoldoutOption = Annotated[int | None, typer.Option(
    "--holdout", min=1, show_default="20% of the photos, 1 to 8",
    help="Photos (or label groups) held out to choose the epoch kept; never trained on.")]
DistortionsOption = Annotated[str | None, typer.Option(
    "--distortions", show_default="all",
    help="Comma-separated distortion types to use as tasks (see docs/training.md).")]
GroupColumnOption = Annotated[str | None, typer.Option(
    "--group-column", show_default="ref_img or reference if present, else none",
    help="Rows sharing this value (a reference image) stay on the same side of every split.")]


@cli_errors
def pretrain(
    photos_dir: PhotosDirArgument,
    out: OutOption,
    labels: LabelsOption = None,
    epochs: EpochsOption = 50,
    inner_steps: InnerStepsOption = None,
    inner_lr: InnerLrOption = 1e-4,
    meta_lr: MetaLrOption = 1e-2,
    batch_size: TrainingBatchSizeOption = 16,
    holdout: HoldoutOption = None,
    distortions: DistortionsOption = None,
    seed: SeedOption = 0,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    image_column: Annotated[str | None, _column("image")] = None,
    label_column: Annotated[str | None, _column("score")] = None,
    task_column: Annotated[str | None, _column("task")] = None,
    group_column: GroupColumnOption = None,
    lower_is_better: LowerIsBetterOption = False,
    quiet: QuietOption = False,
) -> None:
    """Pre-train GRMP-IQA's prompts with first-order Reptile, one task per distortion type.

    From a folder of good photos, every photo is distorted at five levels by
    each of 25 KADID-10k-like types (labels 1 for the photo itself down to 0 for
    level 5). Only the prompts train; CLIP stays frozen. The epoch written is
    the one with the lowest loss on held-out photos. Ctrl-C (or SIGTERM) writes the
    best complete epoch so far and exits with 130 (143). --model chooses the backbone and
    prompt sizes; the prompts start fresh.
    """
    configure_logging(quiet)
    if not photos_dir.is_dir():
        raise InputError(f"{photos_dir}: not a folder")
    if labels is None and any(v is not None for v in (image_column, label_column,
                                                      task_column, group_column)):
        raise ConfigError("the --*-column options need --labels")

    import torch

    from grmpiqa.cli.progress import Reporter
    from grmpiqa.pretraining.meta import MetaTrainer, PretrainSettings, model_for_pretraining
    from grmpiqa.pretraining.run import pretrain as run_pretrain
    from grmpiqa.training.adaptation import check_output_path

    check_output_path(out)  # refused now, not after the training
    try:
        settings = PretrainSettings(epochs=epochs, inner_steps=inner_steps, inner_lr=inner_lr,
                                    meta_lr=meta_lr, batch_size=batch_size, holdout=holdout,
                                    seed=seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    torch.manual_seed(seed)
    net = model_for_pretraining(model, device=device)
    tasks = _task_set(photos_dir, labels, distortions, net.preprocess, quiet,
                      (image_column, label_column, task_column, group_column), lower_is_better)
    try:
        trainer = MetaTrainer(net, tasks, settings)
    except ValueError as exc:
        raise InputError(f"{photos_dir}: {exc}") from None
    if trainer.skipped:
        say(f"warning: skipped tasks with fewer than 2 training groups: "
            f"{', '.join(trainer.skipped)}")
    install_signal_handlers()
    with Reporter(trainer.total_images(), quiet=quiet, label="pre-training") as reporter:
        result = run_pretrain(net, tasks, settings, progress=reporter, trainer=trainer)
    _write(result, net, out, labels)


def _write(result: PretrainResult, net: QualityModel, out: Path, labels: Path | None) -> None:
    """Save the best epoch, say what was written, and exit with the run's status."""
    from grmpiqa.weights.formats import WeightsMetadata, save_weights

    if result.best is None:
        say("interrupted before the first epoch completed; nothing written")
        raise typer.Exit(interrupt_exit_code(result.stopped_by or KeyboardInterrupt()))
    metadata = WeightsMetadata(
        net.backbone_spec, net.config, net.preprocess, label=None, training=result.summary,
        source=f"grmpiqa pretrain {'--labels ' + labels.name if labels else 'synthetic tasks'}")
    save_weights(out, result.tensors, metadata)
    best = result.best
    say(f"{'interrupted; ' if result.interrupted else ''}wrote epoch {best.epoch} of "
        f"{len(result.history)} (held-out loss {best.heldout.loss:.4f}, SRCC "
        f"{best.heldout.srcc:.3f}) to {out}")
    raise typer.Exit(interrupt_exit_code(result.stopped_by) if result.interrupted else EXIT_OK)


def _task_set(photos_dir: Path, labels: Path | None, distortions: str | None, preprocess,
              quiet: bool, columns: tuple[str | None, ...], lower_is_better: bool):
    """Decode the photos once and build the synthetic or labelled task set."""
    from grmpiqa.cli.progress import Reporter
    from grmpiqa.io.inputs import expand_inputs
    from grmpiqa.pretraining.distortions import DISTORTIONS
    from grmpiqa.pretraining.tasks import (
        ColumnChoice,
        LabelledTasks,
        SyntheticTasks,
        load_photos,
        read_task_labels,
    )
    from grmpiqa.training.labels import resolve_image

    if labels is not None:
        if distortions is not None:
            raise ConfigError("--distortions applies to synthetic tasks, not to --labels")
        rows = read_task_labels(labels, ColumnChoice(*columns))
        paths = [resolve_image(row.image, photos_dir) for row in rows]
    else:
        names = [n.strip() for n in (distortions or ",".join(DISTORTIONS)).split(",")
                 if n.strip()]
        unknown = [n for n in names if n not in DISTORTIONS]
        if unknown or not names:
            raise ConfigError(f"--distortions: unknown {', '.join(unknown) or '(none given)'}; "
                              f"known: {', '.join(DISTORTIONS)}")
        paths = expand_inputs([str(photos_dir)])
        if not paths:
            raise InputError(f"{photos_dir}: no image files found")
    with Reporter(len(paths), quiet=quiet, label="decoding") as reporter:
        kept, pixels = load_photos(
            paths, preprocess, lambda path, why: reporter.message(f"{path}: {why} (skipped)"),
            reporter.advance)
    if len(kept) < len(paths):
        say(f"warning: {len(paths) - len(kept)} of {len(paths)} images could not be read "
            "and are left out")
    if labels is None:
        return SyntheticTasks(pixels, [DISTORTIONS[n] for n in dict.fromkeys(names)], kept)
    keep = set(kept)
    rows = [row for row, path in zip(rows, paths, strict=True) if path in keep]
    if not rows:
        raise InputError(f"{labels}: none of its images could be read")
    return LabelledTasks(pixels, rows, higher_is_better=not lower_is_better)
