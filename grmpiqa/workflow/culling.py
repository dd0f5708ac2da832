"""A cull's run: score the shoot, decide photo by photo, act, then write the log and report.

:func:`cull` checks everything it can before a photo is scored (the
destination, the report, the model); iterating the :class:`CullRun` it returns
scores the photos and carries out each action as it is decided (see
:mod:`grmpiqa.workflow.cull` for how photos are grouped and moved).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from grmpiqa.config import REPORT_THUMBNAIL, ModelOptions
from grmpiqa.errors import ConfigError, os_error_text
from grmpiqa.progress import Progress, or_silent
from grmpiqa.results import ModelSource, ScoreResult
from grmpiqa.workflow.cull import (
    BURST_LOG_COLUMNS,
    LOG_COLUMNS,
    CullAction,
    CullPlanner,
    PhotoGroup,
    find_groups,
    perform,
    write_log,
)
from grmpiqa.workflow.cull_marks import MARK, MarkPlanner

if TYPE_CHECKING:  # pragma: no cover
    from grmpiqa.config import BurstOptions
    from grmpiqa.workflow.report import Report


@dataclass(frozen=True)
class Decision:
    """What became of one photo (for the report): ``reason`` is empty for a kept one."""

    result: ScoreResult
    burst: int | None
    reason: str


class CullRun:
    """One cull: the destination is checked and the photos grouped when it is made;
    iterating (or :meth:`actions`) scores them and yields every action as it happens
    (with bursts, once every photo is scored and grouped), then writes the log and the
    report. ``log_error`` and ``report_error`` say why one could not be written."""

    def __init__(self, planner: CullPlanner | MarkPlanner, groups: list[PhotoGroup],
                 model: ModelSource, options: ModelOptions, dry_run: bool,
                 unreadable: dict[str, str] | None = None, *,
                 bursts: BurstOptions | None = None, keep: int = 1,
                 report: str | None = None, log: str | None = None,
                 explain: bool = False) -> None:
        self.planner, self.groups, self.model = planner, groups, model
        self.options, self.dry_run, self.explain = options, dry_run, explain
        self.unreadable = dict(unreadable or {})
        self.bursts, self.keep, self.report_path, self.log = bursts, keep, report, log
        self.decisions: list[Decision] = []
        self.done: list[CullAction] = []
        self.log_error: str | None = None
        self.report_error: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of the rows and the log: with ``reason`` when bursts, marks or
        explanations say why."""
        marks = self.planner.mode == MARK
        why = self.bursts is not None or marks or self.explain
        return BURST_LOG_COLUMNS if why else LOG_COLUMNS

    @property
    def culled(self) -> int:
        """Photos (groups, not files) culled so far."""
        return self.planner.culled

    def actions(self, progress: Progress | None = None) -> Iterator[CullAction]:
        """Score and act, in the groups' order; ``progress`` advances by one per photo and
        is told of each action that failed."""
        report_to = or_silent(progress)
        for folder, reason in self.unreadable.items():
            # nothing under a folder that cannot be read can be culled: it gets a skip row
            report_to.failed(folder, f"skip: {reason}")
            yield self._done(CullAction("skip", folder, "", None, reason))
        report = _open_report(self.report_path)
        try:
            for action in self._decide(report_to, report):
                if action.error:
                    report_to.failed(action.source, f"{action.action}: {action.error}")
                yield self._done(action)
        except BaseException:
            if report is not None:
                report.discard()
                report = None
            raise
        finally:
            self._write_outputs(report)

    def _done(self, action: CullAction) -> CullAction:
        self.done.append(action)
        return action

    def _decide(self, report_to: Any, report: Report | None) -> Iterator[CullAction]:
        results = self._scored(report_to, report)
        sizes: Counter[int | None] = Counter()
        if self.bursts is not None:
            from grmpiqa.workflow.bursts import cull_notes

            triples: Iterable[tuple[ScoreResult, int | None, str | None]] = list(
                cull_notes(results, self.bursts, self.keep))
            sizes.update(burst for _, burst, _ in triples if burst is not None)
        else:
            triples = ((r, None, None) for r in results)
        for group, (result, burst, note) in zip(self.groups, triples, strict=True):
            reason = self.planner.reason(result.score, note) if result.score is not None else ""
            self.decisions.append(Decision(result, burst, reason))
            actions = self.planner.plan(group, result.score, result.error, note, result.why)
            if burst is not None and sizes[burst] > 1 and result.score is not None \
                    and not reason:
                actions = self.planner.kept(group, result.score, burst)
            for action in actions:
                yield action if self.dry_run else perform(action)

    def _scored(self, report_to: Any, report: Report | None) -> Iterator[ScoreResult]:
        from grmpiqa.catalogue.lookup import Lookup, open_catalogue

        if not self.groups:
            return
        files = [g.scored for g in self.groups]
        features = self.bursts is not None or report is not None
        thumbnails = REPORT_THUMBNAIL if report is not None else 0
        unloaded = self.model is None or isinstance(self.model, (str, os.PathLike))
        catalogue = open_catalogue(self.options.catalogue, report_to.warn) if unloaded else None
        try:
            if catalogue is None:
                results = self._score(files, report_to, features, thumbnails)
            else:
                from grmpiqa.weights.identity import identify_options

                lookup = Lookup(catalogue, identify_options(self.options)[0].key, files,
                                features=features, thumbnails=thumbnails,
                                explain=self.explain)
                results = lookup.merge(self._score(lookup.misses, report_to, features,
                                                   thumbnails) if lookup.misses else ())
            report_to.begin("culling", len(self.groups))
            for result in results:
                yield report.add(result) if report is not None else result
                report_to.advance()
        finally:
            if catalogue is not None:
                catalogue.close()

    def _score(self, files: list[str], report_to: Any, features: bool, thumbnails: int
               ) -> Iterator[ScoreResult]:
        """The model's rows for ``files``, loading it first when it is a name."""
        from grmpiqa.scoring.engine import score_paths

        model, options = self.model, self.options
        if model is None or isinstance(model, (str, os.PathLike)):
            from grmpiqa.weights.identity import identify_options
            from grmpiqa.weights.loading import load_model

            name = identify_options(options)[0].name  # the manifest's default by its name
            report_to.begin(f"loading model {name}", None)
            model = load_model(options.name, device=options.device, base=options.base,
                               precision=options.precision, compile=options.compile)
        return score_paths(files, model, expand=False, features=features,
                           thumbnails=thumbnails, batch_size=options.batch_size,
                           workers=options.workers, draft=options.fast_decode,
                           max_pixels=options.max_pixels, gpu_decode=options.gpu_decode,
                           explain=self.explain)

    def _write_outputs(self, report: Report | None) -> None:
        """The log of what was done (if anything was), and the page of every decision."""
        if self.log is not None and not self.dry_run and self.done:
            try:
                write_log(self.log, self.done, self.columns)
            except OSError as exc:
                self.log_error = f"cannot write the log {self.log} ({os_error_text(exc)})"
        if report is not None:
            marks = self.planner.mode == MARK
            self.report_error = report.write_or_say(self._entries(report), heading=(
                (f"Dry run: nothing was {'written' if marks else 'moved'}. "
                 if self.dry_run else "")
                + f"{self.culled} of {len(self.groups)} photos "
                + f"{'marked rejected' if marks else 'culled'}; notes say why."))

    def _entries(self, report: Report) -> list[Any]:
        """Each photo with what became of it; kept frames of bursts marked."""
        sizes = Counter(d.burst for d in self.decisions)
        verb = ("would be rejected" if self.dry_run else "rejected") \
            if self.planner.mode == MARK else "would go" if self.dry_run else "culled"
        return [report.entry(d.result, burst=d.burst,
                             note=f"{verb}: {d.reason}" if d.reason else "",
                             marked=not d.reason and d.burst is not None and sizes[d.burst] > 1)
                for d in self.decisions]

    def __iter__(self) -> Iterator[CullAction]:
        return self.actions()


