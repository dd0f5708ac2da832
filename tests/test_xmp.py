import os
import shutil
import subprocess
from xml.dom import minidom

import pytest

from grmpiqa.errors import XmpError
from grmpiqa.workflow.xmp import (
    RDF_NS,
    XMP_NS,
    parse_thresholds,
    rating_for,
    set_rating,
    sidecar_paths,
    write_rating,
)
from grmpiqa.workflow.xmp_marks import SidecarRater
from xmp_photos import LIGHTROOM_PACKET as LIGHTROOM

DARKTABLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/"
    darktable:xmp_version="5">
   <xap:Rating xmlns:xap="http://ns.adobe.com/xap/1.0/">1</xap:Rating>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>"""


def _ratings(document: bytes) -> list[str]:
    dom = minidom.parseString(document)
    found = [d.getAttributeNS(XMP_NS, "Rating")
             for d in dom.getElementsByTagNameNS(RDF_NS, "Description")
             if d.hasAttributeNS(XMP_NS, "Rating")]
    found += [e.firstChild.data for e in dom.getElementsByTagNameNS(XMP_NS, "Rating")]
    return found


def test_rating_thresholds():
    assert [rating_for(s) for s in (0.0, 0.19, 0.2, 0.39, 0.4, 0.6, 0.79, 0.8, 1.0)] == [
        1, 1, 2, 2, 3, 4, 4, 5, 5]
    assert [rating_for(s, (0.5, 0.6, 0.7, 0.9)) for s in (0.49, 0.5, 0.95)] == [1, 2, 5]
    assert parse_thresholds("0.1, 0.3,0.5,0.7") == (0.1, 0.3, 0.5, 0.7)
    for bad in ("0.1,0.2,0.3", "0.4,0.3,0.5,0.6", "0.1,0.2,0.3,1.5", "a,b,c,d", "0.1,0.1,0.2,0.3"):
        with pytest.raises(ValueError):
            parse_thresholds(bad)


def _without_rating(document: bytes) -> str:
    """The whole document but its xmp:Rating attribute: every other attribute, element,
    comment and prefix."""
    dom = minidom.parseString(document)
    dom.getElementsByTagNameNS(RDF_NS, "Description")[0].removeAttributeNS(XMP_NS, "Rating")
    return dom.toxml()


def test_update_keeps_everything_else():
    updated = set_rating(LIGHTROOM, 5)
    assert _ratings(updated) == ["5"]
    assert _without_rating(updated) == _without_rating(LIGHTROOM)
    assert updated.startswith(b'<?xpacket begin="\xef\xbb\xbf"') and b"caf\xc3\xa9" in updated
    assert updated.rstrip().endswith(b'<?xpacket end="w"?>')


def test_element_form_other_prefix_and_declaration_kept():
    updated = set_rating(DARKTABLE, 4)
    assert _ratings(updated) == ["4"]
    assert b"<xap:Rating" in updated and b'darktable:xmp_version="5"' in updated
    assert updated.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_rating_added_where_there_was_none():
    plain = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="' + RDF_NS.encode()
             + b'"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
             b' dc:format="image/jpeg"/></rdf:RDF></x:xmpmeta>')
    updated = set_rating(plain, 3)
    assert _ratings(updated) == ["3"] and b'dc:format="image/jpeg"' in updated
    bare = b'<r:RDF xmlns:r="' + RDF_NS.encode() + b'"/>'
    assert _ratings(set_rating(bare, 2)) == ["2"]  # a new rdf:Description, with their prefix
    clash = (b'<rdf:RDF xmlns:rdf="' + RDF_NS.encode() + b'" xmlns:xmp="urn:other">'
             b'<rdf:Description rdf:about=""/></rdf:RDF>')
    updated = set_rating(clash, 1)
    assert _ratings(updated) == ["1"] and b'xmlns:xmp="urn:other"' in updated
    empty = b'<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="some tool"/>'
    updated = set_rating(empty, 5)
    assert _ratings(updated) == ["5"] and b'x:xmptk="some tool"' in updated


@pytest.mark.parametrize(("document", "message"), [
    (b"<x:xmpmeta", "malformed XML"),
    (b"<a><b></a>", "malformed XML"),
    (b"<photo/>", "no rdf:RDF"),
    (b'<!DOCTYPE r [<!ENTITY e "x">]><r/>', "DOCTYPE"),
])
def test_malformed_sidecars_are_refused(document, message):
    with pytest.raises(XmpError, match=message):
        set_rating(document, 3)


def test_write_rating_creates_updates_and_never_breaks_a_file(tmp_path):
    new = tmp_path / "IMG_1.xmp"
    write_rating(str(new), 4)
    assert _ratings(new.read_bytes()) == ["4"]
    assert new.stat().st_mode & 0o777 == 0o666 & ~_umask()

    kept = tmp_path / "IMG_2.xmp"
    kept.write_bytes(LIGHTROOM)
    os.chmod(kept, 0o640)
    write_rating(str(kept), 1)
    assert _ratings(kept.read_bytes()) == ["1"] and kept.stat().st_mode & 0o777 == 0o640
    assert _without_rating(kept.read_bytes()) == _without_rating(LIGHTROOM)  # all else kept

    broken = tmp_path / "IMG_3.xmp"
    broken.write_bytes(b"<x:xmpmeta><rdf:RDF")
    with pytest.raises(XmpError, match=r"IMG_3\.xmp: malformed XML .*left unchanged"):
        write_rating(str(broken), 5)
    assert broken.read_bytes() == b"<x:xmpmeta><rdf:RDF"

    empty = tmp_path / "IMG_4.xmp"
    empty.write_bytes(b"\n")
    write_rating(str(empty), 2)
    assert _ratings(empty.read_bytes()) == ["2"]
    (tmp_path / "IMG_5.xmp").mkdir()
    with pytest.raises(XmpError, match="not a regular file"):
        write_rating(str(tmp_path / "IMG_5.xmp"), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"IMG_{i}.xmp" for i in range(1, 6)]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_sidecar_names(tmp_path):
    photo = str(tmp_path / "IMG_1.CR2")
    assert sidecar_paths(photo) == [str(tmp_path / "IMG_1.xmp")]
    (tmp_path / "IMG_1.CR2.xmp").write_bytes(DARKTABLE)  # darktable's: updated, never created
    assert sidecar_paths(photo) == [str(tmp_path / "IMG_1.xmp"), str(tmp_path / "IMG_1.CR2.xmp")]
    (tmp_path / "IMG_1.XMP").write_bytes(LIGHTROOM)
    assert sidecar_paths(photo)[0] == str(tmp_path / "IMG_1.XMP")
    assert sidecar_paths(str(tmp_path / "my.photo.jpg")) == [str(tmp_path / "my.photo.xmp")]


@pytest.mark.parametrize("order", [("IMG_1.JPG", "IMG_1.NEF"), ("IMG_1.NEF", "IMG_1.JPG")])
def test_raw_rating_wins_for_a_pair_in_either_order(tmp_path, order):
    scores = {"IMG_1.JPG": 0.95, "IMG_1.NEF": 0.1}
    rater = SidecarRater()
    for name in order:
        rater.rate(str(tmp_path / name), scores[name])
    assert _ratings((tmp_path / "IMG_1.xmp").read_bytes()) == ["1"]


def test_a_bad_sidecar_does_not_stop_the_other(tmp_path):
    (tmp_path / "IMG_1.xmp").write_bytes(b"not xml")
    (tmp_path / "IMG_1.jpg.xmp").write_bytes(DARKTABLE)
    with pytest.raises(XmpError, match=r"IMG_1\.xmp: malformed"):
        SidecarRater().rate(str(tmp_path / "IMG_1.jpg"), 0.5)
    assert _ratings((tmp_path / "IMG_1.jpg.xmp").read_bytes()) == ["3"]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
def test_exiftool_reads_the_rating(tmp_path):
    sidecar = tmp_path / "IMG_1.xmp"
    write_rating(str(sidecar), 4)
    out = subprocess.run(["exiftool", "-s3", "-XMP:Rating", str(sidecar)], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "4"
    sidecar.write_bytes(LIGHTROOM)
    write_rating(str(sidecar), 5)
    out = subprocess.run(["exiftool", "-s", "-XMP:all", str(sidecar)], capture_output=True,
                         text=True, timeout=60)
    assert "Rating                          : 5" in out.stdout
    assert "holiday, café" in out.stdout and "+0.35" in out.stdout
