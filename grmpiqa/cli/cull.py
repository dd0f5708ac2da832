"""``grmpiqa cull SRC --below X --move-to DIR``: set the weakest photos of a shoot aside
(``--mark``: leave them where they are, marked rejected in their XMP)."""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

import typer

from grmpiqa.cli import options as opt
from grmpiqa.cli.common import EXIT_OK, EXIT_SOME_FAILED, cli_errors, configure_logging, say
from grmpiqa.workflow.summary import plural

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.workflow.culling import CullRun

_VERBS = {"move": ("moved", "would move"), "copy": ("copied", "would copy"),
          "link": ("linked", "would link")}
CullFormat = Literal["table", "csv", "tsv", "jsonl"]


def _destination(move_to: str | None, copy_to: str | None, link_to: str | None,
                 mark: bool) -> tuple[str, str | None]:
    given = [(mode, d) for mode, d in (("move", move_to), ("copy", copy_to), ("link", link_to))
             if d is not None]
    if mark and given:
        raise typer.BadParameter("moves nothing: give no --move-to, --copy-to or --link-to",
                                 param_hint="--mark")
    if mark:
        return "mark", None
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --move-to, --copy-to, --link-to "
                                 "(or --mark)", param_hint="DIR")
    return given[0]


def _check_mark_options(mark: bool, bursts: bool, xmp_for: str | None,
                        label_kept: str | None) -> None:
    if not mark:
        for flag, value in (("--xmp-for", xmp_for), ("--label-kept", label_kept)):
            if value is not None:
                raise typer.BadParameter("only means something with --mark", param_hint=flag)
    if label_kept is not None and not bursts:
        raise typer.BadParameter("labels the kept frame of each burst: add --bursts",
                                 param_hint="--label-kept")


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
    mark: Annotated[bool, typer.Option(
        "--mark", help="Move nothing: mark them rejected (xmp:Rating -1) in their XMP, "
                       "where --xmp-for says (default: the sidecar IMG_1.xmp, as --xmp).")
    ] = False,
    xmp_for: opt.XmpForOption = None,
    label_kept: Annotated[str | None, typer.Option(
        "--label-kept", metavar="COLOUR", show_default=False,
        help="With --mark --bursts: give the kept frame of each burst this colour label "
             "(xmp:Label, e.g. Green).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="Print the plan; move, copy, link and write nothing.")] = False,
    log: Annotated[str | None, typer.Option(
        "--log", metavar="FILE",
        show_default="DIR/grmpiqa-cull-<date>-<time>.csv; with --mark, none",
        help="Where to write the CSV log of every action (atomically).")] = None,
    fmt: Annotated[CullFormat | None, typer.Option(
        "--format", "-f", metavar="FORMAT", show_default="table on a terminal, else csv",
        help="Format of the actions on stdout: table, csv, tsv, jsonl.")] = None,
    recursive: Annotated[bool, typer.Option(
        "--recursive/--no-recursive", help="Search SRC's subfolders too.")] = True,
    model: opt.ModelOption = None,
    weights: opt.WeightsOption = None,
    device: opt.DeviceOption = "auto",
    batch_size: opt.BatchSizeOption = None,
    workers: opt.WorkersOption = None,
    precision: opt.PrecisionOption = "auto",
    compile_model: opt.CompileOption = False,
    fast_decode: opt.FastDecodeOption = False,
    no_cache: opt.NoCacheOption = False,
    quiet: opt.QuietOption = False,
    bursts: opt.BurstsOption = False,
    keep: Annotated[int | None, typer.Option(
        "--keep", metavar="K", min=1, show_default="1", help="With --bursts: keep the best K "
        "frames of each burst, cull the others.")] = None,
    similarity: opt.SimilarityOption = None,
    time_gap: opt.TimeGapOption = None,
    report: opt.ReportOption = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Also measure each photo's defects: a culled photo's reason ends "
        "with those found (blur, noise, underexposed, overexposed, compression), and "
        "--report tags every photo with them; see docs/explain.md.")] = False,
) -> None:
    """Score every photo under SRC and move, copy or link those below X under DIR, or
    (--mark) mark them rejected in XMP and move nothing.

    A RAW+JPEG pair and its sidecars (.xmp, .pp3, .dop, .aae) go together,
    judged by the JPEG's score. Nothing is overwritten: a taken name gets a
    suffix (IMG_1-1.jpg). One row per action on stdout: action, source,
    destination, score, error (and reason, with --bursts or --explain); the
    same rows go to the log. Give --below, --bursts or both: with both a photo goes if either
    rule says so; with --bursts actions start once every photo is scored.
    With --mark the rows are reject (and, with --label-kept, label) with the
    file that holds the XMP as destination: a sidecar, or the photo itself.
    Exit status: 0 done, 1 some photos could not be scored, moved or marked, 2
    usage error.
    """
    from grmpiqa.workflow.cull import default_log_path
    from grmpiqa.workflow.culling import cull as run_cull

    configure_logging(quiet)
    mode, dest = _destination(move_to, copy_to, link_to, mark)
    _check_mark_options(mark, bursts, xmp_for, label_kept)
    if below is None and not bursts:
        raise typer.BadParameter("give --below X, --bursts or both", param_hint="--below")
    if keep is not None and not bursts:
        raise typer.BadParameter("only means something with --bursts", param_hint="--keep")
    fmt = fmt or ("table" if sys.stdout.isatty() else "csv")
    if dry_run:
        log = None
    elif dest is not None and log is None:
        log = default_log_path(dest, time.strftime("%Y%m%d-%H%M%S"))
    run = run_cull(src, dest, below=below, mode=mode, model=weights or model, base=model,
                   dry_run=dry_run, recursive=recursive,
                   bursts=opt.burst_options(bursts, similarity, time_gap), keep=keep or 1,
                   report=report, device=device, batch_size=batch_size, workers=workers,
                   precision=precision, compile=compile_model, fast_decode=fast_decode,
                   catalogue=not no_cache, log=log, app=xmp_for, label_kept=label_kept,
                   explain=explain)
    if not run.groups and not run.unreadable:
        say(f"warning: no photos found in {src}")
    problems = _act(run, fmt, quiet)
    if not quiet or dry_run or problems:  # a non-zero exit always says why, also with -q
        say(_done_line(run, mode, dest, dry_run, label_kept)
            + (f"; {plural(problems, 'problem')}, see the error rows" if problems else "")
            + ("; dry run, nothing was changed" if dry_run else "")
            + (f"; log: {run.log}" if run.log and run.done and not run.log_error else ""))
    raise typer.Exit(EXIT_SOME_FAILED if problems else EXIT_OK)


