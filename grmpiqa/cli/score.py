"""``grmpiqa score PATH...``: one row per image on stdout or in --output."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from grmpiqa.cli import bursts_options as grouping
from grmpiqa.cli import score_workflow as workflow
from grmpiqa.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    BatchSizeOption,
    CompileOption,
    DeviceOption,
    FastDecodeOption,
    ModelOption,
    PrecisionOption,
    QuietOption,
    WeightsOption,
    WorkersOption,
    check_model_options,
    cli_errors,
    configure_logging,
    install_signal_handlers,
    interrupt_exit_code,
    say,
)
from grmpiqa.config import DEFAULT_MAX_PIXELS
from grmpiqa.io.inputs import (
    DEFAULT_EXTENSIONS,
    expand_inputs,
    normalise_extensions,
    read_path_list,
)
from grmpiqa.io.output import (
    BASE_COLUMNS,
    FORMATS,
    OutputFile,
    check_not_an_input,
    check_output_path,
    display_path,
    format_for_path,
)
from grmpiqa.scoring.distributed import parse_shard
from grmpiqa.workflow.summary import Tally

if TYPE_CHECKING:
    from grmpiqa.io.shards import ShardIndex
    from grmpiqa.results import ScoreResult


PathsArgument = Annotated[list[str], typer.Argument(
    help="Image files, folders (searched recursively), globs, WebDataset .tar shards "
         "(rows SHARD.tar/MEMBER), or - to read a list of paths from stdin.",
    show_default=False)]

FormatOption = Annotated[str | None, typer.Option(
    "--format", "-f", metavar="FORMAT", show_default="table on a terminal, else CSV",
    help=f"Output format: {', '.join(FORMATS)}. With --output, taken from its extension "
         "(.csv, .tsv, .jsonl, .ndjson, .parquet) unless given; parquet needs --output "
         "and the extra grmpiqa[parquet].")]

OutputOption = Annotated[str | None, typer.Option(
    "--output", "-o", metavar="FILE",
    help="Write rows to this file (atomically) instead of stdout; its folder is created. "
         "Refused: a folder, one of the photos, a photo extension.")]

RecursiveOption = Annotated[bool, typer.Option(
    "--recursive/--no-recursive", help="Search folders recursively.")]

ExtOption = Annotated[list[str] | None, typer.Option(
    "--ext", metavar="EXTS", show_default=",".join(DEFAULT_EXTENSIONS),
    help="File extensions picked up in folders (repeat or comma-separate).")]

NullOption = Annotated[bool, typer.Option(
    "--null", "-0", help="NUL ends each record, like sort -z: in the list read from stdin "
                         "(-) and after each path of --format paths (for xargs -0).")]

MaxPixelsOption = Annotated[int, typer.Option(
    "--max-pixels", min=1, metavar="N",
    help="Refuse images with more pixels (decompression bombs).")]

ShardOption = Annotated[str | None, typer.Option(
    "--shard", metavar="K/N", help="Score only shard K of N (0 <= K < N) of the sorted "
    "input list (a .tar shard counts as one entry); N jobs with K = 0..N-1 cover every "
    "image exactly once.")]

GpuDecodeOption = Annotated[str, typer.Option(
    "--gpu-decode", metavar="auto|on|off",
    help="Decode JPEGs on the GPU (nvJPEG) and squash them there with the same kernel; "
         "auto: on CUDA devices.")]

ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="With --output FILE: keep the rows FILE already holds (or FILE.part, "
    "left by a killed run) and score only the photos missing from it.")]


@cli_errors
def score(
    paths: PathsArgument,
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    workers: WorkersOption = None,
    fmt: FormatOption = None,
    output: OutputOption = None,
    recursive: RecursiveOption = True,
    ext: ExtOption = None,
    null: NullOption = False,
    max_pixels: MaxPixelsOption = DEFAULT_MAX_PIXELS,
    precision: PrecisionOption = "auto",
    compile_model: CompileOption = False,
    shard: ShardOption = None,
    gpu_decode: GpuDecodeOption = "auto",
    draft: FastDecodeOption = False,
    quiet: QuietOption = False,
    resume: ResumeOption = False,
    # photo-workflow options (grmpiqa/cli/score_workflow.py, grmpiqa/cli/bursts_options.py)
    sort: workflow.SortOption = None,
    top: workflow.TopOption = None,
    min_score: workflow.MinScoreOption = None,
    max_score: workflow.MaxScoreOption = None,
    xmp: workflow.XmpOption = False,
    rating_thresholds: workflow.RatingThresholdsOption = None,
    summary: workflow.SummaryOption = False,
    bursts: grouping.BurstsOption = False,
    similarity: grouping.SimilarityOption = grouping.BurstOptions.similarity,
    time_gap: grouping.TimeGapOption = grouping.BurstOptions.time_gap,
    report: grouping.ReportOption = None,
) -> None:
    """Score photos: P(high quality) in 0..1, higher is better, one row per image.

    Rows stream in input order with the columns path, score, error (--sort,
    --top and --bursts wait for the last photo). A file that cannot be scored
    keeps its row (with the error) and the run goes on; --format paths,
    --min-score and --max-score leave such files out.
    Exit status: 0 all scored, 1 some failed, 2 usage error, 130 interrupted (Ctrl-C),
    143 terminated (SIGTERM); with --output, rows scored before a stop are saved.
    """
    configure_logging(quiet)
    fmt = _output_format(fmt, output, gpu_decode)
    extras = workflow.ScoreWorkflow.from_options(
        sort=sort, top=top, min_score=min_score, max_score=max_score, xmp=xmp,
        rating_thresholds=rating_thresholds, summary=summary)
    if resume and not output:
        raise typer.BadParameter("needs --output FILE", param_hint="--resume")
    grouping.check_resume(resume, bursts, report)
    groups = grouping.ScoreGrouping(bursts, grouping.burst_options(similarity, time_gap),
                                    report)
    selected_shard = parse_shard(shard) if shard is not None else None
    check_model_options(model, weights, device, precision)

    files, problems, tars, done = _plan(paths, ext, recursive, null, selected_shard,
                                        output=output, fmt=fmt, resume=resume, xmp=xmp)
    install_signal_handlers()

    from grmpiqa.cli.progress import Reporter
    from grmpiqa.scoring import distributed

    reporter = Reporter(len(files), quiet=quiet)
    if not files:  # nothing to load a model for; a .part's rows still become FILE
        rank = distributed.torchrun_rank()
        if rank is not None and not rank.is_main:
            raise typer.Exit(EXIT_OK)  # rank 0 writes
        columns = list(BASE_COLUMNS) + (["score_label"] if any(
            r.score_label is not None for r in done) else [])
        _write_rows(reporter, extras, output, fmt, groups.columns(columns), done, iter(()),
                    null=null, quiet=quiet, problems=problems, groups=groups, resume=resume)

    from grmpiqa.scoring.engine import score_paths
    from grmpiqa.weights.loading import load_model

    def load(dev: str) -> Any:
        with reporter.loading(f"model {weights or model or 'default'}"):
            return load_model(weights or model, device=dev, base=model, precision=precision,
                              compile=compile_model)

    loaded, results = distributed.score_here(
        files, device, load=load,
        score=lambda loaded_model, mine: score_paths(
            mine, loaded_model, batch_size=batch_size, workers=workers, draft=draft,
            max_pixels=max_pixels, expand=False, known_errors=problems, gpu_decode=gpu_decode,
            shards=tars, features=groups.features, thumbnails=groups.thumbnails),
    )
    if results is None:  # a torchrun rank other than 0: its share is done, rank 0 writes
        raise typer.Exit(EXIT_OK)
    columns = [*BASE_COLUMNS, "score_label"] if loaded.label is not None else list(BASE_COLUMNS)
    extras.use_label_scale(loaded.label, quiet)
    _write_rows(reporter, extras, output, fmt, groups.columns(columns), done, results,
                null=null, quiet=quiet, problems=problems, groups=groups, resume=resume)


def _output_format(fmt: str | None, output: str | None, gpu_decode: str) -> str:
    """The format rows are written in, with --output's path checked (before any model loads)."""
    if output:
        check_output_path(output)
    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    if fmt is None:
        fmt = format_for_path(output) if output else ("table" if sys.stdout.isatty() else "csv")
    _check_scale_options(fmt, output, gpu_decode)
    return fmt


