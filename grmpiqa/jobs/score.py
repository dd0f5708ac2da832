"""``grmpiqa.score(job)``: the whole scoring job behind ``grmpiqa score``, as one library call.

A :class:`ScoreJob` says what to score, where the rows go and what else to do
with them (XMP ratings, bursts, a report, a summary); :func:`score` runs it and
returns a :class:`~grmpiqa.results.ScoreRun`. The order of the work: settle the
plan and open the output (refusals come before any model loads), keep the
rows of an earlier run, load the model, score what is left, then show what
waited and commit. A crash keeps every row scored so far in the partial file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from grmpiqa.config import BurstOptions, ModelOptions
from grmpiqa.errors import ConfigError, Interrupted
from grmpiqa.jobs import plan
from grmpiqa.jobs.rows import RowPipeline
from grmpiqa.progress import Progress, Reporting, or_silent
from grmpiqa.results import ScoreResult, ScoreRun
from grmpiqa.scoring.distributed import Shard
from grmpiqa.weights.identity import identify_options
from grmpiqa.workflow.selection import Selection


@dataclass(frozen=True)
class XmpOptions:
    """Star ratings (``xmp:Rating`` 1..5) in each scored photo's XMP.

    ``thresholds``: the four scores where 2, 3, 4 and 5 stars begin; None means
    (0.2, 0.4, 0.6, 0.8), or, for weights adapted to star ratings, the stars they
    predict (``score_label`` rounded). ``app``: ``lightroom``, ``capture-one``,
    ``darktable``, ``digikam`` or ``bridge`` writes where that application reads
    (inside JPEG, TIFF and DNG files, or its own sidecar naming; see
    :mod:`grmpiqa.workflow.xmp_targets`); None: the sidecar ``IMG_1.xmp``.
    """

    thresholds: tuple[float, ...] | None = None
    app: str | None = None

    def __post_init__(self) -> None:
        from grmpiqa.workflow.xmp_targets import check_app

        try:
            check_app(self.app)
        except ConfigError as exc:
            raise ConfigError(str(exc), param="app") from None
        if self.thresholds is not None:
            from grmpiqa.workflow.xmp import parse_thresholds

            try:
                parse_thresholds(",".join(map(str, self.thresholds)))
            except ValueError as exc:
                raise ConfigError(str(exc), param="thresholds") from None


@dataclass(frozen=True)
class ScoreJob:
    """Everything :func:`score` does.

    Parameters
    ----------
    inputs : sequence of str
        Image files, folders (searched recursively), globs, WebDataset ``.tar`` shards
        (one row per sample, ``SHARD.tar/MEMBER``), and ``-`` for ``listed``.
    listed : sequence of str
        The paths ``-`` stands for (a list read from stdin), taken literally as files.
    extensions : sequence of str, optional
        Extensions picked up in folders (default: every format grmpiqa can read).
    recursive : bool
        Search sub-folders.
    shard : Shard, optional
        Score only this share of the sorted input list (a ``.tar`` counts as one entry).
    output : str, optional
        A file for the rows, written atomically (its folder is created); None: the
        rows go to the stream given to :func:`score`.
    format : str, optional
        table, csv, jsonl, tsv, paths or parquet; default: from ``output``'s extension,
        else csv.
    null : bool
        NUL-terminated names in the ``paths`` format (and in ``listed``, read by the caller).
    resume : bool
        Keep the rows ``output`` (or its partial file) holds and score only the rest;
        rows of another model are refused.
    selection : Selection
        Score filters, order and top N of the rows shown.
    bursts : BurstOptions, optional
        Group bursts and near-duplicates: the columns ``burst`` and ``burst_rank``.
    xmp : XmpOptions, optional
        Write star ratings into XMP sidecars, or where a photo application reads them.
    summary : bool
        Compute a :class:`~grmpiqa.workflow.summary.Summary` of the scores.
    report : str, optional
        Also write an HTML page of thumbnails here (``FILE_files/`` beside it).
    explain : bool
        Measure each photo's defects: the columns ``sharpness``, ``noise``, ``exposure``,
        ``clipped``, ``compression`` and ``why`` (docs/explain.md).
    model : ModelOptions
        The model and how it runs.
    """

    inputs: Sequence[str]
    listed: Sequence[str] = ()
    extensions: Sequence[str] | None = None
    recursive: bool = True
    shard: Shard | None = None
    output: str | None = None
    format: str | None = None
    null: bool = False
    resume: bool = False
    selection: Selection = field(default_factory=Selection)
    bursts: BurstOptions | None = None
    xmp: XmpOptions | None = None
    summary: bool = False
    report: str | None = None
    explain: bool = False
    model: ModelOptions = field(default_factory=ModelOptions)

    def __post_init__(self) -> None:
        for name in ("inputs", "listed", "extensions"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str):
                    raise TypeError(f"{name} is a sequence of paths, not one string")
                object.__setattr__(self, name, tuple(value))
        if self.resume and (self.bursts is not None or self.report is not None):
            raise ConfigError("cannot be combined with bursts or a report (they need every "
                              "photo from this run)", param="resume")


def score(job: ScoreJob, progress: Progress | None = None, *,
          stream: IO[bytes] | None = None) -> ScoreRun:
    """Run a :class:`ScoreJob`: score the photos, write the rows and whatever else it asks.

    Parameters
    ----------
    job : ScoreJob
        What to do.
    progress : Progress, optional
        Receives ``begin`` (loading, then scoring N photos), ``advance`` per photo,
        ``failed`` per file that could not be scored, ``warn`` and ``message``.
    stream : binary stream, optional
        Where rows go when ``job.output`` is None (default: standard output).

    Returns
    -------
    ScoreRun
        Counts, failures and where things were written. Under ``torchrun`` only rank 0
        writes; the other ranks return the empty run once their share is scored.

    Raises
    ------
    ConfigError, WeightsError, ManifestError
        Before anything is scored: a bad option, model or output.
    OutputError
        The output could not be written (disk full, read-only, I/O error); the rows
        written so far stay in the partial file for a resumed run.
    grmpiqa.errors.Interrupted
        Ctrl-C or SIGTERM: the rows so far were saved; its ``run`` says how many.
    """
    report_to = or_silent(progress)
    fmt = plan.output_format(job.format, job.output)
    if job.report is not None:
        from grmpiqa.workflow.report import check_report_path

        check_report_path(job.report)
    inputs = plan.find_inputs(job, report_to)
    identity, label = identify_options(job.model)
    from grmpiqa.scoring import distributed

    rank = distributed.torchrun_rank()
    if rank is not None and not rank.is_main:
        _score_share(job, inputs, fmt)
        return ScoreRun(model=identity.key)
    # ranks must agree on what each scores: under torchrun the catalogue only remembers
    return _Job(job, fmt, inputs, identity, label, report_to, stream, look=rank is None).run()


class _Job:
    """One run of :func:`score` in the process that writes the output."""

    def __init__(self, job: ScoreJob, fmt: str, inputs: plan.Inputs, identity: Any,
                 label: Any, report_to: Reporting, stream: IO[bytes] | None, *,
                 look: bool = True) -> None:
        from grmpiqa.io.stores import open_store

        self.look = look
        self.job, self.inputs, self.identity, self.report_to = job, inputs, identity, report_to
        journal, output = plan.columns(label, job.bursts is not None, job.explain)
        selection = job.selection
        same_order = job.bursts is None and not selection.filters and not selection.buffers
        self.report = self._open_report()
        try:
            self.store = open_store(job.output, fmt, journal, output, model=identity,
                                    resume=job.resume, same_order=same_order,
                                    stream=stream or sys.stdout.buffer, null=job.null,
                                    on_left_out=self._left_out)
        except BaseException:
            if self.report is not None:
                self.report.discard()
            raise
        for note in self.store.notes:
            report_to.warn(note)
        self.rows = RowPipeline(self.store, report_to, model_key=identity.key,
                                problems=inputs.problems, selection=selection,
                                bursts=job.bursts, rater=_rater(job, label, report_to),
                                report=self.report)
        self.todo = [f for f in inputs.files if not self.store.is_done(f)]

    def _left_out(self, path: str) -> None:
        self.report_to.failed(path, "left out of the paths: its name holds a line break")

    def _open_report(self) -> Any:
        if self.job.report is None:
            return None
        from grmpiqa.workflow.report import Report

        return Report(self.job.report)

    def run(self) -> ScoreRun:
        carried = self.store.carried
        if not self.inputs.files and not carried:
            self.report_to.warn("no image files found")
        try:
            for row in carried:
                self.rows.carry(row)
            if self.todo:
                for result in self._results():
                    self.rows.add(result)
                    self.report_to.advance()
        except KeyboardInterrupt as exc:
            raise Interrupted(self._finish(interrupted=True), exc) from None
        except BaseException:
            self.store.keep()
            if self.report is not None:
                self.report.discard()
            raise
        return self._finish()

    def _results(self) -> Iterator[ScoreResult]:
        """Every photo left, in order: the ones the catalogue knows, then the model's."""
        from grmpiqa.catalogue.lookup import Lookup, open_catalogue

        job = self.job
        catalogue = open_catalogue(job.model.catalogue, self.report_to.warn)
        if catalogue is None:
            yield from self._scored(self.todo)
            return
        try:
            lookup = Lookup(catalogue, self.identity.key, self.todo,
                            features=job.bursts is not None or job.report is not None,
                            thumbnails=_thumbnails(job), explain=job.explain,
                            look=self.look)
            if lookup.hits:
                self.report_to.message(f"{len(lookup.hits)} of {len(self.todo)} photos known "
                                       "to the score catalogue")
            if lookup.misses:
                yield from lookup.merge(self._scored(lookup.misses))
            else:  # the model is never loaded
                self.report_to.begin("scoring", len(self.todo))
                yield from lookup.merge(())
        finally:
            catalogue.close()

    def _scored(self, files: list[str]) -> Iterator[ScoreResult]:
        """Load the model (now, not when the first row is asked for) and score ``files``."""
        from grmpiqa.scoring import distributed

        def load(device: str) -> Any:
            self.report_to.begin(f"loading model {self.identity.name}", None)
            return _load(self.job.model, device)

        _, results = distributed.score_here(files, self.job.model.device, load=load,
                                            score=_scorer(self.job, self.inputs))
        self.report_to.begin("scoring", len(self.todo))
        assert results is not None  # this is the writing process
        return results

    def _finish(self, interrupted: bool = False) -> ScoreRun:
        """Show the rows that waited, write the page, commit the output."""
        try:
            page_rows = self.rows.finish()
            report_error = self._write_report(page_rows)
            if interrupted and not self.rows.added:
                self.store.keep()  # nothing new: the output stays as it was
            else:
                self.store.commit()
        except BaseException:
            self.store.keep()
            raise
        return self.rows.run(
            output=self.job.output, carried=len(self.store.carried), summary=self.job.summary,
            report=self.job.report if self.report is not None and not report_error else None,
            report_error=report_error, interrupted=interrupted,
            left_out=getattr(self.store, "left_out", 0))

    def _write_report(self, rows: list[ScoreResult]) -> str | None:
        if self.report is None:
            return None
        bursts = self.job.bursts is not None
        return self.report.write_or_say(
            self.report.score_entries(rows, bursts=bursts),
            heading="Bursts: the best frame of each is marked kept." if bursts else "")


