"""Fit the template's bubble layout to the sheet: which way up, and where each block lies.

An alignment (workers/omr/aligners.py) maps the template onto the picture to within a
fraction of a bubble. What the reader trusts is the print itself: the template's bubbles
must be printed (or marked) where it puts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from workers.omr.errors import NO_SHEET_FOUND, OmrError
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.align import Alignment

#: two orientations whose layout scores differ by less than this are a tie (a layout that
#: looks the same upside down); the first candidate, the likelier, is kept.
TIE: Final = 0.02


def pick_orientation(gray: npt.NDArray[np.uint8], template: Template, candidates: Sequence[Alignment]) -> Alignment:
    """Of several alignments (turns of the same sheet), the one the template's bubbles fit."""
    import numpy as np

    from workers.omr.sample import sample

    if not candidates:
        raise OmrError(NO_SHEET_FOUND, "no answer sheet was found")
    best: tuple[float, Alignment] | None = None
    for alignment in candidates:
        score = float(np.mean(np.clip(sample(gray, template, alignment).ring, 0, 1)))
        if best is None or score > best[0] + TIE:
            best = (score, alignment)
    assert best is not None
    return best[1]
