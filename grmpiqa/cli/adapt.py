"""``grmpiqa adapt labels.csv --out mine.safetensors``: fine-tune on your own labels."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Any

import typer

from grmpiqa.cli.common import (
    EXIT_INTERRUPTED,
    cli_errors,
    configure_logging,
    say,
)
from grmpiqa.cli.options import (
    DeviceOption,
    ImageColumnOption,
    LowerIsBetterOption,
    MaxPixelsOption,
    ModelOption,
    QuietOption,
    RootOption,
    ScoreColumnOption,
    SeedOption,
    TrainingBatchSizeOption,
    WorkersOption,
)
from grmpiqa.config import DEFAULT_MAX_PIXELS

OutOption = Annotated[str, typer.Option(
    "--out", "-o", help="Where to write the adapted weights (*.safetensors).",
    show_default=False)]
InitOption = Annotated[str | None, typer.Option(
    "--init", help="Start from this weights file instead (e.g. from `grmpiqa pretrain`); "
    "an authors' .pt is read on --model's backbone.")]
TrainableOption = Annotated[str, typer.Option(
    "--trainable", help="full: text context + last third of both towers + ln_final + "
    "ln_post (the paper's); prompts: text context and visual prompts only.")]
LamOption = Annotated[float, typer.Option(
    "--lambda", min=0.0, help="Strength of the quality-aware gradient regularisation "
    "(0 turns it off).")]
EpochsOption = Annotated[int, typer.Option(
    "--epochs", min=1, help="Upper bound; the schedule normally ends training earlier.")]
ScheduleOption = Annotated[str, typer.Option(
    "--schedule", help="early: stop once validation has not improved for 10 evaluations, "
    "one epoch apart; authors: the paper's (lr x0.3 after 6 evaluations without gain, 5 "
    "epochs apart, stop below 5e-7: at least 210 epochs).")]
LrOption = Annotated[float, typer.Option("--lr", min=0.0, help="SGD learning rate.")]
ValFractionOption = Annotated[float, typer.Option(
    "--val-fraction", min=0.0, max=0.5, help="Share of the labels held out to choose the "
    "best epoch; under 5 images means no split (see docs/training.md).")]
EvalEveryOption = Annotated[int | None, typer.Option(
    "--eval-every", min=1, help="Epochs between evaluations (default: 1 with the early "
    "schedule, 5 with the authors').", show_default=False)]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Continue the run whose checkpoint is beside --out.")]
LabelsOrPhotosArgument = Annotated[list[str], typer.Argument(
    help="A labels CSV: an image column (path/image/file/filename) and a score column "
         "(score/mos/label/rating); , ; or tab separated. With --from-ratings: photos, "
         "folders and globs instead.", show_default=False, metavar="LABELS.csv | PATH")]
FromRatingsOption = Annotated[bool, typer.Option(
    "--from-ratings", help="Learn the star ratings (xmp:Rating) the photos already have, "
    "from their XMP sidecars or the XMP inside them (a sidecar wins); unrated photos are "
    "left out.")]
RejectedAsLowestOption = Annotated[bool, typer.Option(
    "--rejected-as-lowest", help="With --from-ratings: rejected photos (rating -1) become the "
    "lowest label, below 1 star, instead of being left out.")]


@cli_errors
def adapt(
    labels: LabelsOrPhotosArgument,
    out: OutOption,
    model: ModelOption = None,
    init: InitOption = None,
    image_column: ImageColumnOption = None,
    score_column: ScoreColumnOption = None,
    root: RootOption = None,
    lower_is_better: LowerIsBetterOption = False,
    from_ratings: FromRatingsOption = False,
    rejected_as_lowest: RejectedAsLowestOption = False,
    trainable: TrainableOption = "full",
    lam: LamOption = 5.0,
    epochs: EpochsOption = 2000,
    schedule: ScheduleOption = "early",
    batch_size: TrainingBatchSizeOption = None,
    lr: LrOption = 1e-3,
    seed: SeedOption = 0,
    val_fraction: ValFractionOption = 0.2,
    eval_every: EvalEveryOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = "auto",
    workers: WorkersOption = None,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    quiet: QuietOption = False,
) -> None:
    """Adapt GRMP-IQA to your own quality labels (few-shot fine-tuning with
    quality-aware gradient regularisation).

    Labels come from a CSV, or with --from-ratings from the star ratings the
    photos already carry (the count per star is printed first). Every label and
    photo is checked first; any problem (all are listed, with their CSV line or
    photo) stops the command with status 2 before anything trains.
    Progress goes to stderr, with the time the first epoch took and an estimate
    of the rest; Ctrl-C stops training, writes the best weights so far and exits
    with 130 (continue later with --resume, once the first epoch has ended).
    """
    configure_logging(quiet)
    from grmpiqa.cli.progress import Reporter
    from grmpiqa.cli.training_table import TrainingDisplay
    from grmpiqa.training.adaptation import adapt as run_adapt
    table = _read_labels(labels, from_ratings, rejected_as_lowest, quiet,
                         image_column=image_column, score_column=score_column, root=root,
                         lower_is_better=lower_is_better)
    display = TrainingDisplay(epochs, quiet=quiet)
    with ExitStack() as displays, ExitStack() as reading:
        reporter = reading.enter_context(
            Reporter(len(table.rows), quiet=quiet, label="reading photos"))

        def on_start(info: dict) -> None:
            reading.close()  # one live display at a time: the photo bar goes first
            display.message(_start_line(info))
            displays.enter_context(display)

        result = run_adapt(
            table, out, model=model, init=init, device=device, workers=workers,
            resume=resume, max_pixels=max_pixels, progress=reporter, on_start=on_start,
            on_evaluation=display.on_evaluation, on_epoch=display.on_epoch,
            on_progress=display.on_progress, trainable=trainable, lam=lam, epochs=epochs,
            batch_size=batch_size, lr=lr, seed=seed, val_fraction=val_fraction,
            eval_every=eval_every, schedule=schedule)
    summary = result.summary
    quality = (f"val SRCC {summary['val_srcc']:.4f}, PLCC {summary['val_plcc']:.4f}"
               if summary["val_srcc"] is not None and summary["val_plcc"] is not None
               else "no validation split")
    if not quiet:
        say(f"best epoch {summary['best_epoch']} of {summary['epochs']} ({quality}); "
            f"stopped: {summary['stopped']}")
        if summary["best_epoch"] == 0:
            say("warning: no epoch beat the starting weights on validation; the file holds "
                "them with your label scale")
        say(f"wrote {result.out}")
        if result.checkpoint is not None and not result.interrupted:
            say(f"checkpoint kept at {result.checkpoint}: continue with --resume and a "
                "larger --epochs, or delete it")
    if result.interrupted:
        if result.checkpoint is not None:
            say(f"interrupted: best weights so far written to {result.out}; "
                "continue with --resume")
        else:
            say(f"interrupted before the first epoch ended: {result.out} holds the starting "
                "weights with your label scale; there is nothing to resume, run it again")
        raise typer.Exit(EXIT_INTERRUPTED)


def _read_labels(labels: list[str], from_ratings: bool, rejected_as_lowest: bool, quiet: bool,
                 **csv_options: Any) -> Any:
    """The label table: the CSV's, or the photos' own star ratings (counts printed)."""
    if not from_ratings:
        if rejected_as_lowest:
            raise typer.BadParameter("only with --from-ratings", param_hint="--rejected-as-lowest")
        if len(labels) != 1:
            raise typer.BadParameter("give one labels CSV (or photos with --from-ratings)",
                                     param_hint="LABELS")
        from grmpiqa.training.labels import read_labels

        return read_labels(labels[0], **csv_options)
    given = [name for name, value in csv_options.items() if value not in (None, False)]
    if given:
        option = "--" + given[0].replace("_", "-")
        raise typer.BadParameter("is for a labels CSV, not --from-ratings", param_hint=option)
    csvs = [path for path in labels if path.lower().endswith((".csv", ".tsv", ".txt"))]
    if csvs:
        raise typer.BadParameter(f"{csvs[0]} is a labels file: give photos and folders with "
                                 "--from-ratings, or the CSV without it", param_hint="PATH")
    from grmpiqa.training.labels import ratings_table
    from grmpiqa.workflow.ratings import format_counts, read_ratings

    ratings = read_ratings(labels, rejected_as_lowest=rejected_as_lowest)
    if not quiet:
        say(format_counts(ratings))
    return ratings_table(ratings)


def _start_line(info: dict) -> str:
    resumed = f", resuming after epoch {info['resumed_at']}" if info["resumed_at"] else ""
    split = f" ({info['train']} train + {info['val']} validation)" if info["val"] else \
        ", all for training (too few to hold some back for validation)"
    return (f"adapting {info['start']} on {info['labels']} labels{split}, "
            f"batch {info['batch_size']}, {info['trainable_parameters']:,} "
            f"trainable parameters, {info['device']} {info['precision']}, "
            f"{_cache_words(info)}, {info['schedule']} schedule{resumed}")


def _cache_words(info: dict) -> str:
    return f"frozen blocks cached ({info['cache']})" if info["cache"] else \
        "frozen blocks recomputed every step"
