"""Tests for the ``question_segmentation`` processor.

Worksheets are drawn here with Pillow and a Korean TrueType font (Debian's fonts-nanum):
an A4 page at 200 dpi with a title and name line, one or two columns of numbered
questions (text lines, an optional figure box, an optional line of choices) and a page
number at the foot. The generator knows where every question is; the test checks that
the processor finds as many regions as there are questions and that each drawn question
is covered (IoU >= 0.6) by exactly one of them, also on pages turned slightly and
scanned with noise as JPEG.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from workers.base import BadInput, JobInput
from workers.segmentation import QuestionSegmentationProcessor, segment

FONT = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"
PAGE_W, PAGE_H = 1654, 2339  # A4 at 200 dpi
MARGIN, GUTTER, FONT_PX, LINE_STEP = 130, 110, 30, 46
WORDS = (
    "다음", "식의", "값을", "구하시오", "그림과", "같이", "삼각형", "넓이는", "얼마인가", "옳은", "것을",
    "고르시오", "함수", "그래프가", "점을", "지날", "때", "상수", "의", "합은", "x", "y", "2a+b", "3",
)  # fmt: skip
CHOICES = "①  2      ②  4      ③  6      ④  8      ⑤  10"

Box = tuple[float, float, float, float]  # x0, y0, x1, y1

pytestmark = pytest.mark.skipif(not Path(FONT).exists(), reason="fonts-nanum is not installed")


def _font(size: int = FONT_PX) -> Any:
    return ImageFont.truetype(FONT, size)


def _union(boxes: Sequence[Box]) -> Box:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def worksheet(
    *,
    columns: int,
    questions: int,
    seed: int = 0,
    angle: float = 0.0,
    noise: float = 0.0,
    jpeg: bool = False,
    start_number: int = 1,
    figure_rate: float = 0.5,
) -> tuple[bytes, list[Box]]:
    """A rendered worksheet and the true box (x0, y0, x1, y1) of every question."""
    rnd = random.Random(seed)
    font, title_font = _font(), _font(44)
    image = Image.new("L", (PAGE_W, PAGE_H), 255)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 110), "2026학년도 1학기 수학 단원평가", font=title_font, fill=0)
    draw.text((MARGIN, 180), "이름: ______________    반: ______", font=font, fill=0)
    draw.line((MARGIN, 240, PAGE_W - MARGIN, 240), fill=0, width=3)
    col_w = (PAGE_W - 2 * MARGIN - (columns - 1) * GUTTER) // columns
    bottom = PAGE_H - 220
    col, y = 0, 290
    truth: list[Box] = []
    # Plan first: how each question looks, in which column; drop figures and choices
    # from a column until it fits the page.
    plan = [[rnd.randint(1, 3), rnd.random() < figure_rate, rnd.random() < figure_rate, rnd.randint(55, 90)]
            for _ in range(questions)]  # fmt: skip
    per_column = -(-questions // columns)

    def tall(q: list[Any]) -> int:
        return int(q[0] * LINE_STEP + (200 if q[1] else 0) + (LINE_STEP + 10 if q[2] else 0) + q[3])

    for c in range(columns):
        mine = plan[c * per_column : (c + 1) * per_column]
        for q in mine:
            while sum(tall(p) for p in mine) > bottom - 290 and (q[1] or q[2]):
                q[1 if q[1] else 2] = False
        assert sum(tall(p) for p in mine) <= bottom - 290, "too many questions for the page"
    for k, (n_lines, figure, choices, gap) in enumerate(plan):
        n = start_number + k
        if k and k % per_column == 0:
            col, y = col + 1, 290
        x = MARGIN + col * (col_w + GUTTER)
        label = f"{n}."
        boxes: list[Box] = [draw.textbbox((x, y), label, font=font)]
        draw.text((x, y), label, font=font, fill=0)
        indent = x + int(draw.textlength(label + " ", font=font)) + 6
        hanging = rnd.random() < 0.7
        for i in range(n_lines):
            lx = indent if (i == 0 or hanging) else x
            text, words = "", list(WORDS)
            rnd.shuffle(words)
            for word in words:
                if draw.textlength(f"{text} {word}".strip(), font=font) > x + col_w - lx:
                    break
                text = f"{text} {word}".strip()
            if i == n_lines - 1:
                text = " ".join(text.split()[: max(2, len(text.split()) * 2 // 3)])
            boxes.append(draw.textbbox((lx, y), text, font=font))
            draw.text((lx, y), text, font=font, fill=0)
            y += LINE_STEP
        if figure:
            fw = min(col_w - (indent - x), 420)
            box = (indent, y + 15, indent + fw, y + 185)
            draw.rectangle(box, outline=0, width=3)
            draw.polygon(
                [(box[0] + 40, box[3] - 30), (box[0] + 200, box[3] - 30), (box[0] + 120, box[1] + 30)], outline=0
            )
            draw.text((box[0] + 230, box[1] + 80), "A", font=font, fill=0)
            boxes.append(box)
            y += 200
        if choices:
            boxes.append(draw.textbbox((indent, y + 5), CHOICES, font=font))
            draw.text((indent, y + 5), CHOICES, font=font, fill=0)
            y += LINE_STEP + 10
        truth.append(_union(boxes))
        y += gap
    draw.text((PAGE_W // 2 - 20, PAGE_H - 120), "- 1 -", font=font, fill=0)
    pixels = np.asarray(image)
    if angle:
        matrix = cv2.getRotationMatrix2D((PAGE_W / 2, PAGE_H / 2), angle, 1.0)
        pixels = cv2.warpAffine(pixels, matrix, (PAGE_W, PAGE_H), borderValue=255)
        turned = []
        for x0, y0, x1, y1 in truth:
            pts = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]]) @ matrix.T
            turned.append((pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()))
        truth = turned
    if noise:
        gen = np.random.default_rng(seed)
        noisy = pixels.astype(np.float64) + gen.normal(0, noise, pixels.shape)
        specks = gen.random(pixels.shape) < 0.0003
        noisy[specks] = 0
        pixels = np.clip(noisy, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg" if jpeg else ".png", pixels, [cv2.IMWRITE_JPEG_QUALITY, 85] if jpeg else [])
    assert ok
    return buf.tobytes(), truth


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _check(data: dict[str, Any], truth: list[Box]) -> None:
    found = [(x, y, x + w, y + h) for x, y, w, h in (q["box"] for q in data["questions"])]
    assert len(found) == len(truth), (found, truth)
    for true_box in truth:
        matches = [f for f in found if _iou(true_box, f) >= 0.6]
        assert len(matches) == 1, (true_box, found)


def _run(data: bytes, **params: Any) -> Any:
    return QuestionSegmentationProcessor().run(JobInput(params={"read_numbers": False, **params}, data=data))


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize(
    ("columns", "questions", "seed", "angle", "noise", "jpeg"),
    [
        (1, 4, 1, 0.0, 0.0, False),
        (1, 7, 2, 0.8, 6.0, True),
        (2, 8, 3, 0.0, 0.0, False),
        (2, 12, 4, -1.2, 8.0, True),
        (2, 10, 5, 0.5, 4.0, True),
    ],
)
def test_questions_are_found_one_region_each(
    columns: int, questions: int, seed: int, angle: float, noise: float, jpeg: bool
) -> None:
    page, truth = worksheet(
        columns=columns,
        questions=questions,
        seed=seed,
        angle=angle,
        noise=noise,
        jpeg=jpeg,
        figure_rate=2.5 / questions,
    )
    result = _run(page)
    _check(result.data, truth)
    assert result.data["columns"] == columns
    assert result.data["page"] == {"width": PAGE_W, "height": PAGE_H}
    assert [q["index"] for q in result.data["questions"]] == list(range(1, questions + 1))
    assert result.data["header"] is not None
    assert result.data["footer"] is not None
    assert result.confidence >= 0.6
    assert not result.review
    if angle:
        assert abs(result.data["skew_degrees"] - angle) <= 0.3


def test_artifacts_are_one_crop_per_question_and_a_layout() -> None:
    page, _truth = worksheet(columns=2, questions=6, seed=7)
    result = _run(page)
    names = [a.name for a in result.artifacts]
    assert names == [f"q{i:02d}.png" for i in range(1, 7)] + ["layout.png"]
    for artifact, q in zip(result.artifacts, result.data["questions"], strict=False):
        crop = cv2.imdecode(np.frombuffer(artifact.data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert crop is not None
        assert artifact.content_type == "image/png"
        assert abs(crop.shape[1] - q["box"][2]) <= 4
        assert abs(crop.shape[0] - q["box"][3]) <= 4
    layout = cv2.imdecode(np.frombuffer(result.artifacts[-1].data, np.uint8), cv2.IMREAD_COLOR)
    assert layout is not None
    assert layout.shape == (PAGE_H, PAGE_W, 3)
    assert (layout[:, :, 2].astype(int) - layout[:, :, 1] > 100).any()  # boxes drawn in red


def test_question_numbers_are_read_with_tesseract_when_installed() -> None:
    import shutil

    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed")
    page, truth = worksheet(columns=2, questions=9, seed=11, start_number=4)
    result = QuestionSegmentationProcessor().run(JobInput(params={}, data=page))
    _check(result.data, truth)
    assert result.data["numbers_read"] is True
    assert [q["number"] for q in result.data["questions"]] == list(range(4, 13))
    assert result.confidence >= 0.8


def test_without_tesseract_the_geometry_decides(tmp_path: Path) -> None:
    page, truth = worksheet(columns=1, questions=5, seed=12)
    missing = str(tmp_path / "no-tesseract")
    result = QuestionSegmentationProcessor(tesseract_cmd=missing).run(JobInput(params={}, data=page))
    _check(result.data, truth)
    assert result.data["numbers_read"] is False
    assert all(q["number"] is None for q in result.data["questions"])
    assert any("Tesseract" in note for note in result.data["notes"])


def test_blank_page_is_zero_questions_for_review() -> None:
    gen = np.random.default_rng(0)
    blank = np.clip(245 + gen.normal(0, 6, (PAGE_H // 2, PAGE_W // 2)), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", blank)
    assert ok
    result = _run(buf.tobytes())
    assert result.data["questions"] == []
    assert result.data["columns"] == 0
    assert result.review is True
    assert result.confidence == 0.0
    assert [a.name for a in result.artifacts] == ["layout.png"]


def test_unnumbered_blocks_are_split_at_large_gaps_for_review() -> None:
    image = Image.new("L", (1200, 1600), 255)
    draw = ImageDraw.Draw(image)
    font = _font()
    tops = (150, 600, 1050)
    for top in tops:
        for i in range(3):
            draw.text((150, top + i * LINE_STEP), "다음 글을 읽고 물음에 답하시오 그림과 같이", font=font, fill=0)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    result = _run(buf.getvalue())
    assert len(result.data["questions"]) == 3
    assert all(q["cue"] == "gap" for q in result.data["questions"])
    assert result.review is True


def test_region_cap() -> None:
    page, _ = worksheet(columns=2, questions=10, seed=5, figure_rate=0.25)
    layout = segment(
        np.asarray(cv2.imdecode(np.frombuffer(page, np.uint8), cv2.IMREAD_GRAYSCALE), np.uint8),
        read_numbers=False,
        max_regions=5,
    )
    assert len(layout.questions) == 5
    assert layout.truncated


# --------------------------------------------------------------------------- refusals


def _png(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".png", np.full((height, width), 255, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (None, "FILE_REQUIRED"),
        (b"", "EMPTY_FILE"),
        (b"GIF89a" + b"\x00" * 64, "INVALID_FORMAT"),
        (b"%PDF-1.7\n" + b"\x00" * 64, "INVALID_FORMAT"),
        (b"hello, this is not an image at all", "FILE_UNREADABLE"),
        (_png(200, 150), "RESOLUTION_TOO_LOW"),
    ],
)
def test_bad_inputs_are_refused_with_a_code(data: bytes | None, code: str) -> None:
    with pytest.raises(BadInput) as info:
        _run(data)  # type: ignore[arg-type]
    assert info.value.code == code


def test_truncated_and_bomb_images_are_refused() -> None:
    page = _png(800, 800)
    with pytest.raises(BadInput) as info:
        _run(page[: len(page) - 20])
    assert info.value.code == "FILE_UNREADABLE"
    bomb = bytearray(_png(800, 800))
    bomb[16:24] = (60000).to_bytes(4, "big") * 2  # the IHDR claims 60000 x 60000
    with pytest.raises(BadInput) as info:
        _run(bytes(bomb))
    assert info.value.code == "IMAGE_TOO_LARGE"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"engine": "yolo"}, "BACKEND_NOT_CONFIGURED"),
        ({"engine": "template"}, "BACKEND_NOT_CONFIGURED"),
        ({"engine": "magic"}, "INVALID_PAYLOAD"),
        ({"engine": 3}, "INVALID_PAYLOAD"),
        ({"read_numbers": "yes"}, "INVALID_PAYLOAD"),
    ],
)
def test_bad_parameters_are_refused_in_validate(params: dict[str, Any], code: str) -> None:
    with pytest.raises(BadInput) as info:
        QuestionSegmentationProcessor().validate(params)
    assert info.value.code == code


def test_validate_accepts_the_original_apps_engines() -> None:
    for engine in (None, "auto", "opencv"):
        QuestionSegmentationProcessor().validate({"engine": engine})