def _open_report(path: str | None) -> Report | None:
    if path is None:
        return None
    from grmpiqa.workflow.report import Report

    return Report(path, "grmpiqa cull report")


def _check_log(log: str, groups: list[PhotoGroup]) -> None:
    """The log is CSV, never written over a folder, a photo or a sidecar."""
    from grmpiqa.io.output import check_not_an_input, check_output_path

    if log.lower().endswith((".json", ".jsonl", ".ndjson", ".tsv", ".gz")):
        raise ConfigError(f"{log}: the log is CSV; name it .csv", param="log")
    check_output_path(log, param="log")
    check_not_an_input(log, [f for g in groups for f in g.files], param="log")


def _check_dest(dest: str) -> None:
    """Before anything is scored: culled photos can be put in ``dest``. Nothing is made
    yet: a missing folder is judged by the nearest folder above it that exists."""
    from grmpiqa.io.atomic import write_problem
    from grmpiqa.io.output import display_path

    existing = os.path.abspath(dest)
    while not os.path.isdir(existing):
        if os.path.lexists(existing):
            raise ConfigError(f"cannot make the folder {display_path(dest)} "
                              f"({display_path(existing)} is not a folder)")
        existing = os.path.dirname(existing)
    problem = write_problem(existing)
    if problem is not None:
        what = "put photos in" if existing == os.path.abspath(dest) else "make the folder"
        raise ConfigError(f"cannot {what} {display_path(dest)} ({problem})")


