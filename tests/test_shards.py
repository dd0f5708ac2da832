"""WebDataset tar shards in, Parquet out: every sample once, errors as rows, resumable."""

import csv
import io
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.io.inputs import DEFAULT_EXTENSIONS, expand_inputs
from grmpiqa.io.shards import ShardIndex, expand_shards, list_shard, sample_key
from tarshards import good_samples, jpeg_bytes, write_shard

runner = CliRunner()
pq = pytest.importorskip("pyarrow.parquet")


def _rows(text):
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _two_shards(folder):
    """Shard 0: 5 good samples, a corrupt JPEG, a text file named .jpg, a sample without an
    image, a sample with a PNG and a JPEG; shard 1: 4 good samples in a sub-folder."""
    folder.mkdir(parents=True, exist_ok=True)
    write_shard(folder / "00000.tar", [
        *good_samples(0, 5),
        ("corrupt", {"jpg": jpeg_bytes(50)[:200], "json": b"{}"}),
        ("notimage", {"jpg": b"this is text, not a photo"}),
        ("captiononly", {"txt": b"a caption", "json": b"{}"}),
        ("both", {"png": jpeg_bytes(7, fmt="PNG"), "jpg": jpeg_bytes(8)}),
    ])
    write_shard(folder / "00001.tar", good_samples(5, 4, "sub/"))
    return sorted(folder.glob("*.tar"))


def test_sample_keys_follow_webdataset():
    assert sample_key("a/b/000042.seg.png") == ("a/b/000042", "seg.png")
    assert sample_key("000042.JPG") == ("000042", "jpg")
    assert sample_key("README") == ("README", "")


def test_listing_picks_the_image_by_extension_order(tmp_path):
    shard, _ = _two_shards(tmp_path)
    listing = list_shard(str(shard), DEFAULT_EXTENSIONS)
    assert "both.jpg" in listing.images and "both.png" not in listing.images
    assert list(listing.no_image) == ["captiononly"]
    png_first = list_shard(str(shard), ("png", "jpg"))
    assert "both.png" in png_first.images
    assert listing.problem is None


def test_expansion_keeps_order_and_names_members(tmp_path):
    shards = _two_shards(tmp_path / "s")
    index = ShardIndex(DEFAULT_EXTENSIONS)
    files = expand_inputs([str(tmp_path / "s" / "*.tar")])
    assert files == [str(s) for s in shards]  # a globbed tar stays one entry until expanded
    rows = expand_shards(files, index)
    assert rows[0] == f"{shards[0]}/000000.jpg"
    assert rows[-1] == f"{shards[1]}/sub/000008.jpg"
    assert len(rows) == 5 + 4 + 4 and f"{shards[0]}/captiononly" in index.errors
    data = index.read(f"{shards[1]}/sub/000006.jpg")
    assert data == jpeg_bytes(6)
    fresh = ShardIndex(DEFAULT_EXTENSIONS)  # a process that never listed the shard
    assert fresh.read(f"{shards[1]}/sub/000006.jpg") == data


