import pytest
from PIL import Image

from grmpiqa.config import LabelScale
from grmpiqa.training.labels import (
    LabelsError,
    Problem,
    label_scale,
    normalise_scores,
    read_labels,
    require_usable,
)


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / name, "PNG")


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_columns_by_name_relative_to_the_csv_folder(tmp_path):
    _images(tmp_path, ["a.png", "b.png"])
    csv = _write(tmp_path / "labels.csv", "Image,MOS,std\na.png,3.5,1\nb.png,4,1\n")
    table = read_labels(csv)
    assert (table.image_column, table.score_column) == ("Image", "MOS")
    assert table.paths == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert table.scores == [3.5, 4.0] and [r.line for r in table.rows] == [2, 3]
    assert table.problems == ()


def test_bom_crlf_semicolons_decimal_commas_quotes_and_blank_lines(tmp_path):
    _images(tmp_path / "img", ["x, y.png", "z.png"])
    text = ('\ufeffpath;rating\r\n\r\n"img/x, y.png";3,25\r\n;\r\nimg/z.png; 7 \r\n')
    table = read_labels(_write(tmp_path / "l.csv", text))
    assert [r.image for r in table.rows] == ["img/x, y.png", "img/z.png"]
    assert table.scores == [3.25, 7.0]
    assert [r.line for r in table.rows] == [3, 5]


def test_tabs_utf16_and_a_quoted_newline_keep_line_numbers(tmp_path):
    _images(tmp_path, ["a.png", "b.png"])
    text = 'file\tscore\n"a.png"\t1\n\nb.png\t"2"\n'
    table = read_labels(_write(tmp_path / "l.tsv", text, "utf-16"))
    assert table.scores == [1.0, 2.0] and [r.line for r in table.rows] == [2, 4]
    text = 'file,score,note\na.png,1,"two\nlines"\nb.png,x,\n'
    table = read_labels(_write(tmp_path / "n.csv", text))
    assert [str(p) for p in table.problems] == ["line 4: score 'x' is not a number"]


def test_explicit_columns_root_and_lower_is_better(tmp_path):
    _images(tmp_path / "photos", ["a.png", "b.png"])
    (tmp_path / "meta").mkdir()
    csv = _write(tmp_path / "meta" / "l.csv", "name,dmos,mos\na.png,10,1\nb.png,30,2\n")
    with pytest.raises(LabelsError, match=r"no image column.*--image-column"):
        read_labels(csv)
    table = read_labels(csv, image_column="NAME", score_column="dmos",
                        root=tmp_path / "photos", lower_is_better=True)
    assert table.scores == [10.0, 30.0] and not table.higher_is_better
    assert table.targets() == [1.0, 0.0]  # the lowest DMOS is the best photo
    assert table.scale() == LabelScale(10.0, 30.0, higher_is_better=False)
    with pytest.raises(LabelsError, match="no column 'nope'"):
        read_labels(csv, image_column="nope")


def test_column_problems_stop_reading_at_once(tmp_path):
    csv = _write(tmp_path / "l.csv", "image,score,mos\na.png,1,2\n")
    with pytest.raises(LabelsError, match="'score' and 'mos' could both be the score"):
        read_labels(csv)
    csv = _write(tmp_path / "d.csv", "image,dmos\na.png,1\n")
    with pytest.raises(LabelsError, match="--score-column dmos --lower-is-better"):
        read_labels(csv)
    with pytest.raises(LabelsError, match="no such file"):
        read_labels(tmp_path / "missing.csv")
    with pytest.raises(LabelsError, match="empty"):
        read_labels(_write(tmp_path / "e.csv", "\n\n"))
    bad = tmp_path / "latin.csv"
    bad.write_bytes("image,score\ncaf\xe9.png,1\n".encode("latin-1"))
    with pytest.raises(LabelsError, match="line 2: not UTF-8"):
        read_labels(bad)


def test_every_row_problem_is_reported_with_its_line(tmp_path):
    _images(tmp_path, [f"{i}.png" for i in range(10)])
    (tmp_path / "folder.png").mkdir()
    text = ("image,score\n"
            "0.png,1\n"       # 2 fine
            "1.png,\n"        # 3 no score
            "2.png,abc\n"     # 4 not a number
            "3.png,nan\n"     # 5 not finite
            ",4\n"            # 6 no image
            "missing.png,5\n"  # 7 missing
            "./0.png,6\n"     # 8 duplicate of line 2
            "folder.png,7\n"  # 9 not a file
            "4.png,8\n")      # 10 fine
    table = read_labels(_write(tmp_path / "l.csv", text))
    assert [r.line for r in table.rows] == [2, 10]
    messages = {p.line: p.message for p in table.problems}
    assert messages[3] == "no score"
    assert messages[4] == "score 'abc' is not a number"
    assert messages[5] == "score 'nan' is not a finite number"
    assert messages[6] == "no image path"
    assert messages[7].startswith("image 'missing.png' is missing (")
    assert messages[8] == "image './0.png' is listed twice (also on line 2)"
    assert messages[9].startswith("image 'folder.png' is not a file")
    with pytest.raises(LabelsError) as caught:
        require_usable(table)
    text = str(caught.value)
    assert text.splitlines()[0].endswith("8 problems (fix them and run again)")
    assert "line 3: no score" in text and "only 2 usable rows; adapt needs at least 8" in text


def test_too_few_rows_all_equal_and_late_problems(tmp_path):
    names = [f"{i}.png" for i in range(9)]
    _images(tmp_path, names)
    equal = _write(tmp_path / "eq.csv", "image,score\n" + "".join(f"{n},5\n" for n in names))
    with pytest.raises(LabelsError, match="all 9 scores are equal"):
        require_usable(read_labels(equal))
    varied = _write(tmp_path / "v.csv",
                    "image,score\n" + "".join(f"{n},{i}\n" for i, n in enumerate(names)))
    table = read_labels(varied)
    assert require_usable(table) is table
    with pytest.raises(LabelsError) as caught:
        require_usable(table, [Problem("image '3.png' cannot be used: broken", 5),
                               Problem("image '4.png' cannot be used: broken", 6)])
    assert [p.line for p in caught.value.problems] == [5, 6, None]
    assert "only 7 usable rows" in str(caught.value)


def test_a_wrong_root_says_so(tmp_path):
    csv = _write(tmp_path / "l.csv", "image,score\na.png,1\nb.png,2\n")
    table = read_labels(csv, root=tmp_path / "elsewhere")
    assert str(table.problems[-1]).startswith("none of the 2 images exist under")
    # also without checking each file: nothing should load a model to find this out
    (problem,) = read_labels(csv, check_files=False).problems
    assert problem.param == "root" and "are the paths relative to another folder" in \
        problem.message
    (tmp_path / "a.png").write_bytes(b"x")  # one of them there: each file is the caller's
    assert read_labels(csv, check_files=False).problems == ()


def test_normalisation_and_direction():
    scale = label_scale([2.0, 4.0, 10.0])
    assert normalise_scores([2.0, 4.0, 10.0], scale) == [0.0, 0.25, 1.0]
    dmos = label_scale([2.0, 4.0, 10.0], higher_is_better=False)
    assert normalise_scores([2.0, 4.0, 10.0], dmos) == [1.0, 0.75, 0.0]
    for s in (scale, dmos):  # score_label inverts the normalisation
        for value in (2.0, 4.0, 10.0):
            assert s.to_label(normalise_scores([value], s)[0]) == pytest.approx(value)
