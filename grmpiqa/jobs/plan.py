"""What a scoring job will do, settled before any model loads: inputs, format, model, columns.

Everything a user can get wrong (an unknown model, a precision the device
cannot run, an output that would overwrite a photo) is refused here, in the
seconds before loading, not after.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grmpiqa.config import LabelScale
from grmpiqa.errors import ConfigError
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS, expand_inputs, normalise_extensions
from grmpiqa.io.output import (
    BASE_COLUMNS,
    MODEL_COLUMN,
    check_not_an_input,
    check_output_path,
    format_for_path,
)
from grmpiqa.io.shards import ShardIndex, expand_shards
from grmpiqa.progress import Reporting
from grmpiqa.workflow.summary import plural

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.jobs.score import ScoreJob

_KINDS = {"heif": "HEIC/HEIF", "raw": "camera RAW"}
BURST_COLUMNS = ("burst", "burst_rank")


@dataclass
class Inputs:
    """The files to score in order (tar members as ``SHARD.tar/MEMBER``), the inputs that
    failed already (an unreadable folder, a pattern that matched nothing) and the shards."""

    files: list[str]
    problems: dict[str, str]
    shards: ShardIndex


def output_format(fmt: str | None, output: str | None) -> str:
    """The format rows are written in: as given, else from the output file's extension,
    else CSV; ``output`` is checked (a photo, a folder or an unknown extension is refused)."""
    from grmpiqa.io.output import FORMATS

    if output is not None:
        check_output_path(output)
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"{fmt!r}: use one of {', '.join(FORMATS)}", param="format")
    if fmt is None:
        fmt = format_for_path(output) if output is not None else "csv"
    if fmt == "parquet":
        if output is None:
            raise ConfigError("parquet is written to a file: give an output file",
                              param="format")
        from grmpiqa.io.parquet import require_pyarrow

        require_pyarrow()  # a missing extra is a usage error before any model loads
    return fmt


def find_inputs(job: ScoreJob, report_to: Reporting) -> Inputs:
    """The job's files: folders walked, globs expanded, the shard taken, tars listed."""
    extensions = job.extensions
    skipped: Counter[str] = Counter()
    problems: dict[str, str] = {}
    files = expand_inputs(list(job.inputs), extensions=extensions or DEFAULT_EXTENSIONS,
                          recursive=job.recursive, stdin_paths=list(job.listed),
                          skipped=None if extensions else skipped, problems=problems)
    for extra, count in sorted(skipped.items()):
        report_to.warn(f"skipped {plural(count, _KINDS[extra] + ' file')}: "
                       f"pip install 'grmpiqa[{extra}]' to score them")
    shards = ShardIndex(normalise_extensions(extensions or DEFAULT_EXTENSIONS))
    files = expand_shards(job.shard.take(files) if job.shard is not None else files, shards)
    if job.xmp is not None and shards.listings:
        raise ConfigError("XMP sidecars go beside files; members of tar shards have none",
                          param="xmp")
    if job.output is not None:
        check_not_an_input(job.output, files)
    return Inputs(files, problems, shards)


def columns(label: LabelScale | None, bursts: bool, explain: bool = False
            ) -> tuple[list[str], list[str]]:
    """(the journal's columns, every scored row; the output's columns)."""
    from grmpiqa.results import EXPLAIN_COLUMNS

    journal = [*BASE_COLUMNS, *(["score_label"] if label is not None else []),
               *(EXPLAIN_COLUMNS if explain else ()), MODEL_COLUMN]
    output = [*journal[:-1], *(BURST_COLUMNS if bursts else ()), MODEL_COLUMN]
    return journal, output
