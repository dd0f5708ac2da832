"""``grmpiqa cull SRC --below X --move-to DIR``: set the weakest photos of a shoot aside."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from grmpiqa.cli import bursts_options as grouping
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
    say,
)
from grmpiqa.workflow.summary import plural

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.workflow.cull import CullAction, CullRun

LOG_FORMATS = ("csv", "tsv", "jsonl")
_VERBS = {"move": ("moved", "would move"), "copy": ("copied", "would copy"),
          "link": ("linked", "would link")}


def _destination(move_to: str | None, copy_to: str | None, link_to: str | None
                 ) -> tuple[str, str]:
    given = [(mode, d) for mode, d in (("move", move_to), ("copy", copy_to), ("link", link_to))
             if d is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --move-to, --copy-to, --link-to",
                                 param_hint="DIR")
    return given[0]


def _check_log(log: str | None, run: CullRun) -> None:
    """The log (when one is written) is CSV, never over a folder, a photo or a sidecar."""
    from grmpiqa.io.output import check_not_an_input, check_output_path

    if log is None:
        return
    if log.lower().endswith((".json", ".jsonl", ".ndjson", ".tsv", ".gz")):
        raise typer.BadParameter("the log is CSV; name it .csv", param_hint="--log")
    check_output_path(log, option="--log")
    check_not_an_input(log, [f for g in run.groups for f in (*g.photos, *g.sidecars)],
                       option="--log")


def _write_log(log_path: str | None, done: list[CullAction], bursts: bool = False) -> int:
    """Write the log of a run that did something; 1 if that failed (said on stderr)."""
    if log_path is None or not done:
        return 0
    from grmpiqa.workflow.cull import BURST_LOG_COLUMNS, LOG_COLUMNS, write_log

    try:
        write_log(log_path, done, BURST_LOG_COLUMNS if bursts else LOG_COLUMNS)
    except OSError as exc:
        say(f"error: cannot write the log {log_path} ({exc.strerror or exc})")
        return 1
    return 0


@cli_errors
def cull(
    src: Annotated[str, typer.Argument(help="The shoot: a folder, searched recursively.",
                                       show_default=False)],
    below: Annotated[float | None, typer.Option(
        "--below", metavar="X", min=0.0, max=1.0, show_default=False,
        help="Cull the photos scored below X (0..1); with --bursts too, a photo goes if "
             "either rule says so.")] = None,
    move_to: Annotated[str | None, typer.Option(
        "--move-to", metavar="DIR", help="Move them under DIR, keeping the folder structure.")
    ] = None,
    copy_to: Annotated[str | None, typer.Option(
        "--copy-to", metavar="DIR", help="Copy them under DIR instead (originals stay).")
    ] = None,
    link_to: Annotated[str | None, typer.Option(
        "--link-to", metavar="DIR",
        help="Make symbolic links to them under DIR instead (originals stay).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="Print the plan; move, copy, link and write nothing.")] = False,
    log: Annotated[str | None, typer.Option(
        "--log", metavar="FILE", show_default="DIR/grmpiqa-cull-<date>-<time>.csv",
        help="Where to write the CSV log of every action (atomically).")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help=f"Format of the actions on stdout: {', '.join(LOG_FORMATS)}.")
    ] = "csv",
    recursive: Annotated[bool, typer.Option(
        "--recursive/--no-recursive", help="Search SRC's subfolders too.")] = True,
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    workers: WorkersOption = None,
    precision: PrecisionOption = "auto",
    compile_model: CompileOption = False,
    fast_decode: FastDecodeOption = False,
    quiet: QuietOption = False,
    bursts: grouping.BurstsOption = False,
    keep: Annotated[int, typer.Option(
        "--keep", metavar="K", min=1, help="With --bursts: keep the best K frames of each "
        "burst, cull the others.")] = 1,
    similarity: grouping.SimilarityOption = grouping.BurstOptions.similarity,
    time_gap: grouping.TimeGapOption = grouping.BurstOptions.time_gap,
    report: grouping.ReportOption = None,
) -> None:
    """Score every photo under SRC and move, copy or link those below X under DIR.

    A RAW+JPEG pair and its sidecars (.xmp, .pp3, .dop, .aae) go together,
    judged by the JPEG's score. Nothing is overwritten: a taken name gets a
    suffix (IMG_1-1.jpg). One row per action on stdout: action, source,
    destination, score, error (and reason, with --bursts); the same rows go to
    the log. Give --below, --bursts or both: with both a photo goes if either
    rule says so; with --bursts actions start once every photo is scored.
    Exit status: 0 done, 1 some photos could not be scored or moved, 2 usage
    error.
    """
    configure_logging(quiet)
    if fmt not in LOG_FORMATS:
        raise typer.BadParameter(f"use one of {', '.join(LOG_FORMATS)}", param_hint="--format")
    mode, dest = _destination(move_to, copy_to, link_to)
    if below is None and not bursts:
        raise typer.BadParameter("give --below X, --bursts or both", param_hint="--below")
    if keep != 1 and not bursts:
        raise typer.BadParameter("only means something with --bursts", param_hint="--keep")

    from grmpiqa.cli.progress import Reporter
    from grmpiqa.io.output import make_writer
    from grmpiqa.weights.loading import load_model
    from grmpiqa.workflow.cull import BURST_LOG_COLUMNS, LOG_COLUMNS, default_log_path
    from grmpiqa.workflow.cull import cull as run_cull

    check_model_options(model, weights, device, precision)
    run = run_cull(src, dest, below=below, mode=mode, dry_run=dry_run, recursive=recursive,
                   batch_size=batch_size, workers=workers, draft=fast_decode,
                   bursts=grouping.burst_options(similarity, time_gap) if bursts else None,
                   keep=keep)
    _check_log(None if dry_run else log, run)
    grouping.check_report(report)
    if not run.groups and not run.unreadable:
        say(f"warning: no photos found in {src}")
    # loaded only once every option and path has been checked
    run.model = load_model(weights or model, device=device, base=model, precision=precision,
                           compile=compile_model)
    run.report = grouping.open_report(report)
    writer = make_writer(fmt, sys.stdout.buffer, BURST_LOG_COLUMNS if bursts else LOG_COLUMNS)
    log_path = None if dry_run else log or default_log_path(dest, time.strftime("%Y%m%d-%H%M%S"))
    done: list[CullAction] = []
    try:
        with Reporter(len(run.groups), quiet=quiet, label="culling") as reporter:
            for action in run.actions(progress=reporter):
                writer.write(action)
                done.append(action)
    finally:
        writer.close()
        log_failed = _write_log(log_path, done, bursts)
        log_failed += grouping.write_cull_report(run.report, run, dry_run=dry_run)
    problems = sum(1 for a in done if a.error) + log_failed
    files = sum(1 for a in done if a.action == mode and not a.error)
    verb = _VERBS[mode][1 if dry_run else 0]
    if not quiet or dry_run or problems:  # a non-zero exit always says why, also with -q
        say(f"{verb} {run.culled} of {plural(len(run.groups), 'photo')} "
            f"({plural(files, 'file')}) to {dest}"
            + (f"; {plural(problems, 'problem')}, see the error rows" if problems else "")
            + ("; dry run, nothing was changed" if dry_run else "")
            + (f"; log: {log_path}" if log_path and done else ""))
    raise typer.Exit(EXIT_SOME_FAILED if problems else EXIT_OK)
