"""XMP written inside JPEG, TIFF and DNG files: only the packet changes, nothing else moves."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from xml.dom import minidom

import numpy as np
import pytest
from PIL import Image

from grmpiqa.errors import XmpError
from grmpiqa.io.embedded_xmp import embedded_xmp, tiff_directory
from grmpiqa.io.images import open_image
from grmpiqa.io.xmp_embed import MAX_JPEG_PACKET, pad_packet
from grmpiqa.workflow.xmp import RDF_NS, XMP_NS, read_label, read_rating, write_inside
from photos import write_dng
from xmp_photos import (
    LIGHTROOM_PACKET,
    extended_xmp,
    jpeg_photo,
    packet,
    tiny_tiff,
    xmp_span,
)

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed "
                                    "(Debian: apt-get install libimage-exiftool-perl)")


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(open_image(str(path)))


def _rgb(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def exiftool(*paths: Path) -> list[dict]:
    """exiftool's reading of XMP rating and label, and its validation warnings."""
    out = subprocess.run([EXIFTOOL, "-j", "-a", "-validate", "-warning", "-XMP:Rating",
                          "-XMP:Label", "-XMP:Subject", "-XMP:HierarchicalSubject",
                          "-XMP-crs:Exposure2012", *map(str, paths)],
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def _warnings(found: dict) -> set[str]:
    warnings = found.get("Warning", [])
    return set(warnings if isinstance(warnings, list) else [warnings])


def _props_but(document: bytes, *names: str) -> str:
    """The packet as XML with the given xmp: properties removed (to compare the rest)."""
    dom = minidom.parseString(document)
    for description in dom.getElementsByTagNameNS(RDF_NS, "Description"):
        for name in names:
            if description.hasAttributeNS(XMP_NS, name):
                description.removeAttributeNS(XMP_NS, name)
    return dom.documentElement.toxml()


@pytest.mark.parametrize("with_exif", [True, False])
def test_jpeg_packet_goes_after_jfif_and_exif_and_no_other_byte_changes(tmp_path, with_exif):
    photo = jpeg_photo(tmp_path / "IMG_1.jpg", exif=with_exif)
    before, pixels = photo.read_bytes(), _pixels(photo)
    write_inside(str(photo), {"Rating": "4", "Label": "Green"})
    after = photo.read_bytes()
    start, end = xmp_span(after)
    assert after[:start] == before[:start] and after[end:] == before[start:]
    exif_end = before.find(b"\xff\xdb")  # Pillow writes SOI, APP0, [APP1 Exif], then DQT
    assert start == exif_end
    assert (b"Exif\0" in after[:start]) == with_exif and after[2:4] == b"\xff\xe0"
    assert np.array_equal(_pixels(photo), pixels)
    assert read_rating(embedded_xmp(str(photo))) == 4
    assert read_label(embedded_xmp(str(photo))) == "Green"


def test_jpeg_packet_replaced_where_it_was_keeping_keywords_labels_and_develop_settings(
        tmp_path):
    photo = jpeg_photo(tmp_path / "IMG_1.jpg", xmp=LIGHTROOM_PACKET)
    before, pixels = photo.read_bytes(), _pixels(photo)
    old_start, old_end = xmp_span(before)
    write_inside(str(photo), {"Rating": "5"})
    after = photo.read_bytes()
    start, end = xmp_span(after)
    assert start == old_start and after[:start] == before[:start]
    assert after[end:] == before[old_end:]
    assert np.array_equal(_pixels(photo), pixels)
    new = embedded_xmp(str(photo))
    assert read_rating(new) == 5 and read_label(new) == "Red"
    assert _props_but(new, "Rating") == _props_but(LIGHTROOM_PACKET, "Rating")
    assert new.startswith(b'<?xpacket begin="\xef\xbb\xbf"') and b"caf\xc3\xa9" in new


def _differences(before: bytes, after: bytes) -> list[tuple[int, int]]:
    """Ranges where ``after[:len(before)]`` differs from ``before``."""
    a = np.frombuffer(before, np.uint8)
    b = np.frombuffer(after[:len(before)], np.uint8)
    changed = np.flatnonzero(a != b)
    ranges: list[tuple[int, int]] = []
    for i in changed.tolist():
        if ranges and ranges[-1][1] == i:
            ranges[-1] = (ranges[-1][0], i + 1)
        else:
            ranges.append((i, i + 1))
    return ranges


def _ifd(path: Path):
    with path.open("rb") as handle:
        return tiff_directory(handle)


def test_dng_without_xmp_gets_ifd0_copied_with_tag_700_and_nothing_moves(tmp_path):
    photo = write_dng(tmp_path / "IMG_2.dng", _rgb())
    before, pixels = photo.read_bytes(), _pixels(photo)
    old = _ifd(photo)
    write_inside(str(photo), {"Rating": "3"})
    after = photo.read_bytes()
    new = _ifd(photo)
    # only the header's pointer to IFD0 changed; the packet and the new IFD0 are appended
    assert [r for r in _differences(before, after) if not (r[0] >= 4 and r[1] <= 8)] == []
    assert new.offset >= len(before) and new.offset % 2 == 0
    fields = [(e.tag, e.kind, e.count, e.field) for e in new.entries if e.tag != 700]
    assert fields == [(e.tag, e.kind, e.count, e.field) for e in old.entries]
    assert new.next_ifd == old.next_ifd
    assert next(e for e in new.entries if e.tag == 700).kind == 1  # BYTE, as Adobe writes it
    assert [e.tag for e in new.entries] == sorted(e.tag for e in new.entries)
    assert np.array_equal(_pixels(photo), pixels)
    assert read_rating(embedded_xmp(str(photo))) == 3

    # the packet was appended with room to grow: the next edit fits in place
    size = len(after)
    write_inside(str(photo), {"Rating": "-1", "Label": "Green"})
    again = photo.read_bytes()
    assert len(again) == size and _ifd(photo) == new
    xmp = next(e for e in new.entries if e.tag == 700)
    start = xmp.offset(new.order)
    assert all(start <= a and b <= start + xmp.count for a, b in _differences(after, again))
    assert read_rating(embedded_xmp(str(photo))) == -1
    assert np.array_equal(_pixels(photo), pixels)


@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_packet_too_big_for_its_place_is_appended_and_the_old_one_blanked(tmp_path,
                                                                                order):
    small = packet(1)
    photo = tmp_path / "scan.tif"
    photo.write_bytes(tiny_tiff(order, [(256, 4, b"\1\0\0\0"), (700, 1, small)]))
    before = photo.read_bytes()
    entry = next(e for e in _ifd(photo).entries if e.tag == 700)
    old_at = entry.offset(order)
    write_inside(str(photo), {"Rating": "5", "Label": "A label long enough to need room"})
    after = photo.read_bytes()
    changed = _differences(before, after)
    allowed = [(entry.at + 4, entry.at + 12), (old_at, old_at + len(small))]
    assert all(any(lo <= a and b <= hi for lo, hi in allowed) for a, b in changed)
    assert after[old_at:old_at + len(small)] == b" " * len(small)
    new = next(e for e in _ifd(photo).entries if e.tag == 700)
    assert new.offset(order) >= len(before) and new.count % 2 == 0
    assert read_rating(embedded_xmp(str(photo))) == 5


def test_plain_tiff_pixels_kept(tmp_path):
    photo = tmp_path / "x.tiff"
    Image.fromarray(_rgb(3)).save(photo)
    pixels = _pixels(photo)
    write_inside(str(photo), {"Rating": "2"})
    assert np.array_equal(_pixels(photo), pixels)
    assert read_rating(embedded_xmp(str(photo))) == 2


def test_padding_goes_inside_the_xpacket_wrapper():
    padded = pad_packet(packet(3), len(packet(3)) + 250)
    assert len(padded) == len(packet(3)) + 250
    assert padded.rstrip().endswith(b'<?xpacket end="w"?>') and read_rating(padded) == 3
    assert pad_packet(b"<x/>", 7) == b"<x/>   "


def test_extended_xmp_is_left_as_it_is_and_the_rating_goes_into_the_standard_packet(
        tmp_path):
    extension = packet(None).replace(b'xmlns:dc="http://purl.org/dc/elements/1.1/"/>',
                                     b'xmlns:dc="http://purl.org/dc/elements/1.1/">'
                                     b'<dc:description>' + b"x" * 90000
                                     + b'</dc:description></rdf:Description>')
    plain = jpeg_photo(tmp_path / "plain.jpg", exif=False).read_bytes()
    segments = extended_xmp(packet(2), extension)
    photo = tmp_path / "big.jpg"
    photo.write_bytes(plain[:2] + segments + plain[2:])
    before = photo.read_bytes()
    start, end = xmp_span(before)
    write_inside(str(photo), {"Rating": "4"})
    after = photo.read_bytes()
    new_start, new_end = xmp_span(after)
    assert new_start == start and after[new_end:] == before[end:]  # extension segments too
    assert read_rating(embedded_xmp(str(photo))) == 4
    assert b"HasExtendedXMP" in embedded_xmp(str(photo))
    if EXIFTOOL:
        out = subprocess.run([EXIFTOOL, "-s3", "-XMP:Rating", "-XMP:Description",
                              str(photo)], capture_output=True, text=True, timeout=60)
        rating, description = out.stdout.splitlines()
        assert rating == "4" and description == "x" * 90000


def _untouched(path: Path, write) -> str:
    before = path.read_bytes()
    listing = sorted(os.listdir(path.parent))
    with pytest.raises(XmpError) as caught:
        write()
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == listing  # no temporary file left behind
    return str(caught.value)


def test_bad_files_give_an_error_and_stay_untouched(tmp_path):
    rating = {"Rating": "4"}
    cut = jpeg_photo(tmp_path / "cut.jpg", size=(256, 256))
    cut.write_bytes(cut.read_bytes()[:-3000])
    assert "truncated JPEG" in _untouched(cut, lambda: write_inside(str(cut), rating))
    assert "truncated JPEG" in _untouched(cut, lambda: write_inside(str(cut), rating,
                                                                       dry_run=True))
    header = tmp_path / "header.jpg"
    header.write_bytes(jpeg_photo(header).read_bytes()[:40])
    assert "truncated JPEG header" in _untouched(header, lambda: write_inside(str(header),
                                                                              rating))
    huge = jpeg_photo(tmp_path / "huge.jpg", xmp=packet(1).replace(
        b"<rdf:RDF", b"<!--" + b"c" * (MAX_JPEG_PACKET - len(packet(1)) - 10) + b"--><rdf:RDF"))
    message = _untouched(huge, lambda: write_inside(str(huge), {"Rating": "5",
                                                                 "Label": "Green"}))
    assert "over the 65,502 a JPEG's standard XMP can hold" in message
    two = tmp_path / "two.jpg"
    single = jpeg_photo(tmp_path / "single.jpg", xmp=packet(1)).read_bytes()
    start, end = xmp_span(single)
    two.write_bytes(single[:end] + single[start:end] + single[end:])
    assert "2 XMP packets" in _untouched(two, lambda: write_inside(str(two), rating))
    png = tmp_path / "really_a_png.jpg"
    Image.fromarray(_rgb()).save(png, "PNG")
    assert "not a JPEG or TIFF file inside" in _untouched(png, lambda: write_inside(str(png),
                                                                                   rating))
    bigtiff = tmp_path / "big.dng"
    bigtiff.write_bytes(b"II+\0\x08\0\0\0" + bytes(32))
    assert "not a JPEG or TIFF" in _untouched(bigtiff, lambda: write_inside(str(bigtiff),
                                                                           rating))
    bad_xmp = jpeg_photo(tmp_path / "bad_xmp.jpg", xmp=b"<x:xmpmeta><rdf:RDF")
    assert "its XMP: malformed XML" in _untouched(
        bad_xmp, lambda: write_inside(str(bad_xmp), rating))


def test_read_only_photo_and_hard_links_are_refused(tmp_path):
    photo = jpeg_photo(tmp_path / "locked.jpg")
    photo.chmod(0o444)  # root too: a photo made read-only stays as it is
    assert "is read-only" in _untouched(photo, lambda: write_inside(str(photo),
                                                                    {"Rating": "1"}))
    linked = jpeg_photo(tmp_path / "linked.jpg")
    os.link(linked, tmp_path / "other-name.jpg")
    assert "2 hard links" in _untouched(linked, lambda: write_inside(str(linked),
                                                                     {"Rating": "1"}))


def _as_nobody(action) -> str:
    """``action()``'s message (an XmpError's, or "written") in a forked child that dropped
    to the user nobody; root only."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        try:
            action()
            message = "written"
        except XmpError as exc:
            message = str(exc)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    message = os.read(read, 4096).decode()
    os.waitpid(child, 0)
    os.close(read)
    return message


@pytest.fixture
def shared_folder(request) -> Path:
    """A folder all users may enter (tmp_path is root's alone); root only."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to act as two users")
    folder = Path(tempfile.mkdtemp(prefix="grmpiqa-xmp-"))
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    folder.chmod(0o777)
    return folder


def test_read_only_folder_is_an_error_naming_the_file(shared_folder):
    photo = jpeg_photo(shared_folder / "a.jpg")
    photo.chmod(0o666)  # nobody may write the photo, but not the folder it is in
    shared_folder.chmod(0o755)
    before = photo.read_bytes()
    message = _as_nobody(lambda: write_inside(str(photo), {"Rating": "1"}))
    assert message == "cannot write a.jpg (Permission denied); left unchanged"
    assert photo.read_bytes() == before and os.listdir(shared_folder) == ["a.jpg"]


def test_a_full_disk_is_an_error_and_the_photo_stays_whole(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a real full disk) needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                      capture_output=True, timeout=60).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        photo = disk / "IMG_1.jpg"
        photo.write_bytes(jpeg_photo(tmp_path / "big.jpg", size=(240, 200)).read_bytes())
        assert 32_000 < photo.stat().st_size < 60_000  # no room for a second copy
        message = _untouched(photo, lambda: write_inside(str(photo), {"Rating": "5"}))
        assert message == "cannot write IMG_1.jpg (No space left on device); left unchanged"
    finally:
        subprocess.run(["umount", str(disk)], timeout=60)


def test_mode_owner_extended_attributes_and_symlinks_are_kept(tmp_path):
    photo = jpeg_photo(tmp_path / "IMG_1.jpg")
    photo.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(photo, 1234, 2345)
    xattr = True
    try:
        os.setxattr(photo, "user.grmpiqa.test", b"kept")
    except OSError:
        xattr = False  # this file system has no user attributes
    link = tmp_path / "link.jpg"
    link.symlink_to(photo.name)
    write_inside(str(link), {"Rating": "3"})
    assert link.is_symlink() and read_rating(embedded_xmp(str(photo))) == 3
    st = photo.stat()
    assert st.st_mode & 0o7777 == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 2345)
    if xattr:
        assert os.getxattr(photo, "user.grmpiqa.test") == b"kept"


