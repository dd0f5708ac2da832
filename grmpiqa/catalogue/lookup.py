"""A run's photos against the catalogue: the known ones come back without the model.

:func:`cached` is what every scoring path goes through: it looks each photo up
(by its stat, else by the digest of its bytes, so a moved or renamed photo is
still known), hands only the others to the scorer (which loads the model only
if there are any) and remembers each new score in short transactions as the
rows stream by, in input order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Union

import numpy as np

from grmpiqa.catalogue.store import (
    Catalogue,
    Entry,
    Remembered,
    Stored,
    content_digest,
    stat_of,
)
from grmpiqa.results import Capture, Explanation, PhotoFeatures, ScoreResult

#: True: the default catalogue; False or None: none; a path: that file; or an open one.
CatalogueChoice = Union[bool, str, "os.PathLike[str]", Catalogue, None]
COMMIT_ROWS = 64  # rows per write transaction ...
COMMIT_SECONDS = 2.0  # ... or fewer, when scoring is slow: a kill loses little


def open_catalogue(choice: CatalogueChoice, warn: Callable[[str], None]) -> Catalogue | None:
    """The catalogue ``choice`` names, or None (none asked for, or it cannot be used: the
    warning says why)."""
    if choice is None or choice is False:
        return None
    if isinstance(choice, Catalogue):
        return choice if choice.enabled else None
    from grmpiqa import env

    catalogue = Catalogue(env.catalogue_path() if choice is True else choice, warn)
    return catalogue if catalogue.enabled else None


def _features_of(stored: Stored, path: str, thumbnails: int) -> PhotoFeatures | None:
    extra = stored.features
    if extra is None:
        return None
    embedding = (np.frombuffer(extra["embedding"], dtype=np.float32).copy()
                 if extra["embedding"] is not None else None)
    capture = (Capture(extra["capture_time"], extra["camera"] or "")
               if extra["capture_time"] is not None else None)
    return PhotoFeatures(extra["phash"], extra["layout"], embedding, capture,
                         _thumbnail(path, thumbnails) if thumbnails else None)


def _thumbnail(path: str, size: int) -> bytes | None:
    """A report's thumbnail of a known photo: a reduced decode, far cheaper than the model."""
    from grmpiqa.errors import ImageError
    from grmpiqa.io.images import open_image
    from grmpiqa.io.signals import reduced, thumbnail_jpeg

    try:
        image = open_image(path, draft_size=size)
    except ImageError:
        return None
    return thumbnail_jpeg(reduced(image, size), size)


def _stored_features(result: ScoreResult) -> dict[str, Any] | None:
    features = result.features
    if features is None:
        return None
    embedding = features.embedding
    capture = features.capture
    return {"phash": features.phash, "layout": features.layout,
            "embedding": np.asarray(embedding, dtype=np.float32).tobytes()
            if embedding is not None else None,
            "capture_time": capture.time if capture is not None else None,
            "camera": capture.camera if capture is not None else None}


def _explanation_of(stored: Stored) -> Explanation | None:
    return Explanation(*stored.explanation) if stored.explanation is not None else None


def _stored_explanation(result: ScoreResult
                        ) -> tuple[float, float, float, float, float, str] | None:
    found = result.explanation
    if found is None:
        return None
    return (found.sharpness, found.noise, found.exposure, found.clipped, found.compression,
            found.why)


class Lookup:
    """The photos of one run split into ``hits`` (their rows, from the catalogue) and
    ``misses`` (left to score, in input order)."""

    def __init__(self, catalogue: Catalogue, key: str, files: Sequence[str], *,
                 features: bool, thumbnails: int = 0, explain: bool = False,
                 look: bool = True) -> None:
        self.catalogue, self.key, self.files = catalogue, key, list(files)
        self.features, self.explain = features, explain
        stats = {p: st for p in dict.fromkeys(self.files) if (st := stat_of(p)) is not None}
        contents = catalogue.contents(stats) if look else {}
        by_bytes = []
        for path in stats:
            if path not in contents and (digest := content_digest(path)) is not None:
                contents[path] = digest
                by_bytes.append(path)
        stored = (catalogue.scores(contents, key, features=features, explain=explain)
                  if look else {})
        self.hits = {p: ScoreResult(p, s.score, None, s.label, _features_of(s, p, thumbnails),
                                    explanation=_explanation_of(s))
                     for p, s in stored.items()}
        self.pending = {p: Entry(p, stats[p], c) for p, c in contents.items() if p not in stored}
        self.misses = [p for p in self.files if p not in self.hits]
        if self.hits:
            catalogue.know([Entry(p, stats[p], contents[p]) for p in by_bytes if p in stored])
            catalogue.used(key)

    def merge(self, scored: Iterable[ScoreResult]) -> Iterator[ScoreResult]:
        """Every photo's row in input order: the known ones, and ``scored`` (the misses'
        rows, in their order), each new score remembered as it passes."""
        new = iter(scored)
        rows: list[tuple[Entry, ScoreResult]] = []
        since = time.monotonic()
        try:
            for path in self.files:
                hit = self.hits.get(path)
                if hit is not None:
                    yield hit
                    continue
                result = next(new, None)
                if result is None:
                    return  # the scorer stopped early (another rank writes)
                entry = self.pending.get(path)
                if entry is not None and result.score is not None:
                    rows.append((entry, result))
                if len(rows) >= COMMIT_ROWS or (rows and time.monotonic() - since
                                                > COMMIT_SECONDS):
                    self._remember(rows)
                    rows, since = [], time.monotonic()
                yield result
        finally:
            self._remember(rows)

    def _remember(self, rows: list[tuple[Entry, ScoreResult]]) -> None:
        # a file changed since it was hashed: its bytes may not be the ones scored
        kept = [Remembered(entry, result.score, result.score_label,
                           _stored_features(result) if self.features else None,
                           _stored_explanation(result) if self.explain else None)
                for entry, result in rows
                if result.score is not None and stat_of(entry.path) == entry.stat]
        self.catalogue.remember(self.key, kept)


def cached(files: Sequence[str], key: str, catalogue: Catalogue | None,
           score: Callable[[list[str]], Iterable[ScoreResult]], *, features: bool,
           thumbnails: int = 0, explain: bool = False, look: bool = True
           ) -> Iterator[ScoreResult]:
    """The rows of ``files`` in order: known ones from ``catalogue``, the others from
    ``score(misses)`` (called only when some are left). ``look=False`` scores every photo
    and only remembers them (torchrun ranks must agree on what each scores)."""
    if catalogue is None:
        yield from score(list(files))
        return
    lookup = Lookup(catalogue, key, files, features=features, thumbnails=thumbnails,
                    explain=explain, look=look)
    yield from lookup.merge(score(lookup.misses) if lookup.misses else ())
