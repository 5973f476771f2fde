"""The OMR reader on fresh variants of the omr-dev sheets: a stand-in for held-out sheets.

    .venv/bin/python bench/omr_perturbed.py [OMR_DEV] [--seeds 1,2,3] [--sets scan,hard,photo] [--project]

The sets that judge the reader are other sheets of the same kinds as ``../shared/omr-dev``.
A reader can fit 110 sheets and still fail on the next one, so this bench makes new
sheets from the old: each one is turned (up to 2.5 degrees), scaled (5 %), shifted, given
another gamma, blur, noise and JPEG quality, all drawn from a seeded generator and within
the ranges the development set's README states for its own damage. The page is padded
first, so no marker leaves the picture; a scan is padded with paper, a photo with its
own edge (the desk).

The variants go to a temporary folder (never into the repository), are read by the real
command line as ``bench/omr_dev_accuracy.py`` does, and are scored by the set's own
``score.py`` against the original truth: the marks do not move with the damage. It prints
one scorer line per set and seed, and exits 0 only when every line meets its target
(0 silent misreads always).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.omr_dev_accuracy import DEFAULT_DEV, TARGETS, _as_dev_labels, run_cli, score

#: the damage drawn for each variant: (low, high) of a uniform draw.
TURN_DEG = (-2.5, 2.5)
SCALE = (0.95, 1.05)
SHIFT_PX = (-15.0, 15.0)
GAMMA = (0.8, 1.25)
BLUR_SIGMA = (0.0, 1.0)
NOISE_SIGMA = (0.0, 5.0)
JPEG_QUALITY = (60, 92)
#: padding around the page before it is turned, so its corners stay in the picture.
PAD_PX = 60


def perturb(data: bytes, *, rng: random.Random, photo: bool) -> bytes:
    """One damaged variant of a sheet's JPEG bytes."""
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("a development sheet that cv2 cannot decode")
    if photo:
        img = cv2.copyMakeBorder(img, PAD_PX, PAD_PX, PAD_PX, PAD_PX, cv2.BORDER_REFLECT_101)
    else:
        paper = [int(v) for v in np.median(img.reshape(-1, 3), axis=0)]
        img = cv2.copyMakeBorder(img, PAD_PX, PAD_PX, PAD_PX, PAD_PX, cv2.BORDER_CONSTANT, value=paper)
    h, w = img.shape[:2]
    warp = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(*TURN_DEG), rng.uniform(*SCALE))
    warp[:, 2] += np.array([rng.uniform(*SHIFT_PX), rng.uniform(*SHIFT_PX)])
    border = cv2.BORDER_REFLECT_101 if photo else cv2.BORDER_REPLICATE
    img = cv2.warpAffine(img, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    img = np.clip(255 * (img / 255.0) ** rng.uniform(*GAMMA), 0, 255)
    sigma = rng.uniform(*BLUR_SIGMA)
    if sigma > 0.3:  # below that a Gaussian kernel hardly changes a pixel
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(*NOISE_SIGMA), img.shape)
    out = np.clip(img + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(*JPEG_QUALITY)])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 picture
        raise RuntimeError("cv2 could not encode a variant")
    return bytes(buf)


def run(dev: Path, name: str, seed: int, *, project: bool) -> tuple[str, bool]:
    folder = dev / name
    truth_all = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    rng = random.Random(f"{name}:{seed}")
    template = dev / "project-template.json" if project else folder / "omrchecker" / "template.json"
    with tempfile.TemporaryDirectory(prefix="omr-perturbed-") as tmp:
        files: list[Path] = []
        for sheet in sorted(folder.glob("*.jpg")):
            target = Path(tmp) / sheet.name
            target.write_bytes(perturb(sheet.read_bytes(), rng=rng, photo=name == "photo"))
            files.append(target)
        out = Path(tmp) / "out.json"
        truth = Path(tmp) / "truth.json"
        truth.write_text(json.dumps({f.name: truth_all[f.name] for f in files}), encoding="utf-8")
        run_cli(template, files, out, photo=name == "photo", jobs=None)
        if not out.exists():
            return "no output written", False
        results = json.loads(out.read_text(encoding="utf-8"))
        if project:
            out.write_text(json.dumps(_as_dev_labels(results)), encoding="utf-8")
        line, ok = score(dev, truth, out, TARGETS[name])
    refused = [f"{sheet}: {entry['error'].get('code')}" for sheet, entry in results.items() if entry.get("error")]
    return line + "".join(f"\n    refused {r}" for r in refused), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dev", nargs="?", type=Path, default=DEFAULT_DEV, help="the omr-dev folder")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds, one variant of each sheet per seed")
    parser.add_argument("--sets", default="scan,hard,photo", help="comma-separated sets")
    parser.add_argument("--project", action="store_true", help="read scan/hard with project-template.json instead")
    args = parser.parse_args()
    dev: Path = args.dev.resolve()
    all_ok = True
    for name in args.sets.split(","):
        if name not in TARGETS:
            print(f"unknown set {name!r}; choose from {', '.join(TARGETS)}", file=sys.stderr)
            return 2
        for seed in (int(s) for s in args.seeds.split(",")):
            project = args.project and name != "photo"
            line, ok = run(dev, name, seed, project=project)
            all_ok = all_ok and ok
            print(f"[{name} seed {seed}{' (project tpl)' if project else ''}] {line}", flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
