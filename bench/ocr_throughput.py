"""Pages per second of the ``ocr`` processor in one process, on an A4 page at 200 dpi.

    .venv/bin/python bench/ocr_throughput.py [--repeat 3] [--psm 4 3] [--threads 1 2] [--procs 2]

One 1654x2339 page of Korean and English text (NanumGothic at 11 pt, ~280 words on 40
lines, words drawn at random from an academy's vocabulary) is rendered with Pillow and
saved as a JPEG at quality 85, as a scanner would. ``OcrProcessor.run`` then reads it
``repeat`` times for each page-segmentation mode and each ``OMP_THREAD_LIMIT`` (the
processor's default is 1; Tesseract uses every CPU when it is unset). Prints the time
``decode_page`` takes, then per setting the median seconds per page, pages/s, the mean
word confidence, and the share of the drawn words found among the recognised words (a
bag-of-words match, order ignored).

``--procs N`` (N > 1) then runs N processes side by side, as a worker pool with N
children would, each reading the page ``repeat`` times at psm 4, for each thread
setting; prints the pool's pages/s.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw, ImageFont

from workers.base import JobInput, ProcessingError
from workers.ocr import OcrProcessor, decode_page

FONT = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"
KOREAN = [
    "학생",
    "수업",
    "출석",
    "결석",
    "지각",
    "숙제",
    "시험",
    "성적",
    "안내",
    "학부모",
    "상담",
    "방학",
    "특강",
    "수학",
    "영어",
    "국어",
    "과학",
    "선생님",
    "교재",
    "일정",
    "확인",
    "제출",
    "문제",
    "풀이",
    "복습",
    "예습",
    "등원",
    "하원",
    "보강",
    "모의고사",
    "단원평가",
]
ENGLISH = [
    "Math",
    "English",
    "Science",
    "homework",
    "test",
    "score",
    "class",
    "schedule",
    "review",
    "lesson",
    "teacher",
    "student",
    "notice",
    "exam",
]


def make_page(seed: int = 1) -> tuple[bytes, list[str]]:
    rng = random.Random(seed)
    font = ImageFont.truetype(FONT, 30)  # 11 pt at 200 dpi
    img = Image.new("L", (1654, 2339), 255)
    draw = ImageDraw.Draw(img)
    words: list[str] = []
    draw.text((150, 120), "2026학년도 겨울방학 특강 안내 Winter Intensive Notice", font=font, fill=0)
    words += ["2026학년도", "겨울방학", "특강", "안내", "Winter", "Intensive", "Notice"]
    for y in range(200, 2339 - 160, 52):
        line = [rng.choice(KOREAN if rng.random() < 0.7 else ENGLISH) for _ in range(rng.randint(5, 9))]
        draw.text((150, y), " ".join(line), font=font, fill=0)
        words += line
    from io import BytesIO

    buf = BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue(), words


def _pool_child(data: bytes, threads: str, repeat: int) -> int:
    """Pages read in time (a page past the processor's 120 s timeout does not count)."""
    os.environ["OMP_THREAD_LIMIT"] = threads
    proc = OcrProcessor()
    done = 0
    for _ in range(repeat):
        try:
            proc.run(JobInput(params={"psm": 4}, data=data))
            done += 1
        except ProcessingError:
            pass
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--psm", type=int, nargs="+", default=[4])
    parser.add_argument("--threads", nargs="+", default=["1", str(os.cpu_count() or 1)])
    parser.add_argument("--procs", type=int, default=1)
    args = parser.parse_args()

    data, truth = make_page()
    proc = OcrProcessor()
    proc.validate({})
    print(f"page: 1654x2339 JPEG q85, {len(data) / 1024:.0f} KiB, {len(truth)} words; cpus {os.cpu_count()}")
    decode_times = []
    for _ in range(5):
        t = time.perf_counter()
        decode_page(data)
        decode_times.append(time.perf_counter() - t)
    decode_s = statistics.median(decode_times)
    print(f"decode_page (header checks + cv2.imdecode): {decode_s * 1000:.1f} ms")
    print(f"{'psm':>3} {'OMP threads':>11} {'s/page':>7} {'pages/s':>7} {'words found':>11} {'confidence':>10}")
    for psm in args.psm:
        for threads in args.threads:
            os.environ["OMP_THREAD_LIMIT"] = threads
            times = []
            result = None
            for _ in range(args.repeat):
                t = time.perf_counter()
                result = proc.run(JobInput(params={"psm": psm}, data=data))
                times.append(time.perf_counter() - t)
            assert result is not None
            got = collections.Counter(w["text"] for w in result.data["words"])
            found = sum((collections.Counter(truth) & got).values()) / len(truth)
            median = statistics.median(times)
            print(f"{psm:>3} {threads:>11} {median:>7.2f} {1 / median:>7.3f} {found:>10.1%} {result.confidence:>10.3f}")

    if args.procs > 1:
        print(f"{args.procs} processes side by side, psm 4:")
        for threads in args.threads:
            t = time.perf_counter()
            with concurrent.futures.ProcessPoolExecutor(args.procs) as pool:
                done = sum(
                    pool.map(_pool_child, [data] * args.procs, [threads] * args.procs, [args.repeat] * args.procs)
                )
            wall = time.perf_counter() - t
            pages = args.procs * args.repeat
            late = f", {pages - done} timed out" if done < pages else ""
            print(f"  OMP threads {threads}: {done} pages in {wall:.1f} s, {done / wall:.3f} pages/s{late}")


if __name__ == "__main__":
    main()
