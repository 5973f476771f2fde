"""Train the mark classifier on crops from the project's own sheet generator; export ONNX.

    .venv/bin/python -m pip install -e ".[train]"     # torch and onnx: training only
    .venv/bin/python -m workers.omr.learned.train --seed 1 --out workers/omr/learned/marks.onnx

Data: sheets filled by ``tests/omr/corpus.py:fill_sheet`` (solid, scribbled, partial and
light marks, erasures with and without a re-mark, double marks, stray pencil), half of
them photographed (``photograph``: perspective, shadow band, colour cast, blur, JPEG)
and half scanned (``degrade``); and cards printed as vendors print them
(``tests/omr/cards.py``: red/pink dropout ink, light-grey outlines, digits inside the
bubbles, ellipses, rectangles, a bubble size per block, 200 questions; pencil or sign
pen), read through their OMRChecker templates. Each is aligned, placed and sampled by
the reader's own code, and every bubble becomes one crop (``crops.crops``, on the colour
channel the reader reads the fill on) with its context (``crops.context``), labelled
marked or not from the generator's truth. Seeds are
``learned:<seed>:<split>:<i>``, never the benches' (``photo:<i>``, ``bench:<i>``).
Sheets the aligner refuses are skipped. Validation sheets are generated apart from the
training sheets (other seeds), so the figure printed at the end is on unseen sheets.

Bubbles of the hard kinds (light and partial marks, bubbles of erased fields) weigh
``HARD_WEIGHT`` times as much in the loss: they are few, and they are why this exists.

Imports torch, which the runtime install does not have; nothing at run time imports
this module. torch and the test generator are imported through ``importlib`` so that
the type check of ``workers`` (run where torch is not installed) does not follow them.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

HARD_KINDS = frozenset({"light", "partial", "erased_remark", "erased_blank", "scribble"})
HARD_WEIGHT = 4.0
#: share of the easy bubbles (unmarked, in a field with no light, partial or erased
#: mark) kept for training: they are four in five of a sheet and teach little.
EASY_KEEP = 0.3
#: conv channels of the three blocks
CHANNELS = (8, 16, 16)


def _torch() -> Any:
    return importlib.import_module("torch")


def _sheet(seed: int, split: str, i: int, cards: tuple[str, ...]) -> tuple[Any, ...] | None:
    """Crops, context, labels and kind names of one generated sheet, or None if refused.

    Splits ending in "photo" are photographed, the others scanned; splits starting with
    "card" are cards printed as vendors print them (``tests/omr/cards.py``), read through
    their OMRChecker template (a design drawn from ``cards``), the others this project's
    default sheet."""
    corpus = importlib.import_module("tests.omr.corpus")
    from workers.omr.template import default_template

    photo = split.endswith("photo")
    rng = random.Random(f"learned:{seed}:{split}:{i}")
    if split.startswith("card"):
        return _card_sheet(rng, photo, cards)
    template = default_template()
    page, truth = corpus.fill_sheet(template, rng)
    data = corpus.photograph(page, rng) if photo else corpus.degrade(page, rng)[0]
    labels: dict[str, set[str]] = {f.label: {truth.student_id[j]} for j, f in enumerate(template.id_fields)}
    kinds = dict.fromkeys(labels, "id")
    for q in template.questions:
        labels[q.label] = set(truth.answers[q.label])
        kinds[q.label] = truth.kinds[q.label]
    return _crops(data, template, photo, lambda f: [int(v in labels[f.label]) for v in f.values], kinds)


#: the card designs trained on (tests/omr/cards.py), each read through its OMRChecker
#: template: red/pink dropout ink, light-grey outlines, digits inside the bubbles, tall
#: and wide ellipses, circles, rectangles, a bubble size per block, 200 questions. A
#: design named twice is drawn twice as often. This is ``marks-v2``'s list; ``--cards``
#: names another (tests/omr/cards.py also draws "dark": black rings and bold digits as
#: dark as the marks, which ``marks-v2`` never saw; README.md, "Known limit").
CARD_KINDS = ("red", "grey", "circle", "corner", "mixed", "q200", "red", "mixed")
_CARD_TEMPLATES: dict[str, Any] = {}


def _card_sheet(rng: random.Random, photo: bool, designs: tuple[str, ...]) -> tuple[Any, ...] | None:
    import tempfile

    cards = importlib.import_module("tests.omr.cards")
    corpus = importlib.import_module("tests.omr.corpus")
    from workers.omr.omrchecker import load_omrchecker_template

    card = cards.CARDS[rng.choice(designs)]
    if card.name not in _CARD_TEMPLATES:
        with tempfile.TemporaryDirectory() as folder:
            path = cards.write_omrchecker(card, Path(folder))
            _CARD_TEMPLATES[card.name] = load_omrchecker_template(path).template
    template = _CARD_TEMPLATES[card.name]
    sheet = cards.fill_card(card, rng)
    # L-shaped corners turned upside down no longer match their picture: fed upright.
    flip = False if card.marker == "corner" else None
    data = corpus.photograph(sheet.page, rng) if photo else corpus.degrade(sheet.page, rng, upside_down=flip)[0]
    truth = sheet.truth
    # The card's label -> (block values, marked values); the template's values are in the
    # same order as the card's printed ones (QTYPE_MCQ5's A..E are 1..5).
    marked: dict[str, tuple[tuple[str, ...], set[str]]] = {}
    for j, label in enumerate(card.id_block.labels):
        marked[label] = (card.id_block.values, {truth.student_id[j]})
    for block in card.question_blocks:
        for label in block.labels:
            marked[label] = (block.values, set(truth.answers[label]))
    kinds = {label: truth.kinds.get(label, "id") for label in marked}

    def labels(f: Any) -> list[int]:
        values, picked = marked[f.label]
        return [int(values[k] in picked) for k in range(len(f.values))]

    return _crops(data, template, photo, labels, kinds)


def _crops(data: bytes, template: Any, photo: bool, labels: Any, kinds: dict[str, str]) -> tuple[Any, ...] | None:
    """Cut the sheet's bubbles as the reader does before it calls the classifier."""
    import cv2

    from workers.omr.align import as_gray
    from workers.omr.decode import decode_image
    from workers.omr.errors import OmrError
    from workers.omr.learned.crops import context, crops
    from workers.omr.reader import place, print_free, read_gray

    image = decode_image(data)
    try:
        # The reader's own checks: a sheet it refuses (a wrong set of markers that makes
        # it past the aligner) never reaches the classifier, and would teach it noise.
        reading = read_gray(image, template, photo=photo, learned=False)
    except OmrError:
        return None
    gray = as_gray(image)
    placed, samples = place(image, gray, template, reading.alignment)
    # The classifier sees the channel the reader read the fill on (dropout ink drops out).
    marks = gray if samples.channel < 0 else np.asarray(cv2.extractChannel(image, samples.channel), np.uint8)
    y: list[int] = []
    k: list[str] = []
    for f in placed.fields:
        y += labels(f)
        k += [kinds[f.label]] * len(f.values)
    return (
        crops(marks, placed, reading.alignment),
        # The pair the reader gives the classifier: the print-free fills and the levels
        # the thresholds took from them (reader.read_gray).
        context(print_free(samples, placed), samples.index, reading.levels),
        np.array(y, np.float32),
        np.array(k),
    )


