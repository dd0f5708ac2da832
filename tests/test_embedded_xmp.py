"""XMP inside files, read from the header; sidecars found in any case."""

import pytest

from grmpiqa.errors import ImageError
from grmpiqa.io.embedded_xmp import embedded_xmp, tiff_xmp
from grmpiqa.workflow.ratings import SidecarIndex, rating_of
from xmp_photos import packet, tiny_tiff


@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_tag_700_in_either_byte_order(tmp_path, order):
    xmp = packet(3)
    path = tmp_path / "x.dng"
    path.write_bytes(tiny_tiff(order, [(256, 4, b"\1\0\0\0"), (700, 1, xmp)]))
    with path.open("rb") as handle:
        assert tiff_xmp(handle) == xmp
    assert embedded_xmp(str(path)) == xmp
    path.write_bytes(tiny_tiff(order, [(256, 4, b"\1\0\0\0")]))
    assert embedded_xmp(str(path)) is None
    path.write_bytes(tiny_tiff(order, [(700, 7, b"ab")]))
    assert embedded_xmp(str(path)) == b"ab"  # short values live in the entry itself


def test_broken_tiffs_and_non_images_are_errors_not_crashes(tmp_path):
    path = tmp_path / "x.tif"
    path.write_bytes(tiny_tiff("<", [(700, 1, packet(3))])[:30])
    with pytest.raises(ImageError, match="truncated TIFF directory"):
        embedded_xmp(str(path))
    path.write_bytes(tiny_tiff("<", [(700, 3, b"\1\0")]))
    with pytest.raises(ImageError, match="TIFF tag 700"):
        embedded_xmp(str(path))
    (tmp_path / "t.jpg").write_text("not a photo")
    with pytest.raises(ImageError, match="not an image"):
        embedded_xmp(str(tmp_path / "t.jpg"))
    (tmp_path / "raw.cr3").write_bytes(b"\0\0\0\x18ftypcrx ")
    assert embedded_xmp(str(tmp_path / "raw.cr3")) is None  # CR3: sidecars only
    assert "no such file" in rating_of(str(tmp_path / "gone.jpg")).error


def test_sidecars_in_any_case_file_specific_first(tmp_path):
    for name in ("a.JPG", "a.Xmp", "a.XMP", "a.JPG.xMp", "b.jpg", "b.XMP", "c.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "a.xmp").write_bytes(b"x")
    index = SidecarIndex()
    assert [p.rpartition("/")[2] for p in index.sidecars(str(tmp_path / "a.JPG"))] == [
        "a.JPG.xMp", "a.xmp"]
    assert [p.rpartition("/")[2] for p in index.sidecars(str(tmp_path / "b.jpg"))] == ["b.XMP"]
    assert index.sidecars(str(tmp_path / "c.jpg")) == []
    (tmp_path / "a.JPG.xMp").write_bytes(b"  \n")  # an empty sidecar has no rating: go on
    (tmp_path / "a.xmp").write_bytes(packet(4))
    assert rating_of(str(tmp_path / "a.JPG"), index).rating == 4