def _planner(src: str, dest: str | None, mode: str, below: float | None, app: str | None,
             label_kept: str | None, bursts: BurstOptions | None, dry_run: bool
             ) -> CullPlanner | MarkPlanner:
    if mode != MARK:
        for param, value in (("app", app), ("label_kept", label_kept)):
            if value is not None:
                raise ConfigError("only means something when culled photos are marked, "
                                  "not moved", param=param)
        if dest is None:
            raise ValueError("give dest, where the culled photos go")
        return CullPlanner(src, dest, mode=mode, below=below)
    if dest is not None:
        raise ValueError("mode 'mark' moves nothing: give no dest")
    if label_kept is not None and bursts is None:
        raise ConfigError("labels the kept frame of each burst: it needs bursts",
                          param="label_kept")
    return MarkPlanner(src, below=below, app=app, label=label_kept, dry_run=dry_run)


def cull(src: str, dest: str | None = None, *, below: float | None = None, mode: str,
         model: ModelSource = None, dry_run: bool = False, recursive: bool = True,
         bursts: BurstOptions | None = None, keep: int = 1, report: str | None = None,
         log: str | None = None, app: str | None = None, label_kept: str | None = None,
         explain: bool = False, **model_options: Any) -> CullRun:
    """Score each photo under ``src`` and move, copy or link those scored below ``below``
    (and, with ``bursts``, all but the best ``keep`` frames of each burst) under ``dest``,
    keeping the folder structure and never overwriting; or (``mode="mark"``) move
    nothing and mark them rejected in XMP.

    Parameters
    ----------
    src : str
        The shoot: a folder, searched recursively unless ``recursive`` is false.
    dest : str, optional
        Where culled photos go; it may not be inside ``src`` (nor ``src`` inside it).
        None (and required) with ``mode="mark"``.
    below : float, optional
        The threshold (0..1): photos scored below it are culled.
    mode : {"move", "copy", "link", "mark"}
        What happens to a culled photo's files. ``mark``: nothing moves; each photo
        of the group gets ``xmp:Rating`` -1 (rejected) where ``app`` reads it (see
        :mod:`grmpiqa.workflow.cull_marks`).
    model : QualityModel, str or path, optional
        A loaded model, a manifest name or a weights file (default: the manifest's
        default), loaded when the photos are scored.
    dry_run : bool
        Plan the actions without touching any file (no log is written); with
        ``mode="mark"`` the rows say where the marks would be written.
    recursive : bool
        Search sub-folders of ``src``.
    bursts : BurstOptions, optional
        Group bursts and near-duplicates and cull all but the best ``keep`` of each
        (a photo goes if either rule says so). Actions then come once all are scored.
    keep : int
        Frames kept per burst.
    report : str, optional
        Also write an HTML page of every photo with what became of it.
    log : str, optional
        Write a CSV log of every action here (atomically) once the run ends.
    app : str, optional
        With ``mode="mark"``: ``lightroom``, ``capture-one``, ``darktable``, ``digikam``
        or ``bridge``, to write where that application reads (inside JPEG, TIFF and
        DNG files, or its sidecar naming); None: the sidecar ``IMG_1.xmp``.
    label_kept : str, optional
        With ``mode="mark"`` and ``bursts``: the colour label (``xmp:Label``, e.g.
        "Green") given to the kept frames of each burst of several photos.
    explain : bool
        Measure each photo's defects (:func:`grmpiqa.explain_image`): a culled photo's
        ``reason`` ends with those its ``why`` names (``below 0.3; blur``), and the
        report tags every photo with them. They explain a cull, never decide one.
    **model_options
        Fields of :class:`~grmpiqa.config.ModelOptions` (``batch_size``, ``workers``,
        ``device``, ``precision``, ``fast_decode``, ...) for loading and scoring.

    Returns
    -------
    CullRun
        Iterate it for the :class:`CullAction` rows (one per file, and a ``skip`` row for
        each folder that could not be read; failures carry ``error`` and never stop the
        run). A bad ``mode``, ``dest``, report or model, or neither ``below`` nor
        ``bursts``, raises here, before anything is scored.
    """
    if below is None and bursts is None:
        raise ValueError("give below, bursts or both")
    if keep < 1:
        raise ValueError("keep must be at least 1")
    name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    options = ModelOptions(**{"name": name, **model_options})
    planner = _planner(src, dest, mode, below, app, label_kept, bursts, dry_run)
    if report is not None:
        from grmpiqa.workflow.report import check_report_path

        check_report_path(report)
    unreadable: dict[str, str] = {}
    groups = find_groups(src, recursive=recursive, problems=unreadable)
    if log is not None:
        _check_log(log, groups)
    if dest is not None and not dry_run:
        _check_dest(dest)
    if model is None or name is not None:
        from grmpiqa.weights.identity import identify_options

        identify_options(options)  # an unknown model, device or precision is refused now
    return CullRun(planner, groups, model, options, dry_run, unreadable, bursts=bursts,
                   keep=keep, report=report, log=log, explain=explain)
