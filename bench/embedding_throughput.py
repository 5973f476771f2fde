"""Texts per second of the ``embedding`` processor in one process (needs the ``embedding`` extra).

    .venv/bin/python bench/embedding_throughput.py [--texts 256] [--repeat 3] [--threads 1 2]

Builds ``--texts`` short texts like an academy's (a sentence or two about homework,
classes and notices, half English, half Korean, 40..200 characters), then runs
``EmbeddingProcessor.run`` on all of them ``--repeat`` times for each PyTorch thread
count (``EMBEDDING_TORCH_THREADS``; the processor's default is 1, as a worker pool runs
one job per core). Prints the model load time, then per setting the median seconds per
job and texts/s.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workers.embedding as embedding
from workers.base import JobInput

ENGLISH = [
    "Please finish the math workbook up to page {n} before next class.",
    "The science quiz on chapter {n} moves to Friday.",
    "Students who missed class on day {n} should book a make-up lesson.",
    "Read the essay prompt and write {n} sentences about your weekend.",
    "Parents are invited to a consultation about the winter intensive course.",
    "Bring your vocabulary notebook; we will review words {n} to {m}.",
]
KOREAN = [
    "다음 수업 전까지 수학 문제집 {n}쪽까지 풀어 오세요.",
    "{n}단원 과학 쪽지시험은 금요일로 변경되었습니다.",
    "{n}일 결석한 학생은 보강 수업을 신청해 주세요.",
    "주말에 있었던 일을 영어 문장 {n}개로 써 오세요.",
    "겨울방학 특강 관련 학부모 상담을 안내드립니다.",
    "단어장을 챙겨 오세요. {n}번부터 {m}번까지 복습합니다.",
]


def make_texts(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(count):
        pool = ENGLISH if i % 2 == 0 else KOREAN
        parts = [
            rng.choice(pool).format(n=rng.randint(1, 60), m=rng.randint(61, 120)) for _ in range(rng.randint(1, 3))
        ]
        texts.append(" ".join(parts)[:200])
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=embedding.MAX_TEXTS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    problem = embedding.backend_problem()
    if problem is not None:
        sys.exit(f"the embedding model is unavailable: {problem}")
    texts = make_texts(args.texts)
    chars = sum(len(t) for t in texts)
    print(f"{len(texts)} texts, {chars / len(texts):.0f} characters on average, batch size {embedding.BATCH_SIZE}")
    processor = embedding.EmbeddingProcessor()
    for threads in args.threads:
        os.environ["EMBEDDING_TORCH_THREADS"] = str(threads)
        embedding.forget_backend()
        start = time.perf_counter()
        embedding.model()
        load = time.perf_counter() - start
        processor.run(JobInput(params={"texts": texts[:8]}))  # warm-up
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = processor.run(JobInput(params={"texts": texts}))
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(
            f"threads={threads}: model load {load:.1f} s; {median:.2f} s per job of {len(texts)} texts "
            f"(median of {args.repeat}), {len(texts) / median:.0f} texts/s, dim {result.data['dim']}"
        )


if __name__ == "__main__":
    main()
