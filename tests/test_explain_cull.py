"""``cull --explain``: a culled photo's reason ends with the defects its photo shows."""

from __future__ import annotations

import csv
import io

from defect_photos import write_defects
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.workflow.cull import with_defects

runner = CliRunner()


def _rows(text: str) -> dict[str, dict[str, str]]:
    return {row["source"].rsplit("/", 1)[1]: row for row in csv.DictReader(io.StringIO(text))}


def test_with_defects_appends_the_named_defects():
    assert with_defects("below 0.3", "blur;noise") == "below 0.3; blur; noise"
    assert with_defects("below 0.3", "") == "below 0.3"
    assert with_defects("burst 2: rank 3 of 3, keeping 1", None) == \
        "burst 2: rank 3 of 3, keeping 1"


def test_cull_explain_puts_the_defects_in_the_reason(use_tiny_manifest, tmp_path):
    expected = write_defects(tmp_path / "shoot")
    dest = tmp_path / "review"
    args = ["cull", str(tmp_path / "shoot"), "--below", "1", "--copy-to", str(dest),
            "--explain", "-f", "csv", "-j", "0", "-q"]
    done = runner.invoke(app, [*args, "--log", str(tmp_path / "log.csv")])
    assert done.exit_code == 0, done.output
    rows = _rows(done.stdout)
    assert list(next(iter(rows.values()))) == ["action", "source", "destination", "score",
                                               "error", "reason"]
    assert set(rows) == set(expected)
    for name, defect in expected.items():
        parts = rows[name]["reason"].split("; ")
        assert parts[0] == "below 1"
        assert parts[1:] == ([defect] if defect else []), (name, rows[name]["reason"])
    assert _rows((tmp_path / "log.csv").read_text()) == rows  # the log says the same
    # a second run reads the explanations back from the catalogue: the same reasons
    again = runner.invoke(app, ["cull", str(tmp_path / "shoot"), "--below", "1", "--dry-run",
                                "--link-to", str(tmp_path / "links"), "--explain", "-f", "csv",
                                "-j", "0", "-q"])
    assert again.exit_code == 0, again.output
    assert {n: r["reason"] for n, r in _rows(again.stdout).items()} == \
        {n: r["reason"] for n, r in rows.items()}


def test_cull_without_explain_keeps_its_columns(use_tiny_manifest, tmp_path):
    write_defects(tmp_path / "shoot")
    done = runner.invoke(app, ["cull", str(tmp_path / "shoot"), "--below", "1", "--dry-run",
                               "--copy-to", str(tmp_path / "review"), "-f", "csv", "-j", "0",
                               "-q"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[0] == "action,source,destination,score,error"


def test_marked_photos_carry_their_defects(use_tiny_manifest, tmp_path):
    import grmpiqa

    expected = write_defects(tmp_path / "shoot")
    run = grmpiqa.cull(str(tmp_path / "shoot"), below=1.0, mode="mark", dry_run=True,
                       explain=True, workers=0)
    reasons = {a.source.rsplit("/", 1)[1]: a.reason for a in run}
    assert "reason" in run.columns
    assert reasons == {n: "; ".join(["below 1", *([d] if d else [])])
                       for n, d in expected.items()}
