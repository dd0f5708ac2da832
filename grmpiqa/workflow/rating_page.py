"""``suggest --html``: one static page to rate the chosen photos and download the CSV.

No server, no network: thumbnails are embedded (so RAW and HEIC photos show
too) and the page's script makes the CSV in the browser (a Blob saved through
an ``a[download]`` link). Keys 1-5 rate the highlighted photo and move on;
clicks on the stars work too; ratings survive a reload (localStorage).

Testing hook: ``rate.html#autotest=k3,k5,c2:4`` presses keys (``k``) and
clicks stars (``c<photo>:<stars>``, photos counted from 0), then runs the
download, which in this mode writes the CSV into ``<pre id="autotest-output">``
instead of saving it, so that ``chromium --headless --dump-dom`` shows it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
from collections.abc import Sequence

from grmpiqa.errors import ImageError
from grmpiqa.io.atomic import atomic_write
from grmpiqa.io.images import open_image
from grmpiqa.results import ScoreResult

THUMBNAIL = 640  # longest side, pixels

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#1e1e1e;color:#eee}
header{position:sticky;top:0;background:#111;padding:10px 16px;z-index:1;
display:flex;gap:16px;align-items:center;flex-wrap:wrap}
header p{margin:0;color:#bbb;font-size:14px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px;padding:16px}
figure{margin:0;background:#2b2b2b;border:3px solid transparent;border-radius:6px;padding:8px}
figure.current{border-color:#4da3ff}
figure.rated{background:#24332a}
img{width:100%;height:240px;object-fit:contain;background:#000;display:block}
figcaption{font-size:12px;margin:6px 0;overflow-wrap:anywhere}
button{font-size:18px;background:none;border:1px solid #555;color:#888;border-radius:4px;
cursor:pointer;margin-right:2px}
button.on{color:#ffcc33;border-color:#ffcc33}
#download{font-size:15px;color:#fff;background:#2f6fb5;border:none;padding:6px 14px}
"""

SCRIPT = r"""
"use strict";
const photos = JSON.parse(document.getElementById("photos").textContent);
const storeKey = "grmpiqa-rate-" + document.body.dataset.page;
const autotest = location.hash.startsWith("#autotest=");
let ratings = {};
try { if (!autotest) ratings = JSON.parse(localStorage.getItem(storeKey) || "{}"); } catch (e) {}
let current = 0;
const cards = Array.from(document.querySelectorAll("figure"));

function show() {
  cards.forEach((card, i) => {
    const stars = ratings[i] || 0;
    card.classList.toggle("current", i === current);
    card.classList.toggle("rated", stars > 0);
    card.querySelectorAll("button").forEach(b =>
      b.classList.toggle("on", Number(b.dataset.stars) <= stars));
  });
  const done = Object.keys(ratings).length;
  document.getElementById("count").textContent = done + " of " + photos.length + " rated";
  try { if (!autotest) localStorage.setItem(storeKey, JSON.stringify(ratings)); } catch (e) {}
}
function rate(i, stars) {
  if (stars > 0) ratings[i] = stars; else delete ratings[i];
  current = i;
  show();
}
function move(step) {
  current = Math.min(photos.length - 1, Math.max(0, current + step));
  show();
  cards[current].scrollIntoView({block: "nearest"});
}
function cell(text) {
  text = String(text);
  return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}
function csvText() {
  const lines = ["path,rating,model_score"];
  photos.forEach((p, i) => {
    if (ratings[i]) lines.push([p.path, ratings[i], p.score].map(cell).join(","));
  });
  return lines.join("\n") + "\n";
}
function download() {
  const blob = new Blob([csvText()], {type: "text/csv"});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = document.body.dataset.csv;
  if (autotest) {
    blob.text().then(text => {
      const out = document.getElementById("autotest-output");
      out.dataset.download = link.download;
      out.dataset.href = link.href.slice(0, 5);
      out.textContent = text;
    });
    return;
  }
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
document.addEventListener("keydown", event => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  if (key >= "1" && key <= "5") { rate(current, Number(key)); move(1); }
  else if (key === "0" || key === "Backspace" || key === "Delete") rate(current, 0);
  else if (key === "ArrowRight" || key === "ArrowDown" || key === "j") move(1);
  else if (key === "ArrowLeft" || key === "ArrowUp" || key === "k") move(-1);
  else return;
  event.preventDefault();
});
cards.forEach((card, i) => {
  card.querySelectorAll("button").forEach(b => b.addEventListener("click", () =>
    rate(i, ratings[i] === Number(b.dataset.stars) ? 0 : Number(b.dataset.stars))));
  card.querySelector("img").addEventListener("click", () => { current = i; show(); });
});
document.getElementById("download").addEventListener("click", download);
show();
if (autotest) {
  for (const step of decodeURIComponent(location.hash.slice(10)).split(",")) {
    if (step[0] === "k") {
      document.dispatchEvent(new KeyboardEvent("keydown", {key: step.slice(1), bubbles: true}));
    } else if (step[0] === "c") {
      const [photo, stars] = step.slice(1).split(":");
      cards[Number(photo)].querySelector('button[data-stars="' + stars + '"]').click();
    }
  }
  document.getElementById("download").click();
}
"""


