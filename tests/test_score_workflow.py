"""``grmpiqa score`` with --sort, --top, --min/--max-score, --format paths, --null, --xmp,
--summary, on a tiny random model (scores are meaningless, their order is what is tested)."""

import csv
import io
import itertools
import json
import os
import shlex
import subprocess
import sys
from xml.dom import minidom

import pytest
from PIL import Image
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.io.output import unescape_name
from grmpiqa.workflow.xmp import XMP_NS, rating_for
from photos import texture

runner = CliRunner()
NAMES = ["plain.jpg", "with space.jpg", "new\nline.jpg", os.fsdecode(b"bad\xff name.jpg"),
         "-starts-with-dash.jpg", "tab\there.png", "quote'\"s.jpg", "sub/deeper.jpg"]


def _shoot(root):
    for i, name in enumerate(NAMES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(texture(i, (40 + 8 * i, 36))).save(path)
    return root


def _csv(output, exit_code=0):
    """Rows of CSV output (a result that exited ``exit_code``, or bytes), paths unescaped to
    the names on disk."""
    if not isinstance(output, bytes):
        assert output.exit_code == exit_code, output.output
    data = output if isinstance(output, bytes) else output.stdout_bytes
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))
    return [{**row, "path": unescape_name(row["path"])} for row in rows]


@pytest.fixture
def shoot(tmp_path, tiny_model):
    """A folder of awkwardly named photos, and each one's score from the library."""
    from grmpiqa.scoring.engine import score_paths

    root = _shoot(tmp_path / "shoot")
    scores = {r.path: r.score for r in score_paths([str(root)], tiny_model, workers=0)}
    assert len(set(scores.values())) == len(NAMES)  # distinct: every order is unambiguous
    return root, scores


def _paths_out(result):
    return [os.fsdecode(p) for p in result.stdout_bytes.split(b"\0")[:-1]]


def _run(root, *args, **kwargs):
    return runner.invoke(app, ["score", str(root), "-j", "0", *args], **kwargs)


def test_sort_top_and_filters(use_tiny_manifest, shoot):
    root, scores = shoot
    worst_first = sorted(scores, key=scores.get)
    assert [r["path"] for r in _csv(_run(root, "--sort", "score"))] == worst_first
    assert [r["path"] for r in _csv(_run(root, "--sort=path"))] == sorted(scores)
    assert [r["path"] for r in _csv(_run(root, "--top", "3"))] == worst_first[::-1][:3]
    out = _run(root, "--sort", "score", "--top", "2", "-f", "jsonl")
    assert [json.loads(line)["path"] for line in out.stdout_bytes.splitlines()] == worst_first[:2]

    cut = (scores[worst_first[3]] + scores[worst_first[4]]) / 2
    assert {r["path"] for r in _csv(_run(root, "--max-score", str(cut)))} == set(worst_first[:4])
    out = _run(root, "--min-score", str(cut), "--max-score", "1")
    assert {r["path"] for r in _csv(out)} == set(worst_first[4:])


