"""``grmpiqa bench`` on the tiny model: what it prints, and what it recommends."""

import shutil

import pytest
import torch
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.cli.bench import decode_lines
from grmpiqa.model.cpu_features import CpuFeatures
from grmpiqa.scoring.bench import (
    DecodeCost,
    PrecisionSpeed,
    SpeedReport,
    _recommend,
    measure_speed,
)

runner = CliRunner()
ZEN4 = CpuFeatures.from_flags(["avx2", "avx512f", "avx512_vnni", "avx512_bf16"])
AVX2 = CpuFeatures.from_flags(["avx2"])


def test_bench_prints_speeds_and_a_command(use_tiny_manifest):
    result = runner.invoke(app, ["bench", "-d", "cpu", "-b", "2", "--seconds", "0"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "instructions:" in out and "grmp-tiny (its own weights)" in out
    for precision in ("fp32", "bf16", "int8"):
        assert any(line.startswith(precision) for line in out.splitlines()), out
    recommended = [line for line in out.splitlines() if line.startswith("recommended:")]
    assert recommended and "grmpiqa score" in recommended[0]
    assert "decoding (exact, one core)" in out and "4000x3000 (12 MP)" in out
    assert "bench: warming up" in result.stderr  # progress goes to stderr only
    assert "warming up" not in out


def test_bench_without_cached_weights_uses_random_ones(tiny_hub, tmp_path, monkeypatch):
    cache = tmp_path / "hf"
    shutil.copytree(tiny_hub.hf_cache, cache, symlinks=True)
    # the authors' checkpoint is what scoring needs (the backbone weights are not)
    for link in cache.glob("models--zzhowe--GRMP-IQA/snapshots/*/*.pt"):
        link.unlink()
    monkeypatch.setenv("GRMPIQA_MANIFEST", str(tiny_hub.manifest_path))
    report = measure_speed("grmp-tiny", device="cpu", batch_size=2, budget_s=0,
                           hf_cache=cache, features=AVX2)
    assert report.random_weights and report.model == "grmp-tiny"
    assert all(s.images_per_second and s.images_per_second > 0 for s in report.speeds
               if s.precision != "bf16")
    assert {s.precision: s.known_good for s in report.speeds} == \
        {"fp32": True, "bf16": False, "int8": True}


def _report(speeds, features):
    return SpeedReport("cpu", features, 2, ("cpu",), "cpu", "m", False, 8,
                       tuple(PrecisionSpeed(p, v, good) for p, v, good in speeds), "")


@pytest.mark.parametrize(("features", "speeds", "expected"), [
    (ZEN4, [("fp32", 2.0, True), ("bf16", 5.0, True), ("int8", 3.0, True)], "fast"),
    (ZEN4, [("fp32", 2.0, True), ("bf16", 3.0, True), ("int8", 4.0, True)], "int8"),
    (AVX2, [("fp32", 2.0, True), ("bf16", 9.0, False), ("int8", 3.0, True)], "fast"),
    (AVX2, [("fp32", 2.0, True), ("bf16", None, False), ("int8", None, True)], "fp32"),
])
def test_recommendation_is_the_quickest_known_good_precision(features, speeds, expected):
    assert _recommend(_report(speeds, features), torch.device("cpu")) == expected


@pytest.mark.parametrize(("warm_up", "batch", "expected"), [
    ({"fp32": 0.4, "bf16": 0.2, "int8": 0.2}, 8, 8),    # a round of 8 takes 3.2 s
    ({"fp32": 2.0, "bf16": 8.0, "int8": 1.0}, 8, 2),    # emulated bf16: 22 s a round of 8
    ({"fp32": 2.0, "bf16": 2.0}, 8, 5),
    ({"fp32": 0.0}, 8, 8),
    ({"fp32": 50.0}, 1, 1),
])
def test_timed_batch_shrinks_so_that_a_round_fits_in_ten_seconds(warm_up, batch, expected):
    from grmpiqa.scoring.bench import timed_batch_size

    assert timed_batch_size(warm_up, batch) == expected


def test_decode_costs_are_shown_beside_the_model_with_the_split_they_call_for():
    report = SpeedReport("cpu", ZEN4, 2, ("cpu",), "cpu", "m", False, 8,
                         (PrecisionSpeed("fp32", 2.0, True), PrecisionSpeed("bf16", 8.0, True)),
                         "fast", (DecodeCost(500, 500, 0.008), DecodeCost(4000, 3000, 0.088)), 8)
    lines = decode_lines(report)
    assert "beside bf16 (250 core-ms/photo on 2 threads)" in lines[1]
    small, big = lines[3], lines[4]
    assert small.split()[:3] == ["500x500", "(0.25", "MP)"] and "8.0" in small
    # 8 cores / (88 + 250 ms) = 23.67 img/s; decoding needs 2.08 cores: 3 + 1 spare
    assert "23.67" in big and big.endswith("4 decoders, 6 model threads")