def _plan(paths: list[str], ext: list[str] | None, recursive: bool, null: bool,
          selected_shard: Any, *, output: str | None, fmt: str, resume: bool, xmp: bool
          ) -> tuple[list[str], dict[str, str], ShardIndex, list[ScoreResult]]:
    """The files to score, the inputs that already failed, the tar shards, and the rows an
    earlier run wrote (--resume); exits at once when nothing is left to score."""
    files, problems, tars = _inputs(paths, ext, recursive, null, selected_shard)
    if xmp and tars.listings:
        raise typer.BadParameter("XMP sidecars go beside files; members of tar shards have "
                                 "none", param_hint="--xmp")
    if output:
        check_not_an_input(output, files)
    done: list[ScoreResult] = []
    if resume:
        from grmpiqa.io.resume import partial_path

        files, done = _not_done(files, output, fmt)
        if not files and not partial_path(output).exists():
            _nothing_left(output, done)
    return files, problems, tars, done


def _check_scale_options(fmt: str, output: str | None, gpu_decode: str) -> None:
    if gpu_decode not in ("auto", "on", "off"):
        raise typer.BadParameter("use auto, on or off", param_hint="--gpu-decode")
    if fmt == "parquet" and not output:
        raise typer.BadParameter("parquet is written to a file: add --output FILE.parquet",
                                 param_hint="--format")
    if fmt == "parquet":
        from grmpiqa.io.parquet import require_pyarrow

        require_pyarrow()  # a missing extra is a usage error before any model loads


