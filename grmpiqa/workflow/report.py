"""An HTML report to look at: thumbnails sorted by score, bursts together, a histogram.

``report.html`` plus a ``report_files/`` folder of JPEG thumbnails (made by the
decoding workers from the image already decoded for the model). One file
with base64 images would be a third larger and could not be parsed lazily;
with a folder the browser fetches only the thumbnails in view
(``loading="lazy"``) and ``content-visibility: auto`` skips the layout of
off-screen groups, so 10,000 photos stay usable. Nothing is fetched from the
network: no CDN, no web fonts; the script and style are inline.

The thumbnails go to a hidden temporary folder as results arrive (only their
names stay in memory); :meth:`Report.write` writes the page atomically and
then swaps the folder into place.
"""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from grmpiqa.errors import ConfigError, os_error_text
from grmpiqa.io.atomic import atomic_write, write_problem
from grmpiqa.results import DEFECTS, Explanation, ScoreResult
from grmpiqa.workflow.xmp import DEFAULT_THRESHOLDS, rating_for

HISTOGRAM_BINS = 20
CARD = 176  # pixels per frame of the grid, thumbnail box included


@dataclass(frozen=True)
class Entry:
    """One photo of the page. ``note`` says what happens to it (``kept``, ``culled:
    below 0.3``, ...); ``marked`` frames get the kept badge; the defects ``explanation``
    names are tags on the thumbnail (None: it was not explained)."""

    path: str
    score: float | None
    error: str | None
    thumbnail: str | None
    burst: int | None = None
    note: str = ""
    marked: bool = False
    explanation: Explanation | None = None


def check_report_path(path: str | os.PathLike[str]) -> None:
    """Before anything is scored: the page's folder exists (it is made) and is writable."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ConfigError(f"cannot write the report {path} (it is a folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write the report {path} ({exc.strerror or exc})") from None
    problem = write_problem(folder)
    if problem is not None:
        raise ConfigError(f"cannot write the report {path} ({problem})")


class Report:
    """Collects thumbnails while scoring runs; :meth:`write` makes the page."""

    def __init__(self, path: str | os.PathLike[str], title: str = "grmpiqa report") -> None:
        self.path = Path(path)
        self.title = title
        folder = self.path.parent if str(self.path.parent) else Path(".")
        self.files_name = f"{self.path.stem}_files"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.files_name}.", suffix=".tmp",
                                             dir=folder))
        except OSError as exc:  # before any photo is scored: a usage error
            raise ConfigError(f"cannot write the report {path} "
                              f"({exc.strerror or exc})") from None
        self.thumbnails: dict[str, str] = {}
        self.failure: OSError | None = None  # a thumbnail could not be stored: no page

    def add(self, result: ScoreResult) -> ScoreResult:
        """Store the result's thumbnail on disk; returns the result without its bytes.
        A thumbnail that cannot be stored (a full disk) costs the page, never the row."""
        features = result.features
        if features is None or features.thumbnail is None:
            return result
        if self.failure is None:
            name = f"{len(self.thumbnails):06d}.jpg"
            try:
                (self.tmp / name).write_bytes(features.thumbnail)
                self.thumbnails[result.path] = name
            except OSError as exc:
                self.failure = exc
        return replace(result, features=replace(features, thumbnail=None))

    def entry(self, result: ScoreResult, **fields: object) -> Entry:
        return Entry(result.path, result.score, result.error,  # type: ignore[arg-type]
                     self.thumbnails.get(result.path), explanation=result.explanation,
                     **fields)

    def write(self, entries: Sequence[Entry], *, heading: str = "") -> None:
        """Write the page (atomically), then move the thumbnails into ``<stem>_files/``."""
        if self.failure is not None:
            raise self.failure
        target = self.path.parent / self.files_name
        page = render(entries, title=self.title, heading=heading, files=self.files_name,
                      base=self.path.parent)
        with atomic_write(self.path) as handle:
            handle.write(page.encode("utf-8", "replace"))
        old = None
        if target.exists():
            old = target.with_name(f".{self.files_name}.old.{os.getpid()}")
            os.replace(target, old)
        os.replace(self.tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_or_say(self, entries: Sequence[Entry], *, heading: str = "") -> str | None:
        """:meth:`write`; None when it worked, else why not (the thumbnails are discarded)."""
        try:
            self.write(entries, heading=heading)
        except OSError as exc:
            self.discard()
            return f"cannot write the report {self.path} ({os_error_text(exc)})"
        return None

    def score_entries(self, rows: Sequence[ScoreResult], *, bursts: bool) -> list[Entry]:
        """A scoring run's entries: with bursts, the best frame of each group of two or
        more is marked kept."""
        sizes = Counter(getattr(row, "burst", None) for row in rows)
        return [self.entry(row, burst=getattr(row, "burst", None),
                           marked=bursts and getattr(row, "burst_rank", 0) == 1
                           and sizes[getattr(row, "burst", None)] > 1)
                for row in rows]


def _link(photo: str, base: Path) -> str:
    """A link from the page's folder to the original (relative, so the pair can move)."""
    try:
        relative = os.path.relpath(os.path.abspath(photo), os.path.abspath(base))
    except ValueError:  # another drive (Windows): only an absolute link can reach it
        return Path(os.path.abspath(photo)).as_uri()
    return quote(os.fsencode(relative.replace(os.sep, "/")))