def generate(
    seed: int, split: str, count: int, jobs: int, cards: tuple[str, ...] = CARD_KINDS
) -> dict[str, npt.NDArray[Any]]:
    with ProcessPoolExecutor(jobs) as pool:
        got = [
            r for r in pool.map(_sheet, [seed] * count, [split] * count, range(count), [cards] * count) if r is not None
        ]
    print(f"{split}: {len(got)}/{count} sheets aligned, {sum(len(g[2]) for g in got)} bubbles", flush=True)
    return {
        "x": np.concatenate([g[0] for g in got]),
        "c": np.concatenate([g[1] for g in got]),
        "y": np.concatenate([g[2] for g in got]),
        "k": np.concatenate([g[3] for g in got]),
    }


def dataset(
    seed: int, sizes: dict[str, int], jobs: int, cache: Path | None, cards: tuple[str, ...] = CARD_KINDS
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for split, count in sizes.items():
        # A card split's sheets depend on the design list: its name is in the file's.
        mix = "-" + "+".join(cards) if split.startswith("card") else ""
        path = cache / f"learned-{seed}-{split}{mix}-{count}.npz" if cache else None
        if path is not None and path.is_file():
            with np.load(path) as z:
                out[split] = {k: z[k] for k in z.files}
            print(f"{split}: {len(out[split]['y'])} bubbles from {path}", flush=True)
            continue
        out[split] = generate(seed, split, count, jobs, cards)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **out[split])
    return out


