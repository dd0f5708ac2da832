"""What ``grmpiqa score`` says on stderr once its job ran: where rows went, what failed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from grmpiqa.cli.common import say
from grmpiqa.results import ScoreRun
from grmpiqa.workflow.summary import plural

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.jobs.score import ScoreJob


def said_done(run: ScoreRun, job: ScoreJob, quiet: bool) -> None:
    from grmpiqa.io.output import display_path
    from grmpiqa.workflow.summary import format_summary

    if run.carried and run.rows == run.carried:
        failed = f" ({run.failed} of them with an error)" if run.failed else ""
        say(f"nothing left to score: all {run.carried} photos are in "
            f"{display_path(job.output)}{failed}")
    elif not quiet and job.output is not None:
        say(f"wrote {plural(run.rows, 'row')} to {display_path(job.output)}")
    if run.report is not None and not quiet:
        say(f"report: {display_path(run.report)}")
    if run.report_error:
        say(f"error: {run.report_error}")
    if run.summary is not None:
        first, *rest = format_summary(run.summary)
        say(first)
        print("\n".join(rest), file=sys.stderr, flush=True)


def said_stopped(run: ScoreRun, job: ScoreJob) -> None:
    total = run.rows
    if job.output is not None and run.rows > run.carried:
        say(f"stopped: {total} rows saved in {job.output} (--resume finishes it)")
    else:
        say(f"stopped after {plural(total, 'image')}")


def closing_line(run: ScoreRun, inside: bool = False) -> str:
    """One line naming every kind of failure with its count; empty when all went well.
    ``inside``: the ratings went where an application reads them, not only sidecars."""
    files = run.rows - run.unreadable_folders - run.unmatched_patterns
    parts = [
        f"{run.failed} of {plural(files, 'file')} could not be scored" if run.failed else "",
        f"{plural(run.unreadable_folders, 'folder')} could not be read"
        if run.unreadable_folders else "",
        f"{plural(run.unmatched_patterns, 'pattern')} matched no image file"
        if run.unmatched_patterns else "",
        f"{plural(run.sidecars_failed, 'XMP rating' if inside else 'XMP sidecar')} "
        "could not be written"
        if run.sidecars_failed else "",
        f"{plural(run.left_out, 'path')} with a line break left out of --format paths "
        "(use --null)" if run.left_out else "",
        "the report could not be written" if run.report_error else "",
    ]
    return "; ".join(part for part in parts if part)
