"""Bad input never crashes the reader: each case ends in one clear rejection code.

Most cases go through the processor exactly as a job does
(``OmrGradingProcessor().run(JobInput(...))``); the PDF cases through ``pdf_pages``,
which the CLI uses (the processor takes images only).
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest

from tests.omr.corpus import clean, degrade, fill_sheet
from workers.base import BadInput, JobInput
from workers.omr.decode import MAX_PIXELS, decode_gray, image_size
from workers.omr.pdf import MAX_PAGE_PIXELS, MAX_PAGES, image_to_pdf, pdf_pages
from workers.omr.processor import OmrGradingProcessor
from workers.omr.render import filled_sheet_jpeg, render_sheet, sheet_png
from workers.omr.template import Template, load_template

ROOT = Path(__file__).resolve().parents[2]


def _code(data: bytes, template: dict[str, Any], filename: str = "scan.jpg", **params: Any) -> str:
    with pytest.raises(BadInput) as info:
        OmrGradingProcessor().run(JobInput(params={"template": template, **params}, data=data, filename=filename))
    return info.value.code


def _pdf_code(data: bytes) -> str:
    with pytest.raises(BadInput) as info:
        list(pdf_pages(data))
    return info.value.code


def _jpeg(img: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf)


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return bytes(buf)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header claims width x height 8-bit grey pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat or zlib.compress(bytes(1024)))
        + _png_chunk(b"IEND", b"")
    )


def _pdf(pages: int, size: tuple[float, float] = (595, 842)) -> bytes:
    doc = pdfium.PdfDocument.new()
    for _ in range(pages):
        doc.new_page(*size)
    buf = io.BytesIO()
    doc.save(buf)
    doc.close()
    return buf.getvalue()


@pytest.fixture(scope="module")
def twenty_dict(template_dict: dict[str, Any]) -> dict[str, Any]:
    """A 20-question template on the same page: the 40-question one's first column only."""
    import copy

    data = copy.deepcopy(template_dict)
    data.update(name="default_20q5c", title="ACADEMY OMR ANSWER SHEET - 20 Q")
    data["question_blocks"] = data["question_blocks"][:1]
    return data


# --- files that are not (whole) images --------------------------------------------------


def test_empty_file_is_empty_file(template_dict: dict[str, Any]) -> None:
    assert _code(b"", template_dict) == "EMPTY_FILE"


def test_random_bytes_are_file_unreadable(template_dict: dict[str, Any]) -> None:
    assert _code(b"\x00\x13garbage" * 100, template_dict) == "FILE_UNREADABLE"


def test_random_bytes_named_png_are_file_unreadable(template_dict: dict[str, Any]) -> None:
    noise = np.random.default_rng(3).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    assert _code(noise, template_dict, filename="scan.png") == "FILE_UNREADABLE"
    # The PNG signature, then noise: the header itself is damaged.
    assert _code(b"\x89PNG\r\n\x1a\n" + noise, template_dict, filename="scan.png") == "FILE_UNREADABLE"


def test_corrupt_jpeg_is_file_unreadable(template: Template, template_dict: dict[str, Any]) -> None:
    data = bytearray(_jpeg(render_sheet(template)))
    sos = data.find(b"\xff\xda")
    data[sos - 300 : sos] = bytes(300)  # zeroes over the Huffman tables
    assert _code(bytes(data), template_dict) == "FILE_UNREADABLE"


