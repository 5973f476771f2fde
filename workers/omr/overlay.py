"""The review picture: the sheet straightened into the template frame, marks drawn on.

Green rings are bubbles read as marked; an orange box surrounds each field that needs a
person (and its marked bubbles are drawn orange too, so a glance shows both).

It is made for a person's eyes, cheaply: the scan is warped straight at half the
template DPI (100 dpi for the 200-dpi templates), its greys are rescaled between the
markers' ink and the paper and cut to 14 levels (so scanner noise on the paper becomes
plain white), and the picture is written as a 16-colour palette PNG (14 greys, green,
orange; 4 bits a pixel). That is a fraction of the bytes of an RGB PNG, and zlib gets
through it in a few milliseconds.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Final

from workers.omr.reader import STRAIGHT_SCALE, SheetReading, straighten
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

GREEN: Final = (40, 170, 40)  # RGB
ORANGE: Final = (255, 140, 0)
SCALE: Final = STRAIGHT_SCALE  # half the reference DPI keeps the PNG small and still legible
GREYS: Final = 14  # palette entries 0..13 are greys, black to white
GREEN_INDEX: Final = 14
ORANGE_INDEX: Final = 15
#: share of the way from ink to paper at which a pixel is drawn plain white.
WHITE_AT: Final = 0.88
PNG_LEVEL: Final = 1


def overlay_png(gray: npt.NDArray[np.uint8], template: Template, reading: SheetReading, scale: float = SCALE) -> bytes:
    import cv2
    import numpy as np

    alignment = reading.alignment
    flat = reading.straight
    if flat is None or scale != STRAIGHT_SCALE:
        flat = straighten(gray, alignment.homography, template, scale)
    ink = alignment.ink
    white = ink + WHITE_AT * max(alignment.paper - ink, 1.0)
    lut = np.clip(np.rint((np.arange(256) - ink) / max(white - ink, 1.0) * (GREYS - 1)), 0, GREYS - 1)
    canvas = np.asarray(cv2.LUT(flat, lut.astype(np.uint8)), dtype=np.uint8)
    r = template.bubble_radius * scale
    fields = {f.label: f for f in template.fields}
    for fr in reading.id_digits + reading.questions:
        f = fields[fr.label]
        colour = ORANGE_INDEX if fr.review else GREEN_INDEX
        for value, (x, y) in zip(f.values, f.centres, strict=True):
            if value in fr.values:
                cv2.circle(canvas, (round(x * scale), round(y * scale)), round(r + 2), colour, 2)
        if fr.review:
            (x0, y0), (x1, y1) = f.centres[0], f.centres[-1]
            p0 = (round(x0 * scale - 1.5 * r), round(y0 * scale - 1.5 * r))
            p1 = (round(x1 * scale + 1.5 * r), round(y1 * scale + 1.5 * r))
            cv2.rectangle(canvas, p0, p1, ORANGE_INDEX, 2)
    return palette_png(canvas, _palette())


def _palette() -> list[tuple[int, int, int]]:
    greys = [(v, v, v) for v in (round(255 * i / (GREYS - 1)) for i in range(GREYS))]
    return [*greys, GREEN, ORANGE]


def palette_png(indices: npt.NDArray[np.uint8], palette: list[tuple[int, int, int]], level: int = PNG_LEVEL) -> bytes:
    """A 4-bit palette PNG of a 2-D array of indices (< 16) into ``palette`` (RGB)."""
    import numpy as np

    if len(palette) > 16 or indices.ndim != 2:
        raise ValueError("a 4-bit PNG takes a 2-D image and at most 16 colours")
    h, w = indices.shape
    if w % 2:
        indices = np.pad(indices, ((0, 0), (0, 1)))
    rows = np.empty((h, 1 + indices.shape[1] // 2), np.uint8)
    rows[:, 0] = 0  # filter type None
    # Two pixels to a byte, the first in the high nibble; as one little-endian uint16
    # the pair is first + 256 * second.
    pairs = np.ascontiguousarray(indices).view("<u2")
    rows[:, 1:] = ((pairs & 0xFF) << 4) | (pairs >> 8)
    # Z_RLE: the picture is mostly long runs of white, which run-length matching finds
    # as well as the full search does, in less time.
    z = zlib.compressobj(level, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = z.compress(rows.tobytes()) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 4, 3, 0, 0, 0)
    plte = bytes(c for rgb in palette for c in rgb)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", ihdr),
            _chunk(b"PLTE", plte),
            _chunk(b"IDAT", idat),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
