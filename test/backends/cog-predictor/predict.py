"""A small Cog model for the queue's tests: logs a line per step, sleeps in steps, returns text and a PNG.

When a prediction is cancelled it writes `<COG_TEST_MARKER_DIR>/<text>.cancelled`, so a test can
tell that the cancellation reached the predictor itself.
"""

import os
import struct
import tempfile
import time
import zlib

from cog import BaseModel, BaseRunner, CancelationException, Input, Path


class Output(BaseModel):
    text: str
    image: Path


def solid_png(width: int, height: int) -> bytes:
    """An opaque RGB PNG of the given size, built with the standard library only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x20\x80\xc0" * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


class Runner(BaseRunner):
    def setup(self) -> None:
        print("setup: ready")

    def run(
        self,
        text: str = Input(description="Text to shout back"),
        steps: int = Input(description="Steps to take", default=3, ge=1, le=100),
        step_seconds: float = Input(description="Seconds per step", default=0.2, ge=0, le=10),
        width: int = Input(description="Width of the output image", default=3, ge=1, le=512),
        height: int = Input(description="Height of the output image", default=2, ge=1, le=512),
    ) -> Output:
        if text == "fail":
            raise RuntimeError("asked to fail")
        try:
            for step in range(1, steps + 1):
                print(f"step {step}/{steps}", flush=True)
                time.sleep(step_seconds)
        except CancelationException:
            marker_dir = os.environ.get("COG_TEST_MARKER_DIR")
            if marker_dir:
                with open(os.path.join(marker_dir, f"{text}.cancelled"), "w") as marker:
                    marker.write(f"cancelled at step {step}\n")
            print("cancellation observed", flush=True)
            raise
        out = os.path.join(tempfile.mkdtemp(), "image.png")
        with open(out, "wb") as f:
            f.write(solid_png(width, height))
        return Output(text=text.upper(), image=Path(out))