def test_truncated_shard_keeps_the_samples_before(tmp_path):
    shard = write_shard(tmp_path / "t.tar", good_samples(0, 6))
    data = shard.read_bytes()
    shard.write_bytes(data[:len(data) // 2 + 100])
    index = ShardIndex(DEFAULT_EXTENSIONS)
    rows = expand_shards([str(shard)], index)
    assert rows[-1] == str(shard) and "cannot read tar shard" in index.errors[str(shard)]
    assert 1 <= len(rows) - 1 < 6


def test_cli_two_shards_to_parquet_every_member_once(use_tiny_manifest, tmp_path):
    shards = _two_shards(tmp_path / "shards")
    out = tmp_path / "scores.parquet"
    result = runner.invoke(app, ["score", str(shards[0]), str(tmp_path / "shards" / "*.tar"),
                                 "-o", str(out), "-j", "2", "-q"])
    assert result.exit_code == 1, result.output  # some members fail
    table = pq.read_table(out)
    assert str(table.schema.field("score").type) == "float"
    assert str(table.schema.field("error").type) == "string"
    rows = table.to_pylist()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 13
    by_path = {r["path"]: r for r in rows}
    s0 = str(shards[0])
    for i in range(5):
        assert by_path[f"{s0}/{i:06d}.jpg"]["error"] is None
        assert 0.0 <= by_path[f"{s0}/{i:06d}.jpg"]["score"] <= 1.0
    assert by_path[f"{s0}/both.jpg"]["error"] is None
    for bad in ("corrupt.jpg", "notimage.jpg", "captiononly"):
        assert by_path[f"{s0}/{bad}"]["score"] is None and by_path[f"{s0}/{bad}"]["error"]
    assert "not an image" in by_path[f"{s0}/notimage.jpg"]["error"]
    assert not (tmp_path / "scores.parquet.part").exists()


def test_tar_member_scores_equal_file_scores(use_tiny_manifest, tmp_path):
    shards = _two_shards(tmp_path / "shards")
    (tmp_path / "files").mkdir()
    for i in range(5, 9):
        (tmp_path / "files" / f"{i:06d}.jpg").write_bytes(jpeg_bytes(i))
    tar = runner.invoke(app, ["score", str(shards[1]), "-j", "0"])
    files = runner.invoke(app, ["score", str(tmp_path / "files"), "-j", "0"])
    assert tar.exit_code == 0 and files.exit_code == 0, tar.output + files.output
    from_tar, from_files = _rows(tar.stdout), _rows(files.stdout)
    assert [r["path"] for r in from_tar] == [f"{shards[1]}/sub/{i:06d}.jpg" for i in range(5, 9)]
    assert [os.path.basename(r["path"]) for r in from_files] == [
        f"{i:06d}.jpg" for i in range(5, 9)]
    assert [r["score"] for r in from_tar] == [r["score"] for r in from_files]
    assert len({r["score"] for r in from_tar}) == 4  # four photos, four scores


def test_shard_option_splits_by_tar_file(use_tiny_manifest, tmp_path):
    shards = _two_shards(tmp_path / "shards")
    seen = []
    for k in range(2):
        result = runner.invoke(app, ["score", str(tmp_path / "shards" / "*.tar"), "--shard",
                                     f"{k}/2", "-j", "0", "-f", "csv"])
        rows = _rows(result.stdout)
        assert result.exit_code == (1 if any(r["error"] for r in rows) else 0), result.output
        assert len({r["path"].split(".tar/")[0] for r in rows}) == 1  # one tar per job
        seen += rows
    assert sorted(r["path"] for r in seen) == sorted(
        expand_shards([str(s) for s in shards], ShardIndex(DEFAULT_EXTENSIONS)))


def test_xmp_refuses_tar_shards(use_tiny_manifest, tmp_path):
    shards = _two_shards(tmp_path / "shards")
    result = runner.invoke(app, ["score", str(shards[1]), "--xmp"])
    assert result.exit_code == 2 and "tar shards" in result.output


def test_parquet_needs_an_output_file(use_tiny_manifest, tmp_path):
    result = runner.invoke(app, ["score", str(tmp_path), "-f", "parquet"])
    assert result.exit_code == 2 and "--output" in result.output


def test_gpu_decode_choices(use_tiny_manifest, tmp_path):
    result = runner.invoke(app, ["score", str(tmp_path), "--gpu-decode", "maybe"])
    assert result.exit_code == 2 and "is not one of 'auto', 'on', 'off'" in result.output
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(1))
    result = runner.invoke(app, ["score", str(tmp_path), "--gpu-decode", "on", "-d", "cpu"])
    assert result.exit_code == 2 and "CUDA" in result.output


def _score_command(*args):
    return [sys.executable, "-m", "grmpiqa", "score", *args]


@pytest.mark.slow
def test_kill_9_then_resume_parquet(use_tiny_manifest, tmp_path):
    """A run killed outright keeps its finished parts; --resume scores only the rest."""
    shards = tmp_path / "shards"
    shards.mkdir()
    for s in range(4):
        write_shard(shards / f"{s:05d}.tar", good_samples(s * 40, 40))
    out = tmp_path / "scores.parquet"
    env = {**os.environ, "GRMPIQA_PARQUET_PART_ROWS": "16"}
    proc = subprocess.Popen(_score_command(str(shards / "*.tar"), "-o", str(out), "-j", "0",
                                           "-b", "4", "-q"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = tmp_path / "scores.parquet.part"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("*.parquet"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and len(list(parts.glob("*.parquet"))) >= 2
    kept = {r["path"] for p in parts.glob("*.parquet") for r in pq.read_table(p).to_pylist()}
    assert 32 <= len(kept) < 160
    result = subprocess.run(_score_command(str(shards / "*.tar"), "-o", str(out), "-j", "0",
                                           "--resume", "-q"), env=env, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    rows = pq.read_table(out).to_pylist()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 160
    assert set(paths[:len(kept)]) == kept  # the kept rows come first
    assert all(r["error"] is None for r in rows) and not parts.exists()


def test_score_paths_expands_shards_and_reads_member_paths(tiny_model, tmp_path):
    from grmpiqa.scoring.engine import score_paths

    shards = _two_shards(tmp_path / "shards")
    rows = list(score_paths([str(shards[1])], tiny_model, workers=2, batch_size=3))
    assert [r.path for r in rows] == [f"{shards[1]}/sub/{i:06d}.jpg" for i in range(5, 9)]
    member = rows[2].path  # a member path alone, as a Ray batch or a stdin list gives it
    again = list(score_paths([member, f"{shards[1]}/sub/missing.jpg"], tiny_model, workers=0))
    assert again[0].score == pytest.approx(rows[2].score, abs=1e-6)  # other batch size
    assert again[1].error and "no image member" in again[1].error
    unexpanded = list(score_paths([str(shards[1])], tiny_model, workers=0, expand=False))
    assert "expand it into its samples" in unexpanded[0].error


@pytest.mark.parametrize("fmt", ["ustar", "gnu", "pax"])
def test_quick_header_scan_agrees_with_tarfile(tmp_path, fmt):
    import tarfile

    from grmpiqa.io.shards import _scan, _Unusual, _with_tarfile

    path = tmp_path / f"{fmt}.tar"
    long_dir = "d" * 120 + "/sub"
    form = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT,
            "pax": tarfile.PAX_FORMAT}[fmt]
    with tarfile.open(path, "w", format=form) as tar:
        for i, name in enumerate(["a.jpg", f"{long_dir}/b.jpg", "c/", "c/d.txt", "e.jpg"]):
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            data = jpeg_bytes(i)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    expected = list(_with_tarfile(str(path)))
    assert [e[0] for e in expected] == ["a.jpg", f"{long_dir}/b.jpg", "c/d.txt", "e.jpg"]
    try:
        assert list(_scan(str(path))) == expected
    except _Unusual:
        assert fmt != "ustar"  # GNU long names and pax headers are left to tarfile
    listing = list_shard(str(path), DEFAULT_EXTENSIONS)
    assert list(listing.images) == ["a.jpg", f"{long_dir}/b.jpg", "e.jpg"]


def test_a_shard_with_a_bad_header_checksum_is_reported(tmp_path):
    shard = write_shard(tmp_path / "t.tar", good_samples(0, 3))
    data = bytearray(shard.read_bytes())
    second_header = 512 + -(-len(jpeg_bytes(0)) // 512) * 512
    data[second_header + 10] ^= 0xFF
    shard.write_bytes(bytes(data))
    listing = list_shard(str(shard), DEFAULT_EXTENSIONS)
    assert listing.problem and "cannot read tar shard" in listing.problem
