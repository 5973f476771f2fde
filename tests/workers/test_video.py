"""Tests for the ``homework_video_analysis`` processor.

The videos are drawn here and written with OpenCV's own ``mp4v`` encoder, small (320x240,
10 fps, 8 s) so that the whole module runs in a few seconds: three synthetic pages with
different layouts, shown one after the other, with a pen stroke being drawn on the
second page. Limits (the 600 s duration) are monkeypatched low instead of generating
long videos.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import workers.video as video
from workers.base import BadInput, JobInput, ProcessingError, ProcessorResult
from workers.video import HomeworkVideoProcessor, container_duration, sniff_container

W, H, FPS = 320, 240, 10
SECONDS = 8.0
#: (first second, page) of each page shown; the turns are at 2.5 s and 5.5 s.
TIMELINE = ((0.0, 0), (2.5, 1), (5.5, 2))
TURNS = (2.5, 5.5)
WRITE_FROM, WRITE_TO = 3.0, 5.0  # the stroke is drawn on page 1 between these seconds


def _page(kind: int) -> np.ndarray:
    page = np.full((H, W, 3), 235, np.uint8)
    ink = (40, 40, 40)
    if kind == 0:  # lines of "text" across the top half and a circle below
        for row in range(6):
            cv2.rectangle(page, (20, 20 + row * 16), (20 + 200 + (row * 37) % 80, 28 + row * 16), ink, -1)
        cv2.circle(page, (230, 180), 40, ink, 4)
    elif kind == 1:  # a table grid on the left half, empty right half to write on
        for i in range(6):
            cv2.line(page, (10, 20 + i * 36), (150, 20 + i * 36), ink, 2)
        for j in range(4):
            cv2.line(page, (10 + j * 46, 20), (10 + j * 46, 200), ink, 2)
    else:  # a heavy title bar and two columns of short lines at the bottom
        cv2.rectangle(page, (0, 0), (W, 50), (60, 60, 60), -1)
        for row in range(5):
            cv2.rectangle(page, (15, 120 + row * 22), (130, 128 + row * 22), ink, -1)
            cv2.rectangle(page, (175, 120 + row * 22), (300, 128 + row * 22), ink, -1)
    return page


def _stroke_points(n: int) -> list[tuple[int, int]]:
    """A wavy pen line on the empty right half of page 1, ``n`` points long."""
    return [(175 + 5 * k % 130, 60 + 40 * (5 * k // 130) + int(8 * np.sin(k / 2))) for k in range(n)]


def write_video(path: Path, *, seconds: float = SECONDS, fps: int = FPS, timeline: Any = TIMELINE) -> Path:
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (W, H))
    assert writer.isOpened()
    pages = [_page(k) for k in range(3)]
    strokes = _stroke_points(int((WRITE_TO - WRITE_FROM) * fps) * 4)
    try:
        for i in range(round(seconds * fps)):
            t = i / fps
            kind = next(k for start, k in reversed(timeline) if t >= start)
            frame = pages[kind].copy()
            if kind == 1:
                drawn = int(np.clip((t - WRITE_FROM) * fps, 0, (WRITE_TO - WRITE_FROM) * fps)) * 4
                for a, b in itertools.pairwise(strokes[:drawn]):
                    cv2.line(frame, a, b, (20, 20, 120), 2)
            noise = rng.normal(0, 2.0, frame.shape)
            writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("videos")
    out = {
        "mp4": write_video(root / "homework.mp4").read_bytes(),
        "mov": write_video(root / "homework.mov").read_bytes(),
        "short": write_video(root / "short.mp4", seconds=1.0).read_bytes(),
        "static": write_video(root / "static.mp4", seconds=6.0, timeline=((0.0, 2),)).read_bytes(),
    }
    return out


def run(data: bytes | None, params: dict[str, Any] | None = None, **kwargs: Any) -> ProcessorResult:
    return HomeworkVideoProcessor(**kwargs).run(JobInput(params=params or {}, data=data, filename="hw.mp4"))


def rejected(call: Callable[[], object]) -> str:
    with pytest.raises(BadInput) as info:
        call()
    return info.value.code


# --------------------------------------------------------------------------- analysis


@pytest.mark.parametrize("stride", [1, 5])
def test_pages_turns_and_writing(videos: dict[str, bytes], stride: int) -> None:
    result = run(videos["mp4"], {"frame_stride": stride})
    data = result.data
    assert data["container"] == "mp4"
    assert data["duration_s"] == pytest.approx(SECONDS, abs=0.15)
    assert data["fps"] == pytest.approx(FPS)
    assert data["frames_sampled"] == pytest.approx(SECONDS * FPS / stride, abs=1)
    assert data["pages_shown"] == 3
    step = stride / FPS
    assert len(data["page_turns"]) == 2
    for found, true in zip(data["page_turns"], TURNS, strict=True):
        assert abs(found - true) <= step  # within one sample of the cut
    # writing on the second page only, covering most of the time the stroke was drawn
    assert data["writing_segments"]
    for t0, t1 in data["writing_segments"]:
        assert TURNS[0] <= t0 < t1 <= TURNS[1]
    written = sum(t1 - t0 for t0, t1 in data["writing_segments"])
    assert written >= 0.7 * (WRITE_TO - WRITE_FROM)
    assert data["activity_ratio"] == pytest.approx(written / data["duration_s"], abs=0.01)
    pages = [seg["page"] for seg in data["segments"]]
    assert pages == [0, 1, 2]
    assert [seg["writing_s"] > 0 for seg in data["segments"]] == [False, True, False]
    assert result.confidence >= 0.8
    assert result.review is False


def test_quicktime_file_is_read(videos: dict[str, bytes]) -> None:
    result = run(videos["mov"])
    assert result.data["container"] == "quicktime"
    assert result.data["pages_shown"] == 3
    assert len(result.data["page_turns"]) == 2


def test_static_page_has_no_turn_and_no_writing(videos: dict[str, bytes]) -> None:
    result = run(videos["static"])
    assert result.data["pages_shown"] == 1
    assert result.data["page_turns"] == []
    assert result.data["writing_segments"] == []
    assert result.data["activity_ratio"] == 0.0
    assert not result.review


def test_a_page_shown_again_is_counted_once(tmp_path: Path) -> None:
    data = write_video(tmp_path / "back.mp4", seconds=6.0, timeline=((0.0, 0), (2.0, 2), (4.0, 0))).read_bytes()
    result = run(data)
    assert result.data["pages_shown"] == 2
    assert [seg["page"] for seg in result.data["segments"]] == [0, 1, 0]
    assert len(result.data["page_turns"]) == 2


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_a_slow_page_turn_is_one_turn_at_any_stride(tmp_path: Path, stride: int) -> None:
    # 30 fps, the second page slides in over 0.6 s (2.0..2.6 s): frame to frame the change
    # is small, so the comparison must span about the same time whatever the stride.
    fps, path = 30, tmp_path / "slide.mp4"
    first, second = _page(0), _page(2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (W, H))
    for i in range(5 * fps):
        frame = first.copy()
        cut = int(np.clip((i / fps - 2.0) / 0.6, 0, 1) * W)
        if cut:
            frame[:, :cut] = second[:, W - cut :]
        writer.write(frame)
    writer.release()
    result = run(path.read_bytes(), {"frame_stride": stride, "min_frame_count": 5})
    assert result.data["pages_shown"] == 2
    assert len(result.data["page_turns"]) == 1
    assert abs(result.data["page_turns"][0] - 2.3) <= max(0.2, stride / fps)
    assert result.data["writing_segments"] == []


def test_progress_is_reported(videos: dict[str, bytes]) -> None:
    seen: list[tuple[str, int]] = []
    HomeworkVideoProcessor().run(
        JobInput(params={"frame_stride": 1}, data=videos["mp4"], progress=lambda s, p: seen.append((s, p)))
    )
    assert seen[0] == ("decode", 0)
    assert seen[-1] == ("done", 100)
    assert [p for _, p in seen] == sorted(p for _, p in seen)


# --------------------------------------------------------------------------- refusals


def test_container_sniffing(videos: dict[str, bytes]) -> None:
    assert sniff_container(videos["mp4"]) == "mp4"
    assert sniff_container(videos["mov"]) == "quicktime"
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    m4a = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom"
    for data in (heic, m4a, b"RIFF\x00\x00\x00\x00AVI LIST", b"\x1a\x45\xdf\xa3webm", b"GIF89a...."):
        with pytest.raises(BadInput) as info:
            sniff_container(data)
        assert info.value.code == "INVALID_FORMAT"


def test_an_image_named_mp4_is_invalid_format() -> None:
    ok, png = cv2.imencode(".png", _page(0))
    assert ok
    with pytest.raises(BadInput) as info:
        run(png.tobytes())
    assert info.value.code == "INVALID_FORMAT"
    assert "really an image (PNG)" in info.value.message
    ok, jpeg = cv2.imencode(".jpg", _page(1))
    assert rejected(lambda: run(jpeg.tobytes())) == "INVALID_FORMAT"


def test_no_file_empty_file_random_bytes() -> None:
    assert rejected(lambda: run(None)) == "FILE_REQUIRED"
    assert rejected(lambda: run(b"")) == "EMPTY_FILE"
    assert rejected(lambda: run(bytes(range(256)) * 40)) == "INVALID_FORMAT"


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_mp4_is_unreadable(videos: dict[str, bytes], keep: float) -> None:
    data = videos["mp4"]
    cut = data[: int(len(data) * keep)]
    with pytest.raises(BadInput) as info:
        run(cut)
    assert info.value.code == "FILE_UNREADABLE"
    assert "truncated" in info.value.message


def test_damaged_mdat_never_crashes(videos: dict[str, bytes]) -> None:
    data = bytearray(videos["mp4"])
    rng = np.random.default_rng(3)
    start = data.find(b"mdat") + 4000
    data[start : start + 30_000] = rng.integers(0, 256, 30_000, dtype=np.uint8).tobytes()
    outcome: ProcessorResult | str
    try:
        outcome = run(bytes(data), time_budget_s=20)
    except BadInput as exc:
        outcome = exc.code
    if isinstance(outcome, str):
        assert outcome == "FILE_UNREADABLE"
    else:
        assert outcome.data["frames_sampled"] > 0


def test_container_duration_is_read_from_mvhd(videos: dict[str, bytes]) -> None:
    assert container_duration(videos["mp4"]) == pytest.approx(SECONDS, abs=0.15)
    assert container_duration(videos["mov"]) == pytest.approx(SECONDS, abs=0.15)


def test_too_long_video(videos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video, "MAX_DURATION_S", 5.0)
    with pytest.raises(BadInput) as info:
        run(videos["mp4"])
    assert info.value.code == "VIDEO_TOO_LONG"


def test_too_long_by_decoding_when_the_header_says_nothing(
    videos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(video, "MAX_DURATION_S", 5.0)
    monkeypatch.setattr(video, "container_duration", lambda data: None)
    assert rejected(lambda: run(videos["mp4"])) == "VIDEO_TOO_LONG"


def test_too_few_frames(videos: dict[str, bytes]) -> None:
    # 1 s at 10 fps, every 5th frame: 2 samples, under the default minimum of 10
    with pytest.raises(BadInput) as info:
        run(videos["short"])
    assert info.value.code == "VIDEO_TOO_SHORT"
    assert run(videos["short"], {"min_frame_count": 2}).data["frames_sampled"] == 2


def test_time_budget(videos: dict[str, bytes]) -> None:
    with pytest.raises(ProcessingError) as info:
        run(videos["mp4"], time_budget_s=0.0)
    assert info.value.code == "timeout"


@pytest.mark.parametrize(
    "params",
    [
        {"frame_stride": 0},
        {"frame_stride": "5"},
        {"frame_stride": True},
        {"frame_stride": 2.0},
        {"frame_stride": video.MAX_FRAME_STRIDE + 1},
        {"min_frame_count": 0},
        {"min_frame_count": "10"},
    ],
)
def test_bad_params(params: dict[str, Any]) -> None:
    assert rejected(lambda: HomeworkVideoProcessor().validate(params)) == "INVALID_PAYLOAD"


def test_processor_contract() -> None:
    proc = HomeworkVideoProcessor()
    assert proc.job_type == "homework_video_analysis"
    assert proc.input_key == "video_path"
    assert proc.extensions == frozenset({".mp4", ".mov"})
    assert proc.wants_gpu is False
    proc.validate({})
    proc.validate({"frame_stride": 3, "min_frame_count": 4})
