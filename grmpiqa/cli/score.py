"""``grmpiqa score PATH...``: parse the options into a ScoreJob, run it, say how it went."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from grmpiqa.cli import options as opt
from grmpiqa.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    cli_errors,
    configure_logging,
    install_signal_handlers,
    interrupt_exit_code,
    say,
)
from grmpiqa.cli.run_lines import closing_line, said_done, said_stopped
from grmpiqa.config import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.jobs.score import ScoreJob
    from grmpiqa.scoring.distributed import Shard
    from grmpiqa.workflow.selection import Selection


@cli_errors
def score(
    paths: opt.PathsArgument,
    model: opt.ModelOption = None,
    weights: opt.WeightsOption = None,
    device: opt.DeviceOption = "auto",
    batch_size: opt.BatchSizeOption = None,
    workers: opt.WorkersOption = None,
    fmt: opt.FormatOption = None,
    output: opt.OutputOption = None,
    recursive: opt.RecursiveOption = True,
    ext: opt.ExtOption = None,
    null: opt.NullOption = False,
    max_pixels: opt.MaxPixelsOption = DEFAULT_MAX_PIXELS,
    precision: opt.PrecisionOption = "auto",
    compile_model: opt.CompileOption = False,
    shard: opt.ShardOption = None,
    gpu_decode: opt.GpuDecodeOption = "auto",
    draft: opt.FastDecodeOption = False,
    no_cache: opt.NoCacheOption = False,
    quiet: opt.QuietOption = False,
    resume: opt.ResumeOption = False,
    sort: opt.SortOption = None,
    top: opt.TopOption = None,
    min_score: opt.MinScoreOption = None,
    max_score: opt.MaxScoreOption = None,
    xmp: opt.XmpOption = False,
    xmp_for: opt.XmpForOption = None,
    rating_thresholds: opt.RatingThresholdsOption = None,
    summary: opt.SummaryOption = False,
    bursts: opt.BurstsOption = False,
    similarity: opt.SimilarityOption = None,
    time_gap: opt.TimeGapOption = None,
    report: opt.ReportOption = None,
    explain: opt.ExplainOption = False,
) -> None:
    """Score photos: P(high quality) in 0..1, higher is better, one row per image.

    Rows stream in input order with the columns path, score, error, model (--sort,
    --top and --bursts wait for the last photo). A file that cannot be scored
    keeps its row (with the error) and the run goes on; --format paths,
    --min-score and --max-score leave such files out.
    Exit status: 0 all scored, 1 some failed, 2 usage error, 4 an output could not be
    written, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); with --output, rows
    scored before a stop are saved.
    """
    from grmpiqa.jobs.score import ModelOptions, ScoreJob, XmpOptions

    configure_logging(quiet)
    if resume and not output:
        raise typer.BadParameter("needs --output FILE", param_hint="--resume")
    if fmt == "parquet" and not output:
        raise typer.BadParameter("parquet is written to a file: add --output FILE.parquet",
                                 param_hint="--format")
    xmp = xmp or xmp_for is not None  # --xmp-for APP writes ratings on its own
    if rating_thresholds is not None and not xmp:
        raise typer.BadParameter("only means something with --xmp or --xmp-for",
                                 param_hint="--rating-thresholds")
    selection = _selection(sort, top, min_score, max_score)
    if output and not fmt:
        _check_extension(output)
    listed = _listed(paths, null)
    job = ScoreJob(
        inputs=paths, listed=listed, extensions=ext or None, recursive=recursive,
        shard=_shard(shard), output=output,
        format=fmt or (None if output else "table" if sys.stdout.isatty() else "csv"),
        null=null, resume=resume, selection=selection,
        bursts=opt.burst_options(bursts, similarity, time_gap),
        xmp=XmpOptions(_thresholds(rating_thresholds), app=xmp_for) if xmp else None,
        summary=summary, report=report, explain=explain,
        model=ModelOptions(name=weights or model, base=model, device=device,
                           precision=precision, compile=compile_model, batch_size=batch_size,
                           workers=workers, fast_decode=draft, max_pixels=max_pixels,
                           gpu_decode=gpu_decode, catalogue=not no_cache))
    _run(job, quiet)


def _run(job: ScoreJob, quiet: bool) -> NoReturn:
    from grmpiqa.cli.progress import Reporter
    from grmpiqa.errors import Interrupted
    from grmpiqa.jobs.score import score as run_score

    install_signal_handlers()
    # a table on the terminal shows each error in its row, unless a filter or --top
    # leaves that row out: then the error needs its own line
    keeps_errors = not job.selection.filters and job.selection.top is None
    reporter = Reporter(quiet=quiet, rows_show_errors=job.format == "table"
                        and job.output is None and keeps_errors)
    try:
        with reporter:
            run = run_score(job, reporter, stream=reporter.rows_to(sys.stdout.buffer))
    except Interrupted as stop:
        said_stopped(stop.run, job)
        raise typer.Exit(interrupt_exit_code(stop.cause)) from None
    said_done(run, job, quiet)
    closing = closing_line(run, inside=job.xmp is not None and job.xmp.app is not None)
    if closing:
        say(closing)  # also with -q: a non-zero exit always says why
    raise typer.Exit(EXIT_OK if run.ok else EXIT_SOME_FAILED)


def _selection(sort: str | None, top: int | None, min_score: float | None,
               max_score: float | None) -> Selection:
    from grmpiqa.workflow.selection import Selection

    for flag, value in (("--min-score", min_score), ("--max-score", max_score)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise typer.BadParameter("scores are between 0 and 1", param_hint=flag)
    try:
        return Selection(sort=sort, top=top, min_score=min_score, max_score=max_score)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--min-score/--max-score") from None


def _check_extension(output: str) -> None:
    from grmpiqa.io.output import OUTPUT_EXTENSIONS, check_output_path, display_path

    check_output_path(output)  # a photo, a folder: refused first, in the library's words
    if Path(output).suffix.lower() not in OUTPUT_EXTENSIONS:
        raise typer.BadParameter(
            f"{display_path(output)}: cannot tell the format from the extension; name it "
            f"{', '.join(OUTPUT_EXTENSIONS)}, or give --format", param_hint="--output")


def _listed(paths: list[str], null: bool) -> list[str]:
    from grmpiqa.io.inputs import read_path_list

    return read_path_list(sys.stdin.buffer, null) if "-" in paths else []


def _shard(text: str | None) -> Shard | None:
    from grmpiqa.scoring.distributed import parse_shard

    return parse_shard(text) if text is not None else None


def _thresholds(text: str | None) -> tuple[float, ...] | None:
    from grmpiqa.workflow.xmp import parse_thresholds

    if text is None:
        return None
    try:
        return parse_thresholds(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--rating-thresholds") from None
