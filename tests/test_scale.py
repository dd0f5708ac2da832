import csv
import io
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.errors import ConfigError
from grmpiqa.model.acceleration import resolve_precision
from grmpiqa.scoring.distributed import Shard, parse_shard, torchrun_rank
from photos import write_photo_tree
from score_checks import assert_same_scores, spread_photos

runner = CliRunner()


def _rows(text):
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("total", [0, 1, 7, 100])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_shards_are_disjoint_and_complete(total, count):
    items = [f"f{i:03d}.jpg" for i in range(total)]
    parts = [parse_shard(f"{k}/{count}").take(items) for k in range(count)]
    flat = [x for part in parts for x in part]
    assert sorted(flat) == items and len(flat) == len(set(flat))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced


@pytest.mark.parametrize("text", ["", "1", "4/4", "-1/4", "a/b", "1/0", "2/1"])
def test_bad_shards(text):
    with pytest.raises(ConfigError):
        parse_shard(text)


def test_shard_parsing():
    assert parse_shard(" 2 / 5 ") == Shard(2, 5)


def test_cli_shards_cover_every_image_once(use_tiny_manifest, tmp_path):
    made = write_photo_tree(tmp_path)
    result = runner.invoke(app, ["score", str(tmp_path), "-j", "0"])
    assert result.exit_code == 0, result.output
    full = _rows(result.stdout)
    assert len(full) == len(made)
    seen = []
    for k in range(3):
        result = runner.invoke(app, ["score", str(tmp_path), "--shard", f"{k}/3", "-j", "0"])
        assert result.exit_code == 0, result.output
        seen += _rows(result.stdout)
    assert sorted(r["path"] for r in seen) == sorted(r["path"] for r in full)
    by_path = {r["path"]: float(r["score"]) for r in full}
    assert all(abs(float(r["score"]) - by_path[r["path"]]) < 1e-5 for r in seen)


def test_precision_choices():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("auto", gpu) == "fp16"
    assert resolve_precision("int8", cpu) == "int8"
    for bad, device in (("fp16", cpu), ("int8", gpu), ("fp64", cpu)):
        with pytest.raises(ConfigError):
            resolve_precision(bad, device)


def test_int8_fast_path_stays_close(tiny_hub):
    from grmpiqa.weights.loading import load_model
    from grmpiqa.weights.manifest import parse_manifest

    manifest = parse_manifest(tiny_hub.manifest, "m")
    exact = load_model("grmp-tiny", device="cpu", manifest=manifest)
    fast = load_model("grmp-tiny", device="cpu", manifest=manifest, precision="int8")
    assert fast.precision == "int8"
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    assert exact.clip.visual.transformer.resblocks[0].mlp.c_fc.weight.dtype == torch.float32
    blocks = fast.clip.visual.transformer.resblocks
    assert type(blocks[0].mlp.c_fc) is torch.nn.Linear  # the first block stays fp32
    assert type(blocks[1].attn.out) is torch.nn.Linear  # and every output projection
    assert isinstance(blocks[1].mlp.c_fc, DynamicLinear)
    assert isinstance(blocks[1].attn.qkv, DynamicLinear)
    photos = spread_photos()
    assert_same_scores(exact.score(photos), fast.score(photos), atol=0.05)


def test_not_under_torchrun_by_default(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert torchrun_rank() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    info = torchrun_rank()
    assert info is not None and info.rank == 1 and not info.is_main


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_merge_in_input_order(tiny_hub, tmp_path):
    photos = tmp_path / "photos"
    write_photo_tree(photos)
    (photos / "zz-broken.jpg").write_bytes(b"not a jpeg")
    env = {**os.environ, "GRMPIQA_MANIFEST": str(tiny_hub.manifest_path)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(key, None)
    single = subprocess.run([sys.executable, "-m", "grmpiqa", "score", str(photos), "-j", "0",
                             "-d", "cpu"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 1, single.stderr  # zz-broken.jpg
    out = tmp_path / "merged.csv"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "grmpiqa", "score", str(photos), "-o", str(out), "-b", "2", "-j", "0",
         "-d", "cpu"],
        capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 1, run.stderr  # rank 0 exits 1: one file failed
    assert "zz-broken.jpg" in run.stderr
    merged = _rows(out.read_text())
    expected = _rows(single.stdout)
    assert [r["path"] for r in merged] == [r["path"] for r in expected]
    for a, b in zip(merged, expected, strict=True):
        assert a["error"] == b["error"]
        if a["score"]:
            assert abs(float(a["score"]) - float(b["score"])) < 1e-5
    assert run.stdout.count("path,score,error") == 0  # data went to the file, once


def test_packed_attention_is_the_same_maths(tiny_model):
    import copy

    from grmpiqa.model.acceleration import pack_attention

    packed = copy.deepcopy(tiny_model)
    assert pack_attention(packed.clip.visual.transformer.resblocks) == 3
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(packed.encode_image(x), tiny_model.encode_image(x), atol=1e-5)


def test_layers_to_quantize_skip_the_first_block_and_output_projections():
    from grmpiqa.model.acceleration import layers_to_quantize, pack_attention

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
            self.mlp = torch.nn.Sequential()
            self.mlp.add_module("c_fc", torch.nn.Linear(8, 32))
            self.mlp.add_module("c_proj", torch.nn.Linear(32, 8))

    tower = torch.nn.Module()
    tower.resblocks = torch.nn.ModuleList(Block() for _ in range(3))
    assert pack_attention(tower.resblocks) == 3
    assert layers_to_quantize(tower) == [
        f"resblocks.{i}.{layer}" for i in (1, 2)
        for layer in ("attn.qkv", "mlp.c_fc", "mlp.c_proj")]
