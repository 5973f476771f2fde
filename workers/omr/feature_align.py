"""Align a sheet to a picture of the blank card (OMRChecker's ``FeatureBasedAlignment``).

The template frame is the reference picture: the whole reference maps onto the
template's page. Corner-like features (ORB, rotation-invariant, so a sideways or
upside-down sheet matches too) are found in the reference and in the sheet, each sheet
feature is paired with its nearest reference feature (Hamming distance), the best
``goodMatchPercent`` of the pairs are kept, and a transform is fitted to them with RANSAC:
on a scan a similarity (shift, turn, one scale, as a scanner makes), on a phone photo a
full perspective homography. The fit is then refined on grey levels over the whole page
(ECC): an affine map with ``2d``, else a homography.

Bubbles are poor features (hundreds look alike), which is why OMRChecker advises a
reference picture with the bubbles cleared; printed text works well. Too few consistent
pairs is NO_SHEET_FOUND, never a guess.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Final

from workers.omr.align import Alignment, polygon_area, quad_plausible
from workers.omr.aligners import aligner_register
from workers.omr.errors import NO_SHEET_FOUND, TEMPLATE_INVALID, OmrError
from workers.omr.template import Template

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Gray = npt.NDArray[np.uint8]
    #: points (work copy), descriptors, work copy scale, (height, width) of the picture.
    _RefFeatures = tuple[list[tuple[float, float]], npt.NDArray[np.uint8] | None, float, tuple[int, int]]

DEFAULT_MAX_FEATURES: Final = 500
DEFAULT_GOOD_MATCH_PERCENT: Final = 0.15
#: features are found on copies of this long side (both pictures).
WORK_SIDE: Final = 1400
#: at least this many pairs must agree with the fitted transform.
MIN_INLIERS: Final = 12
#: ... and this share of the pairs kept.
MIN_INLIER_SHARE: Final = 0.25
#: RANSAC's distance for a pair to agree, in pixels of the work copy.
RANSAC_PX: Final = 4.0
#: a pair is kept when its best match is this much closer than its second best.
RATIO: Final = 0.85
#: a photo's similarity start (``align_reference``) takes pairs this many times RANSAC_PX
#: off as agreeing: its perspective moves the page's far side from where one scale puts it.
PHOTO_SIMILARITY_SLACK: Final = 4.0
#: the fit is refined by intensity (ECC) on copies of this long side.
ECC_SIDE: Final = 700
#: ... and kept only where that moves no page corner further than this share of the
#: sheet's long side (a wrong turn, not a refinement), or this share for a photo's
#: starts on the smaller copies, which its perspective can leave further off.
FINE_MOVE: Final = 0.03
COARSE_MOVE: Final = 0.1
ECC_STEPS: Final = 60
#: ... and this many at ECC's size for a photo, whose start the smaller copies refined.
FINE_STEPS: Final = 15


@aligner_register("reference")
def align_by_reference(gray: Gray, template: Template, *, photo: bool = False) -> Alignment:
    """Aligner "reference". Options (``template.alignment.options``): ``reference`` (the
    picture's bytes, required), ``maxFeatures``, ``goodMatchPercent``, ``2d`` (the refinement
    of a scan's fit kept affine; ignored in photo mode)."""
    options = template.alignment.options
    reference = options.get("reference")
    if not isinstance(reference, bytes):
        raise OmrError(TEMPLATE_INVALID, "alignment.options.reference: the reference picture is missing")
    return align_reference(
        gray,
        template,
        reference=reference,
        max_features=int(options.get("maxFeatures", DEFAULT_MAX_FEATURES)),
        good_match_percent=float(options.get("goodMatchPercent", DEFAULT_GOOD_MATCH_PERCENT)),
        # "2d" is meant for flatbed scans; a phone photo has perspective an affine map
        # cannot follow, so photo mode always fits the full homography.
        affine=bool(options.get("2d", False)) and not photo,
        photo=photo,
    )


def align_reference(
    gray: Gray,
    template: Template,
    *,
    reference: bytes,
    max_features: int = DEFAULT_MAX_FEATURES,
    good_match_percent: float = DEFAULT_GOOD_MATCH_PERCENT,
    affine: bool = False,
    photo: bool = False,
) -> Alignment:
    """The template frame (= the reference picture) mapped onto ``gray``."""
    import cv2
    import numpy as np

    ref = _reference(reference, max(max_features, 10) * (2 if photo else 1))
    ref_kp, ref_desc, ref_k, ref_shape = ref
    k = min(1.0, WORK_SIDE / max(gray.shape[:2]))
    small = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) if k < 1 else gray
    small = np.asarray(cv2.normalize(small, np.empty_like(small), 0, 255, cv2.NORM_MINMAX), np.uint8)
    orb = cv2.ORB.create(max(max_features, 10) * (2 if photo else 1))
    kp, desc = orb.detectAndCompute(small, None)
    if desc is None or len(kp) < MIN_INLIERS or ref_desc is None:
        raise OmrError(NO_SHEET_FOUND, "too few features on the sheet to match the reference picture")
    # Nearest and second-nearest reference feature per sheet feature: a pair whose best
    # match is hardly better than its second (a bubble among hundreds alike) is dropped.
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(desc, ref_desc, k=2)
    # OMRChecker keeps the best goodMatchPercent of the pairs; those are the best-printed
    # features, bunched where the print is busiest, so the clear pairs are kept too.
    best = [p[0] for p in pairs if p]
    clear = {id(p[0]) for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance}
    ranked = sorted(best, key=lambda m: m.distance)
    top = {id(m) for m in ranked[: int(len(ranked) * good_match_percent)]}
    matches = [m for m in ranked if id(m) in clear or id(m) in top]
    if len(matches) < MIN_INLIERS:
        raise OmrError(NO_SHEET_FOUND, "the sheet shares too few features with the reference picture")
    src = np.array([ref_kp[m.trainIdx] for m in matches], np.float32)  # reference work copy
    dst = np.array([kp[m.queryIdx].pt for m in matches], np.float32)  # sheet work copy
    # A scanner turns, scales and shifts the page, the same scale both ways. A full
    # affine map (OMRChecker's ``2d``) or a homography (its default) also fits a scale,
    # or a perspective, of its own down the page, which features bunched in the heading
    # hardly tell: a few per cent off there is a row off at the page's foot. The
    # heading's width tells the one scale well; the grey-level refinement over the
    # whole page (``_refine``) then frees what ``2d`` leaves free.
    # A photo starts from the similarity a scan gets too (a scan read in photo mode: the
    # looser one, fitted to features bunched in the heading, came out a few per cent off).
    starts = []
    for slack in (1.0, PHOTO_SIMILARITY_SLACK) if photo else (1.0,):
        m, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX * slack)
        if m is not None:
            starts.append((np.vstack([m, [0, 0, 1]]), mask))
    if photo:
        # A photo's perspective is real: a homography fitted to the features follows
        # it, or, where they lie bunched in the heading, folds the rest of the page.
        # It, the similarities and the page's edges (``_page_start``) are each refined,
        # and the refinement whose grey levels then match the reference's best is kept.
        hom, hmask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX)
        if hom is not None:
            starts.insert(0, (hom, hmask))
    least = max(MIN_INLIERS, MIN_INLIER_SHARE * len(matches))
    agreed = [(start, int(np.count_nonzero(agree))) for start, agree in starts if agree is not None]
    kept = [np.asarray(start, np.float64) for start, inliers in agreed if inliers >= least]
    if not kept:
        inliers = max((n for _, n in agreed), default=0)
        raise OmrError(NO_SHEET_FOUND, f"only {inliers} of {len(matches)} features agree with the reference picture")
    start = kept[0]
    refine = functools.partial(_refine, ref_data=reference, ref_k=ref_k, small=small, affine=affine)
    if photo:
        edges = _page_start(gray, k, _reference_corners(reference, ref_k), start)
        # Each start is refined on the smaller copies only, straight at half of ECC's
        # size and from a quarter of it up (the quarter reaches a start a row off, and
        # can also pull a good one astray); the refinement whose grey levels match the
        # reference best there is refined at ECC's size. Refining every start at full
        # size took four times as long on a full-size photo.
        coarse = [
            refine(hom=each, sides=sides, move=COARSE_MOVE)
            for each in (kept if edges is None else [*kept, edges])
            for sides in ((ECC_SIDE // 2,), (ECC_SIDE // 4, ECC_SIDE // 2))
        ]
        chosen, agreement = max(coarse, key=lambda fit: fit[1])
        if agreement > -1.0:
            start = chosen
    hom = refine(hom=start, sides=(ECC_SIDE,), move=FINE_MOVE, steps=FINE_STEPS if photo else ECC_STEPS)[0]
    # template px -> reference px (the reference is the page) -> reference work copy
    # -> sheet work copy -> sheet px.
    rh, rw = ref_shape
    to_ref = np.diag([rw / template.width * ref_k, rh / template.height * ref_k, 1.0])
    full = np.diag([1 / k, 1 / k, 1.0]) @ np.asarray(hom, np.float64) @ to_ref
    full /= full[2, 2]
    corners = np.array([(0, 0), (template.width, 0), (template.width, template.height), (0, template.height)])
    mapped = np.asarray(
        cv2.perspectiveTransform(corners.reshape(-1, 1, 2).astype(np.float64), full).reshape(-1, 2), np.float64
    )
    if not quad_plausible(mapped):
        raise OmrError(NO_SHEET_FOUND, "the features matched map the reference picture onto no plausible page")
    scale = math.sqrt(abs(polygon_area(mapped)) / (template.width * template.height))
    dx, dy = mapped[1] - mapped[0]
    rotation = round(math.degrees(math.atan2(dy, dx)) / 90) % 4 * 90
    ink, paper = _levels(gray, mapped)
    if paper - ink < 20:
        raise OmrError(NO_SHEET_FOUND, "the page is blank or as dark as its print")
    return Alignment(full, rotation, scale, ink, paper)


def _page_start(
    gray: Gray, k: float, corners: npt.NDArray[np.float64], hom: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64] | None:
    """The reference picture's ``corners`` (its work copy) on the page's edges in the photo
    (work copy, ``k`` of ``gray``), each corner on the edge corner nearest where ``hom``
    puts it; None where no page stands out."""
    import cv2
    import numpy as np

    from workers.omr.page_align import find_page

    quad = find_page(gray)
    if quad is None:
        return None
    guess = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), hom).reshape(-1, 2)
    page = np.asarray(quad, np.float64) * k
    turn = min(range(4), key=lambda r: float(np.sum(np.hypot(*(np.roll(page, -r, axis=0) - guess).T))))
    start = cv2.getPerspectiveTransform(corners.astype(np.float32), np.roll(page, -turn, axis=0).astype(np.float32))
    return np.asarray(start, np.float64)


