import csv
import io
import json

import pytest
from scipy import stats
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from labelled import write_noise_labels

runner = CliRunner()


def _scores(folder):
    result = runner.invoke(app, ["score", str(folder), "-f", "csv", "-j", "0"])
    assert result.exit_code == 0, result.output
    return {row["path"]: float(row["score"])
            for row in csv.DictReader(io.StringIO(result.stdout)) if row["score"]}


def test_evaluate_reports_scipys_statistics_on_the_models_scores(use_tiny_manifest, tmp_path):
    labels = write_noise_labels(tmp_path / "photos", 20)
    result = runner.invoke(app, ["evaluate", str(labels), "-f", "json", "-j", "0",
                                 "--bootstrap", "300"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    scores = _scores(tmp_path / "photos")
    truth = {str(tmp_path / "photos" / line.split(",")[0]): float(line.split(",")[1])
             for line in labels.read_text().splitlines()[1:]}
    x = [scores[p] for p in sorted(truth)]
    y = [truth[p] for p in sorted(truth)]
    assert report["n"] == report["listed"] == 20 and report["failed"] == 0
    assert report["srcc"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-4)
    assert report["plcc"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-4)
    assert report["krcc"] == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-4)
    assert report["srcc_low"] <= report["srcc"] <= report["srcc_high"]
    assert "rmse_label" not in report  # the authors' model has no label scale

    table = runner.invoke(app, ["evaluate", str(labels), "-j", "0", "--bootstrap", "50"])
    assert table.exit_code == 0
    assert "SRCC" in table.stdout and "PLCC (logistic)" in table.stdout


def test_lower_is_better_flips_the_sign(use_tiny_manifest, tmp_path):
    up = write_noise_labels(tmp_path / "a", 12, seed=3)
    down = write_noise_labels(tmp_path / "a", 12, seed=3, name="dmos.csv", lower_is_better=True)
    args = ["-f", "json", "-j", "0", "--bootstrap", "0"]
    a = runner.invoke(app, ["evaluate", str(up), *args])
    b = runner.invoke(app, ["evaluate", str(down), "--lower-is-better", *args])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    a, b = json.loads(a.stdout), json.loads(b.stdout)
    assert b["srcc"] == pytest.approx(a["srcc"]) and b["krcc"] == pytest.approx(a["krcc"])
    assert a["srcc_low"] is None  # no bootstrap asked for


def test_unscorable_photos_are_left_out_and_csv_problems_stop(use_tiny_manifest, tmp_path):
    labels = write_noise_labels(tmp_path / "photos", 10)
    (tmp_path / "photos" / "p001.png").write_bytes(b"junk")
    result = runner.invoke(app, ["evaluate", str(labels), "-f", "json", "-j", "0",
                                 "--bootstrap", "0"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["n"] == 9
    assert "line 3: p001.png:" in result.stderr and "cover the other 9" in result.stderr
    with labels.open("a") as handle:
        handle.write("p002.png,zero\n")
    result = runner.invoke(app, ["evaluate", str(labels)])
    assert result.exit_code == 2 and result.stdout == ""
    assert "line 12: score 'zero' is not a number" in result.stderr


class _Recorder:
    def __init__(self):
        self.advanced, self.messages = 0, []

    def advance(self, n=1):
        self.advanced += n

    def message(self, text):
        self.messages.append(text)


def test_library_evaluate_matches_the_command_and_reports_progress(use_tiny_manifest, tmp_path):
    import grmpiqa

    labels = write_noise_labels(tmp_path / "photos", 12)
    (tmp_path / "photos" / labels.read_text().splitlines()[1].split(",")[0]).write_bytes(b"")
    recorder = _Recorder()
    result = grmpiqa.evaluate(labels, resamples=100, workers=0, progress=recorder)
    command = runner.invoke(app, ["evaluate", str(labels), "-f", "json", "-j", "0",
                                  "--bootstrap", "100"])
    assert command.exit_code == 1  # the emptied photo
    assert json.loads(command.stdout) == result.to_dict()
    assert result.listed == 12 and result.scored == 11 and len(result.failed) == 1
    assert recorder.advanced == 12 and recorder.messages == result.failed
    assert "line 2:" in result.failed[0]