def _inputs(paths: list[str], ext: list[str] | None, recursive: bool, null: bool,
            shard: Any) -> tuple[list[str], dict[str, str], ShardIndex]:
    """The files to score (tar shards listed after --shard splits the entries), the
    entries known to fail already (see expand_inputs) and the shards' index."""
    from grmpiqa.io.shards import ShardIndex, expand_shards

    stdin_paths = read_path_list(sys.stdin.buffer, null) if "-" in paths else []
    skipped: Counter[str] = Counter()
    problems: dict[str, str] = {}
    files = expand_inputs(paths, extensions=ext or DEFAULT_EXTENSIONS, recursive=recursive,
                          stdin_paths=stdin_paths, skipped=None if ext else skipped,
                          problems=problems)
    workflow.warn_skipped(skipped)
    tars = ShardIndex(normalise_extensions(ext or DEFAULT_EXTENSIONS))
    files = expand_shards(shard.take(files) if shard is not None else files, tars)
    return files, problems, tars


def _not_done(files: list[str], output: str, fmt: str) -> tuple[list[str], list[ScoreResult]]:
    """--resume: the rows ``output`` holds already, and the files still to score."""
    from grmpiqa.io.resume import done_rows

    done = done_rows(output, fmt)
    already = {row.path for row in done}
    if fmt == "parquet":  # Parquet holds names that are not UTF-8 as \\xNN text
        from grmpiqa.io.parquet import text_path

        return [f for f in files if text_path(f) not in already], done
    return [f for f in files if f not in already], done


def _nothing_left(output: str, done: list[ScoreResult]) -> NoReturn:
    """--resume on a finished file: say so at once, without loading the model."""
    failed = sum(not row.ok for row in done)
    say(f"nothing left to score: all {len(done)} photos are in {display_path(output)}"
        + (f" ({failed} of them with an error)" if failed else ""))
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def _write_rows(reporter: Any, extras: workflow.ScoreWorkflow, output: str | None, fmt: str,
                columns: list[str], done: list[ScoreResult], results: Iterator[ScoreResult], *,
                null: bool, quiet: bool, problems: dict[str, str],
                groups: grouping.ScoreGrouping, resume: bool) -> NoReturn:
    """Write the kept rows, then each new one as it is scored; exits with the run's status."""
    target, stream, rows = _open_output(output, fmt, columns, null=null, resume=resume)
    writer = groups.wrap(extras.wrap(rows, quiet=quiet))
    if not reporter.total and not done:
        say("warning: no image files found")
    tally = Tally(done)
    try:
        for row in done:  # rows of the earlier run come first, as they were
            writer.write(row)
            extras.observe(row, say, rate=False)
        with reporter:
            for result in results:
                result = groups.add(result)
                reporter.write_row(lambda r=result: (writer.write(r), stream and stream.flush()))
                tally.add(result, problems)
                if not result.ok:
                    reporter.message(f"{display_path(result.path)}: {result.error}")
                extras.observe(result, reporter.message)
                reporter.advance()
    except KeyboardInterrupt as exc:
        writer.close()
        groups.write_page()
        total = reporter.total + len(done)
        if target is not None:
            target.commit()
            say(f"stopped: {tally.written} of {total} rows saved in {output} "
                "(--resume finishes it)")
        else:
            say(f"stopped after {tally.written} of {total} images")
        extras.finish()
        raise typer.Exit(interrupt_exit_code(exc)) from None
    except BaseException:
        if target is not None:
            target.discard()
        groups.discard()
        raise
    writer.close()
    page_failed = groups.write_page()
    if target is not None:
        target.commit()
    extras.finish()
    closing = tally.closing_line(extras.problems, extras.left_out)
    if closing:
        say(closing)  # also with -q: a non-zero exit always says why
    raise typer.Exit(EXIT_SOME_FAILED if closing or page_failed else EXIT_OK)


def _open_output(output: str | None, fmt: str, columns: list[str], *, null: bool,
                 resume: bool) -> tuple[Any, IO[bytes] | None, Any]:
    """(target to commit or discard or None for stdout, stream to flush or None, row writer)."""
    if fmt == "parquet":
        from grmpiqa.io.parquet import ParquetOutput

        assert output is not None
        target = ParquetOutput(output, columns, resume=resume)
        return target, None, target
    from grmpiqa.io.output import make_writer

    file = OutputFile(output) if output else None
    stream = file.stream if file else sys.stdout.buffer
    return file, stream, make_writer(fmt, stream, columns, null=null)
