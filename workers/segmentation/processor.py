"""The ``question_segmentation`` processor: parameters, decoding, crops and the layout PNG."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from workers.base import Artifact, BadInput, JobInput, ProcessingError, ProcessorResult
from workers.segmentation.layout import confidence, segment
from workers.segmentation.model import Layout

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]

#: the smallest page side worth segmenting (a worksheet under ~70 dpi is unreadable).
MIN_SIDE: Final = 300
ENGINES: Final = frozenset({"auto", "opencv"})
#: model-based engines a client may name; this build has none, so they are refused
#: with BACKEND_NOT_CONFIGURED rather than quietly read with OpenCV.
MODEL_ENGINES: Final = frozenset({"yolo", "template"})
REVIEW_BELOW: Final = 0.6
#: zlib level of the PNG artifacts: on the benchmark's noisy 200-dpi page, level 1 encodes
#: layout.png in 0.34 s against 0.45 s at level 3, for a file 17 % larger (3.0 MB).
PNG_LEVEL: Final = 1


def _engine(params: Mapping[str, Any]) -> str:
    engine = params.get("engine") or "auto"
    if not isinstance(engine, str):
        raise BadInput("engine must be a string", code="INVALID_PAYLOAD")
    if engine in MODEL_ENGINES:
        raise BadInput(f"the {engine} segmentation engine is not available; use opencv", code="BACKEND_NOT_CONFIGURED")
    if engine not in ENGINES:
        raise BadInput(f"engine must be one of {sorted(ENGINES | MODEL_ENGINES)}", code="INVALID_PAYLOAD")
    return engine


def _read_numbers(params: Mapping[str, Any]) -> bool:
    value = params.get("read_numbers", True)
    if not isinstance(value, bool):
        raise BadInput("read_numbers must be true or false", code="INVALID_PAYLOAD")
    return value


def decode(data: bytes | None) -> Gray:
    """The upload as one greyscale page, through the guarded decoder, or BadInput."""
    from workers import imageio
    from workers.ocr import decode_page

    if data is None:
        raise BadInput("an image is required", code="FILE_REQUIRED")
    if data:
        _, w, h = imageio.image_size(data, KINDS)
        if 0 < min(w, h) < MIN_SIDE:
            raise BadInput(f"image is only {w}x{h} pixels; at least {MIN_SIDE} on each side", code="RESOLUTION_TOO_LOW")
    return decode_page(data)


KINDS: Final = frozenset({"png", "jpeg", "tiff"})


def png_bytes(image: Any) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise ProcessingError("cannot encode a PNG", code="library_error")
    return bytes(buf.tobytes())


def layout_image(gray: Gray, layout: Layout) -> bytes:
    """The page as uploaded with each question's box and label drawn on it."""
    import cv2

    canvas = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    thick = max(2, int(layout.unit / 8))
    for i, q in enumerate(layout.questions, 1):
        label = f"{i}" if q.number is None else f"{i} (#{q.number})"
        for part in q.parts:
            x, y, w, h = layout.box(part)
            cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 0, 220), thick)
            cv2.putText(
                canvas,
                label,
                (x + thick, y + int(layout.unit)),
                cv2.FONT_HERSHEY_SIMPLEX,
                layout.unit / 30,
                (0, 0, 220),
                thick,
            )
    for extra in (layout.header, layout.footer):
        if extra is not None:
            x, y, w, h = layout.box(extra)
            cv2.rectangle(canvas, (x, y), (x + w, y + h), (160, 160, 160), thick)
    return png_bytes(canvas)


def question_dicts(layout: Layout) -> list[dict[str, Any]]:
    out = []
    for i, q in enumerate(layout.questions, 1):
        boxes = [layout.box(p) for p in q.parts]
        out.append(
            {
                "index": i,
                "box": boxes[0],
                "parts": boxes,
                "column": q.column,
                "full_width": q.full_width,
                "number": q.number,
                "cue": q.cue,
            }
        )
    return out


class QuestionSegmentationProcessor:
    job_type: ClassVar[str] = "question_segmentation"
    input_key: ClassVar[str | None] = "image_path"
    extensions: ClassVar[frozenset[str]] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
    wants_gpu: ClassVar[bool] = False

    def __init__(self, tesseract_cmd: str | None = None) -> None:
        self.tesseract_cmd = tesseract_cmd or os.environ.get("TESSERACT_CMD") or None

    def validate(self, params: Mapping[str, Any]) -> None:
        _engine(params)
        _read_numbers(params)

    def run(self, job: JobInput) -> ProcessorResult:
        _engine(job.params)
        read_numbers = _read_numbers(job.params)
        job.progress("decode", 0)
        gray = decode(job.data)
        layout = segment(gray, read_numbers=read_numbers, tesseract_cmd=self.tesseract_cmd, progress=job.progress)
        job.progress("artifacts", 80)
        artifacts = [
            Artifact(f"q{i:02d}.png" if i < 100 else f"q{i}.png", png_bytes(layout.crop(q)), "image/png")
            for i, q in enumerate(layout.questions, 1)
        ]
        artifacts.append(Artifact("layout.png", layout_image(gray, layout), "image/png"))
        conf = confidence(layout)
        data = {
            "questions": question_dicts(layout),
            "columns": layout.columns if layout.questions else 0,
            "page": {"width": layout.width, "height": layout.height},
            "skew_degrees": layout.angle,
            "header": layout.box(layout.header) if layout.header else None,
            "footer": layout.box(layout.footer) if layout.footer else None,
            "numbers_read": layout.numbers_read,
            "truncated": layout.truncated,
            "notes": layout.notes,
        }
        job.progress("done", 100)
        return ProcessorResult(
            data=data,
            confidence=conf,
            review=not layout.questions or layout.truncated or conf < REVIEW_BELOW,
            artifacts=tuple(artifacts),
        )