def test_an_owner_that_cannot_be_kept_leaves_the_photo_untouched(shared_folder):
    """nobody may write the photo (its group) but could not give it back to its owner."""
    photo = jpeg_photo(shared_folder / "theirs.jpg")
    os.chown(photo, 4321, 65534)
    photo.chmod(0o664)
    before = photo.read_bytes()
    message = _as_nobody(lambda: write_inside(str(photo), {"Rating": "2"}))
    assert "cannot keep its owner 4321:65534" in message and "left unchanged" in message
    assert photo.read_bytes() == before and photo.stat().st_uid == 4321
    assert os.listdir(shared_folder) == ["theirs.jpg"]


KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    marker, photo, when = sys.argv[1:4]
    real_fdopen, real_replace = os.fdopen, os.replace

    def stop():
        open(marker, "w").close()
        time.sleep(600)

    class Half:  # writes half of what it is given, then waits to be killed
        def __init__(self, handle):
            self.handle = handle
        def write(self, data):
            self.handle.write(data[:len(data) // 2])
            self.handle.flush()
            stop()
        def __getattr__(self, name):
            return getattr(self.handle, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    def replace(source, target):
        real_replace(source, target)
        stop()

    if when == "mid-write":
        os.fdopen = lambda fd, mode: Half(real_fdopen(fd, mode))
    else:
        os.replace = replace
    from grmpiqa.workflow.xmp import write_inside
    write_inside(photo, {"Rating": "5"})
""")


@pytest.mark.parametrize("when", ["mid-write", "after-rename"])
def test_a_write_killed_leaves_the_old_file_or_the_new_one(tmp_path, when):
    photo = jpeg_photo(tmp_path / "IMG_1.jpg", size=(640, 480))
    before, pixels = photo.read_bytes(), _pixels(photo)
    marker = tmp_path / "reached"
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    child = subprocess.Popen([sys.executable, str(script), str(marker), str(photo), when])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "writer never got there"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    now = photo.read_bytes()
    if when == "mid-write":
        assert now == before
    else:
        start, end = xmp_span(now)
        assert now[:start] + now[end:] == before and read_rating(embedded_xmp(str(photo))) == 5
    assert np.array_equal(_pixels(photo), pixels)
    Image.open(io.BytesIO(now)).load()  # a whole JPEG, never a torn one


@needs_exiftool
def test_exiftool_reads_what_was_written_and_finds_nothing_new_to_warn_about(tmp_path):
    jpeg = jpeg_photo(tmp_path / "IMG_1.jpg", xmp=LIGHTROOM_PACKET)
    dng = write_dng(tmp_path / "IMG_2.dng", _rgb(), xmp=LIGHTROOM_PACKET)
    plain = write_dng(tmp_path / "IMG_3.dng", _rgb(1), preview=_rgb(2))
    before = {Path(f["SourceFile"]).name: _warnings(f) for f in exiftool(jpeg, dng, plain)}
    for photo in (jpeg, dng, plain):
        write_inside(str(photo), {"Rating": "-1", "Label": "Green"})
    for found in exiftool(jpeg, dng, plain):
        name = Path(found["SourceFile"]).name
        assert found["Rating"] == -1 and found["Label"] == "Green", found
        assert _warnings(found) <= before[name], found
        if name != "IMG_3.dng":
            assert found["Subject"] == ["holiday", "café"], found
            assert found["HierarchicalSubject"] == "places|Lisbon", found
            assert found["Exposure2012"] in ("+0.35", 0.35), found
