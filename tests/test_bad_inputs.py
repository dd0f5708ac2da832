"""Everything a real disk holds: each file gets its row, the good photos around it are scored."""

import csv
import io
import json
import os

from typer.testing import CliRunner

from corpus import write_corpus
from grmpiqa.cli.app import app
from grmpiqa.io.output import unescape_name

runner = CliRunner()


def _check(rows, expected, root):
    by_name = {os.path.relpath(unescape_name(r["path"]), root): r for r in rows}
    assert set(by_name) == set(expected), set(by_name) ^ set(expected)
    for name, outcome in expected.items():
        row = by_name[name]
        if outcome == "score":
            assert not row["error"], (name, row["error"])
            assert 0.0 <= float(row["score"]) <= 1.0
        else:
            assert row["error"] and outcome in row["error"], (name, row["error"])
            assert row["score"] in ("", None)
            assert "\n" not in row["error"]


def test_every_case_gets_its_row_in_csv(use_tiny_manifest, tmp_path):
    root = tmp_path / "corpus"
    expected = write_corpus(root)
    result = runner.invoke(app, ["score", str(root), "--max-pixels", "20000000", "-j", "2",
                                 "-b", "4"])
    assert result.exit_code == 1, result.output
    text = result.stdout_bytes.decode("utf-8")  # strict: every name escaped
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    _check(rows, expected, root)
    assert len(expected) >= 25
    assert "Traceback" not in result.stderr
    # One line on stderr per failed file, each naming it.
    failures = [n for n, o in expected.items() if o != "score"]
    assert sum(line.startswith("grmpiqa: ") for line in result.stderr.splitlines()) \
        == len(failures) + 1


def test_every_case_gets_its_row_in_jsonl(use_tiny_manifest, tmp_path):
    root = tmp_path / "corpus"
    expected = write_corpus(root)
    result = runner.invoke(app, ["score", str(root), "--max-pixels", "20000000", "-f", "jsonl",
                                 "-j", "0"])
    assert result.exit_code == 1, result.output  # some files fail, none stops the rest
    lines = result.stdout_bytes.decode("utf-8").splitlines()  # strictly valid UTF-8
    _check([json.loads(line) for line in lines], expected, root)


def test_a_folder_in_a_stdin_list_is_an_error_row(use_tiny_manifest, tmp_path):
    root = tmp_path / "corpus"
    write_corpus(root)
    listing = f"{root / 'folder.jpg'}\0{root / 'good-1.jpg'}\0"
    result = runner.invoke(app, ["score", "-", "--null", "-f", "jsonl"], input=listing)
    assert result.exit_code == 1, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2 and rows[0]["error"] == "is a directory, not an image file"
    assert rows[1]["error"] is None


def test_a_file_that_vanishes_after_listing(use_tiny_manifest, tmp_path, monkeypatch):
    root = tmp_path / "corpus"
    write_corpus(root)
    import grmpiqa.data.sources as scoring

    real = scoring.load_pixels

    def vanish_then_load(path, *args, **kwargs):
        if path.endswith("good-2.png"):
            os.unlink(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(scoring, "load_pixels", vanish_then_load)
    result = runner.invoke(app, ["score", str(root), "-f", "jsonl", "-j", "0"])
    assert result.exit_code == 1, result.output
    rows = {os.path.basename(r["path"]): r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["good-2.png"]["error"] == "no such file"
    assert rows["good-1.jpg"]["error"] is None
