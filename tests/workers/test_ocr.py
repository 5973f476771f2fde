"""Tests for the ``ocr`` processor.

Pages are rendered here with Pillow and a Korean TrueType font (Debian's fonts-nanum),
then read by the real Tesseract. Those tests skip when the ``tesseract`` binary is not
installed; everything that must be refused before Tesseract runs (formats, bombs, tiny
images, parameters, a missing engine) is tested without it, the engine's failures with
small stand-in scripts.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import stat
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import workers.ocr as ocr
from workers.base import BadInput, JobInput, ProcessingError, ProcessorResult
from workers.ocr import OcrProcessor, build_result, decode_page, image_size

REPO_ROOT = Path(__file__).resolve().parents[2]
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/nanum/NanumBarunGothic.ttf",
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
)
PAGE_LINES = (
    "2026학년도 겨울방학 특강 안내문",
    "수학 Math 영어 English 과학 Science",
    "학생 여러분 안녕하세요. 이번 겨울방학에는",
    "Winter intensive classes start on Monday.",
    "연락처 010-1234-5678 academy@example.com",
)
LEFT, TOP, FONT_PX, LINE_STEP = 120, 100, 32, 72

TSV_HEADER = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext"

Box = tuple[float, float, float, float]  # x, y, w, h
Drawn = list[list[tuple[str, Box]]]  # per line, each word with its drawn box


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    ocr.forget_engines()
    yield
    ocr.forget_engines()


def korean_font_path() -> str:
    for path in _FONT_CANDIDATES:
        if Path(path).is_file():
            return path
    try:
        out = subprocess.run(
            ["fc-list", ":lang=ko", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        path = line.split(":")[0].strip()
        if path.lower().endswith((".ttf", ".otf", ".ttc")):
            return path
    pytest.fail("no Korean font for rendering test pages: install fonts-nanum")


@pytest.fixture(scope="module")
def tesseract() -> str:
    path = shutil.which("tesseract")
    if path is None:
        pytest.skip("the tesseract binary is not installed (apt-get install tesseract-ocr tesseract-ocr-kor)")
    return path


def render(lines: tuple[str, ...], size: tuple[int, int] = (1654, 560)) -> tuple[Image.Image, Drawn]:
    """A white page with ``lines``; also each word's drawn box (x, y, w, h) per line."""
    font = ImageFont.truetype(korean_font_path(), FONT_PX)
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    boxes: Drawn = []
    for i, line in enumerate(lines):
        y = TOP + i * LINE_STEP
        draw.text((LEFT, y), line, font=font, fill=0)
        words = []
        x_offset = 0
        for word in line.split(" "):
            start = LEFT + draw.textlength(line[:x_offset], font=font)
            x0, y0, x1, y1 = draw.textbbox((start, y), word, font=font)
            words.append((word, (x0, y0, x1 - x0, y1 - y0)))
            x_offset += len(word) + 1
        boxes.append(words)
    return img, boxes


def encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def run(data: bytes | None, params: dict[str, Any] | None = None, **kw: Any) -> ProcessorResult:
    return OcrProcessor(**kw).run(JobInput(params=params or {}, data=data, filename="page.png"))


def decode_code(data: bytes) -> str:
    with pytest.raises(BadInput) as info:
        decode_page(data)
    return info.value.code


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, idat: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter))


def fake_tesseract(tmp_path: Path, body: str, langs: str = "eng\nkor") -> str:
    """A stand-in binary: answers --version and --list-langs, runs ``body`` otherwise."""
    script = tmp_path / "tesseract"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "tesseract 5.3.0"; exit 0; fi\n'
        'if [ "$1" = "--list-langs" ]; then\n'
        "  echo 'List of available languages in \"/fake/\" (2):'\n"
        f"  printf '%s\\n' {' '.join(langs.split())}\n"
        "  exit 0\n"
        "fi\n" + body + "\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


# --------------------------------------------------------------------------- contract


def test_processor_declares_its_job_type_input_and_extensions() -> None:
    assert OcrProcessor.job_type == "ocr"
    assert OcrProcessor.input_key == "image_path"
    assert OcrProcessor.extensions == frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"})
    assert OcrProcessor.wants_gpu is False


def test_module_imports_no_heavy_library_eagerly() -> None:
    heavy = ("django", "celery", "cv2", "numpy", "pytesseract", "PIL")
    code = f"import sys, workers.ocr; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- real engine