@functools.lru_cache(maxsize=4)
def _reference(
    data: bytes, features: int
) -> tuple[list[tuple[float, float]], npt.NDArray[np.uint8] | None, float, tuple[int, int]]:
    """The reference picture's features: points (work copy), descriptors, copy scale, size."""
    import cv2
    import numpy as np

    img = _decoded(data)
    if min(img.shape) < 32:
        raise OmrError(TEMPLATE_INVALID, "FeatureBasedAlignment.options.reference: the picture is too small")
    k = min(1.0, WORK_SIDE / max(img.shape))
    small = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA) if k < 1 else img
    small = np.asarray(cv2.normalize(small, np.empty_like(small), 0, 255, cv2.NORM_MINMAX), np.uint8)
    kp, desc = cv2.ORB.create(features).detectAndCompute(small, None)
    if desc is None or len(kp) < MIN_INLIERS:
        raise OmrError(TEMPLATE_INVALID, "FeatureBasedAlignment.options.reference: the picture has too few features")
    points = [(float(p.pt[0]), float(p.pt[1])) for p in kp]
    return points, np.asarray(desc, np.uint8), k, (int(img.shape[0]), int(img.shape[1]))


def _refine(
    *,
    ref_data: bytes,
    ref_k: float,
    small: Gray,
    hom: npt.NDArray[np.float64],
    affine: bool,
    sides: tuple[int, ...],
    move: float,
    steps: int = ECC_STEPS,
) -> tuple[npt.NDArray[np.float64], float]:
    """The feature fit refined so the sheet's grey levels match the reference's (OpenCV's
    ECC), starting from it, on copies of each of ``sides`` in turn: features cluster where
    the print is busy (the heading), and a fit to them alone can be a third of a bubble
    off at the far end of the page. With it, how well the grey levels match there (ECC's
    correlation). Kept as it was, with -1, where the refinement does not converge or
    moves a page corner further than ``move`` of the sheet's long side (a wrong turn,
    not a refinement)."""
    import cv2
    import numpy as np

    motion = cv2.MOTION_AFFINE if affine else cv2.MOTION_HOMOGRAPHY
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, steps, 1e-5)
    current = hom
    match = -1.0
    for side in sides:
        ref = _reference_copy(ref_data, side)
        e = ref.shape[1] / (_decoded_size(ref_data)[1] * ref_k)  # reference work copy -> ECC copy
        f = side / max(small.shape)  # sheet work copy -> its ECC copy
        sheet = cv2.resize(small, None, fx=f, fy=f, interpolation=cv2.INTER_AREA).astype(np.float32)
        start = np.diag([f, f, 1.0]) @ current @ np.diag([1 / e, 1 / e, 1.0])
        start /= start[2, 2]
        warp = (start[:2] if affine else start).astype(np.float32)
        try:
            mask = np.full(sheet.shape, 255, np.uint8)  # every sheet pixel counts
            match, fitted = cv2.findTransformECC(ref, sheet, warp, motion, criteria, mask, 5)
        except cv2.error:
            return hom, -1.0
        fitted = np.asarray(fitted, np.float64)
        found = np.vstack([fitted, [0, 0, 1]]) if affine else fitted
        current = np.diag([1 / f, 1 / f, 1.0]) @ found.astype(np.float64) @ np.diag([e, e, 1.0])
    corners = _reference_corners(ref_data, ref_k).reshape(-1, 1, 2)
    before = cv2.perspectiveTransform(corners, hom).reshape(-1, 2)
    after = cv2.perspectiveTransform(corners, current).reshape(-1, 2)
    if float(np.max(np.hypot(*(before - after).T))) > move * max(small.shape):
        return hom, -1.0
    return current, float(match)


def _reference_corners(data: bytes, ref_k: float) -> npt.NDArray[np.float64]:
    """The reference picture's four corners in its work copy (``ref_k`` of its size)."""
    import numpy as np

    h, w = _decoded_size(data)
    return np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64) * ref_k


@functools.lru_cache(maxsize=4)
def _reference_copy(data: bytes, side: int) -> npt.NDArray[np.float32]:
    import cv2
    import numpy as np

    img = _decoded(data)
    k = side / max(img.shape)
    return np.asarray(cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA), np.float32)


@functools.lru_cache(maxsize=4)
def _decoded_size(data: bytes) -> tuple[int, int]:

    img = _decoded(data)
    return int(img.shape[0]), int(img.shape[1])


def _decoded(data: bytes) -> Gray:
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise OmrError(TEMPLATE_INVALID, "FeatureBasedAlignment.options.reference: the picture cannot be decoded")
    return np.asarray(img, np.uint8)


def _levels(gray: Gray, quad: npt.NDArray[np.float64]) -> tuple[float, float]:
    from workers.omr.page_align import _levels as page_levels

    return page_levels(gray, quad)
