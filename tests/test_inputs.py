import io
import os

from grmpiqa.io.inputs import expand_inputs, normalise_extensions, read_path_list
from photos import write_photo_tree


def test_folders_expand_recursively_in_sorted_order_skipping_hidden(tmp_path):
    made = write_photo_tree(tmp_path)
    found = expand_inputs([str(tmp_path)])
    top_level = sorted(str(p) for p in made if p.parent == tmp_path)
    assert found[: len(top_level)] == top_level  # files of a folder before its subfolders
    assert sorted(found) == sorted(str(p) for p in made)
    assert not any("/." in f for f in found)
    assert expand_inputs([str(tmp_path)]) == found  # deterministic


def test_no_recursive_and_extensions(tmp_path):
    write_photo_tree(tmp_path)
    flat = expand_inputs([str(tmp_path)], recursive=False)
    assert all(os.path.dirname(f) == str(tmp_path) for f in flat)
    only_png = expand_inputs([str(tmp_path)], extensions=["PNG"])
    assert only_png and all(f.endswith(".png") for f in only_png)
    assert normalise_extensions([".JPG", "png,tif"]) == ("jpg", "png", "tif")


def test_globs_files_and_missing_paths(tmp_path):
    write_photo_tree(tmp_path)
    pattern = str(tmp_path / "**" / "*.png")
    matches = expand_inputs([pattern])
    assert len(matches) == 4 and matches == sorted(matches)
    text = tmp_path / "notes.txt"
    assert expand_inputs([str(text)]) == [str(text)]  # named explicitly: kept
    missing = str(tmp_path / "nope*.jpg")
    assert expand_inputs([missing]) == [missing]  # reported later as an error row
    assert expand_inputs([str(text), str(text)]) == [str(text)]


def test_literal_name_with_glob_characters(tmp_path):
    odd = tmp_path / "photo[1].jpg"
    odd.write_bytes(b"x")
    assert expand_inputs([str(odd)]) == [str(odd)]


def test_symlink_loops_do_not_hang_the_walk(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.jpg").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    found = expand_inputs([str(tmp_path)])
    assert found == [str(tmp_path / "d" / "x.jpg")]


def test_stdin_lists():
    assert read_path_list(io.BytesIO(b"a.jpg\r\nb c.jpg\n\n")) == ["a.jpg", "b c.jpg"]
    raw = b"new\nline.jpg\0caf\xc3\xa9.jpg\0bad\xff.jpg\0"
    paths = read_path_list(io.BytesIO(raw), null_separated=True)
    assert paths[0] == "new\nline.jpg" and paths[1] == "café.jpg"
    assert os.fsencode(paths[2]) == b"bad\xff.jpg"
