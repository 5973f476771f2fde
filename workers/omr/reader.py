"""``read_sheet``: bytes of a scanned answer sheet in, a typed reading out."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from workers.omr.classify import (
    FieldReading,
    Levels,
    all_marked,
    lone_light_marks,
    marked_round_blanks,
    print_taken_off,
    read_fields,
    sheet_levels,
    stroked_blanks,
    under_print,
    without_print,
)
from workers.omr.crossed import crossed_out
from workers.omr.errors import NO_SHEET_FOUND, RESOLUTION_TOO_LOW, TEMPLATE_MISMATCH, OmrError
from workers.omr.template import FORMAT, STUDENT_ID_LABEL, Field, Template

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    from workers.omr.align import Alignment
    from workers.omr.layout import LayoutFit
    from workers.omr.sample import Samples

#: a printed outline must be this far from paper towards ink to count as present ...
MIN_RING: Final = 0.1
#: ... or, on a card whose print is faint throughout (a washed-out copy of light outlines
#: on shaded rows), this share of its bubbles' median outline, down to FAINT_RING.
FAINT_SHARE: Final = 0.4
FAINT_RING: Final = 0.06
#: ... or its middle this dark (a mark hides a light outline under it).
MIN_MARKED: Final = 0.3
#: share of template bubbles whose outline must be found where the template puts them.
MIN_RINGS_FOUND: Final = 0.9
UNREADABLE_DIGIT: Final = "?"
#: the sheet is straightened into the template frame at this share of the template DPI
#: (for the template check here, and for the review overlay).
STRAIGHT_SCALE: Final = 0.5
#: a pixel of the straightened sheet is print when it is this share of the way from
#: paper to marker ink.
PRINT_LEVEL: Final = 0.25
#: this many bubble-like printed rings where the template has nothing: another layout.
MAX_UNEXPECTED_RINGS: Final = 8
#: a sheet whose smallest printed bubble measures under this share of its spacing
#: (``LayoutFit.smallest_share``) may have had a glyph inside the bubble taken for its
#: outline: it takes the second, wide look too, and keeps it only where that look's
#: outlines stand out WIDE_GAIN times as strongly as the first's.
SHRUNK_SHARE: Final = 0.3
WIDE_GAIN: Final = 1.25
#: bubbles under this half size in the picture (pixels) are read, down to the floor of
#: RESOLUTION_TOO_LOW, with a field sent to review below this confidence, not only below
#: classify.REVIEW_BELOW. It was the floor: every sheet read before reads as it did.
SMALL_BUBBLE_RADIUS_PX: Final = 3.5
SMALL_REVIEW_BELOW: Final = 0.65
#: a frame stretched this much more one way than the other on the sheet has its bubble
#: boxes made round there for the layout (``round_on_sheet``); OMRChecker templates are
#: written for frames up to OMRCHECKER_ASPECT_TOL off their markers' rectangle.
ROUND_STRETCH: Final = 1.15
#: a block of at least this many fields with one place bare (BARE_COLUMN) goes to
#: review (``unprinted_columns``) ...
MIN_COLUMN_FIELDS: Final = 3
#: ... the share of its fields at most that show print or a mark at a bare place.
BARE_COLUMN: Final = 0.1
#: an answer sheet is about 1:1.4; a picture much longer than wide is not one.
MAX_ASPECT: Final = 5.0

#: one look at a sheet: its alignment, and its blocks fitted there (``place_fit``).
_Look: TypeAlias = "tuple[Alignment, tuple[LayoutFit, Template, Samples]]"


@dataclass(frozen=True)
class SheetReading:
    student_id: str  # one character per digit column, "?" where unreadable
    questions: tuple[FieldReading, ...]
    id_digits: tuple[FieldReading, ...]
    levels: Levels
    rotation: int
    alignment: Alignment
    #: the sheet straightened into the template frame at STRAIGHT_SCALE (greyscale), where
    #: the reader made it (the wrong-layout check of a template in this project's format);
    #: the overlay draws on it, or straightens the sheet itself.
    straight: npt.NDArray[np.uint8] | None = field(default=None, compare=False, repr=False)
    #: the learned classifier that checked every bubble (photo mode), or None.
    classifier: str | None = None
    #: the template with each block where it is printed on this sheet and its bubbles at
    #: their printed size (workers/omr/layout.py); the overlay draws these.
    placed: Template | None = field(default=None, compare=False, repr=False)

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


def read_sheet(image: bytes, template: Template, *, photo: bool = False, learned: bool | None = None) -> SheetReading:
    """Read one sheet from encoded image bytes. Raises OmrError (a BadInput)."""
    from workers.omr.decode import decode_for

    decoded, by = decode_for(image, template, photo=photo)
    return read_gray(decoded, by, photo=photo, learned=learned)


def read_gray(
    image: npt.NDArray[np.uint8], template: Template, *, photo: bool = False, learned: bool | None = None
) -> SheetReading:
    """Read a decoded sheet: greyscale, or BGR (what lets dropout-ink print be read past).

    ``learned``: also check every bubble with the learned classifier (workers.omr.learned);
    by default in photo mode only."""

    from workers.omr.align import as_gray

    h, w = image.shape[:2]
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise OmrError(NO_SHEET_FOUND, f"a {w}x{h} picture is far too long and thin to show an answer sheet")
    gray = as_gray(image)
    seen = gray
    if template.alignment.options.get("filters"):
        # An OMRChecker template's Levels / blurs clean the picture its sheet is found on.
        # The bubbles are measured on the picture itself: every bubble is set against its
        # own paper and the sheet's ink, and a blur would wash out thin printed outlines.
        from workers.omr.filters import template_filters

        seen = template_filters(gray, template)
    alignment, (fit, placed, samples) = _looks(image, gray, seen, template, photo=photo)
    straight = None
    # A template in this project's format lists every bubble its sheet prints, so bubbles
    # on its grid that it does not list mean another layout. An imported template (an
    # OMRChecker template.json) lists the fields to read, often a part of the sheet, and
    # its sheet is straightened only if a review picture is drawn (overlay.py).
    if template.raw.get("format") == FORMAT:
        straight = straighten(gray, alignment.homography, template, STRAIGHT_SCALE)
        extra = unexpected_rings(straight, placed, alignment)
        if extra >= MAX_UNEXPECTED_RINGS:
            raise OmrError(
                TEMPLATE_MISMATCH,
                f"{extra} printed bubbles on this sheet are not in template {template.name!r}",
            )
    # Letters or digits printed inside the bubbles are taken off each bubble's fill.
    clean, ceiling = print_taken_off(samples.fill, samples.index, [f.block_name for f in placed.fields])
    levels = sheet_levels(clean, samples.index, ceiling=ceiling)
    n_id = len(template.id_fields)
    # Every field read by the thresholds (the ID digits as single-mark fields).
    fields = read_fields(placed.fields, clean, samples.index, levels, n_id)
    classifier = None
    # The picture the fills were read on, made once where something looks at it again.
    marks: npt.NDArray[np.uint8] | None = None
    # A stroke through one bubble or across several, as the thresholds see it: the
    # classifier below learned filled marks, scribbles and erasures, never a tick or a
    # cross drawn over a choice, and reads each such bubble as unmarked with certainty.
    strokes = lone_light_marks(placed.fields, fields) | stroked_blanks(placed.fields, fields)
    if learned or (learned is None and photo):
        from workers.omr.learned import refine

        marks = _fills_picture(image, gray, samples.channel)
        fields, classifier = refine(marks, placed, alignment, samples, levels, fields, fill=clean)
    # Read where the template put them, unchecked against the print: no printed bubble
    # outline stood out in their block (layout.py), or the page runs off the picture and
    # the template was stretched over the part in view.
    unchecked = frozenset(f.label for f in placed.fields) if alignment.runs_off else fit.unfound
    # Marks that may be no more than their own glyph, and rows marked throughout; checked
    # after the classifier, which sees the same print and cannot tell it from marks either.
    glyphs = under_print(placed.fields, fields, clean, samples.index, levels, ceiling)
    round_blanks = marked_round_blanks(
        placed.fields, fields, samples.index, shade=samples.shade, band=samples.band, ring=samples.ring
    )
    doubtful = unchecked | glyphs | all_marked(placed.fields, fields) | round_blanks
    doubtful |= unprinted_columns(samples, placed) | blank_side_found(fit, placed, fields)
    if filled_throughout(levels):
        doubtful |= {f.label for f in placed.fields}
    if any(len(r.values) > 1 for r in fields):
        marks = _fills_picture(image, gray, samples.channel) if marks is None else marks
        doubtful |= crossed_out(marks, placed, alignment, fields)
    if template.bubble_radius * alignment.scale < SMALL_BUBBLE_RADIUS_PX:
        # A few pixels a bubble: a half-filled mark fills fewer of them than it shows a
        # person, and its field's certainty is worth less.
        doubtful |= {r.label for r in fields if r.confidence < SMALL_REVIEW_BELOW}
    else:
        doubtful |= {r.label for r in fields if r.label in strokes and not r.values}
    # Fields the reading itself is unsure of (not those sent to a person for what was
    # written, such as a struck-out mark): where most of a block's are, its place is.
    doubtful |= doubted_blocks(placed.fields[n_id:], frozenset(r.label for r in fields if r.review))
    if doubtful:
        fields = [replace(r, review=True) if r.label in doubtful else r for r in fields]
    digits = tuple(fields[:n_id])
    sid = "".join(d.values[0] if len(d.values) == 1 and not d.review else UNREADABLE_DIGIT for d in digits)
    return SheetReading(
        sid, tuple(fields[n_id:]), digits, levels, alignment.rotation, alignment, straight, classifier, placed
    )


def _looks(
    image: npt.NDArray[np.uint8],
    gray: npt.NDArray[np.uint8],
    seen: npt.NDArray[np.uint8],
    template: Template,
    *,
    photo: bool,
    in_page: bool = False,
) -> _Look:
    """The sheet aligned (on ``seen``, the picture cleaned by the template's filters) and
    its blocks fitted: the first look; the second, wide one where the first leaves a
    doubt; for a photo both would refuse, both again with the markers looked for in the
    page its edges outline (``in_page``); the stretched one (``any_aspect``) for a sheet
    all would refuse."""
    from workers.omr.align import align_turns

    first: _Look | None = None
    refused: OmrError | None = None
    try:
        first = _first_fit(
            image, gray, template, align_turns(seen, _aligned_by(template, in_page=in_page), photo=photo)
        )
    except OmrError as exc:
        # The markers' rectangle off the template's aspect, or the bubbles not printed
        # where the template has them; or, through an OMRChecker template, its boxes too
        # few pixels across, which may be far smaller than the bubbles printed.
        small_boxes = exc.code == RESOLUTION_TOO_LOW and template.marker_image is not None
        if exc.code != TEMPLATE_MISMATCH and not small_boxes:
            raise
        refused = exc
    fit = None if first is None else first[1][0]
    shrunk = fit is not None and fit.all_outlined and fit.smallest_share(template) < SHRUNK_SHARE
    # A block found only in a second search: from a side of its template place (printed
    # wider than the template and off it, or a glyph's edge inside a bubble printed far
    # larger), or on every other row or column (shaded rows, or again a glyph's edges).
    doubted = shrunk or (fit is not None and fit.indirect)
    if first is not None and first[1][0].all_outlined and not doubted:
        return first
    # A template written by hand may give its bubbles a box far smaller than their
    # print (OMRChecker reads only the box): their outlines then lie beyond the sizes
    # the layout looks for, and where the markers are four alike the sheet's turn,
    # which the layout tells, is a guess too. A second look, from the template's size
    # up to layout.WIDE_SIZE, for a sheet that would be refused or where a block shows
    # no outline of a size looked for (the digits printed inside such a bubble can
    # pass for the outline of another block's), and taken only where it finds every
    # block's outline: elsewhere a wider look can take a larger ring of print round
    # small bubbles for theirs. Where the first look did find every block's, but one
    # far smaller than its spacing (a glyph inside the bubble), the wide look must
    # stand out more to be taken (WIDE_GAIN).
    small = refused is not None and refused.code == RESOLUTION_TOO_LOW
    wider = _another_look(image, gray, seen, template, photo=photo, wide=True, small_boxes=small, in_page=in_page)
    if wider is not None and (fit is None or not doubted or wider[1][0].score >= WIDE_GAIN * fit.score):
        return wider
    if first is not None:
        return first
    if photo and not in_page and template.marker_image is not None:
        # A photo's marker search can take four look-alikes that make a sheet (filled
        # bubbles, the desk's texture where the page lies off centre and two of its
        # markers share a quarter of the picture), which the layout then refuses. The
        # page's edges bound where the markers can be: both looks again there.
        try:
            return _looks(image, gray, seen, template, photo=photo, in_page=True)
        except OmrError:
            pass
    if in_page:
        assert refused is not None
        raise refused
    stretched = _another_look(image, gray, seen, template, photo=photo, any_aspect=True)
    if stretched is None:
        assert refused is not None
        raise refused
    return stretched


def _another_look(
    image: npt.NDArray[np.uint8],
    gray: npt.NDArray[np.uint8],
    seen: npt.NDArray[np.uint8],
    template: Template,
    *,
    photo: bool,
    wide: bool = False,
    any_aspect: bool = False,
    in_page: bool = False,
    small_boxes: bool = False,
) -> _Look | None:
    """The sheet aligned and its blocks fitted once more; None unless every block shows
    its outline there and the bubbles are printed where it puts them.

    ``wide``: the second look, printed sizes from the template's up to layout.WIDE_SIZE
    times it. ``any_aspect``: the last look at a sheet refused through an OMRChecker
    template with marker pictures (None for any other template): its markers' rectangle
    taken at any aspect, every turn a candidate, as OMRChecker stretches it onto
    ``pageDimensions`` whatever its shape. A template drawn on a landscape frame for
    markers that stand upright reads there, its bubbles drawn as wide as the stretch
    makes them. ``in_page``: a photo read through a template with a marker picture, its
    markers looked for only in the corners of the page its edges outline
    (``omrchecker_align._in_page_fit``). ``small_boxes`` (with ``wide``): a sheet whose
    template boxes are under the reader's floor of pixels (RESOLUTION_TOO_LOW) is aligned
    with that floor lowered as far as the wide look reaches, and kept only where every
    block's printed bubbles, as measured, are above it."""
    from workers.omr.align import MIN_DPI, align
    from workers.omr.layout import WIDE_SIZE
    from workers.omr.omrchecker import MIN_BUBBLE_RADIUS_PX

    aligned_by = _aligned_by(template, in_page=in_page)
    if any_aspect or small_boxes:
        if template.marker_image is None or (any_aspect and "pageDimensions" not in template.raw):
            return None
        options = {**aligned_by.alignment.options, "any_aspect": any_aspect}
        if small_boxes:
            options["min_dpi"] = MIN_DPI / WIDE_SIZE
        aligned_by = replace(template, alignment=replace(template.alignment, options=options))
    try:
        # The turn the layout chose alone: each look's turns tried in turn would make a
        # sheet read through another card's template several times slower to refuse.
        alignment = align(seen, aligned_by, photo=photo, wide=wide)
        if any_aspect:
            template = round_on_sheet(template, alignment)
        fitted = place_fit(image, gray, template, alignment, wide=wide)
    except OmrError:
        return None
    if small_boxes and min(min(b.radii) for b in fitted[0].blocks) * alignment.scale < MIN_BUBBLE_RADIUS_PX:
        return None
    if any_aspect and alignment.rotation % 180 and not fitted[0].lies_alike(template):
        # OMRChecker stretches the markers' rectangle onto its frame without turning it.
        # Stretched and turned a quarter, a template finds a dense card's bubbles under
        # its blocks wherever it lands, each block fitted to the nearest grid: another
        # card's sheet was read so. Such a look is kept only where the template lies off
        # the print alike in every block, as a card's own template does.
        return None
    return (alignment, fitted) if fitted[0].all_outlined else None


def round_on_sheet(template: Template, alignment: Alignment) -> Template:
    """``template`` with each bubble box as wide against high on the sheet as it is in
    the template frame, of the same area there, where ``alignment`` stretches the frame
    by more than ROUND_STRETCH one way against the other.

    OMRChecker stretches the markers' rectangle onto ``pageDimensions`` whatever its shape,
    so a template may be written for a frame three times wider than its markers stand: a
    40 x 40 box there is a bar on the sheet, while its bubbles are printed round. The
    layout looks for print near the box's size and shape (from 0.6 to 3 times it), and a
    bar a third as high as the bubble lies outside that."""
    import numpy as np

    cx, cy = template.width / 2, template.height / 2
    pts = np.array([[cx, cy, 1.0], [cx + 1, cy, 1.0], [cx, cy + 1, 1.0]]).T
    mapped = alignment.homography @ pts
    x, y = mapped[0] / mapped[2], mapped[1] / mapped[2]
    across, down = math.hypot(x[1] - x[0], y[1] - y[0]), math.hypot(x[2] - x[0], y[2] - y[0])
    stretch = down / across
    if abs(math.log(stretch)) <= math.log(ROUND_STRETCH):
        return template
    k = math.sqrt(stretch)
    fields = [
        replace(f, size=(w * k, h / k))
        for f, (w, h) in zip(template.fields, map(template.bubble_size, template.fields), strict=True)
    ]
    n_id = len(template.id_fields)
    return replace(template, id_fields=tuple(fields[:n_id]), questions=tuple(fields[n_id:]))


def _first_fit(
    image: npt.NDArray[np.uint8], gray: npt.NDArray[np.uint8], template: Template, turns: list[Alignment]
) -> _Look:
    """The first of the sheet's alignments (``align.align_turns``: the likeliest turn
    first) under which its bubbles are printed where the template has them (``place_fit``);
    else the first one's TEMPLATE_MISMATCH.

    Where the markers are four alike, the layout tells the turn from a coarse look that a
    template lying a third of a row off its print can mislead: under the wrong turn half
    its rows land on print as well, and one mark more on the sheet tipped the choice. The
    turn whose bubbles are printed is the sheet's way up. A turn after the first is taken
    only where its blocks all lie off the template alike (``LayoutFit.lies_alike``): a
    template half a row off its print has its blocks fitted a row up or down, as it
    happens, and one was read a row off, every answer wrong and unflagged."""
    refused: OmrError | None = None
    for k, alignment in enumerate(turns):
        try:
            look = alignment, place_fit(image, gray, template, alignment)
        except OmrError as exc:
            if exc.code != TEMPLATE_MISMATCH:
                raise
            refused = refused or exc
            continue
        if k == 0 or look[1][0].lies_alike(template):
            return look
    assert refused is not None
    raise refused


def _aligned_by(template: Template, *, in_page: bool) -> Template:
    """The template the sheet is aligned by: ``in_page``, a template with a marker picture
    whose markers are looked for only in the corners of the page its edges outline
    (``omrchecker_align._in_page_fit``)."""
    if not in_page:
        return template
    options = {**template.alignment.options, "in_page": True}
    return replace(template, alignment=replace(template.alignment, options=options))


def place(
    image: npt.NDArray[np.uint8], gray: npt.NDArray[np.uint8], template: Template, alignment: Alignment
) -> tuple[Template, Samples]:
    """Find the template's blocks where they are printed (workers/omr/layout.py), measure
    every bubble there, and refuse the sheet unless the bubbles are printed (or marked)
    where the template has them: TEMPLATE_MISMATCH."""
    _, placed, samples = place_fit(image, gray, template, alignment)
    return placed, samples


def place_fit(
    image: npt.NDArray[np.uint8],
    gray: npt.NDArray[np.uint8],
    template: Template,
    alignment: Alignment,
    *,
    wide: bool = False,
) -> tuple[LayoutFit, Template, Samples]:
    """``place``, with the layout fit it used (which blocks were found on the print).
    ``wide``: the bubbles' print is looked for up to layout.WIDE_SIZE times the
    template's size (``read_gray``'s second look)."""
    from workers.omr.layout import SIZE_RANGE, WIDE_SIZE, fit_layout
    from workers.omr.sample import sample

    if alignment.layout is not None and not wide:
        fit = alignment.layout
    else:
        fit = fit_layout(gray, template, alignment, largest=WIDE_SIZE if wide else SIZE_RANGE[1])
    placed = fit.template
    samples = sample(image, placed, alignment, spacing=template)
    rings_check(samples, template)
    bare_fields_check(samples, placed, template)
    return fit, placed, samples


def print_free(samples: Samples, placed: Template) -> npt.NDArray[np.float64]:
    """The sheet's fills with what is printed inside each bubble taken off
    (``classify.without_print``, each field measured within its block): what the
    thresholds read by, and what the learned classifier's context is built from."""
    return without_print(samples.fill, samples.index, [f.block_name for f in placed.fields])


def _fills_picture(image: npt.NDArray[np.uint8], gray: npt.NDArray[np.uint8], channel: int) -> npt.NDArray[np.uint8]:
    """The picture the fills were read on: grey, or the colour channel a dropout-ink
    print vanishes on (``Samples.channel``)."""
    if channel < 0:
        return gray
    import cv2
    import numpy as np

    return np.asarray(cv2.extractChannel(image, channel), dtype=np.uint8)


def shows_print(samples: Samples) -> npt.NDArray[np.bool_]:
    """Per bubble: its printed outline (``ring_bar``) or a mark (MIN_MARKED) is where the
    alignment put it."""
    return (samples.ring >= ring_bar(samples)) | (samples.fill >= MIN_MARKED)


def ring_bar(samples: Samples) -> float:
    """How dark a bubble's outline must be to count as printed: MIN_RING, or less on a
    card printed faintly all over. The bar follows the sheet's own print: a copy that
    washed light outlines out to 0.06-0.1 on shaded rows, with 0.17 their median,
    showed under 90 % of its bubbles at MIN_RING. A template laid on another card finds
    its bubbles' median outline as strong as that card prints (0.3-0.4 on the
    generator's cards), and its misses, paper or the edge of another bubble, stay
    under the bar it set. Where most bubbles show no print at MIN_RING there is no
    print to follow (a scan shaken past reading spreads every outline thin), and the
    bar stays."""
    import numpy as np

    median = float(np.median(samples.ring))
    if median < MIN_RING:
        return MIN_RING
    return min(MIN_RING, max(FAINT_RING, FAINT_SHARE * median))


def rings_check(samples: Samples, template: Template) -> None:
    """TEMPLATE_MISMATCH unless the template's bubbles are printed - or marked - where the
    alignment put them (MIN_RINGS_FOUND of them): measured on the sheet's own paper, so
    it holds for any ink, outline or shape the template's bubble size describes."""
    import numpy as np

    found = float(np.mean(shows_print(samples)))
    if found < MIN_RINGS_FOUND:
        raise OmrError(
            TEMPLATE_MISMATCH,
            f"only {found:.0%} of the bubbles of template {template.name!r} show print where it puts them "
            "on this sheet: another card, a template that lies off its print, or print too faint for "
            "the picture to show",
        )


def bare_fields_check(samples: Samples, placed: Template, template: Template) -> None:
    """TEMPLATE_MISMATCH where a field shows neither print nor a mark at any of its
    bubbles while other fields of its block do: a row of the block lies off the print.

    The template's grid then is a row or more from where it is printed (beyond the
    layout's reach), or the sheet was taken the wrong way up: a layout that looks alike
    turned round (four identical markers, columns of 9 and 8 rows) fits every row but
    one of each column, and reads every mark as another answer. On every sheet of
    omr-dev and of OMRChecker's and the public searches' samples read through a template
    that fits, every field shows print. A block with no print at all is the layout's
    to flag (``LayoutFit.unfound``): a template may list more than the card prints."""
    import numpy as np

    printed = shows_print(samples)
    shown: dict[str, bool] = {}
    bare: dict[str, str] = {}
    for f, at in zip(placed.fields, samples.index, strict=True):
        shows = bool(np.any(printed[list(at)]))
        shown[f.block_name] = shown.get(f.block_name, False) or shows
        if not shows:
            bare.setdefault(f.block_name, f.label)
    for block, label in bare.items():
        if shown[block]:
            raise OmrError(
                TEMPLATE_MISMATCH,
                f"{label!r} of template {template.name!r} shows no printed bubble where the rest of its block "
                "is printed: the template lists a row this sheet does not print, or lies a row or more off it",
            )


#: with no reference mark, an empty level this far from paper to ink or more means most
#: bubbles are filled (``filled_throughout``).
FILLED_EMPTY: Final = 0.5


def filled_throughout(levels: Levels) -> bool:
    """Whether most of the sheet's bubbles are filled: no field's darkest bubble stands
    clear of the others (no reference mark), and the bubbles that are not their field's
    darkest sit FILLED_EMPTY of the way to ink or more.

    The thresholds set every mark against the sheet's empty bubbles. Where most bubbles
    are filled (a card filled throughout to try the reader, or every choice taken) there
    is no paper left to set them against: on a public stress card fields with two to four
    marks, and digit columns filled from top to bottom, read blank, unflagged. Every
    field then goes to a person. A blank card stays far under the bar (0.33 where its
    rings and digits print as dark as pencil), as do the public sheets with no clear
    mark (0.39)."""
    return levels.references == 0 and levels.empty >= FILLED_EMPTY


#: a block found only in a second search goes to review when this many of its fields or
#: more all read blank (``blank_side_found``).
BLANK_BLOCK_MIN: Final = 3


def blank_side_found(fit: LayoutFit, placed: Template, readings: Sequence[FieldReading]) -> frozenset[str]:
    """The fields of each block found only in a second search (``BlockFit.indirect``)
    that has BLANK_BLOCK_MIN fields or more and reads every one of them blank.

    A block found from a side of its template place, or on every other row, may lie
    between the columns of its print: on one scan of a public card a candidate number's
    ten columns of small digit ellipses, touching down each column, were fitted a fifth
    of a column to the left, and every pencil dot in them read as paper. A student leaves
    a field blank often, a whole block of them seldom; where a block reads marks, they
    say where it lies."""
    sided = {b.name for b in fit.blocks if b.indirect}
    if not sided:
        return frozenset()
    fields: dict[str, list[FieldReading]] = {}
    for f, r in zip(placed.fields, readings, strict=True):
        if f.block_name in sided:
            fields.setdefault(f.block_name, []).append(r)
    return frozenset(
        r.label
        for block in fields.values()
        if len(block) >= BLANK_BLOCK_MIN and not any(r.values for r in block)
        for r in block
    )


#: a block of this many fields or more whose fields are more than DOUBTED_SHARE in doubt
#: goes to review whole (``doubted_blocks``).
DOUBTED_BLOCK_MIN: Final = 4
DOUBTED_SHARE: Final = 0.5


def doubted_blocks(questions: Sequence[Field], doubtful: frozenset[str]) -> frozenset[str]:
    """The questions of each block of DOUBTED_BLOCK_MIN or more of which more than
    DOUBTED_SHARE are read in doubt (``doubtful``: the thresholds, or the classifier,
    unsure of the marks). A student number's digits are left as they are: one in doubt
    already sends the number to a person, and the others stay read.

    A block is placed on the sheet as one: where most of its fields are in doubt, the
    place is, and the fields read with confidence may be so only because a mark
    straddles two bubbles evenly. On a public card's phone photo a column of 17
    questions lay half a bubble right of its print: 14 went to review, and two marks
    read as the choice beside them, unflagged."""
    blocks: dict[str, list[str]] = {}
    for f in questions:
        blocks.setdefault(f.block_name, []).append(f.label)
    return frozenset(
        label
        for labels in blocks.values()
        if len(labels) >= DOUBTED_BLOCK_MIN and sum(label in doubtful for label in labels) > DOUBTED_SHARE * len(labels)
        for label in labels
    )


def unprinted_columns(samples: Samples, placed: Template) -> frozenset[str]:
    """The fields of each block of MIN_COLUMN_FIELDS or more where one place (the k-th
    bubble of each field) shows print or a mark in at most BARE_COLUMN of its fields,
    while another place shows them in half or more: the block lies a column off its
    print, or lists a choice the card does not print.

    A block a whole column off fits the print one column over as well as where it is,
    and every mark then reads as the choice beside it, confidently: a public template put
    its block one bubble right of the print, its last column on bare paper, and four
    answers read one lower, unflagged. Over omr-dev and OMRChecker's master and dev
    samples in both modes, read through templates that fit, no block has such a place
    (the least-shown place of any block shows in 1 of 7 fields: a booklet number whose
    marks sit between columns). A stray mark may land on the bare place. Only a person
    can say which it is, so the block's fields go to review."""
    printed = shows_print(samples)
    columns: dict[str, list[npt.NDArray[np.bool_]]] = {}
    labels: dict[str, list[str]] = {}
    for f, at in zip(placed.fields, samples.index, strict=True):
        columns.setdefault(f.block_name, []).append(printed[list(at)])
        labels.setdefault(f.block_name, []).append(f.label)
    out: set[str] = set()
    for block, rows in columns.items():
        if len(rows) < MIN_COLUMN_FIELDS:
            continue
        shares = []
        for k in range(max(len(r) for r in rows)):
            at_k = [bool(r[k]) for r in rows if len(r) > k]
            shares.append(sum(at_k) / len(at_k))
        if min(shares) <= BARE_COLUMN and max(shares) >= 0.5:
            out.update(labels[block])
    return frozenset(out)


def straighten(
    gray: npt.NDArray[np.uint8], homography: npt.NDArray[np.float64], template: Template, scale: float
) -> npt.NDArray[np.uint8]:
    """The sheet warped into the template frame, ``scale`` x the template's pixel size.

    Nearest pixel: at half size it costs 40 % of a linear warp, and both of its uses (the
    ring count and a picture for a person) are fine with a hairline drawn dashed.
    """
    import cv2
    import numpy as np

    # output pixel -> template pixel -> image pixel
    m = homography @ np.diag([1 / scale, 1 / scale, 1.0])
    size = (round(template.width * scale), round(template.height * scale))
    flat = cv2.warpPerspective(gray, m, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=255)
    return np.asarray(flat, dtype=np.uint8)


def unexpected_rings(straight: npt.NDArray[np.uint8], template: Template, alignment: Alignment) -> int:
    """Printed bubbles on the straightened sheet that continue the template's grid where
    the template has none.

    A sheet of another layout that shares this template's markers (a 40-question sheet
    read with a 20-question template) passes every other check: all of this template's
    bubbles are printed on it. Its extra bubbles give it away. Print is found below
    PRINT_LEVEL; the template's own bubbles (grown by half a bubble) are removed; what is
    left counts when it is a closed, rounded ring of the size the template's bubbles are
    printed at, centred on one of the template's bubble rows or columns. Pencil strokes
    are lines and a filled mark has no hole, so neither counts; boxes are square; and
    printed examples elsewhere on the card (a legend showing how to mark) are off the
    grid's rows and columns.
    """
    import cv2
    import numpy as np

    span = max(alignment.paper - alignment.ink, 1.0)
    level = alignment.paper - PRINT_LEVEL * span
    _, thresholded = cv2.threshold(straight, level, 255, cv2.THRESH_BINARY_INV)
    dark = np.ascontiguousarray(thresholded, dtype=np.uint8)
    s = straight.shape[1] / template.width
    sizes = np.array([template.bubble_size(f) for f in template.fields for _ in f.centres], np.float64) * s
    centres = np.array([c for f in template.fields for c in f.centres], np.float64) * s
    # Rounded as round() does (half to even), all at once.
    _erase_ellipses(dark, np.round(np.hstack([centres, 0.8 * sizes])).astype(np.intp))
    contours, hierarchy = cv2.findContours(dark, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return 0
    links = hierarchy[0]
    # Outer outlines with a hole (not a hole itself, not a shape without one) ...
    outer = np.flatnonzero((links[:, 3] == -1) & (links[:, 2] != -1))
    if not len(outer):
        return 0
    # Their bounding boxes (as cv2.boundingRect), all at once.
    points = [contours[i].reshape(-1, 2) for i in outer.tolist()]
    starts = np.cumsum([0] + [len(p) for p in points[:-1]])
    joined = np.concatenate(points)
    low = np.minimum.reduceat(joined, starts, axis=0).astype(np.float64)
    w, h = (np.maximum.reduceat(joined, starts, axis=0) - low + 1).T
    cx, cy = low[:, 0] + w / 2, low[:, 1] + h / 2
    # ... of the size one of the template's blocks prints its bubbles at, centred on one
    # of that block's bubble rows or columns.
    rounded = np.round(sizes, 1)
    on_grid = np.zeros(len(outer), bool)
    for bw, bh in sorted(set(map(tuple, rounded.tolist()))):
        mine = (rounded[:, 0] == bw) & (rounded[:, 1] == bh)
        rows, cols = np.unique(np.round(centres[mine, 1])), np.unique(np.round(centres[mine, 0]))
        sized = (0.75 * bw <= w) & (w <= 1.3 * bw) & (0.75 * bh <= h) & (h <= 1.3 * bh)
        near_row = np.abs(rows[None, :] - cy[:, None]).min(axis=1) <= 0.35 * bh
        near_col = np.abs(cols[None, :] - cx[:, None]).min(axis=1) <= 0.35 * bw
        on_grid |= sized & (near_row | near_col)
    count = 0
    for i, bw, bh in zip(outer[on_grid].tolist(), w[on_grid].tolist(), h[on_grid].tolist(), strict=True):
        if cv2.contourArea(contours[i]) > 0.9 * bw * bh:
            continue  # a box, not a bubble
        # All its holes together: a digit printed inside a bubble splits its hole.
        hole, j = 0.0, int(links[i][2])
        while j != -1:
            hole += cv2.contourArea(contours[j])
            j = int(links[j][0])
        if hole >= 0.25 * bw * bh:
            count += 1
    return count


def _erase_ellipses(image: npt.NDArray[np.uint8], ellipses: npt.NDArray[np.intp]) -> None:
    """Set to 0 the filled ellipses (x, y, half width, half height) of ``image``, each
    exactly as ``cv2.ellipse`` draws it.

    cv2 draws an ellipse in fixed point relative to its (whole-pixel) centre, so one of a
    given size covers the same pixels wherever it lies whole in the picture: its pixels
    are drawn once per size and set for all its centres at once. An ellipse at the
    picture's edge (clipped there) is drawn by cv2 itself.
    """
    import cv2

    height, width = image.shape
    assert image.flags.c_contiguous  # flat is a view: its writes land in image
    flat = image.reshape(-1)
    x, y, ax, ay = ellipses.T
    # A margin of two pixels round each: clipping can only touch an ellipse beyond it.
    inside = (x - ax >= 2) & (y - ay >= 2) & (x + ax < width - 2) & (y + ay < height - 2) & (ax >= 0) & (ay >= 0)
    for i in (~inside).nonzero()[0].tolist():
        cv2.ellipse(image, (int(x[i]), int(y[i])), (int(ax[i]), int(ay[i])), 0, 0, 360, 0, -1)
    axes = ellipses[inside, 2:]
    at = (y * width + x)[inside]
    for a, b in set(map(tuple, axes.tolist())):
        mine = (axes[:, 0] == a) & (axes[:, 1] == b)
        flat[(at[mine, None] + _ellipse_offsets(a, b, width)[None, :]).reshape(-1)] = 0


@functools.lru_cache(maxsize=64)
def _ellipse_offsets(ax: int, ay: int, width: int) -> npt.NDArray[np.intp]:
    """Flat offsets (in a picture ``width`` wide) of the pixels of a filled ellipse that
    ``cv2.ellipse`` draws with half axes (ax, ay) round a centre pixel."""
    import cv2
    import numpy as np

    patch = np.zeros((2 * ay + 5, 2 * ax + 5), np.uint8)
    cv2.ellipse(patch, (ax + 2, ay + 2), (ax, ay), 0, 0, 360, 255, -1)
    ys, xs = np.nonzero(patch)
    offsets: npt.NDArray[np.intp] = ((ys - (ay + 2)) * width + (xs - (ax + 2))).astype(np.intp)
    offsets.flags.writeable = False
    return offsets
