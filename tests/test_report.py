"""The HTML report: written atomically with its thumbnails, and rendered by a real Chromium."""

import os
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from chromium import CHROMIUM, run_chromium
from PIL import Image
from typer.testing import CliRunner

from bursts_set import make_shoot
from grmpiqa.cli.app import app
from grmpiqa.workflow.report import histogram_svg, stars

runner = CliRunner()


class Figures(HTMLParser):
    """The report's figures in page order, and the group each sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, str]] = []
        self.group = -1
        self.images = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "group" in (attrs.get("class") or ""):
            self.group += 1
        elif tag == "figure":
            self.figures.append({**attrs, "group": self.group})
        elif tag == "img":
            self.images += 1
            assert attrs.get("loading") == "lazy"


def test_histogram_and_stars():
    svg = histogram_svg([0.05, 0.06, 0.95])
    assert svg.count("<rect") == 20 and ">0.00-0.05: 0<" in svg and ">0.05-0.10: 2<" in svg
    assert stars(0.1) == "★☆☆☆☆" and stars(0.9) == "★★★★★"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, livec):
    root = tmp_path_factory.mktemp("report")
    shots = make_shoot(root / "shoot", sorted((livec / "images").glob("*.JPG")), bursts=5,
                       singles=10, exif=True, seed=4)
    (root / "shoot" / "broken.jpg").write_bytes(b"not a photo")
    return root, shots


def test_score_report_lists_every_photo_in_order(rendered, use_tiny_manifest):
    root, shots = rendered
    report = root / "out" / "report.html"
    out = runner.invoke(app, ["score", str(root / "shoot"), "--bursts", "--report",
                              str(report), "-j", "0", "-q"])
    assert out.exit_code == 1, out.output  # the broken file
    page = report.read_text()
    assert "http://" not in page and "https://" not in page  # offline: nothing fetched
    parser = Figures()
    parser.feed(page)
    assert len(parser.figures) == len(shots) == parser.images
    thumbs = sorted(os.listdir(root / "out" / "report_files"))
    assert len(thumbs) == len(shots)
    assert not [n for n in os.listdir(root / "out") if n.startswith(".")]  # nothing left over
    assert "broken.jpg" in page and "not an image Pillow can read" in page
    _check_order_and_groups(parser.figures, shots)
    link = re.search(r'<a href="([^"]+)"', page).group(1)
    assert not link.startswith("/") and (report.parent / link).is_file()
    (root / "out" / "report_files" / "stale.jpg").write_bytes(b"from before")
    again = runner.invoke(app, ["score", str(root / "shoot"), "--report", str(report),
                                "-j", "0", "-q"])
    assert again.exit_code == 1, again.output
    assert sorted(os.listdir(root / "out")) == ["report.html", "report_files"]
    assert "stale.jpg" not in os.listdir(root / "out" / "report_files")


def _check_order_and_groups(figures, shots):
    truth = {str(s.path): s.truth for s in shots}
    groups: dict[int, list] = {}
    for figure in figures:
        groups.setdefault(figure["group"], []).append(figure)
    best = [float(members[0]["data-score"]) for _, members in sorted(groups.items())]
    assert best == sorted(best)  # worst group first
    for members in groups.values():
        scores = [float(m["data-score"]) for m in members]
        assert scores == sorted(scores, reverse=True)  # best frame first
        assert len({truth[m["data-path"]] for m in members}) == 1  # one true burst each
        assert ("kept" in members[0]["class"]) == (len(members) > 1)
    assert sorted(len(m) for m in groups.values()) == sorted(
        [list(truth.values()).count(t) for t in set(truth.values())])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_inrun_chromium(rendered, use_tiny_manifest, tmp_path):
    root, shots = rendered
    report = tmp_path / "cull.html"
    out = runner.invoke(app, ["cull", str(root / "shoot"), "--bursts", "--dry-run",
                              "--move-to", str(tmp_path / "rejects"), "--report", str(report),
                              "-j", "0", "-q"])
    assert out.exit_code == 1, out.output  # the broken file is skipped
    dom = run_chromium("--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    parser = Figures()
    parser.feed(dom.stdout.decode("utf-8"))
    _check_order_and_groups(parser.figures, shots)
    text = dom.stdout.decode("utf-8")
    assert f"{len(shots)} shown" in text and "would go: burst" in text
    assert 'data-ready="1"' in text  # the page's script ran without an error
    _check_controls(report, parser.figures)
    shot = tmp_path / "shot.png"
    result = run_chromium(f"--screenshot={shot}", "--window-size=1200,900", report.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # thumbnails drawn, not a blank page
    thumbs = pixels[200:, :]
    assert (thumbs < 100).mean() > 0.05  # photo content below the header
    if os.environ.get("GRMPIQA_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["GRMPIQA_KEEP_SCREENSHOT"])


def test_a_report_that_cannot_be_written_is_a_usage_error(use_tiny_manifest, tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "file").write_text("not a folder")
    out = runner.invoke(app, ["score", str(tmp_path / "a.jpg"), "--report",
                              str(tmp_path / "file" / "r.html")])
    assert out.exit_code == 2
    assert "cannot write the report" in out.output and "Traceback" not in out.output


def _check_controls(report, figures):
    """Click "best first" and set the lower bound of the filter, as a person would."""
    scores = sorted(float(f["data-score"]) for f in figures)
    cut = scores[len(scores) // 2]
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", (
        "<script>document.getElementById('order').click();"
        f"var lo=document.getElementById('lo');lo.value='{cut}';"
        "lo.dispatchEvent(new Event('input'));</script></body>")))
    dom = run_chromium("--dump-dom", probe.as_uri())
    after = Figures()
    after.feed(dom.stdout.decode("utf-8"))
    best = []
    for figure in after.figures:
        if figure["group"] not in [b[0] for b in best]:
            best.append((figure["group"], float(figure["data-score"])))
    assert [b[1] for b in best] == sorted((b[1] for b in best), reverse=True)  # best first
    hidden = [float(f["data-score"]) < cut for f in after.figures]
    assert hidden == ["hidden" in f["class"] for f in after.figures]
    assert f"{sum(not h for h in hidden)} shown" in dom.stdout.decode("utf-8")
    assert "Worst first" in dom.stdout.decode("utf-8")
