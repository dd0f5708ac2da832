"""Issue 24 items 6 and 11: what a new user meets in the first hour, run as they run it.

The terminal checks run ``python -m grmpiqa`` in a pseudo-terminal (stdout and stderr on
one pty, as in a terminal window) and read what the screen finally shows.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_terminal import run_in_pty, screen_lines

from photos import texture

REPO = Path(__file__).resolve().parent.parent


def _photos(folder: Path, count: int = 6, *, broken: bool = True) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        made.append(folder / f"{1000 + i}.jpg")
        Image.fromarray(texture(i)).save(made[-1], "JPEG")
    if broken:
        (folder / "broken.jpg").write_bytes(b"not a photo")
    return made


def _slow_png(path: Path) -> None:
    """A photo that takes about a second to decode: a run can be caught mid-way."""
    ramp = np.linspace(0, 255, 4000, dtype=np.float32)
    Image.fromarray(np.stack([np.outer(ramp, np.ones(4000))] * 3, -1).astype(np.uint8)).save(
        path, compress_level=1)


def _env(hub, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env.update(TERM="xterm-256color", GRMPIQA_MANIFEST=str(hub.manifest_path), **extra)
    return env


def _run(args: list[str], hub, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = _env(hub, **kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "grmpiqa", *map(str, args)], cwd=cwd,
                          env=env, capture_output="stdout" not in kwargs, text=True,
                          timeout=300, **kwargs)


def _pty(args: list[str], env: dict[str, str], cwd: Path, *, interrupt_after: bytes = b""
         ) -> tuple[list[str], int]:
    """What the screen shows at the end, and the exit code (Ctrl-C: see run_in_pty)."""
    raw, code = run_in_pty([sys.executable, "-m", "grmpiqa", *args], env, cwd,
                           interrupt_after=interrupt_after)
    return screen_lines(raw), code


# item 6: the CPU's batch and a bar that moves -----------------------------------------------

def test_the_cpu_default_batch_is_the_documented_one():
    from grmpiqa.config import default_batch_size

    cpu, gpu = default_batch_size("cpu"), default_batch_size("cuda")
    assert (cpu, gpu, default_batch_size("mps")) == (8, 32, 32)  # cpu_batch.py chose 8
    documented = f"images per forward pass (default {cpu} on the CPU, {gpu} on a GPU)"
    assert documented in (REPO / "docs" / "cli.md").read_text()
    from grmpiqa.cli.options import BatchSizeOption

    shown = BatchSizeOption.__metadata__[0].show_default  # what `score --help` says
    assert shown == f"{cpu} on the CPU, {gpu} on a GPU"


def test_progress_moves_before_the_last_photo_is_decoded(use_tiny_manifest, tmp_path,
                                                        monkeypatch):
    """The bar advances batch by batch, and the CPU's first batch is one photo: the first
    row comes after one forward pass, then the batches are the CPU default."""
    import grmpiqa
    from grmpiqa.config import default_batch_size
    from grmpiqa.data.dataset import ImageFiles

    _photos(tmp_path / "shoot", 20, broken=False)
    events: list[str] = []
    decode = ImageFiles.__getitem__

    def logged(self, index):
        events.append("decode")
        return decode(self, index)

    monkeypatch.setattr(ImageFiles, "__getitem__", logged)

    class Receiver:
        def advance(self, n=1):
            events.extend(["advance"] * n)

        def message(self, text):
            pass

    run = grmpiqa.score(grmpiqa.ScoreJob(
        inputs=[str(tmp_path / "shoot")], output=str(tmp_path / "scores.csv"),
        model=grmpiqa.ModelOptions(workers=0, catalogue=False, device="cpu")), Receiver())
    assert run.scored == 20 and events.count("advance") == 20
    runs = [(kind, len(list(group))) for kind, group in itertools.groupby(events)]
    decoded = [n for kind, n in runs if kind == "decode"]
    assert default_batch_size("cpu") == 8
    assert decoded == [1, 7, 8, 4], runs  # each batch counts before the next is decoded
    assert [n for kind, n in runs if kind == "advance"] == decoded


# item 11: the rough edges --------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("selection", [["--sort", "score"], ["--sort", "score", "--top", "3"]])
def test_sorted_table_then_done_and_each_error_once(tiny_hub, tmp_path, selection):
    _photos(tmp_path / "photos")
    shown, code = _pty(["score", "./photos", "-j", "0", *selection], _env(tiny_hub), tmp_path)
    assert code == 1, shown
    assert any(re.fullmatch(r"grmpiqa: loaded model grmp-tiny in [0-9.]+ s", s)
               for s in shown), shown  # the model's name, never "default"
    header = shown.index("   score  path")
    rows = [i for i, s in enumerate(shown) if re.match(r"^(0\.\d{6}|       -)  \./photos/", s)]
    (done,) = [i for i, s in enumerate(shown) if s.startswith("grmpiqa: scoring done:")]
    assert rows == list(range(header + 1, header + 1 + len(rows))), shown
    assert done > rows[-1], shown  # never between the header and its rows
    assert len(rows) == (3 if "--top" in selection else 7)
    # the broken photo is said once: in its row, or on its own line when --top leaves the
    # row out
    assert len([s for s in shown if "broken.jpg" in s]) == 1, shown


@pytest.mark.slow
def test_an_interrupted_run_says_stopped_and_not_done(tiny_hub, tmp_path):
    folder = tmp_path / "photos"
    _photos(folder, 3, broken=False)
    for i in range(4):
        _slow_png(folder / f"2{i}.png")
    shown, code = _pty(["score", "./photos", "-b", "1", "-j", "0"], _env(tiny_hub), tmp_path,
                       interrupt_after=b"./photos/1001.jpg")
    assert code == 130, shown
    assert [s for s in shown if s.startswith("grmpiqa: stopped after")], shown
    assert not [s for s in shown if "scoring done" in s], shown


@pytest.mark.slow
@pytest.mark.parametrize(("args", "flag", "needs"), [
    (["--rating-thresholds", "0.2,0.4,0.6,0.8"], "--rating-thresholds", "--xmp"),
    (["--similarity", "0.8"], "--similarity", "--bursts"),
    (["--time-gap", "3"], "--time-gap", "--bursts"),
])
def test_a_setting_without_its_option_is_refused(tiny_hub, tmp_path, args, flag, needs):
    _photos(tmp_path / "photos", 1, broken=False)
    # no weights here: a run that got as far as the model would fail another way
    out = _run(["score", "photos", *args], tiny_hub, tmp_path,
               env={"HF_HUB_CACHE": str(tmp_path / "empty")})
    assert out.returncode == 2, out.stderr
    assert f"{flag}: only means something with {needs}" in out.stderr, out.stderr


@pytest.mark.slow
def test_outputs_are_named_and_the_report_shows_subfolders(tiny_hub, tmp_path):
    _photos(tmp_path / "shoot" / "day1", 3)
    _photos(tmp_path / "shoot" / "day2", 2, broken=False)  # day2/1000.jpg as in day1
    out = _run(["score", "shoot", "-o", "out/scores.csv", "--report", "out/page.html",
                "-j", "0"], tiny_hub, tmp_path)
    assert out.returncode == 1, out.stderr
    assert "grmpiqa: wrote 6 rows to out/scores.csv\n" in out.stderr
    assert "grmpiqa: report: out/page.html\n" in out.stderr
    names = re.findall(r'class="name">([^<]*)<', (tmp_path / "out" / "page.html").read_text())
    assert sorted(names) == ["day1/1000.jpg", "day1/1001.jpg", "day1/1002.jpg",
                             "day2/1000.jpg", "day2/1001.jpg"]


@pytest.mark.slow
def test_single_photos_get_no_burst(tiny_hub, tmp_path):
    made = _photos(tmp_path / "shoot", 4, broken=False)
    (tmp_path / "shoot" / "1002b.jpg").write_bytes(made[2].read_bytes())  # a duplicate
    out = _run(["score", "shoot", "--bursts", "-f", "csv", "-j", "0"], tiny_hub, tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {Path(r["path"]).name: (r["burst"], r["burst_rank"])
            for r in csv.DictReader(io.StringIO(out.stdout))}
    assert rows.pop("1002.jpg")[0] == rows.pop("1002b.jpg")[0] == "1"
    assert set(rows.values()) == {("", "")}, rows


@pytest.mark.slow
def test_evaluate_whose_paths_all_miss_names_root_before_the_model(tiny_hub, tmp_path):
    _photos(tmp_path / "photos", 4, broken=False)
    labels = tmp_path / "labels" / "mos.csv"
    labels.parent.mkdir()
    labels.write_text("image,mos\n" + "".join(f"{1000 + i}.jpg,{i}\n" for i in range(4)))
    # no weights: had it loaded the model, it would say they are not in the cache
    out = _run(["evaluate", labels], tiny_hub, tmp_path,
               env={"HF_HUB_CACHE": str(tmp_path / "empty")})
    assert out.returncode == 2, out.stderr
    assert "none of the 4 images exist under" in out.stderr
    assert "Give it with --root DIR." in out.stderr and out.stdout == ""
    assert "cache" not in out.stderr
    fixed = _run(["evaluate", labels, "--root", "photos", "--bootstrap", "0", "-j", "0"],
                 tiny_hub, tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert re.search(r"images\s+4\s+of 4 listed", fixed.stdout), fixed.stdout


@pytest.mark.slow
def test_suggest_speaks_plainly_and_names_the_csv_it_wrote(tiny_hub, tmp_path):
    _photos(tmp_path / "shoot", 8, broken=False)
    with open(tmp_path / "picked.csv", "w") as stdout:
        out = _run(["suggest", "shoot", "-n", "3", "-j", "0"], tiny_hub, tmp_path,
                   stdout=stdout, stderr=subprocess.PIPE)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "picked.csv").read_text().startswith("path,rating,model_score")
    assert "next: fill the rating column of picked.csv with 1-5 stars, then: " \
        "grmpiqa adapt picked.csv -o mine.safetensors" in out.stderr
    assert "mean distance to the nearest chosen photo" not in out.stderr
    assert re.search(r"each photo is on average \d+% closer in content to one of them than "
                     r"to the nearest of 3 picked at random|each photo is as close in content "
                     r"to one of them as at random", out.stderr), out.stderr


def test_the_rating_page_hides_the_models_score_unless_asked(tmp_path):
    from grmpiqa.results import ScoreResult
    from grmpiqa.workflow.rating_page import download_name, rating_page

    photo = tmp_path / "a.jpg"
    Image.fromarray(texture(0)).save(photo)
    chosen = [ScoreResult(str(photo), 0.4321)]
    assert "0.432" not in rating_page(chosen).split('<script type="application/json"')[0]
    assert "model 0.432" in rating_page(chosen, show_scores=True)
    assert download_name(tmp_path / "rate.html") == "rate.csv"
    page = rating_page(chosen, csv_name="rate.csv")
    assert 'data-csv="rate.csv"' in page and "grmpiqa adapt rate.csv" in page


@pytest.mark.slow
def test_cull_names_the_model_it_loaded(tiny_hub, tmp_path):
    _photos(tmp_path / "shoot", 3, broken=False)
    shown, code = _pty(["cull", "./shoot", "--below", "0.5", "--copy-to", "out", "-j", "0"],
                       _env(tiny_hub), tmp_path)
    assert code == 0, shown
    assert any(re.fullmatch(r"grmpiqa: loaded model grmp-tiny in [0-9.]+ s", s)
               for s in shown), shown
