from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import cv2
import numpy as np
import pytest

from tests.omr.corpus import clean, fill_sheet
from workers.base import BadInput
from workers.omr.decode import MAX_PIXELS, decode_gray, image_size
from workers.omr.reader import read_sheet
from workers.omr.render import render_sheet, sheet_png
from workers.omr.template import Template, load_template


def _code(data: bytes, template: Template) -> str:
    with pytest.raises(BadInput) as info:
        read_sheet(data, template)
    return info.value.code


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(buf)


def test_random_bytes_are_file_unreadable(template: Template) -> None:
    assert _code(b"\x00\x13garbage" * 100, template) == "FILE_UNREADABLE"


def test_empty_file_is_empty_file(template: Template) -> None:
    assert _code(b"", template) == "EMPTY_FILE"


def test_truncated_jpeg_is_file_unreadable(template: Template) -> None:
    data = _jpeg(render_sheet(template))
    assert _code(data[: len(data) // 2], template) == "FILE_UNREADABLE"


def test_truncated_png_is_file_unreadable(template: Template) -> None:
    data = sheet_png(template)
    assert _code(data[: len(data) * 2 // 3], template) == "FILE_UNREADABLE"


def test_png_with_corrupt_pixel_data_is_file_unreadable(template: Template) -> None:
    data = bytearray(sheet_png(template))
    idat = data.find(b"IDAT")
    data[idat + 8 : idat + 400] = bytes(392)  # zeroes over the zlib stream
    assert _code(bytes(data), template) == "FILE_UNREADABLE"


def test_gif_is_invalid_format(template: Template) -> None:
    assert _code(b"GIF89a" + bytes(100), template) == "INVALID_FORMAT"


def test_page_without_a_sheet_is_no_sheet_found(template: Template) -> None:
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (1200, 900), dtype=np.uint8)
    assert _code(_jpeg(noise), template) == "NO_SHEET_FOUND"
    white = np.full((1200, 900), 250, np.uint8)
    cv2.putText(white, "just a letter, no answer sheet", (50, 300), cv2.FONT_HERSHEY_SIMPLEX, 1, 0, 2)
    assert _code(_jpeg(white), template) == "NO_SHEET_FOUND"


def test_sheet_without_its_orientation_marker_is_no_sheet_found(template: Template) -> None:
    img = render_sheet(template)
    x, y = (round(v) for v in template.marker_centres[0])
    img[y - 20 : y + 20, x - 20 : x + 20] = 0  # fill the hole: four identical markers
    assert _code(_jpeg(img), template) == "NO_SHEET_FOUND"


def test_sheet_read_with_another_layout_is_template_mismatch(template: Template, fresh_dict: dict[str, Any]) -> None:
    # Same page and markers, but a 60-question layout in three columns.
    fresh_dict["name"] = "other_60q"
    fresh_dict["question_blocks"] = [
        {"first": 1 + 20 * i, "count": 20, "origin": [250 + 480 * i, 950], "choice_gap": 60, "row_gap": 60}
        for i in range(3)
    ]
    other = load_template(fresh_dict)
    page, _ = fill_sheet(template, __import__("random").Random(4))
    assert _code(clean(page), other) == "TEMPLATE_MISMATCH"


def test_sheet_read_with_a_landscape_template_is_template_mismatch(
    template: Template, fresh_dict: dict[str, Any]
) -> None:
    fresh_dict["page"] = {"width": 2339, "height": 1654, "dpi": 200}
    for block in fresh_dict["question_blocks"]:
        block["count"] = 10
    landscape = load_template(fresh_dict)
    assert _code(sheet_png(template), landscape) == "TEMPLATE_MISMATCH"


def _png_bomb(width: int, height: int) -> bytes:
    """A real, valid PNG of width x height black pixels that compresses to little."""
    z = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_its_header(template: Template) -> None:
    bomb = _png_bomb(12_000, 8_000)  # 96 megapixels in a small file
    assert len(bomb) < 200_000
    assert image_size(bomb) == (12_000, 8_000)
    assert MAX_PIXELS < 12_000 * 8_000
    start = time.perf_counter()
    assert _code(bomb, template) == "FILE_TOO_LARGE"
    assert time.perf_counter() - start < 0.5  # nothing was decompressed


def test_jpeg_claiming_a_huge_size_is_file_too_large(template: Template) -> None:
    data = bytearray(_jpeg(np.zeros((300, 300), np.uint8)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 30_000, 30_000)
    assert _code(bytes(data), template) == "FILE_TOO_LARGE"


def test_tiny_image_is_resolution_too_low(template: Template) -> None:
    small = cv2.resize(render_sheet(template), (120, 170), interpolation=cv2.INTER_AREA)
    assert _code(_jpeg(small), template) == "RESOLUTION_TOO_LOW"


def test_low_resolution_scan_of_a_sheet_is_resolution_too_low(template: Template) -> None:
    small = cv2.resize(render_sheet(template), None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    assert _code(_jpeg(small), template) == "RESOLUTION_TOO_LOW"


def test_tiff_is_decoded(template: Template) -> None:
    ok, buf = cv2.imencode(".tiff", render_sheet(template))
    assert ok
    assert decode_gray(bytes(buf)).shape == (template.height, template.width)
