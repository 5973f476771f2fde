"""What a worksheet page is cut into: line segments, rows, sections, questions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]


@dataclass
class _Seg:
    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        self.cx = (self.x0 + self.x1) / 2
        self.cy = (self.y0 + self.y1) / 2


@dataclass
class _Row:
    x0: int
    y0: int
    x1: int
    y1: int
    token: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the first token
    shape_number: bool = False
    read: str | None = None  # what Tesseract read on the token, if asked
    number: int | None = None
    cue: str | None = None  # why the row starts a question


@dataclass
class _Section:
    y0: int
    y1: int
    x0: int
    x1: int
    column: int  # 1-based
    full_width: bool
    rows: list[_Row] = field(default_factory=list)


@dataclass
class Question:
    """One region, in deskewed-page coordinates (``parts`` as x0, y0, x1, y1)."""

    parts: list[tuple[int, int, int, int]]
    column: int
    full_width: bool
    number: int | None
    cue: str
    gap_score: float = 1.0


@dataclass
class Layout:
    """What :func:`segment` found; ``page`` is the deskewed page the parts refer to."""

    page: Gray
    width: int  # of the page as uploaded
    height: int
    angle: float  # degrees the page was turned (counter-clockwise); undone before reading
    matrix: Any  # 2x3 affine, uploaded -> deskewed
    unit: float
    columns: int
    questions: list[Question]
    header: tuple[int, int, int, int] | None
    footer: tuple[int, int, int, int] | None
    numbers_read: bool
    truncated: bool
    notes: list[str]

    def box(self, part: tuple[int, int, int, int]) -> list[int]:
        """``part`` as [x, y, w, h] on the page as uploaded (bounding box, clipped)."""
        import cv2
        import numpy as np

        x0, y0, x1, y1 = part
        inverse = cv2.invertAffineTransform(np.asarray(self.matrix, dtype=np.float64))
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], dtype=np.float64)
        mapped = corners @ inverse.T
        bx0 = int(max(0, np.floor(mapped[:, 0].min())))
        by0 = int(max(0, np.floor(mapped[:, 1].min())))
        bx1 = int(min(self.width, np.ceil(mapped[:, 0].max())))
        by1 = int(min(self.height, np.ceil(mapped[:, 1].max())))
        return [bx0, by0, max(0, bx1 - bx0), max(0, by1 - by0)]

    def crop(self, question: Question) -> Gray:
        """The question cut from the deskewed page, its parts stacked top to bottom."""
        import numpy as np

        pieces = [self.page[y0:y1, x0:x1] for x0, y0, x1, y1 in question.parts]
        width = max(p.shape[1] for p in pieces)
        gap = max(4, int(self.unit))
        padded = [np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=255) for p in pieces]
        out: list[Gray] = []
        for i, piece in enumerate(padded):
            if i:
                out.append(np.full((gap, width), 255, dtype=np.uint8))
            out.append(piece)
        return np.ascontiguousarray(np.vstack(out))
