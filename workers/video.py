"""``homework_video_analysis``: what a student's homework video shows, page by page.

The processor takes an MP4 or QuickTime video of a student working on paper (a phone
above the desk) and reports how long it is, how many distinct pages it shows, when the
pages were turned and when the student was writing.

Refusing bad inputs before decoding
-----------------------------------
- the container comes from the magic bytes (not the name): an ISO-BMFF ``ftyp`` box
  (MP4, QuickTime, 3GP) or a bare QuickTime atom. An image named ``.mp4`` (PNG, JPEG,
  HEIC...), audio-only MP4 brands and any other format are ``INVALID_FORMAT``;
- the top-level boxes are walked before anything is decoded: a box that runs past the
  end of the file, or a file without its ``moov`` box, is truncated (``FILE_UNREADABLE``);
  ``moov/mvhd`` gives the container's duration;
- OpenCV's FFmpeg backend then gives the frame count and rate; the duration is checked
  against the container's and the longer of the two must be at most ``MAX_DURATION_S``
  (``VIDEO_TOO_LONG``). No duration at all is ``FILE_UNREADABLE``;
- decoding runs under a time budget (``timeout`` when exceeded) and stops early when a
  file decodes past the limit it claimed; a file whose decoding stops well before its
  stated frame count is truncated or damaged (``FILE_UNREADABLE``), and one with fewer
  than ``min_frame_count`` sampled frames is ``VIDEO_TOO_SHORT``.

The analysis
------------
Every ``frame_stride``-th frame is sampled. Each sample is downscaled to
``INK_WIDTH`` pixels wide (the "ink" image) and again, blurred, to ``MOTION_WIDTH`` (the
"motion" image). Each sample is compared with the one about ``STEP_S`` (0.25 s) earlier,
or the previous one when samples are further apart, so that what is measured, and the
thresholds, do not depend on the stride:

- the mean absolute difference of the motion images measures global change. A run of
  samples above ``MOTION_HIGH``, widened while above ``MOTION_LOW`` (hysteresis), is a
  transition: a page being turned, the camera moving, a hand passing over;
- between stable samples, the pixels of the ink image that changed by more than
  ``INK_DELTA`` grey levels, if they are few (``INK_MIN_FRAC``..``INK_MAX_FRAC``) and
  sit in a few cells of a coarse grid, are writing.

The stable stretches between transitions (at least ``MIN_SEGMENT_S`` long) are grouped
into pages by the correlation of small normalised thumbnails (``SAME_PAGE_CORR``); a
transition between two stretches of different pages is a page turn. The confidence drops
when much of the video is in motion, when a stretch is about as close to another page as
the threshold, or when the two durations disagree; below ``REVIEW_BELOW`` the result asks
for review.
"""

from __future__ import annotations

import collections
import itertools
import math
import struct
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from workers import imageio
from workers.base import BadInput, JobInput, ProcessingError, ProcessorResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: the job type's upload limit (academy.policies: 500 MB).
MAX_BYTES: Final = 500 * 1024 * 1024
#: the longest video a job analyses (10 minutes), read from the file itself.
MAX_DURATION_S: Final = 600.0
#: the seed payload has ``frame_stride`` and ``min_frame_count`` but no defaults; these are ours.
DEFAULT_FRAME_STRIDE: Final = 5
MAX_FRAME_STRIDE: Final = 300
DEFAULT_MIN_FRAME_COUNT: Final = 10
MAX_MIN_FRAME_COUNT: Final = 10_000
#: a side under this many pixels is RESOLUTION_TOO_LOW.
MIN_SIDE: Final = 64
#: wall-clock seconds one video may take (open + decode + analysis).
DEFAULT_TIME_BUDGET_S: Final = 300.0
#: FFmpeg decoding threads per job; a worker pool already runs one job per core.
DECODE_THREADS: Final = 1
#: durations (container vs frames/fps) that differ by more than this share disagree.
DURATION_TOLERANCE: Final = 0.1
#: decoding that ends before this share of the stated frames means a damaged file.
MIN_DECODED_SHARE: Final = 0.9