@pytest.fixture(scope="module")
def page_result(tesseract: str) -> tuple[ProcessorResult, Drawn]:
    img, boxes = render(PAGE_LINES)
    return run(encode(img, "PNG")), boxes


def test_korean_and_english_text_is_read(page_result: tuple[ProcessorResult, Drawn]) -> None:
    result, _ = page_result
    text = result.data["text"]
    for word in ("겨울방학", "안내문", "안녕하세요", "수학", "Math", "English", "Science", "Monday."):
        assert word in text, (word, text)
    assert "010-1234-5678" in text
    assert result.data["language"] == "kor+eng"
    assert result.data["psm"] == 4
    assert result.data["engine"]["name"] == "tesseract"
    assert result.data["engine"]["version"][0].isdigit()
    assert result.data["image"] == {"width": 1654, "height": 560}
    assert len(result.data["lines"]) == len(PAGE_LINES)
    assert result.confidence > 0.8
    assert result.review is False
    words = result.data["words"]
    assert result.confidence == pytest.approx(sum(w["confidence"] for w in words) / len(words), abs=1e-3)
    assert all(0.0 <= w["confidence"] <= 1.0 for w in words)


def test_word_and_line_boxes_are_where_the_text_was_drawn(
    page_result: tuple[ProcessorResult, Drawn],
) -> None:
    result, drawn = page_result
    found = {w["text"]: w["box"] for w in result.data["words"]}
    for line in drawn:
        for word, box in line:
            if word in ("겨울방학에는", "English", "intensive", "academy@example.com", "안녕하세요."):
                assert word in found, (word, sorted(found))
                assert iou(found[word], box) > 0.5, (word, found[word], box)
    for i, line in enumerate(result.data["lines"]):
        x, y, _w, h = line["box"]
        assert abs(x - LEFT) < 10
        assert abs(y - (TOP + i * LINE_STEP)) < 15
        assert FONT_PX * 0.5 < h < FONT_PX * 1.5
        assert line["text"].split()[0] == PAGE_LINES[i].split()[0]


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "tiff", "rgba-png"])
def test_other_formats_and_a_transparent_background_are_read(tesseract: str, fmt: str) -> None:
    img, _ = render(("출석 확인 Attendance", "결석 Absent"), size=(900, 260))
    if fmt == "rgba-png":
        # Black text on a transparent page whose hidden colour is black too: only the
        # alpha channel tells text from background.
        rgba = Image.new("RGBA", img.size, (0, 0, 0, 0))
        rgba.putalpha(Image.eval(img, lambda v: 255 - v))
        data = encode(rgba, "PNG")
    elif fmt == "jpeg":
        data = encode(img, "JPEG", quality=85)
    elif fmt == "webp":
        data = encode(img, "WEBP", quality=90)
    else:
        data = encode(img, "TIFF", compression="tiff_deflate")
    text = run(data, {"psm": 6}).data["text"]
    for word in ("출석", "확인", "Attendance", "결석", "Absent"):
        assert word in text, (fmt, text)


def test_english_only_language_is_honoured(tesseract: str) -> None:
    img, _ = render(("Homework is due on Friday",), size=(900, 200))
    result = run(encode(img, "PNG"), {"lang": "eng", "psm": 7})
    assert result.data["language"] == "eng"
    assert result.data["text"] == "Homework is due on Friday"


def test_a_blank_page_has_no_words_zero_confidence_and_needs_review(tesseract: str) -> None:
    blank = encode(Image.new("L", (400, 300), 255), "PNG")
    result = run(blank)
    assert result.data["words"] == []
    assert result.data["text"] == ""
    assert result.confidence == 0.0
    assert result.review is True


def test_progress_is_reported(tesseract: str) -> None:
    img, _ = render(("Math",), size=(300, 200))
    seen: list[tuple[str, int]] = []
    job = JobInput(params={"psm": 7}, data=encode(img, "PNG"), progress=lambda s, p: seen.append((s, p)))
    OcrProcessor().run(job)
    assert seen[0] == ("decode", 0)
    assert seen[-1] == ("done", 100)


def test_validate_accepts_the_installed_engine(tesseract: str) -> None:
    OcrProcessor().validate({})
    OcrProcessor().validate({"lang": "kor", "psm": 6})


# --------------------------------------------------------------------------- decoding