def test_truncated_jpeg_half_the_bytes_is_file_unreadable(template: Template, template_dict: dict[str, Any]) -> None:
    data = _jpeg(render_sheet(template))
    assert _code(data[: len(data) // 2], template_dict) == "FILE_UNREADABLE"


def test_truncated_png_is_file_unreadable(template: Template, template_dict: dict[str, Any]) -> None:
    data = sheet_png(template)
    assert _code(data[: len(data) * 2 // 3], template_dict) == "FILE_UNREADABLE"


def test_png_with_corrupt_pixel_data_is_file_unreadable(template: Template, template_dict: dict[str, Any]) -> None:
    data = bytearray(sheet_png(template))
    idat = data.find(b"IDAT")
    data[idat + 8 : idat + 400] = bytes(392)  # zeroes over the zlib stream
    assert _code(bytes(data), template_dict) == "FILE_UNREADABLE"


def test_a_gif_is_invalid_format(template_dict: dict[str, Any]) -> None:
    assert _code(b"GIF89a" + bytes(100), template_dict) == "INVALID_FORMAT"


def test_a_pdf_is_read_page_by_page_and_a_blank_page_has_no_sheet(template_dict: dict[str, Any]) -> None:
    assert _code(_pdf(1), template_dict, filename="scan.pdf") == "NO_SHEET_FOUND"
    assert _code(_pdf(2), template_dict, filename="scan.pdf", page=2) == "NO_SHEET_FOUND"
    assert _code(_pdf(2), template_dict, filename="scan.pdf", page=3) == "INVALID_PAYLOAD"


# --- sizes: bombs and crumbs ------------------------------------------------------------


def test_png_claiming_50000_by_50000_pixels_is_image_too_large_before_decoding(
    template_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = _png_claiming(50_000, 50_000)
    assert len(bomb) < 200  # 2.5 gigapixels claimed by a couple of hundred bytes
    assert image_size(bomb) == (50_000, 50_000)

    def no_decoding(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the bomb reached the decoder")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    assert _code(bomb, template_dict, filename="bomb.png") == "IMAGE_TOO_LARGE"


def _png_bomb(width: int, height: int) -> bytes:
    """A real, valid PNG of width x height black pixels that compresses to little."""
    z = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return _png_claiming(width, height, body)


def test_valid_96_megapixel_png_bomb_is_refused_from_its_header(template_dict: dict[str, Any]) -> None:
    bomb = _png_bomb(12_000, 8_000)  # 96 megapixels in a small file
    assert len(bomb) < 200_000
    assert MAX_PIXELS < 12_000 * 8_000
    start = time.perf_counter()
    assert _code(bomb, template_dict) == "IMAGE_TOO_LARGE"
    assert time.perf_counter() - start < 0.5  # nothing was decompressed


def test_jpeg_claiming_a_huge_size_is_image_too_large(template_dict: dict[str, Any]) -> None:
    data = bytearray(_jpeg(np.zeros((300, 300), np.uint8)))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 30_000, 30_000)
    assert _code(bytes(data), template_dict) == "IMAGE_TOO_LARGE"


def test_zero_by_zero_and_one_by_one_images_are_resolution_too_low(template_dict: dict[str, Any]) -> None:
    assert _code(_png_claiming(0, 0), template_dict, filename="empty.png") == "RESOLUTION_TOO_LOW"
    assert _code(_png(np.full((1, 1), 255, np.uint8)), template_dict, filename="dot.png") == "RESOLUTION_TOO_LOW"
    assert _code(_jpeg(np.full((1, 1), 255, np.uint8)), template_dict) == "RESOLUTION_TOO_LOW"


def test_tiny_image_is_resolution_too_low(template: Template, template_dict: dict[str, Any]) -> None:
    small = cv2.resize(render_sheet(template), (120, 170), interpolation=cv2.INTER_AREA)
    assert _code(_jpeg(small), template_dict) == "RESOLUTION_TOO_LOW"


def test_low_resolution_scan_of_a_sheet_is_resolution_too_low(
    template: Template, template_dict: dict[str, Any]
) -> None:
    small = cv2.resize(render_sheet(template), None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    assert _code(_jpeg(small), template_dict) == "RESOLUTION_TOO_LOW"


def test_a_scan_shaken_past_reading_is_template_mismatch_not_read_through_a_lowered_print_bar(
    template: Template, template_dict: dict[str, Any]
) -> None:
    # The bar at which a bubble's outline counts as printed follows a sheet printed
    # faintly throughout; a blur that spreads every outline thin is not faint print,
    # and the sheet stays refused (as the demo's shaken scan is).
    answers = {str(q): "12345"[q % 5] for q in range(1, 40)}
    scan = cv2.imdecode(np.frombuffer(filled_sheet_jpeg(template, student_id="20260004", answers=answers), np.uint8), 0)
    assert scan is not None
    shaken = cv2.GaussianBlur(scan, (0, 0), 9)
    assert _code(_jpeg(shaken), template_dict) == "TEMPLATE_MISMATCH"


def test_long_thin_strip_is_no_sheet_found(template_dict: dict[str, Any]) -> None:
    assert _code(_jpeg(np.full((220, 12_000), 250, np.uint8)), template_dict) == "NO_SHEET_FOUND"


def test_tiff_is_decoded(template: Template) -> None:
    ok, buf = cv2.imencode(".tiff", render_sheet(template))
    assert ok
    assert decode_gray(bytes(buf)).shape == (template.height, template.width)


# --- pictures without a sheet, or with the wrong one -------------------------------------


def test_blank_white_page_is_no_sheet_found(template_dict: dict[str, Any]) -> None:
    assert _code(_jpeg(np.full((2339, 1654), 250, np.uint8)), template_dict) == "NO_SHEET_FOUND"


def test_page_of_text_without_a_sheet_is_no_sheet_found(template_dict: dict[str, Any]) -> None:
    white = np.full((1200, 900), 250, np.uint8)
    cv2.putText(white, "just a letter, no answer sheet", (50, 300), cv2.FONT_HERSHEY_SIMPLEX, 1, 0, 2)
    assert _code(_jpeg(white), template_dict) == "NO_SHEET_FOUND"


def test_photo_like_random_texture_is_no_sheet_found(template_dict: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    assert _code(_jpeg(rng.integers(0, 256, (1200, 900), dtype=np.uint8)), template_dict) == "NO_SHEET_FOUND"
    # Smooth blobs of light and dark at several sizes over a lighting gradient, as in a
    # photo of a desk or a wall.
    photo = np.zeros((1500, 1100), np.float32)
    for cell in (300, 90, 25):
        coarse = rng.uniform(0, 1, (1500 // cell + 2, 1100 // cell + 2)).astype(np.float32)
        photo += cv2.resize(coarse, (1100, 1500), interpolation=cv2.INTER_CUBIC) * cell / 415
    photo += np.linspace(0, 0.6, 1100, dtype=np.float32)[None, :]
    photo = np.asarray(cv2.normalize(photo, np.empty_like(photo), 0, 255, cv2.NORM_MINMAX), np.float32)
    assert _code(_jpeg(photo.astype(np.uint8)), template_dict) == "NO_SHEET_FOUND"


def test_sheet_with_four_identical_markers_upside_down_is_turned_by_its_layout(
    template: Template, template_dict: dict[str, Any]
) -> None:
    # Without the hollow top-left marker the four markers cannot say which way is up; the
    # bubble layout fits the template only one way round.
    rng = random.Random(54)
    page, truth = fill_sheet(template, rng)
    x, y = (round(v) for v in template.marker_centres[0])
    page[y - 20 : y + 20, x - 20 : x + 20] = 0  # fill the hole: four identical markers
    result = OmrGradingProcessor().run(
        JobInput(
            params={"template": template_dict}, data=_jpeg(np.clip(page[::-1, ::-1] * 255, 0, 255).astype(np.uint8))
        )
    )
    assert result.data["rotation"] == 180
    assert result.data["student_id"] == truth.student_id
    assert {k: tuple(v) for k, v in result.data["answers"].items()} == truth.answers


def test_20_question_sheet_read_with_the_40_question_template_is_template_mismatch(
    template_dict: dict[str, Any], twenty_dict: dict[str, Any]
) -> None:
    rng = random.Random(51)
    page, _ = fill_sheet(load_template(twenty_dict), rng)
    assert _code(degrade(page, rng, upside_down=False)[0], template_dict) == "TEMPLATE_MISMATCH"


def test_40_question_sheet_read_with_the_20_question_template_is_template_mismatch(
    template: Template, twenty_dict: dict[str, Any]
) -> None:
    # Every bubble of the 20-question template is printed on this sheet, at its place:
    # only the 40-question sheet's second column of bubbles tells them apart.
    rng = random.Random(52)
    page, _ = fill_sheet(template, rng)
    assert _code(degrade(page, rng, upside_down=False)[0], twenty_dict) == "TEMPLATE_MISMATCH"
    assert _code(clean(page), twenty_dict) == "TEMPLATE_MISMATCH"


def test_sheet_read_with_another_layout_is_template_mismatch(template: Template, fresh_dict: dict[str, Any]) -> None:
    # Same page and markers, but a 60-question layout in three columns.
    fresh_dict["name"] = "other_60q"
    fresh_dict["question_blocks"] = [
        {"first": 1 + 20 * i, "count": 20, "origin": [250 + 480 * i, 950], "choice_gap": 60, "row_gap": 60}
        for i in range(3)
    ]
    page, _ = fill_sheet(template, random.Random(4))
    assert _code(clean(page), fresh_dict) == "TEMPLATE_MISMATCH"


def test_sheet_read_with_a_landscape_template_is_template_mismatch(
    template: Template, fresh_dict: dict[str, Any]
) -> None:
    fresh_dict["page"] = {"width": 2339, "height": 1654, "dpi": 200}
    for block in fresh_dict["question_blocks"]:
        block["count"] = 10
    assert _code(sheet_png(template), fresh_dict) == "TEMPLATE_MISMATCH"


def test_upside_down_sheet_reads_correctly_with_rotation_180(template: Template, template_dict: dict[str, Any]) -> None:
    rng = random.Random(53)
    page, truth = fill_sheet(template, rng)
    data, flipped = degrade(page, rng, upside_down=True)
    assert flipped
    result = OmrGradingProcessor().run(JobInput(params={"template": template_dict}, data=data))
    assert result.data["rotation"] == 180
    assert result.data["student_id"] == truth.student_id
    assert {k: tuple(v) for k, v in result.data["answers"].items()} == truth.answers


# --- PDFs ----------------------------------------------------------------------------------


def test_pdf_with_no_pages_is_pdf_no_pages() -> None:
    assert _pdf_code(_pdf(0)) == "PDF_NO_PAGES"


def test_pdf_with_no_pages_is_pdf_no_pages_even_after_another_pdf_failed() -> None:
    # PDFium keeps the last error of the process; a broken file read first must not
    # change what an empty one is called. In a child process, so this one's PDFium
    # state is left as it was for the tests that follow.
    code = """
import io, pypdfium2 as pdfium
from workers.base import BadInput
from workers.omr.pdf import pdf_pages
doc = pdfium.PdfDocument.new()
buf = io.BytesIO()
doc.save(buf)
codes = []
for data in (b"%PDF-1.4\\nbroken beyond repair", buf.getvalue()):
    try:
        list(pdf_pages(data))
    except BadInput as exc:
        codes.append(exc.code)
print(" ".join(codes))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["FILE_UNREADABLE", "PDF_NO_PAGES"]


def test_pdf_with_more_pages_than_the_limit_is_refused_before_any_page_is_drawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = _pdf(MAX_PAGES + 1)

    def no_drawing(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a page was drawn")

    monkeypatch.setattr(pdfium.PdfPage, "render", no_drawing)
    assert _pdf_code(data) == "PDF_TOO_MANY_PAGES"


def test_pdf_with_500_blank_pages_is_pdf_too_many_pages() -> None:
    assert _pdf_code(_pdf(500)) == "PDF_TOO_MANY_PAGES"


def test_pdf_page_with_a_huge_mediabox_is_drawn_smaller_not_at_full_size() -> None:
    # 200 x 200 inches: 40,000 x 40,000 pixels (1.6 gigapixels) at 200 dpi.
    (page,) = pdf_pages(_pdf(1, size=(14_400, 14_400)))
    assert page.size <= MAX_PAGE_PIXELS
    assert page.shape[0] == page.shape[1] > 3000


def test_pdf_page_of_a_sheet_reads_like_the_image(template: Template, template_dict: dict[str, Any]) -> None:
    page, truth = fill_sheet(template, random.Random(54))
    gray = np.asarray(cv2.imdecode(np.frombuffer(clean(page), np.uint8), cv2.IMREAD_GRAYSCALE), np.uint8)
    (drawn,) = pdf_pages(image_to_pdf(gray, template.dpi))
    result = OmrGradingProcessor().run(JobInput(params={"template": template_dict}, data=_png(drawn)))
    assert {k: tuple(v) for k, v in result.data["answers"].items()} == truth.answers
