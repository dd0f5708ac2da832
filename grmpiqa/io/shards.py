"""WebDataset-style tar shards as input: one row per sample, read in place, never extracted.

A shard is an uncompressed ``.tar`` whose members are grouped into samples
by key, the member's path up to the first dot of its file name
(``a/000042.jpg`` and ``a/000042.json`` are sample ``a/000042``), as
img2dataset and webdataset write them. Each sample's image is the member
whose extension comes first in the extension list (``--ext`` order), and its
row's path is ``SHARD.tar/MEMBER`` (``shards/00000.tar/000042.jpg``).

Listing a shard reads only its 512-byte headers, one ``pread`` each (plain
ustar/GNU headers are parsed here, anything else by ``tarfile``, which also
seeks over the data); a decoder then reads a member with one ``pread`` at its
offset. Plain ``tarfile`` rather than the
``webdataset`` package: the index gives every member its own row, error and
resume key, and reading by offset lets the engine's decoding processes share
one shard while reading the same bytes a stream would.
"""

from __future__ import annotations

import os
import struct
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from grmpiqa.errors import ImageError

SHARD_SUFFIX = ".tar"
_OPEN_FILES = 8  # shards a decoding process keeps open at once


def is_shard_name(path: str) -> bool:
    return path.lower().endswith(SHARD_SUFFIX)


def is_shard(path: str) -> bool:
    """A ``.tar`` that exists as a regular file (a missing one is reported like a photo)."""
    return is_shard_name(path) and os.path.isfile(path)


def sample_key(member: str) -> tuple[str, str]:
    """``dir/000042.seg.png`` -> (``dir/000042``, ``seg.png``): key and extension."""
    folder, _, name = member.rpartition("/")
    stem, dot, ext = name.partition(".")
    key = f"{folder}/{stem}" if folder else stem
    return key, ext.lower() if dot else ""


@dataclass(frozen=True)
class Member:
    offset: int
    size: int


@dataclass
class ShardListing:
    """What one shard holds: image members in tar order, samples without an image, a problem."""

    images: dict[str, Member] = field(default_factory=dict)
    no_image: dict[str, list[str]] = field(default_factory=dict)
    problem: str | None = None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_BLOCK = 512
_PLAIN_TYPES = {b"0": True, b"\0": True, b"7": True, b"5": False, b"1": False, b"2": False,
                b"3": False, b"4": False, b"6": False}  # type flag -> regular file?


class _Unusual(Exception):
    """A header the quick scan leaves to ``tarfile`` (pax, GNU long names, sparse, ...)."""


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        raise _Unusual  # base-256 size
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _checksum_ok(header: bytes) -> bool:
    stored = _octal(header[148:156])
    if stored == sum(header[:148]) + 256 + sum(header[156:]):
        return True
    signed = sum(struct.unpack("148b", header[:148])) + 256 + \
        sum(struct.unpack("356b", header[156:]))
    return stored == signed  # old tars summed signed bytes


def _scan(path: str) -> Iterator[tuple[str, int, int]]:
    """(name, data offset, size) of each regular member, reading only the 512-byte headers.

    Plain ustar and GNU headers only, about 4x faster than ``tarfile``; anything
    else raises :class:`_Unusual`. A bad checksum raises ValueError and a file
    that ends inside a member EOFError.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while True:
            header = os.pread(fd, _BLOCK, offset)
            if len(header) < _BLOCK:
                if not header and offset == os.fstat(fd).st_size:
                    return  # no end-of-archive blocks, as some writers leave it
                raise EOFError(f"the file ends inside the member before byte {offset}")
            if header.count(0) == _BLOCK:
                return
            if not _checksum_ok(header):  # tarfile would end the listing here, silently
                raise ValueError(f"bad tar header checksum at byte {offset}")
            kind = header[156:157]
            if kind not in _PLAIN_TYPES:
                raise _Unusual
            size = _octal(header[124:136])
            name = header[:100].split(b"\0", 1)[0]
            if header[257:262] == b"ustar" and header[345:500].strip(b"\0"):
                name = header[345:500].split(b"\0", 1)[0] + b"/" + name
            if _PLAIN_TYPES[kind]:
                yield os.fsdecode(name), offset + _BLOCK, size
            offset += _BLOCK + -(-size // _BLOCK) * _BLOCK
    finally:
        os.close(fd)


def _with_tarfile(path: str) -> Iterator[tuple[str, int, int]]:
    with tarfile.open(path, mode="r:") as tar:
        for info in tar:
            if info.isfile():
                yield info.name, info.offset_data, info.size


def list_shard(path: str, extensions: Sequence[str]) -> ShardListing:
    """Index ``path``'s samples; a shard that breaks part-way keeps the samples before."""
    rank = {ext: i for i, ext in enumerate(extensions)}
    samples: dict[str, list[tuple[str, str, Member]]] = {}
    listing = ShardListing()
    for reader in (_scan, _with_tarfile):
        samples.clear()
        try:
            for name, offset, size in reader(path):
                key, ext = sample_key(name)
                samples.setdefault(key, []).append((ext, name, Member(offset, size)))
            break
        except _Unusual:
            continue
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            got = f" after {len(samples)} samples" if samples else ""
            listing.problem = f"cannot read tar shard{got} ({_describe(exc)})"
            break
    for key, members in samples.items():
        images = [m for m in members if m[0] in rank]
        if images:
            _, name, member = min(images, key=lambda m: rank[m[0]])
            listing.images[name] = member
        else:
            listing.no_image[key] = sorted(name for _, name, _ in members)
    return listing