def test_failed_files_never_pass_a_filter_but_still_count(use_tiny_manifest, shoot):
    root, _ = shoot
    (root / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    out = _run(root, "--max-score", "1", "-f", "paths")
    assert out.exit_code == 1 and "broken.jpg: " in out.stderr
    assert b"broken.jpg" not in out.stdout_bytes
    rows = _csv(_run(root, "--sort", "-score"), exit_code=1)
    assert rows[-1]["path"].endswith("broken.jpg") and rows[-1]["error"]  # failures last


def test_paths_null_carries_any_file_name(use_tiny_manifest, shoot):
    root, scores = shoot
    out = _run(root, "--format", "paths", "--null")
    assert out.exit_code == 0
    assert _paths_out(out) == list(scores)  # input order, every byte of every name
    listing = b"\0".join(os.fsencode(p) for p in reversed(scores)) + b"\0"
    out = runner.invoke(app, ["score", "-", "-0", "-j", "0", "-f", "paths"], input=listing)
    assert _paths_out(out) == list(reversed(scores))  # NUL in, NUL out, like sort -z


def test_paths_without_null_refuses_line_breaks(use_tiny_manifest, shoot):
    root, scores = shoot
    out = _run(root, "-f", "paths")
    assert out.exit_code == 1
    printed = [os.fsdecode(p) for p in out.stdout_bytes.split(b"\n")[:-1]]
    assert printed == [p for p in scores if "\n" not in p]
    assert "new\\nline.jpg: left out of the paths" in out.stderr and "--null" in out.stderr
    quiet = _run(root, "-f", "paths", "-q")
    assert quiet.exit_code == 1 and quiet.stdout_bytes == out.stdout_bytes
    # -q drops the per-file line, never the reason for the exit status
    assert quiet.stderr == ("grmpiqa: 1 path with a line break left out of --format paths "
                            "(use --null)\n")


@pytest.mark.slow
def test_xargs_pipeline_moves_exactly_the_low_scores(tiny_hub, shoot, tmp_path):
    root, scores = shoot
    trash = tmp_path / "trash"
    trash.mkdir()
    cut = sorted(scores.values())[len(scores) // 2]
    command = [sys.executable, "-m", "grmpiqa", "score", str(root), "-j", "0",
               "--max-score", repr(cut), "--format", "paths", "--null"]
    pipeline = " ".join(map(shlex.quote, command)) + " | xargs -0 -r mv -t " + shlex.quote(
        str(trash)) + " --"
    env = {**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)}
    done = subprocess.run(["bash", "-c", "set -o pipefail; " + pipeline], capture_output=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    moved = {os.fsencode(p.name) for p in trash.iterdir()}
    low = [p for p, s in scores.items() if s <= cut]
    assert 0 < len(low) < len(scores)
    assert moved == {os.fsencode(os.path.basename(p)) for p in low}
    assert all(os.path.exists(p) == (s > cut) for p, s in scores.items())


def _rating(sidecar):
    description = minidom.parse(str(sidecar)).getElementsByTagNameNS(
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "Description")[0]
    return int(description.getAttributeNS(XMP_NS, "Rating"))


def _sidecar(photo):
    return os.path.splitext(photo)[0] + ".xmp"


def test_xmp_ratings_written_beside_each_photo(use_tiny_manifest, shoot):
    root, scores = shoot
    (root / "plain.xmp").write_bytes(b"<x:xmpmeta><unclosed")
    out = _run(root, "--xmp", "--max-score", "0")
    assert out.exit_code == 1 and out.stdout.strip() == "path,score,error,model"  # filters only
    assert "plain.jpg: sidecar not written: plain.xmp: malformed XML" in out.stderr
    assert (root / "plain.xmp").read_bytes() == b"<x:xmpmeta><unclosed"
    for path, score in scores.items():
        if not path.endswith("plain.jpg"):
            assert _rating(_sidecar(path)) == rating_for(score)

    (root / "plain.xmp").unlink()
    ordered = sorted(scores.values())
    text = ",".join(repr((a + b) / 2) for a, b in itertools.pairwise(ordered[:5]))
    out = _run(root, "--xmp", "--rating-thresholds", text)
    assert out.exit_code == 0, out.output
    assert sorted(_rating(_sidecar(p)) for p in scores) == [1, 2, 3, 4, 5, 5, 5, 5]
    bad = _run(root, "--xmp", "--rating-thresholds", "1,2")
    assert bad.exit_code == 2 and "--rating-thresholds" in bad.output


def test_summary_goes_to_stderr_after_the_rows(use_tiny_manifest, shoot):
    root, scores = shoot
    (root / "broken.png").write_bytes(b"junk")
    plain = _run(root)
    assert plain.exit_code == 1 and len(_csv(plain, exit_code=1)) == len(scores) + 1
    out = _run(root, "--summary", "-q")
    assert out.exit_code == 1 and out.stdout_bytes == plain.stdout_bytes
    lines = out.stderr.splitlines()
    assert lines[0] == f"grmpiqa: summary: {len(scores)} scored, 1 failed"
    mean = sum(scores.values()) / len(scores)
    assert f"mean {mean:.3f}" in lines[1] and "median" in lines[1] and "q3" in lines[1]
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines[2:12]) == len(scores)


@pytest.mark.parametrize("args", [["--sort", "size"], ["--top", "0"], ["--min-score", "2"],
                                  ["--min-score", "0.6", "--max-score", "0.4"]])
def test_bad_workflow_options_exit_2(use_tiny_manifest, tmp_path, args):
    result = runner.invoke(app, ["score", str(tmp_path), *args])
    assert result.exit_code == 2