def test_header_sizes_are_read_without_decoding() -> None:
    img = Image.new("L", (321, 123), 255)
    assert image_size(encode(img, "PNG")) == ("png", 321, 123)
    assert image_size(encode(img, "JPEG")) == ("jpeg", 321, 123)
    assert image_size(encode(img, "JPEG", progressive=True)) == ("jpeg", 321, 123)
    assert image_size(encode(img, "TIFF")) == ("tiff", 321, 123)
    assert image_size(encode(Image.new("RGB", (321, 123)), "TIFF", compression="tiff_lzw")) == ("tiff", 321, 123)
    assert image_size(encode(img, "WEBP", quality=80)) == ("webp", 321, 123)
    assert image_size(encode(img, "WEBP", lossless=True)) == ("webp", 321, 123)
    assert image_size(encode(Image.new("RGBA", (321, 123)), "WEBP")) == ("webp", 321, 123)


def test_decoded_page_is_grey_and_flattens_alpha_onto_white() -> None:
    rgba = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (10, 10, 20, 20))
    page = decode_page(encode(rgba, "PNG"))
    assert page.shape == (48, 64)
    assert page.dtype == np.uint8
    assert page[0, 0] == 255
    assert page[15, 15] == 0
    sixteen = np.full((40, 50, 3), 65535, np.uint16)
    ok, buf = cv2.imencode(".png", sixteen)
    assert ok
    assert decode_page(bytes(buf))[0, 0] == 255
    ramp = np.tile(np.linspace(-1.0, 1.0, 50, dtype=np.float32), (40, 1))
    ok, buf = cv2.imencode(".tiff", ramp)
    assert ok
    stretched = decode_page(bytes(buf))
    assert (stretched[0, 0], stretched[0, -1]) == (0, 255)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "EMPTY_FILE"),
        (b"hello, this is not an image at all", "FILE_UNREADABLE"),
        (b"GIF89a" + b"\x00" * 64, "INVALID_FORMAT"),
        (b"%PDF-1.7\n" + b"\x00" * 64, "INVALID_FORMAT"),
        (b"PK\x03\x04" + b"\x00" * 64, "INVALID_FORMAT"),
        (b"BM" + b"\x00" * 64, "INVALID_FORMAT"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "FILE_UNREADABLE"),  # no IHDR
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "FILE_UNREADABLE"),  # no frame header
    ],
    ids=["empty", "text", "gif", "pdf", "zip", "bmp", "png-no-ihdr", "jpeg-no-sof"],
)
def test_files_that_are_not_readable_images_are_refused(data: bytes, code: str) -> None:
    assert decode_code(data) == code


