"""Culling: photo groups, the plan, never overwriting, the log, and the command end to end."""

import csv
import io
import json
import os

import pytest
from PIL import Image
from typer.testing import CliRunner

from grmpiqa.cli.app import app
from grmpiqa.errors import ConfigError
from grmpiqa.io.output import escape_name, unescape_name
from grmpiqa.workflow.cull import (
    CullAction,
    CullPlanner,
    PhotoGroup,
    find_groups,
    perform,
    write_log,
)
from photos import texture, write_dng

runner = CliRunner()


def _photo(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(texture(seed)).save(path)
    return path


def _tree(root):
    """Every file under ``root`` with its bytes: the state a dry run must not change."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _shoot(root):
    """A RAW+JPEG pair with both kinds of sidecar, a lone JPEG, a nested one, odd names."""
    _photo(root / "IMG_1.JPG", 1)
    (root / "IMG_1.NEF").write_bytes(b"raw bytes, never decoded")
    (root / "IMG_1.xmp").write_text("<x/>")
    (root / "IMG_1.NEF.xmp").write_text("<y/>")
    _photo(root / "IMG_2.jpg", 2)
    _photo(root / "day 2" / "IMG_3.png", 3)
    _photo(root / "day 2" / os.fsdecode(b"caf\xe9\nname.jpg"), 4)
    (root / "orphan.xmp").write_text("<z/>")
    (root / "notes.txt").write_text("kept")
    return root


def test_groups_keep_pairs_and_sidecars_together(tmp_path):
    root = _shoot(tmp_path)
    groups = {g.stem: g for g in find_groups(str(root))}
    assert set(groups) == {"IMG_1", "IMG_2", "IMG_3", os.fsdecode(b"caf\xe9\nname")}
    pair = groups["IMG_1"]
    assert [os.path.basename(p) for p in pair.photos] == ["IMG_1.JPG", "IMG_1.NEF"]
    assert [os.path.basename(p) for p in pair.sidecars] == ["IMG_1.NEF.xmp", "IMG_1.xmp"]
    assert pair.scored.endswith("IMG_1.JPG")  # the rendered image, not the RAW
    (tmp_path / "solo").mkdir()
    raw_only = write_dng(tmp_path / "solo" / "RAW_9.dng", texture(9, (8, 6)))
    (tmp_path / "solo" / "PXL_1.HEIC").write_bytes(b"heic")  # phones keep HEIC + JPG: the JPG
    _photo(tmp_path / "solo" / "PXL_1.jpg")
    (tmp_path / "solo" / "PXL_2.heic").write_bytes(b"heic")  # HEIC before RAW
    (tmp_path / "solo" / "PXL_2.ARW").write_bytes(b"raw")
    assert [os.path.basename(g.scored) for g in find_groups(str(tmp_path / "solo"))] == [
        "PXL_1.jpg", "PXL_2.heic", "RAW_9.dng"]
    assert str(raw_only) == find_groups(str(tmp_path / "solo"))[-1].scored


def test_plan_keeps_structure_and_suffixes_a_whole_group(tmp_path):
    root = _shoot(tmp_path / "shoot")
    dest = tmp_path / "rejects"
    _photo(dest / "IMG_1.JPG")  # taken: the whole group becomes IMG_1-1.*
    (dest / "IMG_1-1.xmp").write_text("also taken")  # so IMG_1-2.*
    planner = CullPlanner(str(root), str(dest), mode="move", below=0.5)
    groups = {g.stem: g for g in find_groups(str(root))}
    actions = planner.plan(groups["IMG_1"], 0.2)
    assert {os.path.basename(a.destination) for a in actions} == {
        "IMG_1-2.JPG", "IMG_1-2.NEF", "IMG_1-2.NEF.xmp", "IMG_1-2.xmp"}
    assert all(a.action == "move" and a.score == 0.2 for a in actions)
    nested = planner.plan(groups["IMG_3"], 0.1)
    assert nested[0].destination == str(dest / "day 2" / "IMG_3.png")
    assert planner.plan(groups["IMG_2"], 0.5) == []  # not below: stays
    assert planner.plan(groups["IMG_2"], None, "cannot decode") == [
        CullAction("skip", groups["IMG_2"].scored, "", None, "cannot decode")]
    assert planner.culled == 2
    # names handed out earlier in the same run count as taken
    twin = PhotoGroup(str(root), "IMG_3", (str(root / "IMG_3.png"),), ())
    other = CullPlanner(str(root), str(dest), mode="copy", below=0.5)
    other.taken.add(str(dest / "IMG_3.png"))
    assert other.plan(twin, 0.0)[0].destination == str(dest / "IMG_3-1.png")


def test_files_already_copied_or_linked_are_already_there(tmp_path):
    import shutil

    root = _shoot(tmp_path / "shoot")
    groups = {g.stem: g for g in find_groups(str(root))}
    pair, lone = groups["IMG_1"], groups["IMG_2"]
    dest = tmp_path / "review"
    dest.mkdir()
    for path in pair.files:
        shutil.copy2(path, dest)
    shutil.copy2(lone.photos[0], dest)

    def plan(mode, group, directory=dest):
        planner = CullPlanner(str(root), str(directory), mode=mode, below=0.5)
        return planner, [(a.action, os.path.basename(a.destination))
                         for a in planner.plan(group, 0.1)]

    planner, actions = plan("copy", pair)
    assert actions == [("already-there", os.path.basename(p)) for p in pair.files]
    assert planner.culled == planner.already_there == 1
    # moves never: the original is not deleted because a copy of it exists
    assert {name for _, name in plan("move", lone)[1]} == {"IMG_2-1.jpg"}
    # part of the group there (an interrupted run): the rest joins it under the same name
    (dest / "IMG_1.NEF").unlink()
    planner, actions = plan("copy", pair)
    assert ("copy", "IMG_1.NEF") in actions and ("already-there", "IMG_1.JPG") in actions
    assert planner.already_there == 0
    # one file differs: the name belongs to something else, the whole group moves on
    (dest / "IMG_1.NEF").write_bytes(b"another camera's raw")
    assert {name for _, name in plan("copy", pair)[1]} == {
        "IMG_1-1.JPG", "IMG_1-1.NEF", "IMG_1-1.NEF.xmp", "IMG_1-1.xmp"}
    # links: a link to the same original is already there, to another is a clash
    links = tmp_path / "links"
    links.mkdir()
    os.symlink(os.path.abspath(lone.photos[0]), links / "IMG_2.jpg")
    assert plan("link", lone, links)[1] == [("already-there", "IMG_2.jpg")]
    os.unlink(links / "IMG_2.jpg")
    os.symlink(os.path.abspath(pair.photos[0]), links / "IMG_2.jpg")
    assert plan("link", lone, links)[1] == [("link", "IMG_2-1.jpg")]
    assert perform(CullAction("already-there", lone.photos[0], str(dest / "IMG_2.jpg"),
                              0.1)).error is None  # nothing to do, nothing done


@pytest.mark.parametrize("inside", [".", "sub", "sub/deeper"])
def test_destination_inside_the_source_is_refused(tmp_path, inside):
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match="inside the source folder"):
        CullPlanner(str(tmp_path), str(tmp_path / inside), mode="move", below=0.5)
    os.symlink(tmp_path / "sub", tmp_path.parent / f"{tmp_path.name}-link-{inside[-1]}")
    with pytest.raises(ConfigError, match="inside the source folder"):  # also through a link
        CullPlanner(str(tmp_path), str(tmp_path.parent / f"{tmp_path.name}-link-{inside[-1]}"),
                    mode="move", below=0.5)


def test_perform_moves_copies_links_and_never_overwrites(tmp_path):
    src = _photo(tmp_path / "a.jpg")
    data = src.read_bytes()
    dest = tmp_path / "out"
    copied = perform(CullAction("copy", str(src), str(dest / "c" / "a.jpg"), 0.1))
    assert copied.error is None and (dest / "c" / "a.jpg").read_bytes() == data
    linked = perform(CullAction("link", str(src), str(dest / "l" / "a.jpg"), 0.1))
    assert linked.error is None and os.readlink(dest / "l" / "a.jpg") == str(src)
    (dest / "m").mkdir()
    (dest / "m" / "a.jpg").write_bytes(b"someone else's")  # appeared after planning
    for mode in ("move", "copy", "link"):
        clash = perform(CullAction(mode, str(src), str(dest / "m" / "a.jpg"), 0.1))
        assert clash.error == "destination appeared meanwhile; nothing overwritten"
    assert (dest / "m" / "a.jpg").read_bytes() == b"someone else's" and src.exists()
    moved = perform(CullAction("move", str(src), str(dest / "n" / "a.jpg"), 0.1))
    assert moved.error is None and not src.exists()
    assert (dest / "n" / "a.jpg").read_bytes() == data
    missing = perform(CullAction("move", str(src), str(dest / "n" / "b.jpg"), 0.1))
    assert "No such file" in missing.error
    assert not [p for p in dest.rglob("*") if "tmp" in p.name]


def test_log_is_csv_for_any_name(tmp_path):
    odd = os.fsdecode(b"a,b\n\"c\xff.jpg")
    actions = [CullAction("move", odd, "/x/" + odd, 0.123456789),
               CullAction("skip", "b.jpg", "", None, "cannot decode")]
    log = tmp_path / "logs" / "cull.csv"
    write_log(str(log), actions)
    rows = list(csv.DictReader(io.StringIO(log.read_bytes().decode("utf-8"), newline="")))
    assert rows[0] == {"action": "move", "source": escape_name(odd),
                       "destination": "/x/" + escape_name(odd), "score": "0.123457", "error": ""}
    assert unescape_name(rows[0]["source"]) == odd
    assert rows[1]["error"] == "cannot decode" and rows[1]["score"] == ""
    assert os.listdir(log.parent) == ["cull.csv"]
    mask = os.umask(0)
    os.umask(mask)
    assert log.stat().st_mode & 0o777 == 0o666 & ~mask  # not a temporary file's 0o600


def _scores(root, tiny_model):
    from grmpiqa.scoring.engine import score_paths

    groups = find_groups(str(root))
    results = score_paths([g.scored for g in groups], tiny_model, workers=0, expand=False)
    return {g.stem: r.score for g, r in zip(groups, results, strict=True)}


def test_cull_command_dry_run_then_move(use_tiny_manifest, tiny_model, tmp_path):
    root = _shoot(tmp_path / "shoot")
    dest = tmp_path / "rejects"
    scores = _scores(root, tiny_model)
    below = sorted(scores.values())[2]  # the two worst photos go
    worst = {stem for stem, s in scores.items() if s < below}
    before = _tree(root)
    args = ["cull", str(root), "--below", repr(below), "--move-to", str(dest), "-j", "0"]

    plan = runner.invoke(app, [*args, "--dry-run"])
    assert plan.exit_code == 0, plan.output
    assert _tree(root) == before and not dest.exists()  # nothing touched, no log
    planned = [{**r, "source": unescape_name(r["source"]),
                "destination": unescape_name(r["destination"])} for r in csv.DictReader(
        io.StringIO(plan.stdout_bytes.decode("utf-8"), newline=""))]
    assert {os.path.splitext(os.path.basename(r["source"]))[0].split(".")[0] for r in planned} \
        == worst
    assert "dry run, nothing was changed" in plan.stderr

    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert done.stdout_bytes == plan.stdout_bytes  # the plan is what happened
    for row in planned:
        assert not os.path.lexists(row["source"])
        relative = os.path.relpath(row["source"], root)
        assert row["destination"] == str(dest / relative)
        with open(row["destination"], "rb") as moved:
            assert before[relative] == moved.read()
    (log,) = dest.glob("grmpiqa-cull-*.csv")
    assert log.read_bytes() == done.stdout_bytes
    assert f"log: {log}" in done.stderr
    left = {os.path.relpath(p, root) for p in map(str, root.rglob("*")) if os.path.isfile(p)}
    assert "notes.txt" in left and "orphan.xmp" in left


def test_cull_command_copy_pair_and_refusals(use_tiny_manifest, tiny_model, tmp_path):
    root = _shoot(tmp_path / "shoot")
    dest = tmp_path / "review"
    before = _tree(root)
    done = runner.invoke(app, ["cull", str(root), "--below", "1", "--copy-to", str(dest),
                               "-j", "0", "--log", str(tmp_path / "log.csv"), "-q",
                               "--precision", "fp32", "--batch-size", "2"])
    assert done.exit_code == 0, done.output
    assert _tree(root) == before  # originals stay, unchanged
    assert sorted(p.name for p in dest.iterdir() if p.is_file()) == [
        "IMG_1.JPG", "IMG_1.NEF", "IMG_1.NEF.xmp", "IMG_1.xmp", "IMG_2.jpg"]
    _check_copies(root, dest, before, csv.DictReader(io.StringIO(
        done.stdout_bytes.decode("utf-8"), newline="")))
    assert (tmp_path / "log.csv").read_bytes() == done.stdout_bytes
    copied = _tree(dest)
    (root / "IMG_1.xmp").write_text("<edited/>")  # so IMG_1 is no longer what was copied
    for dry_run in (["--dry-run"], []):
        again = runner.invoke(app, ["cull", str(root), "--below", "1", "--copy-to",
                                    str(dest), "-j", "0", "-f", "jsonl", "-q", *dry_run])
        assert again.exit_code == 0
        rows = {os.path.basename(r["destination"]): r["action"] for r in map(
            json.loads, again.stdout.splitlines())}
        assert rows["IMG_2.jpg"] == "already-there"  # the same bytes: no IMG_2-1.jpg
        assert {rows[f"IMG_1-1{tail}"] for tail in (".JPG", ".NEF", ".xmp")} == {"copy"}
    assert not set(copied) - set(_tree(dest))  # nothing overwritten
    assert sorted(p.name for p in dest.iterdir() if p.name.startswith("IMG_2")) == [
        "IMG_2.jpg"]

    inside = runner.invoke(app, ["cull", str(root), "--below", "1", "--move-to",
                                 str(root / "rejects")])
    assert inside.exit_code == 2 and "inside the source folder" in inside.stderr
    assert not (root / "rejects").exists()
    for bad in ([], ["--move-to", "a", "--copy-to", "b"]):
        result = runner.invoke(app, ["cull", str(root), "--below", "0.5", *bad])
        assert result.exit_code == 2 and "exactly one of" in result.output
    broken = _photo(tmp_path / "b" / "ok.jpg").parent
    (broken / "bad.jpg").write_bytes(b"junk")
    result = runner.invoke(app, ["cull", str(broken), "--below", "1", "--link-to",
                                 str(tmp_path / "links"), "-j", "0"])
    assert result.exit_code == 1 and "bad.jpg: skip:" in result.stderr
    assert os.path.islink(tmp_path / "links" / "ok.jpg")
    assert (broken / "bad.jpg").exists()


def test_cull_help_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom grmpiqa.cli.app import main\n"
            "try:\n    main(['cull', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('IMPORTED', [m for m in ('torch', 'numpy', 'PIL') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "--move-to" in out.stdout and "IMPORTED []" in out.stdout, out.stderr


def test_library_cull_checks_first_and_acts_as_it_is_iterated(use_tiny_manifest, tiny_model,
                                                               tmp_path):
    import grmpiqa

    root = _shoot(tmp_path / "shoot")
    before = _tree(root)
    with pytest.raises(ConfigError):
        grmpiqa.cull(str(root), str(root / "rejects"), below=1.0, mode="move")
    run = grmpiqa.cull(str(root), str(tmp_path / "rejects"), below=1.0, mode="copy",
                       model=tiny_model, workers=0)
    assert len(run.groups) == 4 and _tree(root) == before  # four photos, nothing done yet
    assert not (tmp_path / "rejects").exists()
    advanced = []
    actions = list(run.actions(progress=type("P", (), {
        "advance": lambda self, n=1: advanced.append(n), "message": lambda self, t: None})()))
    assert sum(advanced) == len(run.groups)
    assert run.culled == len(run.groups)  # below=1.0: every scored photo goes
    assert all(a.action == "copy" and a.error is None for a in actions), actions
    assert _tree(root) == before  # copies leave the originals
    _check_copies(root, tmp_path / "rejects", before,
                  [{"source": a.source, "destination": a.destination} for a in actions])


def _check_copies(root, dest, before, rows):
    """Every file of every photo group under ``root`` copied once, byte for byte, to its
    place under ``dest`` (logged names escaped), and nothing else there but a log."""
    rows = [{k: unescape_name(r[k]) for k in ("source", "destination")} for r in rows]
    assert sorted(os.path.relpath(r["source"], root) for r in rows) == sorted(
        name for name in before if before[name] is not None
        and name not in ("notes.txt", "orphan.xmp"))
    for row in rows:
        relative = os.path.relpath(row["source"], root)
        assert row["destination"] == str(dest / relative)
        with open(row["destination"], "rb") as copy:
            assert copy.read() == before[relative], relative
    there = {str(p) for p in dest.rglob("*") if p.is_file()}
    assert {p for p in there if not os.path.basename(p).startswith("grmpiqa-cull-")} == {
        r["destination"] for r in rows}