#: samples are compared with the one about this many seconds earlier (at least the previous one).
STEP_S: Final = 0.25
INK_WIDTH: Final = 320
MOTION_WIDTH: Final = 80
SIGNATURE_SIZE: Final = (32, 24)
MOTION_HIGH: Final = 0.02
MOTION_LOW: Final = 0.008
INK_DELTA: Final = 40
INK_MIN_FRAC: Final = 1.5e-4
INK_MAX_FRAC: Final = 0.08
#: writing touches at most this share of the cells of an 8x6 grid.
INK_MAX_CELLS: Final = 0.25
INK_GRID: Final = (8, 6)
MIN_WRITING_EDGES: Final = 2
WRITING_GAP_S: Final = 1.0
MIN_SEGMENT_S: Final = 0.5
SAME_PAGE_CORR: Final = 0.8
#: a stretch whose best correlation with another page is within this of the threshold is ambiguous.
AMBIGUOUS_MARGIN: Final = 0.1
REVIEW_BELOW: Final = 0.6

#: ISO-BMFF brands of still images and audio, not videos.
_IMAGE_BRANDS: Final = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"})
_AUDIO_BRANDS: Final = frozenset({b"M4A ", b"M4B ", b"M4P "})
#: top-level atoms an old QuickTime file (without ``ftyp``) starts with.
_QT_ATOMS: Final = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


# --------------------------------------------------------------------------- container


def sniff_container(data: bytes) -> str:
    """``"mp4"`` or ``"quicktime"`` from the magic bytes; BadInput INVALID_FORMAT otherwise."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _IMAGE_BRANDS:
            raise BadInput("a HEIF/AVIF still image, not a video", code="INVALID_FORMAT")
        if brand in _AUDIO_BRANDS:
            raise BadInput("an audio file, not a video", code="INVALID_FORMAT")
        return "quicktime" if brand == b"qt  " else "mp4"
    if len(data) >= 8 and data[4:8] in _QT_ATOMS:
        return "quicktime"
    kind = imageio.sniff(data)
    if kind in imageio.IMAGE_KINDS or data.startswith(b"GIF8"):
        name = (kind or "gif").upper()
        raise BadInput(f"a video that is really an image ({name})", code="INVALID_FORMAT")
    raise BadInput("not an MP4 or QuickTime video", code="INVALID_FORMAT")


def _truncated(what: str) -> BadInput:
    return BadInput(f"the video is truncated or damaged: {what}", code="FILE_UNREADABLE")


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in ``data[start:end]``."""
    pos = start
    while pos < end:
        if end - pos < 8:
            if not any(data[pos:end]):  # zero padding at the end
                return
            raise _truncated("a box header is cut off")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise _truncated("a box header is cut off")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:  # the last box runs to the end of its parent
            size = end - pos
        if size < header:
            raise _truncated(f"box {kind!r} has an impossible size")
        if pos + size > end:
            raise _truncated(f"box {kind!r} runs past the end of the file")
        yield kind, pos + header, pos + size
        pos += size


def container_duration(data: bytes) -> float | None:
    """Seconds from ``moov/mvhd``, None when it states none; BadInput when truncated."""
    moov = next(((s, e) for kind, s, e in _boxes(data, 0, len(data)) if kind == b"moov"), None)
    if moov is None:
        raise _truncated("it has no moov box")
    for kind, start, end in _boxes(data, *moov):
        if kind != b"mvhd" or end - start < 4:
            continue
        version = data[start]
        if version == 1 and end - start >= 32:
            timescale, duration = struct.unpack_from(">IQ", data, start + 20)
        elif version == 0 and end - start >= 20:
            timescale, duration = struct.unpack_from(">II", data, start + 12)
        else:
            return None
        if timescale == 0 or duration in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
            return None
        return float(duration) / float(timescale)
    return None