def _text(value: str) -> str:
    from grmpiqa.io.output import display_path

    return html.escape(display_path(value))


def stars(score: float) -> str:
    count = rating_for(score, DEFAULT_THRESHOLDS)
    return "★" * count + "☆" * (5 - count)


def histogram_svg(scores: Sequence[float], bins: int = HISTOGRAM_BINS) -> str:
    """Counts of scores in ``bins`` equal bins over 0..1 as an inline SVG bar chart."""
    counts = [0] * bins
    for score in scores:
        counts[min(bins - 1, max(0, int(score * bins)))] += 1
    top = max(counts) or 1
    width, height, bar = 400, 120, 400 / bins
    parts = [f'<svg class="histogram" viewBox="0 0 {width} {height + 18}" role="img" '
             f'aria-label="histogram of {len(scores)} scores">']
    for i, count in enumerate(counts):
        h = round(height * count / top, 1)
        parts.append(f'<rect x="{i * bar + 1:.1f}" y="{height - h}" width="{bar - 2:.1f}" '
                     f'height="{h}"><title>{i / bins:.2f}-{(i + 1) / bins:.2f}: {count}'
                     '</title></rect>')
    for x, label in ((0, "0"), (width / 2, "0.5"), (width, "1")):
        anchor = "start" if x == 0 else "end" if x == width else "middle"
        parts.append(f'<text x="{x}" y="{height + 14}" text-anchor="{anchor}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def measures(explanation: Explanation) -> str:
    """The measures behind the tags, in one line (the tags' tooltip)."""
    return (f"sharpness {explanation.sharpness:.2f}, noise {explanation.noise:.1f}, "
            f"exposure {explanation.exposure:+.1f} EV, clipped {explanation.clipped:.1%}, "
            f"compression {explanation.compression:.2f}")


def _tags(explanation: Explanation | None) -> tuple[str, str]:
    """(the figure's ``data-why`` attribute, the tags over its thumbnail)."""
    if explanation is None:
        return "", ""
    tags = "".join(f'<span class="tag {d}">{d}</span>' for d in explanation.defects)
    return (f' data-why="{html.escape(explanation.why)}"',
            f'<span class="tags" title="{html.escape(measures(explanation))}">{tags}</span>')


def short_names(paths: Sequence[str]) -> dict[str, str]:
    """Each path from the folder all of them share (``day2/1021.JPG`` beside ``1000.JPG``):
    a file name alone cannot tell two days' ``1021.JPG`` apart."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    try:
        common = os.path.commonpath(folders) if folders else ""
    except ValueError:  # other drives (Windows): the file names alone
        common = ""
    return {p: os.path.relpath(os.path.abspath(p), common) if common else os.path.basename(p)
            for p in paths}


def _figure(entry: Entry, files: str, base: Path, name: str) -> str:
    score = entry.score if entry.score is not None else 0.0
    why, tags = _tags(entry.explanation)
    name = _text(name)
    image = (f'<img loading="lazy" decoding="async" src="{files}/{entry.thumbnail}" alt="">'
             if entry.thumbnail else '<span class="none">no thumbnail</span>')
    badge = '<span class="badge">kept</span>' if entry.marked else ""
    note = f'<span class="note">{_text(entry.note)}</span>' if entry.note else ""
    classes = "photo kept" if entry.marked else "photo culled" if entry.note else "photo"
    return (f'<figure class="{classes}" data-score="{score:.6f}" data-path="{_text(entry.path)}"'
            f'{why}><a href="{_link(entry.path, base)}" title="{_text(entry.path)}">{image}</a>'
            f'{badge}{tags}<figcaption><b class="score">{score:.3f}</b> '
            f'<span class="stars">{stars(score)}</span><br><span class="name">{name}</span>'
            f'{note}</figcaption></figure>')


def _groups(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Scored entries by burst (a photo without one alone), frames best first, groups by
    their best score, worst group first."""
    groups: dict[object, list[Entry]] = {}
    for index, entry in enumerate(entries):
        if entry.score is None:
            continue
        key = ("b", entry.burst) if entry.burst is not None else ("p", index)
        groups.setdefault(key, []).append(entry)
    ordered = [sorted(g, key=lambda e: -(e.score or 0.0)) for g in groups.values()]
    ordered.sort(key=lambda g: g[0].score or 0.0)
    return ordered


def render(entries: Sequence[Entry], *, title: str, heading: str, files: str,
           base: Path) -> str:
    scored = [e.score for e in entries if e.score is not None]
    failed = [e for e in entries if e.score is None]
    groups = _groups(entries)
    bursts = sum(1 for g in groups if len(g) > 1)
    names = short_names([e.path for e in entries])
    body = []
    for group in groups:
        kind = "group burst" if len(group) > 1 else "group"
        body.append(f'<section class="{kind}" data-score="{group[0].score or 0.0:.6f}" '
                    f'style="contain-intrinsic-size:auto {len(group) * CARD}px 236px">'
                    + "".join(_figure(e, files, base, names[e.path]) for e in group) + "</section>")
    rows = "".join(f"<tr><td><a href=\"{_link(e.path, base)}\">{_text(e.path)}</a></td>"
                   f"<td>{_text(e.error or 'not scored')}</td></tr>" for e in failed)
    failures = (f'<section id="failed"><h2>{len(failed)} files could not be scored</h2>'
                f"<table><tr><th>file</th><th>error</th></tr>{rows}</table></section>"
                if failed else "")
    summary = (f"{len(scored)} photos scored, {bursts} bursts, {len(failed)} failed"
               + (f". {_text(heading)}" if heading else ""))
    return _PAGE.format(title=html.escape(title), summary=summary,
                        histogram=histogram_svg(scored), grid="\n".join(body),
                        defects=defect_filter(entries), failed=failures, style=_STYLE,
                        script=_SCRIPT, shown=len(scored))


def defect_filter(entries: Sequence[Entry]) -> str:
    """A checkbox per defect found (and one for photos without any), with its count;
    nothing when no photo was explained."""
    explained = [e.explanation for e in entries
                 if e.explanation is not None and e.score is not None]
    if not explained:
        return ""
    counts = Counter(d for x in explained for d in x.defects)
    clean = sum(1 for x in explained if not x.why)
    boxes = [(d, d, counts[d]) for d in DEFECTS if counts[d]] + [("none", "no defect", clean)]
    return ('<fieldset id="defects"><legend>show only</legend>' + "".join(
        f'<label class="{value}"><input type="checkbox" value="{value}"> {label} '
        f'<span class="count">{count}</span></label>' for value, label, count in boxes)
        + "</fieldset>")


_STYLE = """
body{font:14px/1.35 system-ui,sans-serif;margin:0;background:#f4f4f2;color:#222}
header{padding:12px 16px;background:#fff;border-bottom:1px solid #ddd;display:flex;
 flex-wrap:wrap;gap:8px 24px;align-items:center;position:sticky;top:0;z-index:1}
h1{font-size:18px;margin:0}.histogram{width:300px;height:100px}
.histogram rect{fill:#5b7fb5}.histogram text{font-size:11px;fill:#555}
#grid{display:flex;flex-wrap:wrap;gap:10px;padding:12px}
.group{display:flex;gap:4px;padding:4px;border-radius:6px;content-visibility:auto}
.group.burst{background:#dfe6f0;outline:1px solid #9fb1cc}
.photo{margin:0;width:168px;position:relative;background:#fff;border-radius:4px;padding:4px;
 box-sizing:border-box}
.photo a{display:flex;width:160px;height:160px;align-items:center;justify-content:center;
 background:#e8e8e8}
.photo img{max-width:160px;max-height:160px}
.photo.kept{outline:3px solid #2e9d4f}
.badge{position:absolute;top:8px;left:8px;background:#2e9d4f;color:#fff;font-size:11px;
 padding:1px 5px;border-radius:3px}
figcaption{font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.stars{color:#c58a00}.note{display:block;color:#a33;white-space:normal}
.photo.culled img{opacity:.55}.hidden{display:none}
.tags{position:absolute;top:140px;left:8px;display:flex;flex-wrap:wrap;gap:2px;max-width:152px}
.tag,#defects label{font-size:11px;padding:1px 5px;border-radius:3px;color:#fff;background:#666}
#defects{border:0;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:4px;align-items:center}
#defects legend{float:left;margin-right:4px}#defects label{cursor:pointer;font-size:12px}
#defects label.on{outline:2px solid #222}
.blur{background:#7b4fa8!important}.noise{background:#b5651d!important}
.underexposed{background:#34495e!important}.overexposed{background:#c9a100!important}
.compression{background:#b03a48!important}#defects .none{background:#2e9d4f}
#failed{padding:0 16px 16px}#failed td{padding:2px 8px;vertical-align:top}
"""

_SCRIPT = """
(function(){
var grid=document.getElementById('grid'),order=document.getElementById('order');
var lo=document.getElementById('lo'),hi=document.getElementById('hi');
var shown=document.getElementById('shown');
order.addEventListener('click',function(){
 var groups=Array.prototype.slice.call(grid.children).reverse();
 var frag=document.createDocumentFragment();
 groups.forEach(function(g){frag.appendChild(g);});grid.appendChild(frag);
 var best=order.dataset.first==='worst';order.dataset.first=best?'best':'worst';
 order.textContent=best?'Worst first':'Best first';});
var boxes=document.querySelectorAll('#defects input');
function wanted(){var w=[];Array.prototype.forEach.call(boxes,function(c){
 c.parentNode.classList.toggle('on',c.checked);if(c.checked)w.push(c.value);});return w;}
function defective(p,w){if(!w.length)return true;var d=p.dataset.why;
 if(d===undefined)return false;var has=d?d.split(';'):['none'];
 return w.some(function(x){return has.indexOf(x)>=0;});}
function filter(){var a=parseFloat(lo.value),b=parseFloat(hi.value),n=0,w=wanted();
 if(isNaN(a))a=0;if(isNaN(b))b=1;
 Array.prototype.forEach.call(grid.children,function(g){var any=false;
  Array.prototype.forEach.call(g.children,function(p){var s=parseFloat(p.dataset.score);
   var on=s>=a&&s<=b&&defective(p,w);p.classList.toggle('hidden',!on);
   if(on){any=true;n++;}});
  g.classList.toggle('hidden',!any);});shown.textContent=n+' shown';
 if(boxes.length){try{history.replaceState(null,'',w.length?'#why='+w.join(','):
  location.pathname+location.search);}catch(e){}}}
lo.addEventListener('input',filter);hi.addEventListener('input',filter);
Array.prototype.forEach.call(boxes,function(c){c.addEventListener('change',filter);});
var asked=/[#&]why=([a-z,]+)/.exec(location.hash);
if(asked&&boxes.length){var w=asked[1].split(',');
 Array.prototype.forEach.call(boxes,function(c){c.checked=w.indexOf(c.value)>=0;});filter();}
document.documentElement.dataset.ready='1';
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body><header><h1>{title}</h1><div>{summary}</div>{histogram}
<div class="controls"><button id="order" type="button" data-first="worst">Best first</button>
<label>score from <input id="lo" type="number" min="0" max="1" step="0.01" value="0"></label>
<label>to <input id="hi" type="number" min="0" max="1" step="0.01" value="1"></label>
<span id="shown">{shown} shown</span></div>{defects}</header>
<main id="grid">
{grid}
</main>
{failed}
<script>{script}</script>
</body></html>
"""
