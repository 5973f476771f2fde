"""``ocr``: read the printed text on an image with Tesseract (Korean and English).

The processor takes a photo or scan (PNG, JPEG, TIFF or WebP), turns it into one
greyscale page and runs the ``tesseract`` binary on it through ``pytesseract``. It returns
the text, every word with its confidence and box, and the lines those words make up.

Refusing bad inputs before Tesseract
------------------------------------
Tesseract on a hostile file is slow at best, so everything is checked first:

- the format comes from the magic bytes (not the name); other image formats, PDFs and
  archives are ``INVALID_FORMAT``, bytes that are no image at all ``FILE_UNREADABLE``;
- the width and height are read from the file header *before* decoding, so a small file
  that claims a gigantic image (a decompression bomb) is refused without inflating it
  (``IMAGE_TOO_LARGE`` above ``MAX_PIXELS``);
- a JPEG without its end marker or a PNG without ``IEND`` is truncated
  (``FILE_UNREADABLE``): decoders hand back a half-grey page instead of failing;
- an image under ``MIN_SIDE`` pixels on a side is ``RESOLUTION_TOO_LOW``.

The engine
----------
``validate()`` checks once per worker process (per binary) that the binary runs and has
the language data the job asks for; if not it raises ``BACKEND_NOT_CONFIGURED``, so
dispatch refuses the job instead of every job failing later. The binary is ``tesseract``
on the ``PATH`` unless ``TESSERACT_CMD`` names another. Each run has a timeout
(``timeout`` error code on expiry).

Tesseract parallelises with OpenMP. A worker pool already runs about one job per core,
and there OpenMP's threads only fight each other: on the 2-core benchmark machine a page
took 13.4 s with Tesseract's default threads and 5.9 s with one. So unless the worker's
environment sets ``OMP_THREAD_LIMIT`` itself, the processor sets it to 1 (for the
Tesseract processes it starts; the variable is read when they start).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

from workers import imageio
from workers.base import BadInput, JobInput, ProcessingError, ProcessorResult
from workers.memo import Memo

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

LANGUAGES: Final = frozenset({"kor+eng", "kor", "eng"})
DEFAULT_LANGUAGE: Final = "kor+eng"
#: Tesseract page-segmentation modes a job may ask for: 3 automatic layout, 4 one column
#: of text of varying sizes, 6 one uniform block, 7 one line, 11 sparse text.
PSMS: Final = frozenset({3, 4, 6, 7, 11})
#: Not Tesseract's own default (3): on Korean pages its automatic layout analysis often
#: takes lines of Hangul for vertical text or pictures and drops them. On the benchmark's
#: 200-dpi A4 handout mode 3 found 80 % of the words and mode 4 found 91.5 %; on some
#: test pages mode 3 lost whole lines. Mode 3 stays available for multi-column pages.
DEFAULT_PSM: Final = 4
MAX_BYTES: Final = 50 * 1024 * 1024
MAX_PIXELS: Final = 50_000_000
MIN_SIDE: Final = 16
#: the image kinds read (BMP, GIF, PDF... are INVALID_FORMAT).
KINDS: Final = frozenset({"png", "jpeg", "tiff", "webp"})
DEFAULT_TIMEOUT_S: Final = 120
PROBE_TIMEOUT_S: Final = 15
#: below this mean word confidence a person should look at the text.
REVIEW_BELOW: Final = 0.6

_VERSION_RE: Final = re.compile(r"tesseract\s+v?(\d[\w.\-]*)", re.IGNORECASE)


# --------------------------------------------------------------------------- decode


def image_size(data: bytes) -> tuple[str, int, int]:
    """(kind, width, height) from the header alone; raises BadInput when unreadable."""
    return imageio.image_size(data, KINDS)


def decode_page(data: bytes) -> npt.NDArray[np.uint8]:
    """The image as one 2-D uint8 page (alpha flattened onto white), or BadInput."""
    # A JPEG is decoded straight to grey so that its EXIF orientation is applied; the
    # other formats keep their alpha channel so a transparent background becomes white
    # (stripping alpha would leave whatever colour hides under it, often black).
    image = imageio.decode(
        data, kinds=KINDS, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, min_side=MIN_SIDE, keep_alpha=True
    )
    return _to_gray(image)


def _to_gray(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    import cv2
    import numpy as np

    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:  # float or signed samples (a TIFF may hold either): stretch to 0..255
        lo, hi = float(image.min()), float(image.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        image = ((image.astype(np.float64) - lo) * scale).astype(np.uint8)
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels == 1:
        return np.ascontiguousarray(image[:, :, 0])
    if channels in (2, 4):
        colour = image[:, :, 0] if channels == 2 else cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
        alpha = image[:, :, -1].astype(np.uint16)
        flat = (colour.astype(np.uint16) * alpha + 255 * (255 - alpha) + 127) // 255
        return flat.astype(np.uint8)
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class Engine:
    cmd: str
    version: str
    languages: frozenset[str]


_engines: Memo[str, Engine | str] = Memo()  # cmd -> the engine, or why it is unusable


def _probe(cmd: str) -> Engine | str:
    if importlib.util.find_spec("pytesseract") is None:
        return "the pytesseract package is not installed"
    try:
        version = subprocess.run(
            [cmd, "--version"], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False, text=True
        )
        langs = subprocess.run(
            [cmd, "--list-langs"], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False, text=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run {cmd!r}: {exc}"
    m = _VERSION_RE.search(version.stdout + version.stderr)
    if version.returncode != 0 or m is None:
        return f"{cmd!r} --version did not identify Tesseract"
    lines = (langs.stdout or langs.stderr).splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if "languages" in line.lower()), 0)
    names = frozenset(line.strip() for line in lines[start:] if line.strip())
    return Engine(cmd=cmd, version=m.group(1), languages=names)


def engine(cmd: str, lang: str) -> Engine:
    """The usable engine at ``cmd`` with data for every part of ``lang``, else BadInput."""
    found = _engines.get(cmd, lambda: _probe(cmd))
    if isinstance(found, str):
        raise BadInput(f"the OCR engine is not installed: {found}", code="BACKEND_NOT_CONFIGURED")
    missing = sorted(set(lang.split("+")) - found.languages)
    if missing:
        raise BadInput(f"Tesseract has no language data for {', '.join(missing)}", code="BACKEND_NOT_CONFIGURED")
    return found


def forget_engines() -> None:
    """Drop the cached probes (tests; a worker keeps them for its lifetime)."""
    _engines.clear()


def _tesseract(page_path: Path, eng: Engine, *, lang: str, psm: int, timeout_s: float) -> tuple[str, str]:
    """Run Tesseract once on ``page_path``; its (TSV, plain text) outputs."""
    import pytesseract  # type: ignore[import-untyped]

    # One pass writes both files: the TSV has the boxes and confidences, the text keeps
    # Tesseract's own word spacing (see merge_words). pytesseract's image_to_* helpers
    # return a single output each, so its lower-level run_tesseract is used.
    base = page_path.with_suffix("")
    # pytesseract starts Tesseract with this process's environment; see the module doc.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    pytesseract.pytesseract.tesseract_cmd = eng.cmd
    try:
        pytesseract.pytesseract.run_tesseract(
            str(page_path),
            str(base),
            extension="txt",
            lang=lang,
            config=f"--psm {psm} -c tessedit_create_tsv=1",
            timeout=timeout_s,
        )
        tsv = base.with_suffix(".tsv").read_text(encoding="utf-8", errors="replace")
        txt = base.with_suffix(".txt").read_text(encoding="utf-8", errors="replace")
    except pytesseract.TesseractNotFoundError as exc:
        forget_engines()  # the binary went away; probe again next time
        raise ProcessingError(f"tesseract disappeared: {exc}", code="library_error") from exc
    except pytesseract.TesseractError as exc:
        raise ProcessingError(f"tesseract failed: {exc}", code="library_error") from exc
    except RuntimeError as exc:  # pytesseract's own timeout is a bare RuntimeError
        if "timeout" in str(exc).lower():
            raise ProcessingError(f"tesseract ran past {timeout_s} s", code="timeout") from exc
        raise ProcessingError(f"tesseract failed: {exc}", code="library_error") from exc
    except OSError as exc:
        raise ProcessingError(f"tesseract wrote no output: {exc}", code="library_error") from exc
    return tsv, txt


# --------------------------------------------------------------------------- result


@dataclass
class _Piece:
    text: str
    conf: float  # 0..100
    box: tuple[int, int, int, int]  # x0, y0, x1, y1
    line: tuple[int, int, int]  # block, paragraph, line


def _tsv_pieces(tsv: str) -> list[_Piece]:
    rows = tsv.splitlines()
    if not rows:
        return []
    header = rows[0].split("\t")
    col = {name: i for i, name in enumerate(header)}
    needed = ("level", "block_num", "par_num", "line_num", "left", "top", "width", "height", "conf", "text")
    if any(name not in col for name in needed):
        raise ProcessingError("unexpected Tesseract TSV header", code="library_error")
    pieces: list[_Piece] = []
    for row in rows[1:]:
        cells = row.split("\t")
        if len(cells) < len(header):
            cells += [""] * (len(header) - len(cells))
        text = cells[col["text"]].strip()
        if cells[col["level"]] != "5" or not text:
            continue
        try:
            x, y, w, h = (int(cells[col[k]]) for k in ("left", "top", "width", "height"))
            conf = min(max(float(cells[col["conf"]]), 0.0), 100.0)
            line = (int(cells[col["block_num"]]), int(cells[col["par_num"]]), int(cells[col["line_num"]]))
        except ValueError as exc:
            raise ProcessingError(f"unreadable Tesseract TSV row: {row!r}", code="library_error") from exc
        pieces.append(_Piece(text, conf, (x, y, x + w, y + h), line))
    return pieces


def merge_words(pieces: list[_Piece], txt: str | None) -> list[_Piece]:
    """Glue together TSV words that Tesseract's text output writes without a space.

    For Hangul, Tesseract's TSV often splits one written word into syllables
    ("겨", "울", "방학") while its text output, which knows the gaps it saw, writes
    "겨울방학". Each TSV word is found in the text in order; one that follows the previous
    word of the same line with no whitespace in between is joined to it. Where the two
    outputs disagree, words are simply kept apart.
    """
    if txt is None:
        return list(pieces)
    words: list[_Piece] = []
    pos = 0
    for piece in pieces:
        start = pos
        while start < len(txt) and txt[start].isspace():
            start += 1
        attached = start == pos and txt.startswith(piece.text, start)
        if txt.startswith(piece.text, start):
            pos = start + len(piece.text)
        else:
            found = txt.find(piece.text, pos)
            if found >= 0:
                pos = found + len(piece.text)
        prev = words[-1] if words else None
        if attached and prev is not None and prev.line == piece.line:
            n_prev, n_new = len(prev.text), len(piece.text)
            words[-1] = _Piece(
                prev.text + piece.text,
                (prev.conf * n_prev + piece.conf * n_new) / (n_prev + n_new),
                (
                    min(prev.box[0], piece.box[0]),
                    min(prev.box[1], piece.box[1]),
                    max(prev.box[2], piece.box[2]),
                    max(prev.box[3], piece.box[3]),
                ),
                prev.line,
            )
        else:
            words.append(piece)
    return words


def _box(x0: int, y0: int, x1: int, y1: int) -> list[int]:
    return [x0, y0, x1 - x0, y1 - y0]


def build_result(tsv: str, txt: str | None = None) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(text, words, lines) from Tesseract's TSV and (optionally) text outputs.

    ``text`` has one line per recognised line and a blank line between paragraphs.
    """
    words = merge_words(_tsv_pieces(tsv), txt)
    by_line: dict[tuple[int, int, int], list[_Piece]] = {}
    for word in words:
        by_line.setdefault(word.line, []).append(word)
    lines: list[dict[str, Any]] = []
    parts: list[str] = []
    paragraph: tuple[int, int] | None = None
    for key, members in by_line.items():
        text = " ".join(w.text for w in members)
        if paragraph is not None and key[:2] != paragraph:
            parts.append("")
        paragraph = key[:2]
        parts.append(text)
        chars = sum(len(w.text) for w in members)
        lines.append(
            {
                "text": text,
                "confidence": round(sum(w.conf * len(w.text) for w in members) / chars / 100.0, 4),
                "box": _box(
                    min(w.box[0] for w in members),
                    min(w.box[1] for w in members),
                    max(w.box[2] for w in members),
                    max(w.box[3] for w in members),
                ),
            }
        )
    word_dicts = [{"text": w.text, "confidence": round(w.conf / 100.0, 4), "box": _box(*w.box)} for w in words]
    return "\n".join(parts), word_dicts, lines


