"""A Cog model whose output is a single file: with `--upload-url`, Cog uploads it and returns its URL."""

import os
import struct
import tempfile
import zlib

from cog import BaseRunner, Input, Path


def solid_png(width: int, height: int) -> bytes:
    """An opaque RGB PNG of the given size, built with the standard library only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xc0\x40\x20" * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")


class Runner(BaseRunner):
    def run(
        self,
        width: int = Input(description="Width of the image", default=3, ge=1, le=512),
        height: int = Input(description="Height of the image", default=2, ge=1, le=512),
    ) -> Path:
        print(f"drawing {width}x{height}", flush=True)
        out = os.path.join(tempfile.mkdtemp(), "drawing.png")
        with open(out, "wb") as f:
            f.write(solid_png(width, height))
        return Path(out)
