"""The measured quality gate: short side, blur and darkness, with the original codes."""

from __future__ import annotations

import random
from functools import cache

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from tests.omr.corpus import make_corpus
from workers.base import BadInput
from workers.imagecheck import quality_check
from workers.omr.template import default_template


@cache
def degraded_scans() -> tuple[bytes, ...]:
    return tuple(sheet.data for sheet in make_corpus(default_template(), 12, seed=31))


def gray_of(data: bytes) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE), dtype=np.uint8)


def jpeg(gray: npt.NDArray[np.uint8]) -> bytes:
    return bytes(cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())


def code_of(data: bytes) -> str:
    with pytest.raises(BadInput) as caught:
        quality_check(data)
    return caught.value.code


def test_every_degraded_scan_the_reader_can_read_passes() -> None:
    for data in degraded_scans():
        report = quality_check(data)
        assert min(report.width, report.height) >= 600


def test_a_scan_blurred_past_reading_is_blur_or_shake() -> None:
    gray = gray_of(degraded_scans()[0])
    assert code_of(jpeg(np.asarray(cv2.GaussianBlur(gray, (0, 0), 12), np.uint8))) == "BLUR_OR_SHAKE"


def test_a_dark_scan_is_too_dark() -> None:
    gray = gray_of(degraded_scans()[1])
    assert code_of(jpeg((gray * 0.2).astype(np.uint8))) == "TOO_DARK"


def test_a_small_scan_is_refused_from_its_header() -> None:
    gray = gray_of(degraded_scans()[2])
    small = cv2.resize(gray, (424, 600 - 1))
    assert code_of(bytes(cv2.imencode(".png", small)[1].tobytes())) == "RESOLUTION_TOO_LOW"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "EMPTY_FILE"),
        (bytes(random.Random(3).randbytes(4000)), "FILE_UNREADABLE"),
        (b"GIF89a" + bytes(100), "INVALID_FORMAT"),
    ],
    ids=["empty", "random-bytes", "gif"],
)
def test_what_is_not_a_scan_gets_a_code(data: bytes, code: str) -> None:
    assert code_of(data) == code


def test_a_truncated_jpeg_is_unreadable() -> None:
    data = degraded_scans()[3]
    assert code_of(data[: len(data) // 2]) == "FILE_UNREADABLE"