def _join(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def thin(data: dict[str, Any], seed: int) -> dict[str, Any]:
    """All marked and all hard bubbles, ``EASY_KEEP`` of the easy unmarked ones."""
    easy = (data["y"] < 0.5) & ~np.isin(data["k"], list(HARD_KINDS))
    keep = ~easy | (np.random.default_rng(seed).random(len(easy)) < EASY_KEEP)
    return {k: v[keep] for k, v in data.items()}


def build_model(channels: tuple[int, int, int] = CHANNELS) -> Any:
    torch = _torch()
    nn = torch.nn

    from workers.omr.learned.crops import CONTEXT, SIZE

    a, b, c = channels

    class MarkNet(nn.Module):  # type: ignore[misc,name-defined]  # torch is Any here
        """Three 3x3 conv blocks (24 -> 12 -> 6 -> 3 px), then the crop's features and the
        three context numbers through one 32-unit hidden layer."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, a, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(a, b, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(b, c, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
            )
            self.head = nn.Sequential(nn.Linear(c * (SIZE // 8) ** 2 + CONTEXT, 32), nn.ReLU(), nn.Linear(32, 1))

        def forward(self, crops: Any, context: Any) -> Any:
            return self.head(torch.cat([self.features(crops), context], dim=1)).squeeze(1)

    return MarkNet()


def train(
    data: dict[str, Any], *, seed: int, epochs: int, batch: int, channels: tuple[int, int, int] = CHANNELS
) -> Any:
    torch = _torch()

    torch.manual_seed(seed)
    model = build_model(channels)
    x = torch.from_numpy(data["x"])
    c = torch.from_numpy(data["c"])
    y = torch.from_numpy(data["y"])
    w = torch.from_numpy(np.where(np.isin(data["k"], list(HARD_KINDS)), HARD_WEIGHT, 1.0).astype(np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * ((len(y) + batch - 1) // batch))
    gen = torch.Generator().manual_seed(seed)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        total = 0.0
        start = time.perf_counter()
        for s in range(0, len(y), batch):
            idx = order[s : s + batch]
            # Contrast jitter: pencil and light vary more than the generator's range.
            gain = torch.empty(len(idx), 1, 1, 1).uniform_(0.85, 1.15, generator=gen)
            logits = model(x[idx] * gain, c[idx])
            loss = (loss_fn(logits, y[idx]) * w[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        print(
            f"epoch {epoch + 1}/{epochs}: loss {total / len(y):.5f} ({time.perf_counter() - start:.0f} s)", flush=True
        )
    model.eval()
    return model


def predict(model: Any, data: dict[str, Any]) -> npt.NDArray[np.float32]:
    torch = _torch()

    with torch.no_grad():
        logits = model(torch.from_numpy(data["x"]), torch.from_numpy(data["c"]))
    return np.asarray(torch.sigmoid(logits).numpy(), np.float32)


def report(name: str, p: npt.NDArray[np.float32], data: dict[str, Any], sure: float) -> None:
    y = data["y"] >= 0.5
    right = (p >= 0.5) == y
    cert = np.abs(2 * p - 1)
    sure_wrong = int(np.sum(~right & (cert >= sure)))
    n_sure = int((cert >= sure).sum())
    print(
        f"{name}: bubbles {len(y)}, right {int(right.sum())} ({right.mean():.4%}), wrong {int((~right).sum())}, "
        f"sure (|2p-1| >= {sure}) {n_sure} ({n_sure / len(y):.2%}), sure and wrong {sure_wrong}"
    )
    for kind in sorted(set(data["k"].tolist())):
        m = data["k"] == kind
        wrong, unsure = int((~right[m]).sum()), int((cert[m] < sure).sum())
        print(f"  {kind:14s} n={int(m.sum()):6d} wrong={wrong:4d} unsure={unsure:4d}")


def export(model: Any, out: Path) -> None:
    torch = _torch()

    from workers.omr.learned.crops import CONTEXT, SIZE

    class WithSigmoid(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, crops: Any, context: Any) -> Any:
            return torch.sigmoid(self.inner(crops, context))

    args = (torch.zeros(2, 1, SIZE, SIZE), torch.zeros(2, CONTEXT))
    torch.onnx.export(
        WithSigmoid(model).eval(),
        args,
        str(out),
        input_names=["crops", "context"],
        output_names=["p_marked"],
        dynamic_axes={"crops": {0: "n"}, "context": {0: "n"}, "p_marked": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--photos", type=int, default=100, help="training sheets photographed")
    parser.add_argument("--scans", type=int, default=100, help="training sheets scanned")
    parser.add_argument("--val", type=int, default=20, help="validation sheets of each kind")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--channels", default=",".join(map(str, CHANNELS)), help="conv channels of the three blocks")
    parser.add_argument("--card-scans", type=int, default=60, help="training cards scanned (tests/omr/cards.py)")
    parser.add_argument("--card-photos", type=int, default=30, help="training cards photographed")
    parser.add_argument("--card-val", type=int, default=15, help="validation cards of each kind")
    parser.add_argument(
        "--cards",
        default=",".join(CARD_KINDS),
        help="card designs (tests/omr/cards.py); one named twice is drawn twice as often",
    )
    parser.add_argument(
        "--baseline", type=Path, help="also score the validation sheets with this model (the one to replace)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="keep the generated crops here (.npz) for the next run")
    args = parser.parse_args(argv)
    torch = _torch()

    from workers.omr.classify import CLASSIFIER_SURE
    from workers.omr.learned.model import reset, scorer

    torch.set_num_threads(args.jobs)
    sizes = {
        "train-photo": args.photos,
        "train-scan": args.scans,
        "val-photo": args.val,
        "val-scan": args.val,
        "card-train-scan": args.card_scans,
        "card-train-photo": args.card_photos,
        "card-val-scan": args.card_val,
        "card-val-photo": args.card_val,
    }
    sizes = {k: v for k, v in sizes.items() if v > 0}
    cards = tuple(args.cards.split(","))
    data = dataset(args.seed, sizes, args.jobs, args.cache, cards)
    val_splits = [k for k in sizes if "val" in k]
    # Scored before anything is written: --out may be the baseline's own file.
    baseline = scorer("cpu", args.baseline) if args.baseline else None
    if args.baseline and baseline is None:
        raise SystemExit(f"the baseline model {args.baseline} does not load")
    if baseline is not None:
        for split in val_splits:
            v = data[split]
            report(f"baseline {split}", baseline(v["x"], v["c"]), v, CLASSIFIER_SURE)
    training = thin(_join([data[k] for k in sizes if "train" in k]), args.seed)
    print(f"training on {len(training['y'])} bubbles ({int(training['y'].sum())} marked)", flush=True)
    channels = tuple(int(v) for v in args.channels.split(","))
    assert len(channels) == 3, "--channels takes three numbers"
    model = train(training, seed=args.seed, epochs=args.epochs, batch=args.batch, channels=channels)
    for split in val_splits:
        report(split, predict(model, data[split]), data[split], CLASSIFIER_SURE)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(model, args.out)
    # The exported file must score as the trained model does (a fresh session: the
    # baseline's may have been loaded from the same path).
    reset()
    check = scorer("cpu", args.out)
    assert check is not None, "the exported model does not load"
    v = data[val_splits[0]]
    got = check(v["x"], v["c"])
    diff = float(np.max(np.abs(got - predict(model, v))))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); onnxruntime vs torch max |dp| {diff:.2e}")
    return 0 if diff < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