def thumbnail_uri(path: str) -> str:
    """A JPEG thumbnail of ``path`` as a data: URI; empty when the photo cannot be read."""
    try:
        image = open_image(path, draft_size=THUMBNAIL)
    except ImageError:
        return ""
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def download_name(page: str | os.PathLike[str]) -> str:
    """The CSV the page downloads: named after the page (``rate.html`` -> ``rate.csv``), so
    that the hint that names it is right."""
    return os.path.splitext(os.path.basename(os.fspath(page)))[0] + ".csv"


def _card(index: int, result: ScoreResult, show_score: bool) -> str:
    name = html.escape(os.path.basename(result.path))
    stars = "".join(f'<button type="button" data-stars="{s}" title="{s} star'
                    f'{"s" if s > 1 else ""} (key {s})">&#9733;</button>' for s in range(1, 6))
    # the model's score beside a photo biases its rating: shown only when asked for
    score = f" &middot; model {result.score:.3f}" if show_score else ""
    return (f'<figure data-photo="{index}"><img alt="{name}" src="{thumbnail_uri(result.path)}">'
            f'<figcaption>{name}{score}</figcaption>{stars}</figure>')


def rating_page(chosen: Sequence[ScoreResult], *, csv_name: str = "ratings.csv",
                show_scores: bool = False) -> str:
    """The whole page for the chosen photos, as HTML text; it downloads ``csv_name``, and
    shows the model's scores only with ``show_scores``."""
    photos = [{"path": os.path.abspath(r.path), "score": f"{r.score:.4f}"} for r in chosen]
    data = json.dumps(photos).replace("<", "\\u003c")  # no "</script>" or "<!--" in a path
    page_id = hashlib.sha256(data.encode()).hexdigest()[:16]
    cards = "\n".join(_card(i, r, show_scores) for i, r in enumerate(chosen))
    csv_text = html.escape(csv_name)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rate {len(chosen)} photos - grmpiqa</title><style>{STYLE}</style></head>
<body data-page="{page_id}" data-csv="{csv_text}">
<header><button type="button" id="download">Download {csv_text}</button>
<strong id="count"></strong>
<p>Keys 1-5 rate the highlighted photo and move on; 0 clears; arrows move. Or click the
stars. Then download and run: grmpiqa adapt {csv_text} -o mine.safetensors</p></header>
<main>
{cards}
</main>
<pre id="autotest-output" hidden></pre>
<script type="application/json" id="photos">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"""


def write_rating_page(chosen: Sequence[ScoreResult], path: str | os.PathLike[str], *,
                      show_scores: bool = False) -> None:
    """Write :func:`rating_page` atomically; it downloads :func:`download_name` of ``path``."""
    page = rating_page(chosen, csv_name=download_name(path), show_scores=show_scores)
    with atomic_write(path) as handle:
        handle.write(page.encode("utf-8"))
