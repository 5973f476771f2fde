"""The shared guarded decoder: headers, bombs, truncation and the kinds each caller takes."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from workers import imageio
from workers.base import BadInput
from workers.imageio import IMAGE_KINDS, decode, image_size, looks_truncated, sniff

LIMITS: dict[str, Any] = {"max_pixels": 10_000_000, "min_side": 16}


def encode(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def tiff_claiming(width: int, height: int, *, order: str = "<", typ: int = 4) -> bytes:
    fmt = "HHIHH" if typ == 3 else "HHII"
    entries = [(256, typ, 1, width, 0)[: len(fmt)], (257, typ, 1, height, 0)[: len(fmt)]]
    ifd = struct.pack(order + "H", len(entries))
    ifd += b"".join(struct.pack(order + fmt, *e) for e in entries) + b"\0" * 4
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    return magic + struct.pack(order + "I", 8) + ifd


def code_of(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(BadInput) as info:
        decode(data, **{**LIMITS, **kwargs})
    return info.value.code


def size_code(data: bytes, kinds: frozenset[str] = IMAGE_KINDS) -> str:
    with pytest.raises(BadInput) as info:
        image_size(data, kinds)
    return info.value.code


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("the file reached the decoder")

    monkeypatch.setattr(cv2, "imdecode", refuse)


# --------------------------------------------------------------------------- sniff


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"BM\x00\x00", "bmp"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"%PDF-1.7\n", "pdf"),
        (b"\n  %PDF-1.4\n", "pdf"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"GIF89a", None),
        (b"\xff\xd8", None),  # two bytes are not yet a JPEG
        (b"", None),
    ],
)
def test_sniff_tells_the_kind_from_the_magic_bytes(data: bytes, kind: str | None) -> None:
    assert sniff(data) == kind


# --------------------------------------------------------------------------- header sizes


def test_png_jpeg_tiff_bmp_and_webp_sizes_come_from_the_header() -> None:
    img = Image.new("L", (321, 123), 200)
    rgb = Image.new("RGB", (321, 123))
    assert image_size(encode(img, "PNG")) == ("png", 321, 123)
    assert image_size(encode(img, "JPEG")) == ("jpeg", 321, 123)
    assert image_size(encode(rgb, "JPEG", progressive=True)) == ("jpeg", 321, 123)
    assert image_size(encode(img, "TIFF")) == ("tiff", 321, 123)
    assert image_size(encode(rgb, "TIFF", compression="tiff_lzw")) == ("tiff", 321, 123)
    assert image_size(encode(img, "BMP")) == ("bmp", 321, 123)
    assert image_size(encode(rgb, "WEBP", quality=80)) == ("webp", 321, 123)
    assert image_size(encode(rgb, "WEBP", lossless=True)) == ("webp", 321, 123)
    assert image_size(encode(Image.new("RGBA", (321, 123)), "WEBP")) == ("webp", 321, 123)


def test_jpeg_size_skips_app_segments_and_fill_bytes() -> None:
    real = encode(Image.new("L", (70, 40)), "JPEG")
    # An extra APP1 segment and two fill bytes before the rest of the markers.
    app1 = b"\xff\xe1" + struct.pack(">H", 8) + b"Exif\0\0"
    data = real[:2] + app1 + b"\xff\xff" + real[2:]
    assert image_size(data) == ("jpeg", 70, 40)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("typ", [3, 4])
def test_tiff_size_in_both_byte_orders_and_both_integer_types(order: str, typ: int) -> None:
    assert image_size(tiff_claiming(1234, 567, order=order, typ=typ)) == ("tiff", 1234, 567)


def test_a_top_down_bmp_has_a_positive_height() -> None:
    data = bytearray(encode(Image.new("L", (50, 30)), "BMP"))
    data[22:26] = struct.pack("<i", -30)
    assert image_size(bytes(data)) == ("bmp", 50, 30)


def test_the_webp_vp8x_canvas_is_read() -> None:
    body = b"\x00" * 4 + (999).to_bytes(3, "little") + (499).to_bytes(3, "little")
    data = b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBP" + b"VP8X" + struct.pack("<I", 10) + body
    assert image_size(data) == ("webp", 1000, 500)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,  # no IHDR
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00",  # IHDR cut short
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # no frame header
        b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 8,  # scan before any frame header
        b"\xff\xd8\xffX\x00\x10",  # a marker that is not one
        b"II*\x00\xff\xff\x00\x00",  # IFD offset past the end
        tiff_claiming(10, 10)[:20],  # IFD cut short
        b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00",  # IFD without size tags
        b"BM\x00\x00",  # BMP header cut short
        b"RIFF\x00\x00\x00\x00WEBPVP8Z" + b"\x00" * 20,  # unknown chunk
        b"RIFF\x00\x00\x00\x00WEBPVP8L\x05\x00\x00\x00\x00" + b"\x00" * 8,  # bad signature
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20,  # bad start code
        b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00",  # VP8X cut short
    ],
    ids=[
        "png-no-ihdr",
        "png-short",
        "jpeg-no-sof",
        "jpeg-sos-first",
        "jpeg-bad-marker",
        "tiff-ifd-past-end",
        "tiff-short",
        "tiff-no-tags",
        "bmp-short",
        "webp-chunk",
        "webp-vp8l",
        "webp-vp8",
        "webp-vp8x-short",
    ],
)
def test_a_damaged_header_is_unreadable(data: bytes) -> None:
    assert size_code(data) == "FILE_UNREADABLE"


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a" + b"\x00" * 64,
        b"%PDF-1.7\n" + b"\x00" * 64,
        b"PK\x03\x04" + b"\x00" * 64,
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,  # OLE2: an old .doc or .xls
        b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64,
        b"\x00\x00\x00\x1cftypavif" + b"\x00" * 64,
        b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 64,
    ],
    ids=["gif", "pdf", "zip", "ole2", "heic", "avif", "wav"],
)
def test_known_non_image_kinds_are_invalid_format(data: bytes) -> None:
    assert size_code(data) == "INVALID_FORMAT"
    assert code_of(data) == "INVALID_FORMAT"


def test_bytes_that_are_no_image_at_all_are_unreadable() -> None:
    assert size_code(b"hello, this is not an image at all") == "FILE_UNREADABLE"
    assert size_code(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 16) == "FILE_UNREADABLE"  # an MP4


def test_an_image_kind_the_caller_does_not_take_is_invalid_format() -> None:
    bmp = encode(Image.new("L", (50, 30)), "BMP")
    webp = encode(Image.new("L", (50, 30)), "WEBP")
    assert size_code(bmp, frozenset({"png", "jpeg", "tiff", "webp"})) == "INVALID_FORMAT"
    assert size_code(webp, frozenset({"png", "jpeg", "tiff", "bmp"})) == "INVALID_FORMAT"
    with pytest.raises(BadInput, match="only PNG, JPEG and WebP images"):
        image_size(bmp, frozenset({"webp", "jpeg", "png"}))
    # A PDF is sniffed but never an image kind, even when a caller lists it.
    assert size_code(b"%PDF-1.7\n", frozenset({"pdf", "png"})) == "INVALID_FORMAT"


# --------------------------------------------------------------------------- truncation


def test_truncation_is_judged_from_the_end_markers() -> None:
    img = Image.effect_noise((300, 200), 40).convert("L")
    jpeg, png, tiff = encode(img, "JPEG"), encode(img, "PNG"), encode(img, "TIFF")
    assert not looks_truncated(jpeg, "jpeg")
    assert not looks_truncated(png, "png")
    assert looks_truncated(jpeg[: len(jpeg) // 2], "jpeg")
    assert looks_truncated(jpeg[: jpeg.index(b"\xff\xda")], "jpeg")  # cut before the scan
    assert looks_truncated(png[:-20], "png")
    assert not looks_truncated(tiff[: len(tiff) // 2], "tiff")  # not judged


def test_truncated_files_are_refused_before_decoding(no_decoding: None) -> None:
    img = Image.effect_noise((300, 200), 40).convert("L")
    jpeg, png = encode(img, "JPEG"), encode(img, "PNG")
    assert code_of(jpeg[: len(jpeg) // 2]) == "FILE_UNREADABLE"
    assert code_of(png[:-20]) == "FILE_UNREADABLE"


# --------------------------------------------------------------------------- sizes and bombs


@pytest.mark.parametrize("kind", ["png", "jpeg", "tiff", "bmp", "webp"])
def test_a_bomb_of_every_kind_is_image_too_large_before_decoding(kind: str, no_decoding: None) -> None:
    if kind == "png":
        data = png_claiming(30_000, 30_000, zlib.compress(b"\x00" * 30_001 * 64, 9))
    elif kind == "jpeg":
        real = encode(Image.new("L", (64, 64), 255), "JPEG")
        sof = real.index(b"\xff\xc0")
        data = real[: sof + 5] + struct.pack(">HH", 30_000, 30_000) + real[sof + 9 :]
    elif kind == "tiff":
        data = tiff_claiming(40_000, 40_000)
    elif kind == "bmp":
        bmp = bytearray(encode(Image.new("L", (64, 64)), "BMP"))
        bmp[18:26] = struct.pack("<ii", 20_000, 20_000)
        data = bytes(bmp)
    else:
        bits = (16_000 - 1) | ((16_000 - 1) << 14)
        body = b"\x2f" + bits.to_bytes(4, "little")
        data = b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBP" + b"VP8L" + struct.pack("<I", 5) + body
    assert len(data) < 100_000
    assert code_of(data) == "IMAGE_TOO_LARGE"


def test_the_pixel_limit_is_inclusive() -> None:
    data = encode(Image.new("L", (100, 50), 255), "PNG")
    assert decode(data, max_pixels=5000, min_side=16).shape == (50, 100)
    with pytest.raises(BadInput, match="100x50 pixels") as info:
        decode(data, max_pixels=4999, min_side=16)
    assert info.value.code == "IMAGE_TOO_LARGE"


def test_a_file_over_the_byte_limit_is_file_too_large_not_image_too_large() -> None:
    data = encode(Image.effect_noise((200, 200), 64).convert("L"), "PNG")
    assert code_of(data, max_bytes=len(data) - 1) == "FILE_TOO_LARGE"
    assert decode(data, max_bytes=len(data), **LIMITS).shape == (200, 200)


def test_empty_and_small_images() -> None:
    assert code_of(b"") == "EMPTY_FILE"
    assert code_of(png_claiming(0, 0)) == "RESOLUTION_TOO_LOW"
    assert code_of(encode(Image.new("L", (600, 15), 255), "PNG")) == "RESOLUTION_TOO_LOW"
    assert decode(encode(Image.new("L", (600, 16), 255), "PNG"), **LIMITS).shape == (16, 600)


def test_the_decoded_pixels_are_size_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # The header passes; what the decoder hands back is what counts.
    monkeypatch.setattr(cv2, "imdecode", lambda *_args: np.zeros((10, 40), np.uint8))
    with pytest.raises(BadInput, match="40x10") as info:
        decode(encode(Image.new("L", (400, 100)), "PNG"), **LIMITS)
    assert info.value.code == "RESOLUTION_TOO_LOW"


# --------------------------------------------------------------------------- decoding


def test_decoder_failures_are_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = png_claiming(300, 200, b"not zlib data")
    assert code_of(garbage) == "FILE_UNREADABLE"
    good = encode(Image.new("L", (300, 200)), "PNG")

    def broken(*_args: object) -> None:
        raise cv2.error("boom")

    monkeypatch.setattr(cv2, "imdecode", broken)
    assert code_of(good) == "FILE_UNREADABLE"


def test_grey_colour_and_alpha_modes() -> None:
    rgba = Image.new("RGBA", (40, 30), (10, 200, 30, 0))
    png = encode(rgba, "PNG")
    gray = decode(png, **LIMITS)
    assert gray.shape == (30, 40)
    assert gray.dtype == np.uint8
    assert decode(png, grayscale=False, **LIMITS).shape == (30, 40, 3)
    assert decode(png, keep_alpha=True, **LIMITS).shape == (30, 40, 4)
    wide = Image.new("I;16", (40, 30))
    assert decode(encode(wide, "PNG"), keep_alpha=True, **LIMITS).dtype == np.uint16
    # A JPEG holds no alpha: keep_alpha still decodes it to grey.
    assert decode(encode(rgba.convert("RGB"), "JPEG"), keep_alpha=True, **LIMITS).shape == (30, 40)


def test_a_jpeg_is_turned_by_its_exif_orientation_even_with_keep_alpha() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.new("L", (60, 20), 255), "JPEG", exif=exif.tobytes())
    assert image_size(data) == ("jpeg", 60, 20)
    assert decode(data, **LIMITS).shape == (60, 20)
    assert decode(data, keep_alpha=True, **LIMITS).shape == (60, 20)


def test_reading_a_header_imports_neither_opencv_nor_numpy() -> None:
    code = "import sys, workers.imageio; print(sorted(m for m in ('cv2', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the callers


def test_each_processor_keeps_its_own_kinds_and_limits(no_decoding: None) -> None:
    from workers import ocr
    from workers.omr import decode as omr_decode
    from workers.omr.errors import OmrError

    bmp = encode(Image.new("L", (300, 300)), "BMP")
    webp = encode(Image.new("L", (300, 300)), "WEBP")
    # The reader takes BMP (old scanner software writes it) and WebP (phones share it);
    # OCR takes WebP but not BMP.
    assert omr_decode.image_size(bmp) == (300, 300)
    assert omr_decode.image_size(webp) == (300, 300)
    assert ocr.image_size(webp) == ("webp", 300, 300)
    with pytest.raises(BadInput) as info:
        ocr.image_size(bmp)
    assert info.value.code == "INVALID_FORMAT"
    # The reader's errors stay OmrError, with the new bomb code.
    with pytest.raises(OmrError) as omr_info:
        omr_decode.decode_gray(tiff_claiming(10_000, 7_000))
    assert omr_info.value.code == "IMAGE_TOO_LARGE"
    assert omr_decode.sniff is imageio.sniff