def test_truncated_and_corrupt_images_are_unreadable() -> None:
    img = Image.effect_noise((300, 200), 40).convert("L")
    jpeg = encode(img, "JPEG")
    assert decode_code(jpeg[: len(jpeg) // 2]) == "FILE_UNREADABLE"
    png = encode(img, "PNG")
    assert decode_code(png[: len(png) - 20]) == "FILE_UNREADABLE"
    # A well-formed header and end marker around garbage pixel data.
    assert decode_code(png_header_only(300, 200, idat=b"not zlib data")) == "FILE_UNREADABLE"


def test_tiny_and_zero_size_images_are_too_low_resolution() -> None:
    assert decode_code(encode(Image.new("L", (10, 10), 255), "PNG")) == "RESOLUTION_TOO_LOW"
    assert decode_code(encode(Image.new("L", (600, 8), 255), "PNG")) == "RESOLUTION_TOO_LOW"
    assert decode_code(png_header_only(0, 0)) == "RESOLUTION_TOO_LOW"


@pytest.mark.parametrize("kind", ["png", "jpeg", "tiff", "webp-vp8x", "webp-vp8l"])
def test_decompression_bombs_are_refused_from_the_header(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(*args: Any) -> None:
        raise AssertionError("the bomb was decoded")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    if kind == "png":
        # 30000 x 30000 grey pixels that all deflate to almost nothing.
        raw = zlib.compress(b"\x00" * (30_001 * 64), 9)
        data = png_header_only(30_000, 30_000, idat=raw)
    elif kind == "jpeg":
        real = encode(Image.new("L", (64, 64), 255), "JPEG")
        sof = real.index(b"\xff\xc0")
        data = real[: sof + 5] + struct.pack(">HH", 30_000, 30_000) + real[sof + 9 :]
    elif kind == "tiff":
        entries = [(256, 4, 1, 40_000), (257, 4, 1, 40_000)]
        ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4
        data = b"II*\x00" + struct.pack("<I", 8) + ifd
    elif kind == "webp-vp8x":
        body = b"\x00" * 4 + (16_383 - 1).to_bytes(3, "little") + (16_383 - 1).to_bytes(3, "little")
        data = b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBP" + b"VP8X" + struct.pack("<I", 10) + body
    else:
        bits = (16_000 - 1) | ((16_000 - 1) << 14)
        body = b"\x2f" + bits.to_bytes(4, "little")
        data = b"RIFF" + struct.pack("<I", 4 + 8 + len(body)) + b"WEBP" + b"VP8L" + struct.pack("<I", 5) + body
    assert decode_code(data) == "IMAGE_TOO_LARGE"


def test_a_file_over_the_byte_limit_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "MAX_BYTES", 1000)
    data = encode(Image.effect_noise((200, 200), 64).convert("L"), "PNG")
    assert len(data) > 1000
    assert decode_code(data) == "FILE_TOO_LARGE"


def test_run_without_a_file_is_refused(tmp_path: Path) -> None:
    cmd = fake_tesseract(tmp_path, "exit 1")
    with pytest.raises(BadInput) as info:
        run(None, tesseract_cmd=cmd)
    assert info.value.code == "FILE_REQUIRED"


# --------------------------------------------------------------------------- params and engine


@pytest.mark.parametrize(
    "params",
    [{"lang": "jpn"}, {"lang": ["kor"]}, {"lang": "kor+jpn"}, {"psm": 0}, {"psm": "6"}, {"psm": True}, {"psm": 6.0}],
)
def test_bad_params_are_refused_before_the_engine_is_asked(params: dict[str, Any]) -> None:
    proc = OcrProcessor(tesseract_cmd="/nonexistent/tesseract")
    with pytest.raises(BadInput) as info:
        proc.validate(params)
    assert info.value.code == "INVALID_PAYLOAD"
    with pytest.raises(BadInput) as info:
        proc.run(JobInput(params=params, data=b"x"))
    assert info.value.code == "INVALID_PAYLOAD"


def test_missing_binary_is_backend_not_configured_and_probed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_probe = ocr._probe

    def counting_probe(cmd: str) -> Any:
        calls.append(cmd)
        return real_probe(cmd)

    monkeypatch.setattr(ocr, "_probe", counting_probe)
    proc = OcrProcessor(tesseract_cmd="/nonexistent/tesseract")
    for _ in range(3):
        with pytest.raises(BadInput) as info:
            proc.validate({})
        assert info.value.code == "BACKEND_NOT_CONFIGURED"
    with pytest.raises(BadInput) as info:
        proc.run(JobInput(params={}, data=b"x"))
    assert info.value.code == "BACKEND_NOT_CONFIGURED"
    assert calls == ["/nonexistent/tesseract"]


def test_missing_pytesseract_package_is_backend_not_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # the module workers.ocr asks
    with pytest.raises(BadInput) as info:
        OcrProcessor(tesseract_cmd=fake_tesseract(tmp_path, "exit 1")).validate({})
    assert info.value.code == "BACKEND_NOT_CONFIGURED"
    assert "pytesseract" in info.value.message


def test_the_binary_comes_from_tesseract_cmd_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERACT_CMD", "/opt/ocr/bin/tesseract")
    assert OcrProcessor().tesseract_cmd == "/opt/ocr/bin/tesseract"


def test_missing_language_data_is_backend_not_configured(tmp_path: Path) -> None:
    proc = OcrProcessor(tesseract_cmd=fake_tesseract(tmp_path, "exit 1", langs="eng osd"))
    proc.validate({"lang": "eng"})
    for lang in ("kor", "kor+eng"):
        with pytest.raises(BadInput) as info:
            proc.validate({"lang": lang})
        assert info.value.code == "BACKEND_NOT_CONFIGURED"
        assert "kor" in info.value.message


def test_a_hung_engine_times_out(tmp_path: Path) -> None:
    cmd = fake_tesseract(tmp_path, "exec sleep 30")
    png = encode(Image.new("L", (64, 64), 255), "PNG")
    with pytest.raises(ProcessingError) as info:
        run(png, tesseract_cmd=cmd, timeout_s=0.5)
    assert info.value.code == "timeout"


@pytest.mark.parametrize(("preset", "seen"), [(None, "1"), ("3", "3")])
def test_tesseract_gets_one_openmp_thread_unless_the_environment_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preset: str | None, seen: str
) -> None:
    # $2 is the output base: write an empty TSV and text as Tesseract would for a blank page.
    body = f'echo "$OMP_THREAD_LIMIT" > {tmp_path}/omp\nprintf \'{TSV_HEADER}\\n\' > "$2.tsv"\n: > "$2.txt"'
    cmd = fake_tesseract(tmp_path, body)
    if preset is None:
        monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
    else:
        monkeypatch.setenv("OMP_THREAD_LIMIT", preset)
    result = run(encode(Image.new("L", (64, 64), 255), "PNG"), tesseract_cmd=cmd)
    assert (tmp_path / "omp").read_text().strip() == seen
    assert result.data["words"] == []
    assert result.data["engine"] == {"name": "tesseract", "version": "5.3.0"}
    assert result.confidence == 0.0
    assert result.review is True


def test_an_engine_that_writes_nothing_is_a_library_error(tmp_path: Path) -> None:
    cmd = fake_tesseract(tmp_path, "exit 0")
    png = encode(Image.new("L", (64, 64), 255), "PNG")
    with pytest.raises(ProcessingError) as info:
        run(png, tesseract_cmd=cmd)
    assert info.value.code == "library_error"


def test_an_engine_failure_is_a_library_error(tmp_path: Path) -> None:
    cmd = fake_tesseract(tmp_path, "echo 'Error in pixReadStream' >&2; exit 1")
    png = encode(Image.new("L", (64, 64), 255), "PNG")
    with pytest.raises(ProcessingError) as info:
        run(png, tesseract_cmd=cmd)
    assert info.value.code == "library_error"
    assert "pixReadStream" in info.value.message


# --------------------------------------------------------------------------- TSV


def tsv(*rows: str) -> str:
    return "\n".join([TSV_HEADER, *rows]) + "\n"


def test_tsv_words_are_grouped_into_lines_and_paragraphs_with_confidences_scaled() -> None:
    out = tsv(
        "1\t1\t0\t0\t0\t0\t0\t0\t500\t300\t-1\t",
        "4\t1\t1\t1\t1\t0\t10\t20\t200\t30\t-1\t",
        "5\t1\t1\t1\t1\t1\t10\t20\t80\t30\t96.5\t안녕",
        "5\t1\t1\t1\t1\t2\t100\t22\t110\t28\t90\tHello",
        "5\t1\t1\t1\t1\t3\t220\t22\t10\t28\t95\t ",
        "5\t1\t1\t1\t2\t1\t10\t60\t50\t30\t-1\tWorld",
        "5\t1\t2\t1\t1\t1\t10\t200\t50\t30\t80\tBye",
    )
    text, words, lines = build_result(out)
    assert text == "안녕 Hello\nWorld\n\nBye"
    assert [w["text"] for w in words] == ["안녕", "Hello", "World", "Bye"]
    assert words[0] == {"text": "안녕", "confidence": 0.965, "box": [10, 20, 80, 30]}
    assert words[2]["confidence"] == 0.0
    assert lines[0] == {
        "text": "안녕 Hello",
        "confidence": pytest.approx((96.5 * 2 + 90 * 5) / 7 / 100, abs=1e-4),
        "box": [10, 20, 200, 30],
    }
    assert lines[1] == {"text": "World", "confidence": 0.0, "box": [10, 60, 50, 30]}
    assert build_result("") == ("", [], [])
    with pytest.raises(ProcessingError):
        build_result("something\telse\n1\t2\n")


def test_syllables_the_text_output_writes_together_become_one_word() -> None:
    out = tsv(
        "5\t1\t1\t1\t1\t1\t10\t20\t20\t30\t90\t겨",
        "5\t1\t1\t1\t1\t2\t32\t21\t20\t30\t80\t울",
        "5\t1\t1\t1\t1\t3\t54\t20\t40\t31\t70\t방학",
        "5\t1\t1\t1\t1\t4\t110\t20\t40\t30\t60\t특강",
        "5\t1\t1\t1\t2\t1\t10\t60\t40\t30\t50\t안내",
        "5\t1\t1\t1\t2\t2\t60\t60\t40\t30\t40\t영어",
    )
    # The text output starts the second line with "안내" right after a newline, and has
    # a word ("영어") that the text output spells differently: neither is glued.
    text, words, lines = build_result(out, "겨울방학 특강\n안내 영 어\n\f")
    assert [w["text"] for w in words] == ["겨울방학", "특강", "안내", "영어"]
    assert words[0]["box"] == [10, 20, 84, 31]
    assert words[0]["confidence"] == pytest.approx((90 + 80 + 70 * 2) / 4 / 100)
    assert text == "겨울방학 특강\n안내 영어"
    assert [line["text"] for line in lines] == ["겨울방학 특강", "안내 영어"]
