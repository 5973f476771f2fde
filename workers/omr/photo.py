"""The reader's photo mode: which four blobs of a phone photo are the sheet's markers.

A scan shows a page on a plain bed, so the biggest square-ish rectangle of dark squares
is the markers. A photo also shows a desk, a hand and shadows, and on the 1000 px search
copy a marker is a small blurred trapezoid, so the marker search (align._candidates,
photo branch) lets in more blobs, and the biggest rectangle is sometimes made with a
dark knot in the wood, a shadow or a filled bubble. Here the plausible rectangles are
tried biggest first, and the first whose four blobs pass every test of a sheet of this
template wins:

- the hollow orienting marker in one corner and solid markers in the other three, the
  marker rectangle's aspect and the markers' size (align.fit);
- the template's bubbles printed where that rectangle puts them, each block found near
  its place (the same test the reader makes: reader.place).

A sheet too small to read (under MIN_PHOTO_DPI) is refused with RESOLUTION_TOO_LOW when
its markers passed the marker tests and no other rectangle passes them all; its bubble
outlines are not tested, as at that size they are not seen reliably.

A sheet that was found is still refused when it should be photographed again: TOO_DARK
when its paper (next to the markers) is darker than MIN_PAPER, BLUR_OR_SHAKE when its
markers' edges are smeared over more than MAX_EDGE_WIDTH bubble radii. When no sheet is
found, the frame says why where it can: TOO_DARK (mean grey), BLUR_OR_SHAKE
(frame_edge_width), else NO_SHEET_FOUND. Where the lines come from: docs/benchmarks.md,
photo section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from workers.omr.errors import (
    BLUR_OR_SHAKE,
    NO_SHEET_FOUND,
    RESOLUTION_TOO_LOW,
    TOO_DARK,
    OmrError,
)
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from workers.omr.align import Alignment, _Blob

#: this many candidate marker rectangles are tried, biggest first (a wrong one is
#: mostly refused on its marker holes, a millisecond each).
MAX_QUADS: Final = 40
#: a photographed sheet is read down to this resolution (the scan reader's floor is
#: align.MIN_DPI). See docs/benchmarks.md, photo section, for where reading fails.
MIN_PHOTO_DPI: Final = 60
#: the found sheet's paper must be at least this grey (0..255) ...
MIN_PAPER: Final = 60.0
#: ... and its markers' edges at most this many bubble radii wide (edge_width).
MAX_EDGE_WIDTH: Final = 1.0
#: no sheet found: the frame is called shaken when its edges, on a copy of this long
#: side, are wider than MAX_FRAME_EDGE_WIDTH pixels (frame_edge_width) ...
FRAME_SIDE: Final = 1000
MAX_FRAME_EDGE_WIDTH: Final = 6.0
#: ... and too dark when its mean grey is below this (the scan gate's line).
MIN_FRAME_BRIGHTNESS: Final = 60.0


def align_photo(gray: npt.NDArray[np.uint8], template: Template, blobs: list[_Blob], k: float) -> Alignment:
    from workers.omr.align import fit_candidates, ranked_quads
    from workers.omr.layout import pick_orientation
    from workers.omr.reader import place

    quads = ranked_quads(blobs, template, True, limit=MAX_QUADS)
    if not quads:
        _check_frame(gray)
        raise OmrError(NO_SHEET_FOUND, "the four corner markers of an answer sheet were not found")
    first: OmrError | None = None
    too_small: OmrError | None = None
    for quad in quads:
        try:
            candidates = fit_candidates(gray, template, quad, k, photo=True, min_dpi=0)
            dpi = candidates[0].scale * template.dpi
            if dpi < MIN_PHOTO_DPI:
                if len(candidates) > 1:
                    # Four alike blobs say less than a hollow marker among solid ones: too
                    # small to be told from a cluster of dots, so not a sheet found.
                    raise OmrError(NO_SHEET_FOUND, "four small alike blobs, not a sheet's markers")
                # Markers of this template, but too few pixels to read the bubbles by:
                # the ring test would fail for that reason, and say the wrong thing.
                too_small = too_small or OmrError(
                    RESOLUTION_TOO_LOW, f"the sheet is photographed at about {dpi:.0f} dpi"
                )
                continue
            alignment = candidates[0] if len(candidates) == 1 else pick_orientation(gray, template, candidates)
            place(gray, gray, template, alignment)  # TEMPLATE_MISMATCH unless its bubbles are printed there
        except OmrError as exc:
            first = first or exc
            continue
        _check_quality(gray, template, alignment)
        return alignment
    error = too_small or first
    assert error is not None
    if error.code != RESOLUTION_TOO_LOW:
        # No rectangle passed: a dark or shaken frame explains that better than what the
        # first wrong rectangle failed on.
        _check_frame(gray)
    raise error


def _check_quality(gray: npt.NDArray[np.uint8], template: Template, alignment: Alignment) -> None:
    """TOO_DARK or BLUR_OR_SHAKE for a sheet that was found but should be photographed again."""
    if alignment.paper < MIN_PAPER:
        raise OmrError(TOO_DARK, f"the sheet's paper is grey {alignment.paper:.0f}; at least {MIN_PAPER:.0f} is needed")
    width = edge_width(gray, template, alignment)
    if width > MAX_EDGE_WIDTH:
        raise OmrError(
            BLUR_OR_SHAKE,
            f"the sheet's edges are blurred over {width:.1f} bubble radii; at most {MAX_EDGE_WIDTH:.1f} are read",
        )


def _check_frame(gray: npt.NDArray[np.uint8]) -> None:
    """No sheet was found: TOO_DARK or BLUR_OR_SHAKE when that is why, else nothing."""
    import cv2
    import numpy as np

    k = min(1.0, FRAME_SIDE / max(gray.shape))
    small = np.asarray(cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) if k < 1 else gray, np.uint8)
    brightness = float(small.mean())
    if brightness < MIN_FRAME_BRIGHTNESS:
        raise OmrError(TOO_DARK, f"mean brightness {brightness:.0f} is below {MIN_FRAME_BRIGHTNESS:.0f}")
    width = frame_edge_width(small)
    if width > MAX_FRAME_EDGE_WIDTH:
        raise OmrError(BLUR_OR_SHAKE, f"no sheet found, and the photo's edges are blurred over {width:.1f} px")


def frame_edge_width(small: npt.NDArray[np.uint8]) -> float:
    """The width in pixels of the sharpest edges of a picture, along the worse image axis:
    its contrast (5th to 95th percentile) over the top 0.1 % of its gradient (a blank sheet
    on a desk has few edges: its outline)."""
    import numpy as np

    img = small.astype(np.float32)
    gy, gx = np.gradient(img)
    contrast = float(np.percentile(img, 95) - np.percentile(img, 5))
    steep = min(float(np.percentile(np.abs(gx), 99.9)), float(np.percentile(np.abs(gy), 99.9)))
    return contrast / max(steep, 1e-3)


def edge_width(gray: npt.NDArray[np.uint8], template: Template, alignment: Alignment) -> float:
    """How blurred the sheet is: the width, in bubble radii, of the markers' ink-to-paper
    edges, along the worse of the two image axes (a shake blurs the edges across it only).

    An edge's width is its contrast over its steepest slope; the steepest slopes are the
    top percent of the gradient around each marker (its edges are several percent of that
    patch). The median of the four markers is returned.
    """
    import cv2
    import numpy as np

    centres = cv2.perspectiveTransform(np.array([template.marker_centres], np.float64), alignment.homography)[0]
    side = template.marker_size * alignment.scale
    half = max(3, round(side))
    contrast = max(alignment.paper - alignment.ink, 1.0)
    h, w = gray.shape
    widths = []
    for x, y in centres:
        x0, y0 = max(0, round(x) - half), max(0, round(y) - half)
        roi = gray[y0 : min(h, round(y) + half + 1), x0 : min(w, round(x) + half + 1)].astype(np.float32)
        if min(roi.shape) < 3:
            continue
        gy, gx = np.gradient(roi)
        steep = min(float(np.percentile(np.abs(gx), 99)), float(np.percentile(np.abs(gy), 99)))
        widths.append(contrast / max(steep, 1e-3))
    if not widths:
        return float("inf")
    return float(np.median(widths)) / (template.bubble_radius * alignment.scale)