def _done_line(run: CullRun, mode: str, dest: str | None, dry_run: bool,
               label: str | None) -> str:
    """What went where (or was marked), in one clause."""
    from grmpiqa.workflow.cull_marks import LABEL, REJECT

    photos = plural(len(run.groups), "photo")
    if dest is not None:
        files = sum(1 for a in run.done if a.action == mode and not a.error)
        verb = _VERBS[mode][1 if dry_run else 0]
        return f"{verb} {run.culled} of {photos} ({plural(files, 'file')}) to {dest}"
    written = {a.destination for a in run.done if a.action in (REJECT, LABEL) and not a.error}
    line = (f"{'would mark' if dry_run else 'marked'} {run.culled} of {photos} rejected "
            f"(xmp:Rating -1; {plural(len(written), 'file')} "
            f"{'to write' if dry_run else 'written'})")
    if label is not None:
        labelled = getattr(run.planner, "labelled", 0)
        line += f", {plural(labelled, 'kept frame')} labelled {label}"
    return line


def _act(run: CullRun, fmt: str, quiet: bool) -> int:
    """Carry out the cull, a row per action on stdout; the problems it met."""
    from grmpiqa.cli.progress import Reporter

    columns = run.columns
    reporter = Reporter(quiet=quiet, label="culling", rows_show_errors=fmt == "table")
    with reporter:
        writer = _writer(fmt, reporter.rows_to(sys.stdout.buffer), columns)
        try:
            for action in run.actions(progress=reporter):
                writer.write(action)
        finally:
            writer.close()
    for error in (run.log_error, run.report_error):
        if error:
            say(f"error: {error}")
    if run.report_error is None and run.report_path is not None and not quiet:
        say(f"report: {run.report_path}")
    return sum(1 for a in run.done if a.error) + bool(run.log_error) + bool(run.report_error)


def _writer(fmt: str, stream: IO[bytes], columns: tuple[str, ...]) -> Any:
    from grmpiqa.io.output import make_writer

    if fmt == "table":
        return _ActionTable(stream)
    return make_writer(fmt, stream, columns)


class _ActionTable:
    """Actions for a person at a terminal: what, the score, from where to where, why.
    The header goes out with the first row, as score's table does, so that lines said
    while the rows wait (bursts) come before it."""

    HEADER = f"{'action':<6} {'score':>8}  photo"

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.started = False

    def write(self, action: Any) -> None:
        from grmpiqa.io.output import display_path, format_score

        score = format_score(action.score) if action.score is not None else "-"
        line = f"{action.action:<6} {score:>8}  {display_path(action.source)}"
        if not self.started:
            line, self.started = f"{self.HEADER}\n{line}", True
        if action.destination:
            line += f" -> {display_path(action.destination)}"
        if action.reason:
            line += f"  ({action.reason})"
        if action.error:
            line += f"  [error: {action.error}]"
        self.stream.write((line + "\n").encode("utf-8", "backslashreplace"))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
