"""``grmpiqa evaluate labels.csv``: how well a model's scores agree with your labels."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

import typer

from grmpiqa.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    cli_errors,
    configure_logging,
    say,
)
from grmpiqa.cli.options import (
    BatchSizeOption,
    DeviceOption,
    ImageColumnOption,
    LabelsArgument,
    LowerIsBetterOption,
    MaxPixelsOption,
    ModelOption,
    NoCacheOption,
    QuietOption,
    RootOption,
    ScoreColumnOption,
    WeightsOption,
    WorkersOption,
)
from grmpiqa.config import DEFAULT_MAX_PIXELS


def _print_table(report: dict[str, Any], listed: int) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    table = Table(box=None, pad_edge=False, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("note")
    interval = "-" if report["srcc_low"] is None else \
        f"{report['srcc_low']:.4f} .. {report['srcc_high']:.4f}"
    table.add_row("images", str(report["n"]), f"of {listed} listed")
    table.add_row("SRCC", fmt(report["srcc"]), f"95% bootstrap interval {interval}")
    table.add_row("PLCC", fmt(report["plcc"]), "raw scores")
    table.add_row("PLCC (logistic)", fmt(report["plcc_logistic"]), "after the 4-parameter fit")
    table.add_row("KRCC", fmt(report["krcc"]), "")
    table.add_row("RMSE", fmt(report["rmse"]), "label units, after the fit")
    if "rmse_label" in report:
        table.add_row("RMSE (score_label)", fmt(report["rmse_label"]),
                      "the model's own label scale, no fit")
    Console(file=sys.stdout, soft_wrap=True, highlight=False).print(table)


@cli_errors
def evaluate(
    labels: LabelsArgument,
    model: ModelOption = None,
    weights: WeightsOption = None,
    image_column: ImageColumnOption = None,
    score_column: ScoreColumnOption = None,
    root: RootOption = None,
    lower_is_better: LowerIsBetterOption = False,
    fmt: Annotated[Literal["table", "json"], typer.Option(
        "--format", "-f", metavar="FORMAT", help="table or json (on stdout).")] = "table",
    bootstrap: Annotated[int, typer.Option(
        "--bootstrap", min=0, help="Resamples for the SRCC interval (0: none).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = None,
    workers: WorkersOption = None,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    no_cache: NoCacheOption = False,
    quiet: QuietOption = False,
) -> None:
    """Score the photos of a labels CSV and report SRCC, PLCC, KRCC and RMSE.

    Problems in the CSV itself (scores, duplicates, columns) are all listed and
    stop the command with status 2. A photo that cannot be scored is reported
    on stderr and left out; the metrics cover the rest and the status is 1.
    """
    configure_logging(quiet)
    from grmpiqa.cli.progress import Reporter
    from grmpiqa.training.evaluate import evaluate as run_evaluate
    from grmpiqa.training.labels import read_labels

    table = read_labels(labels, image_column=image_column, score_column=score_column,
                        root=root, lower_is_better=lower_is_better, check_files=False)
    with Reporter(len(table.rows), quiet=quiet, label="scoring") as reporter:
        result = run_evaluate(table, weights or model, base=model, resamples=bootstrap,
                              seed=seed, device=device, batch_size=batch_size,
                              workers=workers, max_pixels=max_pixels, catalogue=not no_cache,
                              progress=reporter)
    if fmt == "json":
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_table(result.report, result.listed)
    if result.failed:
        if not quiet:
            say(f"{len(result.failed)} of {result.listed} photos could not be scored; the "
                f"metrics cover the other {result.scored}")
        raise typer.Exit(EXIT_SOME_FAILED)
    raise typer.Exit(EXIT_OK)
