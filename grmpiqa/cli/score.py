"""``grmpiqa score PATH...``: one row per image on stdout or in --output."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Annotated

import typer

from grmpiqa.cli import bursts_options as grouping
from grmpiqa.cli import score_workflow as workflow
from grmpiqa.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    BatchSizeOption,
    CompileOption,
    DeviceOption,
    ModelOption,
    PrecisionOption,
    QuietOption,
    WeightsOption,
    WorkersOption,
    cli_errors,
    configure_logging,
    install_signal_handlers,
    interrupt_exit_code,
    say,
)
from grmpiqa.config import DEFAULT_MAX_PIXELS, REPORT_THUMBNAIL
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS, expand_inputs, read_path_list
from grmpiqa.io.output import BASE_COLUMNS, FORMATS, OutputFile, display_path, format_for_path
from grmpiqa.scoring.distributed import parse_shard


@cli_errors
def score(
    paths: Annotated[list[str], typer.Argument(
        help="Image files, folders (searched recursively), globs, or - to read a list of "
             "paths from stdin.", show_default=False)],
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    workers: WorkersOption = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", show_default="table on a terminal, else CSV",
        help=f"Output format: {', '.join(FORMATS)}. With --output, taken from its extension "
             "(.csv, .tsv, .jsonl) unless given.")] = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write rows to this file (atomically) instead of stdout.")] = None,
    recursive: Annotated[bool, typer.Option(
        "--recursive/--no-recursive", help="Search folders recursively.")] = True,
    ext: Annotated[list[str] | None, typer.Option(
        "--ext", show_default=",".join(DEFAULT_EXTENSIONS),
        help="File extensions picked up in folders (repeat or comma-separate).")] = None,
    null: Annotated[bool, typer.Option(
        "--null", "-0", help="NUL ends each record, like sort -z: in the list read from stdin "
                             "(-) and after each path of --format paths (for xargs -0).")] = False,
    max_pixels: Annotated[int, typer.Option(
        "--max-pixels", min=1, help="Refuse images with more pixels (decompression bombs).")
    ] = DEFAULT_MAX_PIXELS,
    precision: PrecisionOption = "auto",
    compile_model: CompileOption = False,
    shard: Annotated[str | None, typer.Option(
        "--shard", help="Score only shard K of N (0 <= K < N) of the sorted input list; N jobs "
        "with K = 0..N-1 cover every image exactly once.")] = None,
    draft: Annotated[bool, typer.Option(
        "--draft/--no-draft", hidden=True,
        help="Let libjpeg decode big JPEGs at a reduced scale (at least 2x the model's size).")
    ] = True,
    quiet: QuietOption = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="With --output FILE: keep the rows FILE already holds (or FILE.part, "
        "left by a killed run) and score only the photos missing from it.")] = False,
    # photo-workflow options (grmpiqa/commands/score_workflow.py)
    sort: workflow.SortOption = None,
    top: workflow.TopOption = None,
    min_score: workflow.MinScoreOption = None,
    max_score: workflow.MaxScoreOption = None,
    xmp: workflow.XmpOption = False,
    rating_thresholds: workflow.RatingThresholdsOption = workflow.DEFAULT_RATING_THRESHOLDS,
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
    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(FORMATS)}", param_hint="--format")
    if fmt is None:
        fmt = format_for_path(output) if output else ("table" if sys.stdout.isatty() else "csv")
    extras = workflow.ScoreWorkflow.from_options(
        sort=sort, top=top, min_score=min_score, max_score=max_score, xmp=xmp,
        rating_thresholds=rating_thresholds, summary=summary)
    grouping.check_resume(resume, bursts, report)
    options = grouping.burst_options(similarity, time_gap)

    stdin_paths = read_path_list(sys.stdin.buffer, null) if "-" in paths else []
    skipped: Counter[str] = Counter()
    files = expand_inputs(paths, extensions=ext or DEFAULT_EXTENSIONS, recursive=recursive,
                          stdin_paths=stdin_paths, skipped=None if ext else skipped)
    workflow.warn_skipped(skipped)
    if shard is not None:
        files = parse_shard(shard).take(files)
    done = []
    if resume:
        if not output:
            raise typer.BadParameter("needs --output FILE", param_hint="--resume")
        from grmpiqa.io.resume import done_rows

        done = done_rows(output, fmt)
        already = {row.path for row in done}
        files = [f for f in files if f not in already]
    install_signal_handlers()

    from grmpiqa.io.output import make_writer
    from grmpiqa.scoring import distributed
    from grmpiqa.scoring.engine import score_paths
    from grmpiqa.weights.loading import load_model

    loaded, results = distributed.score_here(
        files, device,
        load=lambda dev: load_model(weights or model, device=dev, base=model,
                                    precision=precision, compile=compile_model),
        score=lambda loaded_model, mine: score_paths(
            mine, loaded_model, batch_size=batch_size, workers=workers, draft=draft,
            max_pixels=max_pixels, expand=False, features=bursts or report is not None,
            thumbnails=REPORT_THUMBNAIL if report else 0),
    )
    if results is None:  # a torchrun rank other than 0: its share is done, rank 0 writes
        raise typer.Exit(EXIT_OK)
    columns = [*BASE_COLUMNS, "score_label"] if loaded.label is not None else list(BASE_COLUMNS)
    if bursts:
        columns += ["burst", "burst_rank"]

    target = OutputFile(output) if output else None
    stream = target.stream if target else sys.stdout.buffer
    writer = extras.wrap(make_writer(fmt, stream, columns, null=null), quiet=quiet)
    if bursts:
        writer = grouping.HeldRows(writer, options)
    page = grouping.ScoreReport.open(report, writer if bursts else None)
    if not files and not done:
        say("warning: no image files found")

    from grmpiqa.cli.progress import Reporter

    failed = sum(not row.ok for row in done)
    written = len(done)
    try:
        for row in done:  # rows of the earlier run come first, as they were
            writer.write(row)
            extras.observe(row, say, rate=False)
        with Reporter(len(files), quiet=quiet) as reporter:
            for result in results:
                result = page.add(result) if page is not None else result
                writer.write(result)
                stream.flush()  # a pipe sees each row as soon as it is scored
                written += 1
                if not result.ok:
                    failed += 1
                    reporter.message(f"{display_path(result.path)}: {result.error}")
                extras.observe(result, reporter.message)
                reporter.advance()
    except KeyboardInterrupt as exc:
        writer.close()
        if page is not None:
            page.write()
        total = len(files) + len(done)
        if target is not None:
            target.commit()
            say(f"stopped: {written} of {total} rows saved in {output} (--resume finishes it)")
        else:
            say(f"stopped after {written} of {total} images")
        extras.finish(quiet)
        raise typer.Exit(interrupt_exit_code(exc)) from None
    except BaseException:
        if target is not None:
            target.discard()
        if page is not None:
            page.discard()
        raise
    writer.close()
    page_failed = page.write() if page is not None else 0
    if target is not None:
        target.commit()
    if failed and not quiet:
        say(f"{failed} of {written} files could not be scored")
    if extras.finish(quiet) or failed or page_failed:
        raise typer.Exit(EXIT_SOME_FAILED)
    raise typer.Exit(EXIT_OK)
