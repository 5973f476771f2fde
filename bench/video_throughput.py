"""Seconds of video analysed per second by ``homework_video_analysis``, in one process.

    .venv/bin/python bench/video_throughput.py [--seconds 60] [--fps 30] [--repeat 3] [--strides 5 1] [--threads 1 0]

Draws a 1280x720 clip (``--seconds`` long at ``--fps``) of a desk seen from above: four
worksheet pages, each shown for a while, turned with a 0.6 s slide, a pen stroke growing
on two of them, the first page shown again at the end, and a little sensor noise on
every frame. It is encoded with OpenCV's ``mp4v`` encoder (the only one the
opencv-python-headless wheel writes; phones record H.264, which costs more to decode).
``HomeworkVideoProcessor.run`` then analyses the bytes ``--repeat`` times for each
``frame_stride`` and each FFmpeg decoding thread count (the processor's default is 1;
0 lets FFmpeg pick). Prints, per setting, the median wall time, the seconds of video per
second, and what the analysis found against the truth.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

import workers.video as video
from workers.base import JobInput

W, H = 1280, 720
TURN_S = 0.6


def _page(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    page = np.full((H, W, 3), (225, 232, 238), np.uint8)
    cv2.rectangle(page, (180, 0), (1100, H), (246, 248, 250), -1)  # the sheet on a darker desk
    y = 60 + int(rng.integers(0, 40))
    while y < H - 60:
        if rng.random() < 0.2:  # a figure or a box to fill in
            h = int(rng.integers(60, 140))
            cv2.rectangle(page, (220, y), (220 + int(rng.integers(200, 700)), y + h), (70, 70, 70), 2)
            y += h + 30
            continue
        x = 220
        while x < 1050:  # a line of "words"
            w = int(rng.integers(20, 90))
            cv2.rectangle(page, (x, y), (min(x + w, 1060), y + 12), (60, 60, 60), -1)
            x += w + int(rng.integers(10, 20))
        y += int(rng.integers(28, 48))
    return page


def _stroke(seed: int, n: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    x0, y0 = int(rng.integers(300, 700)), int(rng.integers(150, 500))
    return [(x0 + 3 * k % 400, y0 + 30 * (3 * k // 400) + int(6 * np.sin(k / 3))) for k in range(n)]


def make_clip(path: Path, seconds: float, fps: int) -> dict[str, object]:
    """Write the clip; returns the truth (page turns, writing spans)."""
    pages = [_page(s) for s in range(4)]
    order = [0, 1, 2, 3, 0]
    shown = seconds / len(order)
    writing = {1: (0.2, 0.8), 2: (0.3, 0.7)}  # page -> share of its time with the pen moving
    strokes = {p: _stroke(10 + p, int(shown * fps)) for p in writing}
    noise = [np.random.default_rng(n).integers(-3, 4, (H, W, 3), dtype=np.int16) for n in range(8)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (W, H))
    turns = [shown * k for k in range(1, len(order))]
    try:
        for i in range(round(seconds * fps)):
            t = i / fps
            slot = min(int(t // shown), len(order) - 1)
            page = order[slot]
            frame = pages[page].copy()
            if page in writing and slot < len(order) - 1:
                a, b = writing[page]
                local = (t - slot * shown) / shown
                drawn = int(np.clip((local - a) / (b - a), 0, 1) * len(strokes[page]))
                pts = np.array(strokes[page][:drawn], np.int32)
                if len(pts) > 1:
                    cv2.polylines(frame, [pts], False, (120, 40, 30), 3)
            into = t - (slot + 1) * shown + TURN_S
            if slot < len(order) - 1 and into > 0:  # the next page slides in over the last TURN_S
                nxt = pages[order[slot + 1]]
                cut = int(W * into / TURN_S)
                frame[:, :cut] = nxt[:, W - cut :]
            frame = np.clip(frame.astype(np.int16) + noise[i % len(noise)], 0, 255).astype(np.uint8)
            writer.write(frame)
    finally:
        writer.release()
    spans = [
        [slot * shown + shown * a, slot * shown + shown * b]
        for slot, page in enumerate(order[:-1])
        if page in writing
        for a, b in [writing[page]]
    ]
    return {"pages": len(set(order)), "turns": [round(t - TURN_S / 2, 2) for t in turns], "writing": spans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--strides", type=int, nargs="+", default=[5, 1])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0])
    args = parser.parse_args()
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        start = time.perf_counter()
        truth = make_clip(path, args.seconds, args.fps)
        data = path.read_bytes()
    print(
        f"clip: {W}x{H}, {args.seconds:g} s at {args.fps} fps, mp4v, {len(data) / 1e6:.1f} MB "
        f"(drawn and encoded in {time.perf_counter() - start:.1f} s)"
    )
    print(f"truth: pages {truth['pages']}, turns {truth['turns']}, writing {truth['writing']}")
    processor = video.HomeworkVideoProcessor()
    for threads in args.threads:
        video.DECODE_THREADS = threads  # type: ignore[misc]
        for stride in args.strides:
            times = []
            result = None
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = processor.run(JobInput(params={"frame_stride": stride}, data=data, filename="clip.mp4"))
                times.append(time.perf_counter() - start)
            assert result is not None
            median = statistics.median(times)
            found = result.data
            print(
                f"threads={threads} stride={stride}: {median:.2f} s median of {args.repeat}, "
                f"{args.seconds / median:.1f} s of video per s | sampled {found['frames_sampled']}, "
                f"pages {found['pages_shown']}, turns {found['page_turns']}, "
                f"writing {found['writing_segments']}, confidence {result.confidence}"
            )


if __name__ == "__main__":
    main()
