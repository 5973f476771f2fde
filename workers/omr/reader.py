"""``read_sheet``: bytes of a scanned answer sheet in, a typed reading out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from workers.omr.classify import FieldReading, Levels, read_field, sheet_levels
from workers.omr.errors import TEMPLATE_MISMATCH, OmrError
from workers.omr.template import STUDENT_ID_LABEL, Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.align import Alignment

#: a printed outline must be this far from paper towards ink to count as present.
MIN_RING: Final = 0.1
#: share of template bubbles whose outline must be found where the template puts them.
MIN_RINGS_FOUND: Final = 0.9
UNREADABLE_DIGIT: Final = "?"


@dataclass(frozen=True)
class SheetReading:
    student_id: str  # one character per digit column, "?" where unreadable
    questions: tuple[FieldReading, ...]
    id_digits: tuple[FieldReading, ...]
    levels: Levels
    rotation: int
    alignment: Alignment

    @property
    def answers(self) -> dict[str, list[str]]:
        return {q.label: list(q.values) for q in self.questions}

    @property
    def review(self) -> list[str]:
        """Labels a person should check; "student_id" when any digit is uncertain."""
        labels = [q.label for q in self.questions if q.review]
        if any(d.review or len(d.values) != 1 for d in self.id_digits):
            labels.insert(0, STUDENT_ID_LABEL)
        return labels

    @property
    def student_id_confidence(self) -> float:
        return min((d.confidence for d in self.id_digits), default=1.0)

    @property
    def confidence(self) -> float:
        """The sheet's confidence: its least certain question (or ID digit)."""
        return min((f.confidence for f in self.questions + self.id_digits), default=1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "student_id": self.student_id,
            "answers": self.answers,
            "confidence": {q.label: q.confidence for q in self.questions},
            "review": self.review,
        }


def read_sheet(image: bytes, template: Template, *, photo: bool = False) -> SheetReading:
    """Read one sheet from encoded image bytes. Raises OmrError (a BadInput)."""
    from workers.omr.decode import decode_gray

    return read_gray(decode_gray(image), template, photo=photo)


def read_gray(gray: npt.NDArray[np.uint8], template: Template, *, photo: bool = False) -> SheetReading:
    import numpy as np

    from workers.omr.align import align
    from workers.omr.sample import sample

    alignment = align(gray, template, photo=photo)
    samples = sample(gray, template, alignment)
    found = float(np.mean(samples.ring >= MIN_RING))
    if found < MIN_RINGS_FOUND:
        raise OmrError(
            TEMPLATE_MISMATCH,
            f"only {found:.0%} of the bubbles of template {template.name!r} are printed on this sheet",
        )
    levels = sheet_levels(samples.fill, samples.index)
    fields = [
        read_field(f, [float(samples.fill[i]) for i in idx], levels)
        for f, idx in zip(template.fields, samples.index, strict=True)
    ]
    n_id = len(template.id_fields)
    digits = tuple(fields[:n_id])
    sid = "".join(d.values[0] if len(d.values) == 1 and not d.review else UNREADABLE_DIGIT for d in digits)
    return SheetReading(sid, tuple(fields[n_id:]), digits, levels, alignment.rotation, alignment)
