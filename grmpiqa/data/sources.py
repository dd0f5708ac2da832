"""What a decoding worker does with one input path: a file, or a member of a tar shard.

Files and members decode alike; with GPU decoding on, a JPEG comes back still
encoded (its bytes and EXIF orientation) for :class:`~grmpiqa.data.gpu_decode.GpuDecoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from grmpiqa.config import DEFAULT_MAX_PIXELS, PreprocessConfig
from grmpiqa.data.gpu_decode import EncodedJpeg, probe_jpeg
from grmpiqa.errors import ImageError
from grmpiqa.io.images import check_regular_file
from grmpiqa.io.preprocess import load_encoded_pixels, load_pixels
from grmpiqa.io.shards import ShardIndex, is_shard


@dataclass
class Sources:
    cfg: PreprocessConfig
    shards: ShardIndex
    draft: bool = False  # --fast-decode
    max_pixels: int = DEFAULT_MAX_PIXELS
    gpu_jpeg: bool = False

    def load(self, path: str, inspect: Callable[[Any], None] | None = None
             ) -> torch.Tensor | EncodedJpeg:
        """The item's uint8 (3, crop, crop) pixels, or its JPEG left for the GPU; raises
        :class:`~grmpiqa.errors.ImageError` naming the problem. ``inspect`` sees the
        decoded image of an item decoded here (see :func:`~grmpiqa.io.preprocess.load_pixels`)."""
        if self.shards.is_member(path):
            data = self.shards.read(path)
        elif is_shard(path):
            raise ImageError("a tar shard, not a photo: expand it into its samples first "
                             "(grmpiqa.io.shards.expand_shards)")
        elif self.gpu_jpeg and (data := read_jpeg(path)) is not None:
            pass
        else:
            return load_pixels(path, self.cfg, draft=self.draft, max_pixels=self.max_pixels,
                               inspect=inspect)
        if self.gpu_jpeg and (orientation := probe_jpeg(data, self.max_pixels)) is not None:
            return EncodedJpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                               orientation, path)
        return load_encoded_pixels(data, path, self.cfg, draft=self.draft,
                                   max_pixels=self.max_pixels, inspect=inspect)

    def decode_on_cpu(self, jpeg: EncodedJpeg) -> torch.Tensor:
        """For a JPEG the GPU refused: Pillow, in the main process, full resolution."""
        return load_encoded_pixels(jpeg.data.numpy().tobytes(), jpeg.name, self.cfg,
                                   draft=False, max_pixels=self.max_pixels)


def read_jpeg(path: str) -> bytes | None:
    """The bytes of a file that starts like a JPEG, None for any other file."""
    check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            if handle.read(3) != b"\xff\xd8\xff":
                return None
            handle.seek(0)
            return handle.read()
    except OSError:
        return None  # the usual path reports it