class ShardIndex:
    """Member offsets of the shards seen so far; reads a member's bytes by its row path.

    Paths are self-describing (``SHARD.tar/MEMBER``), so a process that never
    listed the shard (a Ray actor, a torchrun rank) lists it on first use.
    The listing is kept; file handles are opened lazily per process.
    """

    def __init__(self, extensions: Sequence[str]) -> None:
        self.extensions = tuple(extensions)
        self.listings: dict[str, ShardListing] = {}
        self.errors: dict[str, str] = {}
        self._files: dict[str, int] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def listing(self, shard: str) -> ShardListing:
        if shard not in self.listings:
            self.listings[shard] = list_shard(shard, self.extensions)
        return self.listings[shard]

    def expand(self, shard: str) -> list[str]:
        """Row paths of ``shard``: its images, samples without one, and the shard itself when
        it is unreadable, each of the last two carrying its error."""
        listing = self.listing(shard)
        rows = [f"{shard}/{name}" for name in listing.images]
        for key, names in listing.no_image.items():
            path = f"{shard}/{key}"
            exts = ", ".join(sample_key(n)[1] or "(none)" for n in names)
            self.errors[path] = (f"no image in this sample (members with extensions: {exts}; "
                                 f"looked for {', '.join(self.extensions)})")
            rows.append(path)
        if listing.problem is not None:
            self.errors[shard] = listing.problem
            rows.append(shard)
        return rows

    def locate(self, path: str) -> tuple[str, str] | None:
        """(shard, member) when ``path`` names a member of a ``.tar`` file, else None."""
        start = 0
        while (cut := path.lower().find(SHARD_SUFFIX + "/", start)) >= 0:
            shard = path[:cut + len(SHARD_SUFFIX)]
            if os.path.isfile(shard):
                return shard, path[len(shard) + 1:]
            start = cut + 1
        return None

    def is_member(self, path: str) -> bool:
        return path in self.errors or (not os.path.lexists(path) and self.locate(path) is not None)

    def read(self, path: str, max_bytes: int | None = None) -> bytes:
        """The bytes of member ``path``; raises :class:`ImageError` naming the problem."""
        if path in self.errors:
            raise ImageError(self.errors[path])
        where = self.locate(path)
        if where is None:
            raise ImageError("no such file")
        shard, name = where
        listing = self.listing(shard)
        member = listing.images.get(name)
        if member is None:
            raise ImageError(f"no image member {name!r} in {shard}")
        if member.size == 0:
            raise ImageError("empty member (0 bytes)")
        if max_bytes is not None and member.size > max_bytes:
            raise ImageError(f"member of {member.size:,} bytes, over the limit of {max_bytes:,}")
        try:
            data = os.pread(self._fd(shard), member.size, member.offset)
        except OSError as exc:
            raise ImageError(f"cannot read tar member ({exc.strerror or exc})") from None
        if len(data) < member.size:
            raise ImageError(f"truncated tar member ({len(data)} of {member.size} bytes)")
        return data

    def _fd(self, shard: str) -> int:
        if self._pid != os.getpid():  # forked: the parent's descriptors are shared, not ours
            self._files, self._pid = {}, os.getpid()
        fd = self._files.get(shard)
        if fd is None:
            if len(self._files) >= _OPEN_FILES:
                os.close(self._files.pop(next(iter(self._files))))
            fd = self._files[shard] = os.open(shard, os.O_RDONLY)
        return fd

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files = {}


def expand_shards(items: Iterable[str], index: ShardIndex) -> list[str]:
    """Replace each tar shard in ``items`` by its rows (see :meth:`ShardIndex.expand`)."""
    out: list[str] = []
    for item in items:
        out.extend(index.expand(item) if is_shard(item) else [item])
    return out
