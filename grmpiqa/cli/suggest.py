"""``grmpiqa suggest PATH... -n 50 -o to_rate.csv``: which photos to rate for ``adapt``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

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
    ModelOption,
    NoCacheOption,
    QuietOption,
    WeightsOption,
    WorkersOption,
)


def _check_writable(path: str, option: str) -> None:
    """Refuse, before any scoring, an output that cannot be written."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise typer.BadParameter(f"{path} is a folder", param_hint=option)
    from grmpiqa.io.atomic import write_problem

    problem = write_problem(folder) if folder.is_dir() else "no such folder"
    if problem is not None:
        raise typer.BadParameter(f"cannot write in {folder} ({problem})", param_hint=option)


def _report(result: Any, output: str | None, html_page: str | None) -> None:
    """What was chosen, how well it covers the collection, and what to do next."""
    from grmpiqa.workflow.rating_page import download_name

    scores = sorted(r.score for r in result.chosen)
    rated = f" ({result.already_rated} rated already, left out)" if result.already_rated else ""
    say(f"chose {len(result.chosen)} of {result.scored} photos{rated}, model scores "
        f"{scores[0]:.2f} to {scores[-1]:.2f}; {_coverage(result)}")
    if html_page:
        name = download_name(html_page)
        say(f"next: open {html_page}, press 1-5 on each photo, download {name} (it lands in "
            f"the browser's download folder), then: grmpiqa adapt {name} -o mine.safetensors")
    else:
        target = output or _stdout_file()
        say(f"next: fill the rating column of {target or 'the CSV'} with 1-5 stars, then: "
            f"grmpiqa adapt {target or 'THAT.csv'} -o mine.safetensors")


def _coverage(result: Any) -> str:
    """How much better than chance every photo has a chosen one like it, in words (the
    mean embedding distance to the nearest chosen photo means nothing to a person)."""
    chosen, near, chance = len(result.chosen), result.coverage, result.random_coverage
    figures = f"(embedding distance {near:.4f}, at random {chance:.4f})"
    if chance > 0 and near < chance * 0.995:
        return (f"each photo is on average {1 - near / chance:.0%} closer in content to one "
                f"of them than to the nearest of {chosen} picked at random {figures}")
    return f"each photo is as close in content to one of them as at random {figures}"


def _stdout_file() -> str | None:
    """The file stdout was redirected to (``> to_rate.csv``), when the system says."""
    try:
        if not os.path.isfile(f"/proc/self/fd/{sys.stdout.fileno()}"):
            return None
        path = os.readlink(f"/proc/self/fd/{sys.stdout.fileno()}")
    except (OSError, ValueError, AttributeError):
        return None
    from grmpiqa.io.output import display_path

    if not path.startswith(os.sep):  # a pipe or socket: "pipe:[123]"
        return None
    relative = os.path.relpath(path)
    return display_path(path if relative.startswith("..") else relative)


@cli_errors
def suggest(
    paths: Annotated[list[str], typer.Argument(
        help="Image files, folders (searched recursively) and globs.", show_default=False,
        metavar="PATH")],
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many photos to choose.")
                 ] = 50,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write the labels CSV here (atomically) instead of stdout.")
    ] = None,
    html_page: Annotated[str | None, typer.Option(
        "--html", help="Also write a page (no server needed) to rate the photos with keys "
        "1-5 and download the filled CSV.")] = None,
    show_scores: Annotated[bool, typer.Option(
        "--show-scores", help="Show the model's score beside each photo of the --html page "
        "(hidden by default: it biases the rating).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Chooses the first photo; the same "
                                      "seed gives the same choice.")] = 0,
    score_weight: Annotated[float, typer.Option(
        "--score-weight", min=0.0, help="How much spreading over the current scores counts "
        "beside the content: 1 makes the whole score range count as much as two unrelated "
        "photos differ; 0 ignores scores.")] = 1.0,
    skip_rated: Annotated[bool, typer.Option(
        "--skip-rated", help="Never suggest photos that already have a star rating or a "
        "reject in XMP (sidecar or embedded); they count as covered.")] = False,
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = None,
    workers: WorkersOption = None,
    no_cache: NoCacheOption = False,
    quiet: QuietOption = False,
) -> None:
    """Choose photos to rate so that a few labels teach `adapt` the most.

    Every photo is scored; greedy k-centre over the model's image embeddings and
    scores then picks photos unlike each other (near-identical frames only after
    every scene has one) and spread over the score range. The CSV has the columns
    path, rating (empty: fill in 1-5 stars) and model_score; once filled,
    `grmpiqa adapt to_rate.csv -o mine.safetensors` learns from it.
    Exit status: 0 done, 1 some photos could not be scored, 2 usage error.
    """
    configure_logging(quiet)
    from grmpiqa.cli.progress import Reporter
    from grmpiqa.io.inputs import expand_inputs
    from grmpiqa.workflow.suggest import suggest as run_suggest
    from grmpiqa.workflow.suggest import suggestion_csv, write_suggestion

    for target, option in ((output, "--output"), (html_page, "--html")):
        if target:
            _check_writable(target, option)
    files = expand_inputs(paths)
    if not files:
        raise typer.BadParameter("no image files found", param_hint="PATH")
    with Reporter(len(files), quiet=quiet) as reporter:
        result = run_suggest(files, n, model=weights or model, base=model, device=device,
                             seed=seed, score_weight=score_weight, batch_size=batch_size,
                             workers=workers, skip_rated=skip_rated,
                             catalogue=not no_cache, progress=reporter)
    if not result.chosen:
        say("error: " + ("every photo scored is rated already" if result.scored
                         else "no photo could be scored"))
        raise typer.Exit(EXIT_SOME_FAILED)
    from grmpiqa.workflow.rating_page import write_rating_page

    try:
        if output:
            write_suggestion(result.chosen, output)
        else:
            sys.stdout.write(suggestion_csv(result.chosen))
            sys.stdout.flush()
        if html_page:
            write_rating_page(result.chosen, html_page, show_scores=show_scores)
    except OSError as exc:
        say(f"error: cannot write {exc.filename or output} ({exc.strerror or exc})")
        raise typer.Exit(EXIT_SOME_FAILED) from None
    if not quiet:
        _report(result, output, html_page)
    if result.failed:
        if not quiet:
            say(f"{len(result.failed)} of {len(files)} photos could not be scored")
        raise typer.Exit(EXIT_SOME_FAILED)
    raise typer.Exit(EXIT_OK)