def _load(options: ModelOptions, device: str) -> Any:
    from grmpiqa.weights.loading import load_model

    return load_model(options.name, device=device, base=options.base,
                      precision=options.precision, compile=options.compile)


def _scorer(job: ScoreJob, inputs: plan.Inputs
            ) -> Callable[[Any, Sequence[str]], Iterator[ScoreResult]]:
    """How every process of the job scores its photos: the same engine options on each."""
    from grmpiqa.scoring.engine import score_paths

    options = job.model
    engine = {"batch_size": options.batch_size, "workers": options.workers,
              "draft": options.fast_decode, "max_pixels": options.max_pixels, "expand": False,
              "known_errors": inputs.problems, "gpu_decode": options.gpu_decode,
              "shards": inputs.shards,
              "features": job.bursts is not None or job.report is not None,
              "thumbnails": _thumbnails(job), "explain": job.explain}
    return lambda model, mine: score_paths(mine, model, **engine)


def _thumbnails(job: ScoreJob) -> int:
    from grmpiqa.config import REPORT_THUMBNAIL

    return REPORT_THUMBNAIL if job.report is not None else 0


def _rater(job: ScoreJob, label: Any, report_to: Reporting) -> Any:
    if job.xmp is None:
        return None
    from grmpiqa.workflow.xmp import DEFAULT_THRESHOLDS
    from grmpiqa.workflow.xmp_marks import SidecarRater

    stars = job.xmp.thresholds is None and bool(getattr(label, "stars", False))
    if stars:
        report_to.message(f"these weights learned star ratings ({label.low:g}..{label.high:g}): "
                          "each photo's XMP rating is its predicted stars (score_label "
                          "rounded, 1..5)")
    return SidecarRater(job.xmp.thresholds or DEFAULT_THRESHOLDS, on_label_scale=stars,
                        app=job.xmp.app)


def _score_share(job: ScoreJob, inputs: plan.Inputs, fmt: str) -> None:
    """A torchrun rank other than 0: score its share of what is left; rank 0 writes."""
    from grmpiqa.io.stores import read_done
    from grmpiqa.scoring import distributed

    done = read_done(job.output, fmt) if job.resume else (lambda path: False)
    todo = [f for f in inputs.files if not done(f)]
    if not todo:
        return
    distributed.score_here(todo, job.model.device,
                           load=lambda device: _load(job.model, device),
                           score=_scorer(job, inputs))
