"""The report with ``--explain``: defect tags on each thumbnail, and a filter by defect that
works in a real Chromium from file:// (a #why= fragment, and a click on a checkbox)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from chromium import CHROMIUM, run_chromium
from defect_photos import write_defects
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.results import Explanation
from grmpiqa.workflow.report import Entry, defect_filter, measures

runner = CliRunner()


class Page(HTMLParser):
    """Per figure (by file name): its data-why, whether it is hidden, and its tags."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict] = {}
        self.current: dict | None = None
        self.boxes: dict[str, bool] = {}
        self.label = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.current = {"why": attrs.get("data-why"), "tags": [],
                            "hidden": "hidden" in attrs["class"].split()}
            self.figures[attrs["data-path"].rsplit("/", 1)[1]] = self.current
        elif tag == "span" and self.current is not None and \
                (attrs.get("class") or "").startswith("tag "):
            self.current["tags"].append(attrs["class"].split()[1])
        elif tag == "label":
            self.label = attrs.get("class") or ""
        elif tag == "input" and attrs.get("type") == "checkbox":
            # the page marks the label of a ticked box "on" (a property is not in the DOM)
            self.boxes[attrs["value"]] = "on" in self.label.split()


def _parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def shoot(tmp_path_factory):
    root = tmp_path_factory.mktemp("explained")
    return root, write_defects(root / "shoot")


def test_filter_lists_the_defects_found_with_counts():
    clean = Explanation(0.9, 0.3, 0.0, 0.0, 0.2, "")
    blurred = Explanation(0.1, 0.3, 0.0, 0.0, 0.2, "blur")
    both = Explanation(0.1, 9.0, 0.0, 0.0, 0.2, "blur;noise")
    entries = [Entry(f"{i}.jpg", 0.5, None, None, explanation=x)
               for i, x in enumerate([clean, blurred, both, clean])]
    boxes = _parse(defect_filter(entries)).boxes
    assert list(boxes) == ["blur", "noise", "none"] and not any(boxes.values())
    html = defect_filter(entries)
    assert "blur <span class=\"count\">2</span>" in html
    assert "no defect <span class=\"count\">2</span>" in html
    assert defect_filter([Entry("a.jpg", 0.5, None, None)]) == ""  # nothing explained
    assert measures(both) == ("sharpness 0.10, noise 9.0, exposure +0.0 EV, clipped 0.0%, "
                              "compression 0.20")


def test_score_report_tags_every_explained_photo(use_tiny_manifest, shoot, tmp_path):
    root, expected = shoot
    report = tmp_path / "page.html"
    done = runner.invoke(app, ["score", str(root / "shoot"), "--explain", "--report",
                               str(report), "-j", "0", "-q"])
    assert done.exit_code == 0, done.output
    page = _parse(report.read_text())
    assert set(page.figures) == set(expected)
    for name, defect in expected.items():
        assert page.figures[name]["why"] == defect
        assert page.figures[name]["tags"] == ([defect] if defect else [])
    assert set(page.boxes) == {"blur", "noise", "none"}
    plain = tmp_path / "plain.html"
    assert runner.invoke(app, ["score", str(root / "shoot"), "--report", str(plain), "-j", "0",
                               "-q"]).exit_code == 0
    unexplained = _parse(plain.read_text())
    assert not unexplained.boxes and all(f["why"] is None for f in unexplained.figures.values())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_cull_report_filters_by_defect_inrun_chromium(use_tiny_manifest, shoot, tmp_path):
    root, expected = shoot
    report = tmp_path / "cull.html"
    done = runner.invoke(app, ["cull", str(root / "shoot"), "--below", "1", "--dry-run",
                               "--explain", "--move-to", str(tmp_path / "rejects"),
                               "--report", str(report), "-j", "0", "-q"])
    assert done.exit_code == 0, done.output
    for ask, shown in (("blur", {"blurred.png"}), ("none", {"sharp.png"}),
                       ("blur,noise", {"blurred.png", "noisy.png"})):
        dom = run_chromium("--dump-dom", f"{report.as_uri()}#why={ask}")
        assert dom.returncode == 0, dom.stderr[-2000:]
        text = dom.stdout.decode("utf-8")
        assert 'data-ready="1"' in text  # the page's script ran without an error
        page = _parse(text)
        assert {n for n, f in page.figures.items() if not f["hidden"]} == shown, ask
        assert {v for v, on in page.boxes.items() if on} == set(ask.split(","))
        assert f"{len(shown)} shown" in text
    # a person's click: tick noise, then untick it again (everything shows)
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", (
        "<script>var box=document.querySelector('#defects input[value=noise]');box.click();"
        "document.body.dataset.first=document.getElementById('shown').textContent;"
        "box.click();</script></body>")))
    text = run_chromium("--dump-dom", probe.as_uri()).stdout.decode("utf-8")
    assert 'data-first="1 shown"' in text and f"{len(expected)} shown" in text
    assert not any(f["hidden"] for f in _parse(text).figures.values())