# --------------------------------------------------------------------------- processor


def _lang(params: Mapping[str, Any]) -> str:
    lang = params.get("lang", DEFAULT_LANGUAGE)
    if not isinstance(lang, str) or lang not in LANGUAGES:
        raise BadInput(f"lang must be one of {sorted(LANGUAGES)}", code="INVALID_PAYLOAD")
    return lang


def _psm(params: Mapping[str, Any]) -> int:
    psm = params.get("psm", DEFAULT_PSM)
    if isinstance(psm, bool) or not isinstance(psm, int) or psm not in PSMS:
        raise BadInput(f"psm must be one of {sorted(PSMS)}", code="INVALID_PAYLOAD")
    return psm


class OcrProcessor:
    job_type: ClassVar[str] = "ocr"
    input_key: ClassVar[str | None] = "image_path"
    extensions: ClassVar[frozenset[str]] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"})
    wants_gpu: ClassVar[bool] = False

    def __init__(self, tesseract_cmd: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.tesseract_cmd = tesseract_cmd or os.environ.get("TESSERACT_CMD") or "tesseract"
        self.timeout_s = timeout_s

    def validate(self, params: Mapping[str, Any]) -> None:
        lang = _lang(params)
        _psm(params)
        engine(self.tesseract_cmd, lang)

    def run(self, job: JobInput) -> ProcessorResult:
        lang = _lang(job.params)
        psm = _psm(job.params)
        eng = engine(self.tesseract_cmd, lang)
        if job.data is None:
            raise BadInput("an image is required", code="FILE_REQUIRED")
        job.progress("decode", 0)
        page = decode_page(job.data)
        height, width = page.shape[:2]
        job.progress("recognise", 10)
        tsv, txt = self._recognise(page, eng, lang=lang, psm=psm)
        text, words, lines = build_result(tsv, txt)
        job.progress("done", 100)
        confidence = round(sum(w["confidence"] for w in words) / len(words), 4) if words else 0.0
        data = {
            "text": text,
            "words": words,
            "lines": lines,
            "language": lang,
            "psm": psm,
            "image": {"width": int(width), "height": int(height)},
            "engine": {"name": "tesseract", "version": eng.version},
        }
        return ProcessorResult(data=data, confidence=confidence, review=not words or confidence < REVIEW_BELOW)

    def _recognise(self, page: npt.NDArray[np.uint8], eng: Engine, *, lang: str, psm: int) -> tuple[str, str]:
        import cv2

        # The decoded page goes to Tesseract as an uncompressed PGM: the cheapest file to
        # write and read, and exactly the pixels checked above (not the upload itself).
        ok, buf = cv2.imencode(".pgm", page)
        if not ok:
            raise ProcessingError("cannot encode the page for Tesseract", code="library_error")
        with tempfile.TemporaryDirectory(prefix="ocr-") as tmp:
            path = Path(tmp) / "page.pgm"
            path.write_bytes(buf.tobytes())
            return _tesseract(path, eng, lang=lang, psm=psm, timeout_s=self.timeout_s)
