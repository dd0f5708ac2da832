"""A cull that moves nothing: culled photos are marked rejected where an application reads it.

:class:`MarkPlanner` decides as :class:`~grmpiqa.workflow.cull.CullPlanner`
does (below the threshold, or not among the best frames of a burst) but
instead of moving a culled photo it writes ``xmp:Rating`` -1 (the XMP
specification's "rejected") for each photo of its group (a RAW+JPEG pair:
both) at the places :mod:`grmpiqa.workflow.xmp_targets` gives for the
application; the kept frame of a burst can get a colour label
(``xmp:Label``). Each place written is one :class:`CullAction` row (action
``reject`` or ``label``, ``destination`` the file that holds the XMP: a
sidecar, or the photo itself); a photo that cannot be marked gets a row with
the error, and the run goes on.
"""

from __future__ import annotations

import os

from grmpiqa.errors import ConfigError
from grmpiqa.results import REJECTED
from grmpiqa.workflow.cull import CullAction, PhotoGroup, Planner
from grmpiqa.workflow.xmp_marks import XmpMarker

MARK = "mark"
REJECT = "reject"
LABEL = "label"


def check_label(label: str | None) -> None:
    """A colour label is a short line of text ("Green", "Red", ...)."""
    if label is None:
        return
    if not label.strip() or len(label) > 64 or any(ord(c) < 32 for c in label):
        raise ConfigError(f"{label!r} is not a colour label (a short name such as Green)",
                          param="label_kept")


class MarkPlanner(Planner):
    """Decides photo by photo and writes the marks as it decides (``dry_run``: only says
    where they would go). ``culled``: photos marked rejected; ``labelled``: kept frames
    labelled."""

    mode = MARK

    def __init__(self, src: str, *, below: float | None, app: str | None = None,
                 label: str | None = None, dry_run: bool = False) -> None:
        if not os.path.isdir(src):
            raise ConfigError(f"{src}: not a folder")
        check_label(label)
        self.src, self.below, self.label = src, below, label
        self.marker = XmpMarker(app, dry_run=dry_run)
        self.culled = 0
        self.labelled = 0

    def act(self, group: PhotoGroup, score: float, reason: str) -> list[CullAction]:
        """A ``reject`` row per place written."""
        self.culled += 1
        return self._mark(group, REJECT, score, reason, rating=REJECTED)

    def kept(self, group: PhotoGroup, score: float, burst: int) -> list[CullAction]:
        """The kept frame of a burst of several: its colour label, if one was asked for."""
        if self.label is None:
            return []
        self.labelled += 1
        return self._mark(group, LABEL, score, f"burst {burst}: kept", label=self.label)

    def _mark(self, group: PhotoGroup, verb: str, score: float, reason: str, *,
              rating: int | None = None, label: str | None = None) -> list[CullAction]:
        actions: list[CullAction] = []
        written: set[str] = set()  # a RAW+JPEG pair's shared sidecar is written once
        for photo in group.photos:
            mark = self.marker.mark(photo, rating=rating, label=label, skip=written)
            written.update(mark.places)
            actions += [CullAction(verb, photo, place, score, reason=reason)
                        for place in mark.places]
            if mark.error is not None:
                actions.append(CullAction(verb, photo, "", score, mark.error, reason))
        return actions