# --------------------------------------------------------------------------- params


def _int_param(params: Mapping[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadInput(f"{key} must be an integer from {lo} to {hi}", code="INVALID_PAYLOAD")
    return value


def frame_stride(params: Mapping[str, Any]) -> int:
    return _int_param(params, "frame_stride", DEFAULT_FRAME_STRIDE, 1, MAX_FRAME_STRIDE)


def min_frame_count(params: Mapping[str, Any]) -> int:
    return _int_param(params, "min_frame_count", DEFAULT_MIN_FRAME_COUNT, 1, MAX_MIN_FRAME_COUNT)


# --------------------------------------------------------------------------- sampling


@dataclass
class Sample:
    """One sampled frame, reduced to what the analysis needs."""

    t: float
    signature: npt.NDArray[np.float32]
    motion: float = 0.0  # mean |change| of the motion image since sample ``back``, 0..1
    ink: bool = False  # a small localised change of the ink image since sample ``back``
    back: int = 0  # the index of the sample this one is compared with


@dataclass
class Decoded:
    fps: float
    width: int
    height: int
    frame_count: int
    frames_decoded: int
    lag: int = 1
    samples: list[Sample] = field(default_factory=list)


class _Reducer:
    """Turns frames into :class:`Sample` objects, keeping only the last ``lag`` frames' images.

    Each sample is compared with the one ``lag`` samples back, about ``STEP_S`` earlier,
    so that the changes measured (and the thresholds) do not depend on the stride.
    """

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.count = 0
        self.recent: collections.deque[tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]] = collections.deque(
            maxlen=lag
        )

    def __call__(self, frame: npt.NDArray[np.uint8], t: float) -> Sample:
        import cv2
        import numpy as np

        h, w = frame.shape[:2]
        ink_w = min(INK_WIDTH, w)
        ink_h = max(1, round(h * ink_w / w))
        small = cv2.resize(frame, (ink_w, ink_h), interpolation=cv2.INTER_AREA)
        if small.ndim == 3:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        ink = np.asarray(cv2.GaussianBlur(small, (3, 3), 0), dtype=np.uint8)
        motion_h = max(1, round(ink_h * MOTION_WIDTH / ink_w))
        reduced = cv2.resize(ink, (MOTION_WIDTH, motion_h), interpolation=cv2.INTER_AREA).astype(np.float32)
        motion = np.asarray(cv2.GaussianBlur(reduced, (5, 5), 0), dtype=np.float32)
        sig = cv2.resize(ink, SIGNATURE_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        sig = (sig - float(sig.mean())) / max(float(sig.std()), 1.0)
        sample = Sample(t=t, signature=sig, back=max(0, self.count - self.lag))
        if self.recent:
            prev_ink, prev_motion = self.recent[0]
            sample.motion = float(cv2.absdiff(motion, prev_motion).mean()) / 255.0
            sample.ink = _is_writing(cv2.absdiff(ink, prev_ink) > INK_DELTA)
        self.recent.append((ink, motion))
        self.count += 1
        return sample


def _is_writing(changed: npt.NDArray[np.bool_]) -> bool:
    frac = float(changed.mean())
    if not INK_MIN_FRAC <= frac <= INK_MAX_FRAC:
        return False
    cols, rows = INK_GRID
    h, w = changed.shape
    cells = 0
    for r in range(rows):
        for c in range(cols):
            if changed[r * h // rows : (r + 1) * h // rows, c * w // cols : (c + 1) * w // cols].any():
                cells += 1
    return cells <= INK_MAX_CELLS * rows * cols


def decode(
    path: str,
    *,
    stride: int,
    max_duration_s: float,
    deadline: float,
    progress: Any = None,
) -> Decoded:
    """Open ``path`` with OpenCV's FFmpeg backend and reduce every ``stride``-th frame."""
    import cv2
    import numpy as np

    budget_ms = max(1000, int((deadline - time.monotonic()) * 1000))
    cap = cv2.VideoCapture(
        path,
        cv2.CAP_FFMPEG,
        [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            budget_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            budget_ms,
            cv2.CAP_PROP_N_THREADS,
            DECODE_THREADS,
            cv2.CAP_PROP_HW_ACCELERATION,
            cv2.VIDEO_ACCELERATION_NONE,
        ],
    )
    try:
        if not cap.isOpened():
            raise BadInput("FFmpeg cannot open the video", code="FILE_UNREADABLE")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        count = float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not (math.isfinite(fps) and 0.5 <= fps <= 1000.0):
            raise BadInput("the video states no usable frame rate", code="FILE_UNREADABLE")
        if width <= 0 or height <= 0:
            raise BadInput("the video states no frame size", code="FILE_UNREADABLE")
        if min(width, height) < MIN_SIDE:
            raise BadInput(f"the video is {width}x{height}, under {MIN_SIDE} px a side", code="RESOLUTION_TOO_LOW")
        frame_count = int(count) if math.isfinite(count) and count > 0 else 0
        lag = max(1, round(STEP_S * fps / stride))
        out = Decoded(fps=fps, width=width, height=height, frame_count=frame_count, frames_decoded=0, lag=lag)
        frame_limit = int(max_duration_s * fps * (1 + DURATION_TOLERANCE)) + 1
        reduce = _Reducer(lag)
        last_t = -1.0
        index = 0
        while True:
            if time.monotonic() > deadline:
                raise ProcessingError("decoding ran past the time budget", code="timeout")
            if not cap.grab():
                break
            if index % stride == 0:
                ok, frame = cap.retrieve()
                if ok and frame is not None and frame.size:
                    pos = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                    t = pos if math.isfinite(pos) and pos > last_t else index / fps
                    out.samples.append(reduce(np.asarray(frame, dtype=np.uint8), t))
                    last_t = t
            index += 1
            if index > frame_limit:
                raise BadInput(f"the video runs past {max_duration_s:g} s", code="VIDEO_TOO_LONG")
            if progress is not None and frame_count and index % 100 == 0:
                progress("decode", min(90, 5 + 85 * index // frame_count))
        out.frames_decoded = index
        return out
    finally:
        cap.release()


# --------------------------------------------------------------------------- analysis


@dataclass
class Segment:
    first: int  # sample indices, inclusive
    last: int
    page: int = -1
    best_other: float = -1.0  # best correlation with a page it was not put in


def _corr(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    return float((a * b).mean())


def transitions(samples: list[Sample]) -> list[bool]:
    """Per sample, whether its change since sample ``back`` is part of a transition."""
    moving = [s.motion > MOTION_HIGH for s in samples]
    n = len(samples)
    for i in range(n):
        if samples[i].motion > MOTION_HIGH:
            j = i + 1
            while j < n and not moving[j] and samples[j].motion > MOTION_LOW:
                moving[j] = True
                j += 1
            j = i - 1
            while j > 0 and not moving[j] and samples[j].motion > MOTION_LOW:
                moving[j] = True
                j -= 1
    return moving


def stable_segments(samples: list[Sample], moving: list[bool]) -> list[Segment]:
    """Runs of samples outside every transition, at least MIN_SEGMENT_S long.

    A moving sample ``i`` makes the samples strictly between ``back`` and ``i`` unstable
    and separates ``back`` from ``i``.
    """
    n = len(samples)
    unstable = [False] * n
    cut_before = [False] * n
    for i in range(n):
        if moving[i]:
            cut_before[i] = True
            for j in range(samples[i].back + 1, i):
                unstable[j] = True
    segments: list[Segment] = []
    start: int | None = None
    for i in range(n + 1):
        if i == n or unstable[i] or (cut_before[i] and start is not None):
            if start is not None:
                seg = Segment(start, i - 1)
                whole = seg.first == 0 and seg.last == n - 1
                if whole or samples[seg.last].t - samples[seg.first].t >= MIN_SEGMENT_S:
                    segments.append(seg)
            start = None
        if i < n and not unstable[i] and start is None:
            start = i
    return segments


def cluster_pages(samples: list[Sample], segments: list[Segment]) -> int:
    """Assign each segment a page number; returns the number of pages."""
    pages: list[list[npt.NDArray[np.float32]]] = []
    for seg in segments:
        reps = [samples[seg.first].signature, samples[seg.last].signature]
        scores = [max(_corr(a, b) for a in reps for b in members) for members in pages]
        best = max(range(len(scores)), key=scores.__getitem__) if scores else -1
        if best >= 0 and scores[best] >= SAME_PAGE_CORR:
            seg.page = best
            pages[best].extend(reps)
            others = [s for k, s in enumerate(scores) if k != best]
        else:
            seg.page = len(pages)
            pages.append(reps)
            others = scores
        seg.best_other = max(others, default=-1.0)
    return len(pages)


def writing_runs(
    samples: list[Sample], moving: list[bool], segments: list[Segment], lag: int = 1
) -> list[tuple[int, float, float]]:
    """(segment index, t0, t1) of each stretch of writing inside a stable segment."""
    runs: list[tuple[int, float, float]] = []
    for k, seg in enumerate(segments):
        current: list[int] = []
        for i in range(seg.first + 1, seg.last + 1):
            if moving[i] or not samples[i].ink or samples[i].back < seg.first:
                continue
            if current and samples[samples[i].back].t - samples[current[-1]].t > WRITING_GAP_S:
                runs.extend(_close_run(samples, k, current, lag))
                current = []
            current.append(i)
        runs.extend(_close_run(samples, k, current, lag))
    return runs


def _close_run(samples: list[Sample], segment: int, edges: list[int], lag: int) -> list[tuple[int, float, float]]:
    # with lag > 1 one burst of ink shows in ``lag`` overlapping comparisons
    if len(edges) < MIN_WRITING_EDGES + lag - 1:
        return []
    return [(segment, samples[samples[edges[0]].back].t, samples[edges[-1]].t)]


def analyse(decoded: Decoded, duration_s: float) -> tuple[dict[str, Any], float]:
    """The result data and its confidence."""
    samples = decoded.samples
    moving = transitions(samples)
    segments = stable_segments(samples, moving)
    pages = cluster_pages(samples, segments)
    turns: list[float] = []
    for before, after in itertools.pairwise(segments):
        if before.page != after.page:
            turns.append((samples[before.last].t + samples[after.first].t) / 2)
    runs = writing_runs(samples, moving, segments, decoded.lag)
    writing_s = sum(t1 - t0 for _, t0, t1 in runs)
    span = max(duration_s, 1e-6)

    moving_s = _union_s([(samples[s.back].t, s.t) for s, m in zip(samples, moving, strict=True) if m])
    ambiguous = sum(1 for seg in segments if abs(seg.best_other - SAME_PAGE_CORR) < AMBIGUOUS_MARGIN)
    confidence = 1.0
    confidence -= max(0.0, moving_s / span - 0.2)
    confidence -= min(0.45, 0.15 * ambiguous)
    if not segments:
        confidence = min(confidence, 0.2)

    def r(x: float) -> float:
        return round(x, 3)

    data: dict[str, Any] = {
        "duration_s": r(duration_s),
        "fps": r(decoded.fps),
        "width": decoded.width,
        "height": decoded.height,
        "frames_decoded": decoded.frames_decoded,
        "frames_sampled": len(samples),
        "pages_shown": pages,
        "page_turns": [r(t) for t in turns],
        "writing_segments": [[r(t0), r(t1)] for _, t0, t1 in runs],
        "activity_ratio": r(min(1.0, writing_s / span)),
        "segments": [
            {
                "start": r(samples[seg.first].t),
                "end": r(samples[seg.last].t),
                "page": seg.page,
                "writing_s": r(sum(t1 - t0 for k_run, t0, t1 in runs if k_run == k)),
            }
            for k, seg in enumerate(segments)
        ],
        "motion_ratio": r(min(1.0, moving_s / span)),
    }
    return data, max(0.0, round(confidence, 4))


def _union_s(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``spans``."""
    total, end = 0.0, -math.inf
    for t0, t1 in sorted(spans):
        if t1 > end:
            total += t1 - max(t0, end)
            end = t1
    return total


# --------------------------------------------------------------------------- processor


class HomeworkVideoProcessor:
    job_type: ClassVar[str] = "homework_video_analysis"
    input_key: ClassVar[str | None] = "video_path"
    extensions: ClassVar[frozenset[str]] = frozenset({".mp4", ".mov"})
    wants_gpu: ClassVar[bool] = False

    def __init__(self, time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> None:
        self.time_budget_s = time_budget_s

    def validate(self, params: Mapping[str, Any]) -> None:
        frame_stride(params)
        min_frame_count(params)

    def run(self, job: JobInput) -> ProcessorResult:
        deadline = time.monotonic() + self.time_budget_s
        stride = frame_stride(job.params)
        min_frames = min_frame_count(job.params)
        data = job.data
        if data is None:
            raise BadInput("a video is required", code="FILE_REQUIRED")
        if not data:
            raise BadInput("the video is empty", code="EMPTY_FILE")
        if len(data) > MAX_BYTES:
            raise BadInput(f"the video is over {MAX_BYTES // (1024 * 1024)} MiB", code="FILE_TOO_LARGE")
        kind = sniff_container(data)
        stated = container_duration(data)
        if stated is not None and stated > MAX_DURATION_S:
            raise BadInput(f"the video is {stated:.0f} s long, over {MAX_DURATION_S:g} s", code="VIDEO_TOO_LONG")
        job.progress("decode", 0)
        suffix = ".mov" if kind == "quicktime" else ".mp4"
        with tempfile.NamedTemporaryFile(prefix="video-", suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            decoded = decode(
                tmp.name, stride=stride, max_duration_s=MAX_DURATION_S, deadline=deadline, progress=job.progress
            )
        by_frames = decoded.frame_count / decoded.fps if decoded.frame_count else None
        known = [d for d in (stated, by_frames) if d is not None and d > 0]
        if not known:
            raise BadInput("the video states no duration", code="FILE_UNREADABLE")
        if max(known) > MAX_DURATION_S:
            raise BadInput(f"the video is {max(known):.0f} s long, over {MAX_DURATION_S:g} s", code="VIDEO_TOO_LONG")
        if decoded.frames_decoded == 0 or not decoded.samples:
            raise BadInput("no frame of the video could be decoded", code="FILE_UNREADABLE")
        if decoded.frame_count and decoded.frames_decoded < decoded.frame_count * MIN_DECODED_SHARE - 2:
            raise _truncated(f"decoding stopped at frame {decoded.frames_decoded} of {decoded.frame_count}")
        if len(decoded.samples) < min_frames:
            raise BadInput(
                f"only {len(decoded.samples)} frames sampled at stride {stride}, {min_frames} needed",
                code="VIDEO_TOO_SHORT",
            )
        duration_s = by_frames if by_frames is not None else max(known)
        mismatch = len(known) == 2 and abs(known[0] - known[1]) > DURATION_TOLERANCE * max(known) + 0.5
        job.progress("analyse", 92)
        result, confidence = analyse(decoded, duration_s)
        result.update({"container": kind, "frame_stride": stride, "duration_mismatch": mismatch})
        if mismatch:
            confidence = max(0.0, round(confidence - 0.2, 4))
        job.progress("done", 100)
        return ProcessorResult(data=result, confidence=confidence, review=confidence < REVIEW_BELOW)
