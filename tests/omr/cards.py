"""Answer cards drawn the way academies' vendors print them, with their templates and truth.

``tests/omr/corpus.py`` fills and scans sheets drawn by this project's renderer: a hollow
top-left marker, dark round outlines. The cards here are printed the ways real OMR cards
are, so the reader can be tested on what academies already own:

- print in red or pink dropout ink, or in black with light-grey outlines, or rows shaded
  in turn with white bubbles printed on them;
- the choice's digit printed inside each bubble;
- four identical corner markers (solid squares, hollow squares, circles, bullseye rings,
  L-shaped corners),
  or no corner marker at all, or a track of timing marks along the left edge;
- ellipses taller or wider than they are high, circles and rectangles, and a different
  bubble size in each block;
- 45- and 200-question layouts; a frame around each block, question numbers, write-in
  boxes over the student number, and a printed legend with a filled example bubble
  outside every field.

A card is a :class:`Card` (geometry in page pixels at 200 dpi). :func:`draw_card` prints
it as a BGR page; :func:`fill_card` marks it as a student does, with a pencil or a sign
pen (solid, scribbled, partial and light marks, erasures, double marks, blanks, stray
marks), :func:`circled_card`, :func:`crossed_card` and :func:`ticked_card` as students who
ring, strike out or tick their choices do; the page then goes through
``corpus.degrade`` (a scan, upside down at times) or ``corpus.photograph`` (a phone
photo), or :func:`scan_cropped` (an ADF scan already cropped to the page).
:func:`write_omrchecker` writes the card's OMRChecker v1 ``template.json`` (with
``config.json`` and the marker picture), :func:`project_template` its template in this
project's format. Every random choice comes from one seeded
``random.Random``.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from tests.omr.corpus import QUESTION_KINDS, SINGLE_STYLES, Truth, _mark_mask, _pick, degrade

Point = tuple[float, float]
Colour = tuple[int, int, int]  # BGR, 0..255
Page = npt.NDArray[np.float32]  # (h, w, 3) BGR, 0..1

WIDTH: Final = 1654  # A4 at 200 dpi
HEIGHT: Final = 2339
DPI: Final = 200
BLACK: Final[Colour] = (0, 0, 0)
RED: Final[Colour] = (50, 40, 210)  # dropout red, text and frames
PINK: Final[Colour] = (148, 104, 236)  # dropout pink, bubbles and their digits
LIGHT_GREY: Final[Colour] = (205, 205, 205)
LAVENDER: Final[Colour] = (236, 222, 228)  # rows shaded in turn
DEEP_LAVENDER: Final[Colour] = (214, 190, 200)
LILAC: Final[Colour] = (190, 150, 172)  # light purple outlines and letters
#: letters OMRChecker's QTYPE_MCQ5 gives the five choices, and the card's printed digits.
MCQ5_LETTERS: Final = ("A", "B", "C", "D", "E")
CHOICES: Final = ("1", "2", "3", "4", "5")
DIGITS: Final = tuple("0123456789")
MARKER_SHAPES: Final = ("solid", "hollow", "circle", "rings", "corner", "project", "none")


@dataclass(frozen=True)
class Block:
    """A grid of bubbles: fields (questions, or student-number digits) of one size.

    ``vertical``: each field's values run down (a student-number digit column), fields
    side by side; otherwise values run across and fields go down (questions).
    """

    name: str
    labels: tuple[str, ...]
    values: tuple[str, ...]
    origin: Point  # centre of the first bubble of the first field, page pixels
    bubbles_gap: float  # between two bubbles of one field
    labels_gap: float  # between two fields
    size: tuple[int, int]  # bubble width, height
    shape: str = "ellipse"  # or "rectangle"
    vertical: bool = False

    def centres(self) -> list[list[Point]]:
        out = []
        for i in range(len(self.labels)):
            row = []
            for j in range(len(self.values)):
                along, across = j * self.bubbles_gap, i * self.labels_gap
                dx, dy = (across, along) if self.vertical else (along, across)
                row.append((self.origin[0] + dx, self.origin[1] + dy))
            out.append(row)
        return out

    def box(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 around every bubble of the block."""
        pts = np.array([c for row in self.centres() for c in row])
        w, h = self.size
        return (pts[:, 0].min() - w / 2, pts[:, 1].min() - h / 2, pts[:, 0].max() + w / 2, pts[:, 1].max() + h / 2)


@dataclass(frozen=True)
class Card:
    name: str
    id_block: Block
    question_blocks: tuple[Block, ...]
    ink: Colour = BLACK  # text, frames, write-in boxes, legend
    outline: Colour = (90, 90, 90)  # bubble outlines
    digit: Colour | None = (175, 175, 175)  # the value printed inside a bubble; None: none
    digit_thick: int = 1  # its stroke, px
    marker: str = "solid"  # one of MARKER_SHAPES
    marker_size: int = 66
    marker_centre: int = 95  # from each page edge
    #: the markers' centres frame only this part of the page, (x0, y0, x1, y1): an answer
    #: grid at the top of an exam paper; None: the page's corners, marker_centre in.
    marker_frame: tuple[int, int, int, int] | None = None
    #: the exam's questions printed as lines of text from this y down to the page's
    #: foot, below the markers' frame; None: none.
    prose_from: int | None = None
    timing: bool = False  # a track of timing marks along the left edge, one per bubble row
    #: the shades behind the question rows, in turn (one row each), with the bubbles
    #: printed white on them; None: plain paper
    bands: tuple[Colour, Colour] | None = None
    legend: bool = False
    width: int = WIDTH
    height: int = HEIGHT
    #: (x0, y0, x1, y1) of the printed legend, outside every block.
    legend_box: tuple[int, int, int, int] = (700, 330, 1500, 560)

    @property
    def blocks(self) -> tuple[Block, ...]:
        return (self.id_block, *self.question_blocks)

    @property
    def marker_centres(self) -> tuple[Point, Point, Point, Point]:
        if self.marker_frame is not None:
            x0, y0, x1, y1 = self.marker_frame
            return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        c = self.marker_centre
        return ((c, c), (self.width - c, c), (self.width - c, self.height - c), (c, self.height - c))

    @property
    def timing_marks(self) -> list[tuple[float, float, float, float]]:
        """Centre x, centre y, width, height of each timing mark, top to bottom."""
        if not self.timing:
            return []
        rows = sorted({round(c[1]) for b in self.blocks for row in b.centres() for c in row})
        return [(48.0, float(y), 40.0, 14.0) for y in rows]


# --- the cards ----------------------------------------------------------------------


def _id_block(
    size: tuple[int, int] = (20, 30), shape: str = "ellipse", *, origin: Point = (212, 437), row_gap: float = 44
) -> Block:
    labels = tuple(f"id{i}" for i in range(1, 9))
    return Block("StudentID", labels, DIGITS, origin, row_gap, 44, size, shape, vertical=True)


def _columns(
    sizes: tuple[tuple[int, int], ...] | tuple[int, int],
    shapes: tuple[str, ...] | str = "ellipse",
    *,
    per_column: int = 15,
    columns: int = 3,
    x0: float = 293,
    step: float = 451,
    y0: float = 993,
    row_gap: float = 76,
    choice_gap: float = 65,
) -> tuple[Block, ...]:
    out = []
    for k in range(columns):
        size = sizes[k] if isinstance(sizes[0], tuple) else sizes
        shape = shapes if isinstance(shapes, str) else shapes[k]
        first = 1 + k * per_column
        labels = tuple(f"q{first + i}" for i in range(per_column))
        out.append(Block(f"MCQ_Block_Q{first}", labels, CHOICES, (x0 + k * step, y0), choice_gap, row_gap, size, shape))
    return tuple(out)


def red_card() -> Card:
    """A vendor card in pink/red dropout ink: tall ellipses with their digit inside,
    four identical hollow squares, a legend with a filled example."""
    return Card(
        "red",
        _id_block((20, 30)),
        _columns((24, 38)),
        ink=RED,
        outline=PINK,
        digit=PINK,
        marker="hollow",
        legend=True,
    )


def grey_card() -> Card:
    """Black print with light-grey circles, digits inside, four identical solid squares."""
    return Card("grey", _id_block((26, 26)), _columns((30, 30)), outline=LIGHT_GREY, digit=LIGHT_GREY, marker="solid")


def circle_card() -> Card:
    """Pink ellipses wider than high, four identical circle markers, a legend."""
    return Card(
        "circle",
        _id_block((30, 20)),
        _columns((40, 24)),
        ink=RED,
        outline=PINK,
        digit=PINK,
        marker="circle",
        legend=True,
    )


def corner_card() -> Card:
    """Rectangles in black outline, four identical L-shaped corner markers."""
    return Card(
        "corner",
        _id_block((26, 22), "rectangle"),
        _columns((34, 24), "rectangle"),
        digit=(150, 150, 150),
        marker="corner",
    )


def mixed_card() -> Card:
    """Each block its own bubble size and shape; red print, hollow markers."""
    return Card(
        "mixed",
        _id_block((18, 28)),
        _columns(((30, 30), (22, 38), (36, 22)), ("ellipse", "ellipse", "rectangle")),
        ink=RED,
        outline=PINK,
        digit=PINK,
        marker="hollow",
        legend=True,
    )


def q200_card() -> Card:
    """200 questions in five columns of 40: small tall ellipses, red print, hollow markers."""
    blocks = _columns((16, 24), per_column=40, columns=5, x0=205, step=290, y0=850, row_gap=34, choice_gap=42)
    return Card(
        "q200",
        _id_block((18, 26), origin=(212, 380), row_gap=38),
        blocks,
        ink=RED,
        outline=PINK,
        digit=PINK,
        marker="hollow",
        legend=True,
        legend_box=(700, 290, 1500, 500),
    )


def bare_card() -> Card:
    """No corner markers at all: the page's edges or the crop are all there is."""
    return Card(
        "bare", _id_block((20, 30)), _columns((24, 38)), ink=RED, outline=PINK, digit=PINK, marker="none", legend=True
    )


def timing_card() -> Card:
    """A timing-mark track along the left edge, one mark per bubble row, no corner marker."""
    return Card(
        "timing", _id_block((20, 30)), _columns((24, 38)), ink=RED, outline=PINK, digit=PINK, marker="none", timing=True
    )


def project_card() -> Card:
    """This project's markers (the top-left one hollow) on a red-ink card with ellipses."""
    return Card(
        "project",
        _id_block((20, 30)),
        _columns((24, 38)),
        ink=RED,
        outline=PINK,
        digit=PINK,
        marker="project",
        legend=True,
    )


def dark_card() -> Card:
    """Black circles with a bold black digit inside, as dark as the solid corner squares
    (as some vendors print them): print as dark as a pencil mark, where only the
    bubble's own empty print tells an empty bubble from a marked one."""
    return Card(
        "dark", _id_block((28, 28)), _columns((32, 32)), outline=BLACK, digit=BLACK, digit_thick=2, marker="solid"
    )


def exam_paper_card() -> Card:
    """An exam paper: its four solid markers frame the answer grid in the top 37 % of the
    page (the student number beside 15 questions), and the questions are printed as text
    below them, to the page's foot."""
    return replace(
        grey_card(),
        name="exam-paper",
        id_block=_id_block((26, 26), origin=(212, 330)),
        question_blocks=_columns((30, 30), per_column=5, x0=640, step=320, y0=330, choice_gap=55),
        marker_frame=(95, 95, WIDTH - 95, 860),
        prose_from=980,
    )


def banded_card() -> Card:
    """Question rows shaded light and deeper lavender in turn, white bubbles printed on
    them with thin light-purple outlines and letters, four identical solid squares."""
    return Card(
        "banded",
        _id_block((26, 26)),
        _columns((30, 30), row_gap=43, choice_gap=40),
        outline=LILAC,
        digit=LILAC,
        marker="solid",
        bands=(LAVENDER, DEEP_LAVENDER),
    )


CARDS: Final = {
    c.name: c
    for c in (
        red_card(),
        grey_card(),
        circle_card(),
        corner_card(),
        mixed_card(),
        q200_card(),
        bare_card(),
        timing_card(),
        project_card(),
        dark_card(),
        banded_card(),
    )
}


# --- printing ------------------------------------------------------------------------


def _text(page: npt.NDArray[np.uint8], text: str, centre: Point, scale: float, colour: Colour, thick: int) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), _ = cv2.getTextSize(text, font, scale, thick)
    org = (round(centre[0] - w / 2), round(centre[1] + h / 2))
    cv2.putText(page, text, org, font, scale, colour, thick, cv2.LINE_AA)


def _bubble(
    page: npt.NDArray[np.uint8],
    centre: Point,
    size: tuple[int, int],
    shape: str,
    colour: Colour,
    thick: int,
    fill: bool = False,
) -> None:
    x, y = centre
    w, h = size
    t = -1 if fill else thick
    if shape == "rectangle":
        cv2.rectangle(
            page, (round(x - w / 2), round(y - h / 2)), (round(x + w / 2), round(y + h / 2)), colour, t, cv2.LINE_AA
        )
    else:
        cv2.ellipse(page, (round(x), round(y)), (round(w / 2), round(h / 2)), 0, 0, 360, colour, t, cv2.LINE_AA)


def marker_picture(shape: str, size: int) -> npt.NDArray[np.uint8]:
    """One corner marker, ``size`` px square, black on white (greyscale)."""
    pic = np.full((size, size), 255, np.uint8)
    s = size
    if shape in ("solid", "project"):
        pic[:] = 0
    elif shape == "hollow":  # a black square with a white square inside
        pic[:] = 0
        inner = round(s * 0.4)
        a = (s - inner) // 2
        pic[a : a + inner, a : a + inner] = 255
    elif shape == "circle":
        cv2.circle(pic, (s // 2, s // 2), s // 2 - 1, 0, -1, cv2.LINE_AA)
    elif shape == "rings":  # a bullseye: black and white rings round a black dot
        for share, ink in ((1.0, 0), (0.78, 255), (0.58, 0), (0.38, 255), (0.2, 0)):
            cv2.circle(pic, (s // 2, s // 2), round((s // 2 - 1) * share), ink, -1, cv2.LINE_AA)
    elif shape == "corner":  # an L: a bar down the left side and one along the bottom
        bar = round(s * 0.3)
        pic[:, :bar] = 0
        pic[s - bar :, :] = 0
    else:
        raise ValueError(f"no marker picture for {shape!r}")
    return pic


def draw_card(card: Card) -> npt.NDArray[np.uint8]:
    """The blank card as a BGR uint8 page, card.width x card.height."""
    page = np.full((card.height, card.width, 3), 255, np.uint8)
    s = card.marker_size
    if card.marker != "none":
        pic = marker_picture(card.marker, s)
        for i, (cx, cy) in enumerate(card.marker_centres):
            x0, y0 = round(cx - s / 2), round(cy - s / 2)
            here = pic.copy()
            if card.marker == "project" and i == 0:  # this project's own orienting marker
                h = max(3, round(s * 0.44))
                a = (s - h) // 2
                here[a : a + h, a : a + h] = 255
            page[y0 : y0 + s, x0 : x0 + s] = here[..., None]
    for x, y, mw, mh in card.timing_marks:
        cv2.rectangle(
            page, (round(x - mw / 2), round(y - mh / 2)), (round(x + mw / 2) - 1, round(y + mh / 2) - 1), BLACK, -1
        )
    _text(page, "MONTHLY TEST  ANSWER CARD", (card.width / 2, 200), 1.3, card.ink, 3)
    for block in card.blocks:
        bx0, by0, bx1, by1 = block.box()
        pad = min(max(block.size) * 0.9, block.labels_gap * 0.45)
        left = pad + (0 if block.vertical else 50)
        cv2.rectangle(page, (round(bx0 - left), round(by0 - pad)), (round(bx1 + pad), round(by1 + pad)), card.ink, 2)
        w, h = block.size
        thick = max(1, round(min(w, h) / 12))
        for i, (label, row) in enumerate(zip(block.labels, block.centres(), strict=True)):
            if card.bands is not None and not block.vertical:
                y0, y1 = round(row[0][1] - block.labels_gap / 2), round(row[0][1] + block.labels_gap / 2) - 1
                cv2.rectangle(page, (round(bx0 - left) + 2, y0), (round(bx1 + pad) - 2, y1), card.bands[i % 2], -1)
            for value, c in zip(block.values, row, strict=True):
                if card.bands is not None:
                    _bubble(page, c, block.size, block.shape, (255, 255, 255), thick, fill=True)
                _bubble(page, c, block.size, block.shape, card.outline, thick)
                if card.digit is not None:
                    _text(page, value, c, min(w, h) * 0.028, card.digit, card.digit_thick)
            if not block.vertical:
                number = label.removeprefix("q")
                _text(page, number, (row[0][0] - w / 2 - 26, row[0][1]), 0.6, card.ink, 2)
        if block.vertical:  # write-in boxes over the columns and a caption over them
            top = by0 - pad
            for row in block.centres():
                x = row[0][0]
                cv2.rectangle(
                    page,
                    (round(x - block.labels_gap / 2), round(top - 62)),
                    (round(x + block.labels_gap / 2), round(top - 8)),
                    card.ink,
                    2,
                )
            _text(page, "STUDENT NUMBER", ((bx0 + bx1) / 2, top - 88), 0.8, card.ink, 2)
    if card.legend:
        _legend(page, card)
    if card.prose_from is not None:
        for k, y in enumerate(range(card.prose_from, card.height - 100, 64)):
            line = f"{k + 1}. Which of these holds for the figure? A) one  B) two  C) three  D) four  E) none"
            _text(page, line, (card.width / 2, y), 0.8, card.ink, 2)
    return page


def _legend(page: npt.NDArray[np.uint8], card: Card) -> None:
    """How to mark: a filled example bubble (GOOD) and three wrong ways, in a framed box."""
    x0, y0, x1, y1 = card.legend_box
    cv2.rectangle(page, (x0, y0), (x1, y1), card.ink, 2)
    _text(page, "HOW TO MARK", ((x0 + x1) / 2, y0 + 30), 0.9, card.ink, 2)
    size = card.question_blocks[0].size
    shape = card.question_blocks[0].shape
    w, h = size
    y = y0 + (y1 - y0) * 0.62
    xs = np.linspace(x0 + 110, x1 - 110, 4)
    # GOOD: filled solid, printed in black.
    _bubble(page, (xs[0], y), size, shape, card.outline, 2)
    _bubble(page, (xs[0], y), (w - 2, h - 2), shape, BLACK, 2, fill=True)
    _text(page, "GOOD", (xs[0], y + h / 2 + 24), 0.7, card.ink, 2)
    # WRONG: a tick, a cross and a half fill.
    for k, x in enumerate(xs[1:]):
        _bubble(page, (x, y), size, shape, card.outline, 2)
        if card.digit is not None:
            _text(page, str(k + 2), (x, y), min(w, h) * 0.028, card.digit, 1)
        if k == 0:
            cv2.line(page, (round(x - w / 3), round(y)), (round(x - 2), round(y + h / 3)), BLACK, 3, cv2.LINE_AA)
            cv2.line(
                page, (round(x - 2), round(y + h / 3)), (round(x + w / 2), round(y - h / 2)), BLACK, 3, cv2.LINE_AA
            )
        elif k == 1:
            cv2.line(
                page, (round(x - w / 2), round(y - h / 2)), (round(x + w / 2), round(y + h / 2)), BLACK, 3, cv2.LINE_AA
            )
            cv2.line(
                page, (round(x - w / 2), round(y + h / 2)), (round(x + w / 2), round(y - h / 2)), BLACK, 3, cv2.LINE_AA
            )
        else:
            cv2.ellipse(page, (round(x), round(y)), (round(w / 2), round(h / 2)), 0, 90, 270, BLACK, -1, cv2.LINE_AA)
        _text(page, "WRONG", (x, y + h / 2 + 24), 0.7, card.ink, 2)


# --- marking -------------------------------------------------------------------------

#: a sign pen's colour (BGR, 0..1): what is left of the paper under a full stroke.
PENS: Final = ((0.12, 0.1, 0.1), (0.45, 0.2, 0.08))  # black, blue


def _shaped_mask(rng: random.Random, size: tuple[int, int], shape: str, style: str) -> npt.NDArray[np.float32]:
    """Coverage of one mark, fitted to a w x h bubble (ellipse or rectangle)."""
    r0 = 16.0
    mask = _mark_mask(rng, r0, style)  # a round mark of radius r0, on a patch of 1.5 r0
    n = mask.shape[0]
    w, h = size
    nw = max(3, round(n * w / (2 * r0))) | 1
    nh = max(3, round(n * h / (2 * r0))) | 1
    out = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_AREA)
    if shape == "rectangle" and style in ("solid", "light"):
        # A box is filled to its corners, not as a round blob.
        box = np.zeros_like(out)
        cx, cy = nw // 2, nh // 2
        fx, fy = w / 2 * rng.uniform(0.8, 0.95), h / 2 * rng.uniform(0.8, 0.95)
        cv2.rectangle(box, (round(cx - fx), round(cy - fy)), (round(cx + fx), round(cy + fy)), 1.0, -1)
        grain = np.asarray(np.random.default_rng(rng.getrandbits(32)).uniform(0.75, 1.0, box.shape), np.float32)
        out = np.maximum(out, cv2.GaussianBlur(box * grain, (3, 3), 0.7))
    return np.asarray(out, np.float32)


def _apply(page: Page, centre: Point, mask: npt.NDArray[np.float32], remain: npt.NDArray[np.float32]) -> None:
    """Multiply the page under ``mask`` towards ``remain`` (per channel, 0..1)."""
    mh, mw = mask.shape
    x0, y0 = round(centre[0]) - mw // 2, round(centre[1]) - mh // 2
    region = page[y0 : y0 + mh, x0 : x0 + mw]
    m = mask[: region.shape[0], : region.shape[1], None]
    region *= 1 - m * (1 - remain)


@dataclass
class CardSheet:
    page: Page
    truth: Truth
    pen: bool = False
    #: answers by label; each value is the card's printed value ("1".."5", "0".."9").
    labels: dict[str, list[str]] = field(default_factory=dict)


def fill_card(card: Card, rng: random.Random, *, blank: bool = False) -> CardSheet:
    """A student's card: the student number and every question, as ``corpus.fill_sheet``
    marks them (same kinds and styles), with a pencil or, one sheet in three, a sign pen."""
    page: Page = np.asarray(draw_card(card), np.float32) / np.float32(255)
    pen = rng.random() < 1 / 3
    if pen:
        remain_full = np.array(rng.choice(PENS), np.float32)
    else:
        base = rng.uniform(0.5, 0.65) if rng.random() < 0.12 else rng.uniform(0.78, 0.93)
        remain_full = np.full(3, 1 - base, np.float32)

    def mark(block: Block, c: Point, style: str) -> None:
        strength = rng.uniform(0.9, 1.05)
        if style == "light":
            strength *= rng.uniform(0.6, 0.75)
        remain = 1 - np.minimum((1 - remain_full) * strength, 0.97)
        _apply(page, c, _shaped_mask(rng, block.size, block.shape, style), remain.astype(np.float32))

    def erase(block: Block, c: Point) -> None:
        mask = _shaped_mask(rng, block.size, block.shape, rng.choice(("solid", "scribble")))
        smeared = cv2.GaussianBlur(mask, (0, 0), min(block.size) / 10)
        residue = rng.uniform(0.05, 0.25)
        _apply(page, c, np.asarray(smeared, np.float32), (1 - (1 - remain_full) * residue).astype(np.float32))

    ids = card.id_block
    student_id = "" if blank else "".join(rng.choice(DIGITS) for _ in ids.labels)
    for digit, row in zip(student_id, ids.centres(), strict=False):
        mark(ids, row[int(digit)], rng.choice(("solid", "solid", "scribble")))
    answers: dict[str, tuple[str, ...]] = {}
    kinds: dict[str, str] = {}
    for block in card.question_blocks:
        for label, row in zip(block.labels, block.centres(), strict=True):
            kind = "blank" if blank else _pick(rng, QUESTION_KINDS)
            choices = list(range(len(block.values)))
            picked: list[int] = []
            if kind == "single":
                kind = _pick(rng, SINGLE_STYLES)
                picked = [rng.choice(choices)]
                mark(block, row[picked[0]], kind)
            elif kind == "double":
                picked = rng.sample(choices, 2)
                for p in picked:
                    mark(block, row[p], "solid")
            elif kind in ("erased_remark", "erased_blank"):
                gone = rng.choice(choices)
                erase(block, row[gone])
                if kind == "erased_remark":
                    picked = [rng.choice([c for c in choices if c != gone])]
                    mark(block, row[picked[0]], rng.choice(("solid", "solid", "scribble")))
            answers[label] = tuple(block.values[p] for p in sorted(picked))
            kinds[label] = kind
    if not blank:
        _stray(page, card, rng, remain_full)
    return CardSheet(page, Truth(student_id, answers, kinds), pen)


def circled_card(card: Card, rng: random.Random) -> CardSheet:
    """A card whose student circled choices instead of filling them: about half the
    questions have one bubble ringed in pencil, tight round its printed outline (up to a
    tenth larger, 4-6 px thick); the student number is left blank. The truth gives the
    circled choices, as a person reads them."""
    page: Page = np.asarray(draw_card(card), np.float32) / np.float32(255)

    def ring(block: Block, centre: Point) -> None:
        (w, h) = block.size
        grow = rng.uniform(1.0, 1.1)
        grey = rng.uniform(0.15, 0.35)
        axes = (round(w / 2 * grow), round(h / 2 * grow))
        # Drawn as a mask and multiplied in, as pencil darkens what is printed under
        # it: painting the grey on would lighten a black outline.
        half = max(axes) + 8
        mask = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
        cv2.ellipse(mask, (half, half), axes, 0, 0, 360, 1.0, rng.randint(4, 6), cv2.LINE_AA)
        _apply(page, centre, mask, np.full(3, grey, np.float32))

    return CardSheet(page, _one_choice_in_half(card, rng, "circled", ring))


def circled_scans(card: Card, count: int, seed: str) -> list[CardScan]:
    """``count`` scans of the card with choices circled instead of filled
    (:func:`circled_card`), fed upright."""
    out = []
    for i in range(count):
        rng = random.Random(f"circled:{card.name}:{seed}:{i}")
        sheet = circled_card(card, rng)
        data, _ = degrade(sheet.page, rng, upside_down=False)
        out.append(CardScan(f"{card.name}_{seed}_circled_{i:03d}.jpg", data, sheet.truth))
    return out


def crossed_card(card: Card, rng: random.Random) -> CardSheet:
    """A card whose student changed answers by striking the first choice out: about half
    the questions have one bubble filled and then crossed with an X drawn past it (each
    stroke 1.7-2.3 of the bubble's larger radius from its middle, turned up to 20 degrees,
    2-4 px wide) and another bubble filled, the answer; a tenth have two bubbles filled
    and no cross (two answers); the rest one. The marks are a pencil's or a sign pen's,
    as :func:`fill_card` draws them; the student number is left blank. The truth is
    what a person reads: the bubble not crossed out."""
    page: Page = np.asarray(draw_card(card), np.float32) / np.float32(255)
    remain = _pen(rng)
    answers: dict[str, tuple[str, ...]] = {}
    kinds: dict[str, str] = {}
    for block in card.question_blocks:
        for label, row in zip(block.labels, block.centres(), strict=True):
            first, second = rng.sample(range(len(row)), 2)
            _apply(page, row[first], _shaped_mask(rng, block.size, block.shape, "solid"), remain)
            roll = rng.random()
            if roll < 0.5:
                _apply(page, row[second], _shaped_mask(rng, block.size, block.shape, "solid"), remain)
                _apply(page, row[first], _cross(rng, max(block.size) / 2), remain)
                answers[label], kinds[label] = (block.values[second],), "crossed"
            elif roll < 0.6:
                _apply(page, row[second], _shaped_mask(rng, block.size, block.shape, "solid"), remain)
                answers[label] = tuple(block.values[k] for k in sorted((first, second)))
                kinds[label] = "double"
            else:
                answers[label], kinds[label] = (block.values[first],), "single"
    return CardSheet(page, Truth("", answers, kinds))


def _pen(rng: random.Random) -> npt.NDArray[np.float32]:
    """What a stroke leaves of the paper's light, per colour channel: a sign pen's one
    sheet in three, else a pencil's."""
    if rng.random() < 1 / 3:
        return np.array(rng.choice(PENS), np.float32)
    return np.full(3, 1 - rng.uniform(0.78, 0.93), np.float32)


def ticked_card(card: Card, rng: random.Random) -> CardSheet:
    """A card whose student ticked or crossed choices instead of filling them: about half
    the questions have one bubble with a tick or an X drawn over it in pencil or a sign
    pen (strokes 2-4 px wide reaching 0.9-1.4 of the bubble's larger radius from its
    middle, so over the bubble and a little past it); the rest are left blank, and so
    is the student number. The truth is what a person reads: the ticked choice."""
    page: Page = np.asarray(draw_card(card), np.float32) / np.float32(255)
    remain = _pen(rng)

    def tick(block: Block, centre: Point) -> None:
        radius = max(block.size) / 2
        stroke = _tick(rng, radius) if rng.random() < 0.5 else _cross(rng, radius, reach=(0.9, 1.4))
        _apply(page, centre, stroke, remain)

    return CardSheet(page, _one_choice_in_half(card, rng, "ticked", tick))


def _one_choice_in_half(card: Card, rng: random.Random, kind: str, draw: Callable[[Block, Point], None]) -> Truth:
    """About half the card's questions with one choice ``draw`` marks on the page, the
    rest blank, the student number blank; the truth, the marked choice as ``kind``."""
    answers: dict[str, tuple[str, ...]] = {}
    kinds: dict[str, str] = {}
    for block in card.question_blocks:
        for label, row in zip(block.labels, block.centres(), strict=True):
            answers[label], kinds[label] = (), "blank"
            if rng.random() < 0.5:
                k = rng.randrange(len(row))
                draw(block, row[k])
                answers[label], kinds[label] = (block.values[k],), kind
    return Truth("", answers, kinds)


def ticked_scans(
    card: Card, count: int, seed: str, *, photo: bool = False, frame: tuple[int, int] | None = None
) -> list[CardScan]:
    """``count`` scans of the card with choices ticked or crossed instead of filled
    (:func:`ticked_card`), fed upright, or phone photos of it (``frame`` as for
    :func:`make_cards`)."""
    return _taken("ticked", ticked_card, card, count, seed, photo=photo, frame=frame)


def _tick(rng: random.Random, radius: float) -> npt.NDArray[np.float32]:
    """A tick's coverage on a square patch centred on the bubble: a short stroke down to
    the right from the bubble's left, then a long one up to the right past its edge."""
    half = math.ceil(1.6 * radius) + 4
    patch = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    k = rng.uniform(0.9, 1.4) * radius
    turn = math.radians(rng.uniform(-15, 15))
    points = [(-0.6, -0.05), (-0.1, 0.55), (1.0, -0.9)]
    at = [
        (
            round(half + k * (x * math.cos(turn) - y * math.sin(turn))),
            round(half + k * (x * math.sin(turn) + y * math.cos(turn))),
        )
        for x, y in points
    ]
    width = rng.randint(2, 4)
    cv2.line(patch, at[0], at[1], 1.0, width, cv2.LINE_AA)
    cv2.line(patch, at[1], at[2], 1.0, width, cv2.LINE_AA)
    return patch


def _cross(rng: random.Random, radius: float, *, reach: tuple[float, float] = (1.7, 2.3)) -> npt.NDArray[np.float32]:
    """An X's coverage, on a square patch centred on the bubble, each arm ``reach`` (a
    range, in the bubble's radius) from the middle."""
    turn = math.radians(rng.uniform(-20, 20))
    half = math.ceil((reach[1] + 0.1) * radius) + 4
    patch = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    for angle in (math.pi / 4 + turn, 3 * math.pi / 4 + turn + math.radians(rng.uniform(-10, 10))):
        a, b = (rng.uniform(*reach) * radius for _ in range(2))
        dx, dy = math.cos(angle), math.sin(angle)
        start = (round(half - a * dx), round(half - a * dy))
        end = (round(half + b * dx), round(half + b * dy))
        cv2.line(patch, start, end, 1.0, rng.randint(2, 4), cv2.LINE_AA)
    return patch


def crossed_scans(
    card: Card, count: int, seed: str, *, photo: bool = False, frame: tuple[int, int] | None = None
) -> list[CardScan]:
    """``count`` scans of the card with marks crossed out (:func:`crossed_card`), fed
    upright, or phone photos of it (``corpus.photograph``; ``frame`` as for
    :func:`make_cards`)."""
    return _taken("crossed", crossed_card, card, count, seed, photo=photo, frame=frame)


def _taken(
    kind: str,
    fill: Callable[[Card, random.Random], CardSheet],
    card: Card,
    count: int,
    seed: str,
    *,
    photo: bool,
    frame: tuple[int, int] | None,
) -> list[CardScan]:
    """``count`` cards filled by ``fill``, each from the seed ``kind:card:seed:i``, scanned
    upright or photographed, named ``card_seed_kind_i.jpg``."""
    from tests.omr.corpus import photograph

    out = []
    for i in range(count):
        rng = random.Random(f"{kind}:{card.name}:{seed}:{i}")
        sheet = fill(card, rng)
        data = photograph(sheet.page, rng, frame=frame) if photo else degrade(sheet.page, rng, upside_down=False)[0]
        out.append(CardScan(f"{card.name}_{seed}_{kind}_{i:03d}.jpg", data, sheet.truth))
    return out


def blank_scan(card: Card, *, seed: str) -> bytes:
    """The card with nothing written on it, scanned upright under a scanner's lid (JPEG):
    what a teacher uploads to set up the card."""
    rng = random.Random(seed)
    data, _ = degrade(fill_card(card, rng, blank=True).page, rng, upside_down=False)
    return data


def _stray(page: Page, card: Card, rng: random.Random, remain: npt.NDArray[np.float32]) -> None:
    """Ticks and underlines away from every bubble, the legend and the markers."""
    centres = np.array([c for b in card.blocks for row in b.centres() for c in row])
    lx0, ly0, lx1, ly1 = card.legend_box
    for _ in range(rng.randint(0, 5)):
        for _try in range(20):
            x = rng.uniform(card.width * 0.12, card.width * 0.88)
            y = rng.uniform(card.height * 0.1, card.height * 0.9)
            clear = np.min(np.hypot(centres[:, 0] - x, centres[:, 1] - y)) > 60
            if clear and not (lx0 - 40 < x < lx1 + 40 and ly0 - 40 < y < ly1 + 40):
                break
        else:
            continue
        length = rng.uniform(10, 50)
        ang = rng.uniform(0, math.pi)
        # Drawn on a patch around the stroke: a whole-page mask per stroke is slow.
        x0, y0 = round(x) - 60, round(y) - 60
        stroke = np.zeros((121, 121), np.uint8)
        end = (60 + round(length * math.cos(ang)), 60 + round(length * math.sin(ang)))
        cv2.line(stroke, (60, 60), end, 255, rng.randint(2, 4), cv2.LINE_AA)
        patch = page[y0 : y0 + 121, x0 : x0 + 121]
        patch *= 1 - (stroke[: patch.shape[0], : patch.shape[1]].astype(np.float32) / 255)[..., None] * (1 - remain)


def scan_cropped(page: Page, rng: random.Random) -> bytes:
    """An ADF scan already cropped to the paper: under a degree of skew, 0.8-1.2 x the
    page's pixel size, a little blur and noise, JPEG. The picture is the page."""
    h, w = page.shape[:2]
    angle = rng.uniform(-0.8, 0.8)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    img = cv2.warpAffine(page, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(1.0, 1.0, 1.0))
    k = rng.uniform(0.8, 1.2)
    img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.0))
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(1, 4) / 255, img.shape)
    out = np.clip((img + noise) * 255, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(60, 92)])
    assert ok
    return bytes(buf)


def on_desk(page: Page, rng: random.Random, *, share: float = 0.4) -> bytes:
    """A phone photo of the card lying on a dark desk, straight on, the page ``share`` of
    the frame's width, near its middle and turned a few degrees: the markers lie well
    inside the picture, far from its corners (OMRChecker's CropPage + CropOnMarkers photos)."""
    h, w = page.shape[:2]
    k = 0.5  # the page at half its pixel size (about 100 dpi)
    fw, fh = round(k * w / share), round(k * h / share * 0.75)
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-4, 4), k)
    turn[:, 2] += (fw / 2 - w / 2 + rng.uniform(-0.05, 0.05) * fw, fh / 2 - h / 2 + rng.uniform(-0.05, 0.05) * fh)
    sheet = cv2.warpAffine(page, turn, (fw, fh), flags=cv2.INTER_AREA, borderValue=(0.0, 0.0, 0.0))
    cover = cv2.warpAffine(np.ones((h, w), np.float32), turn, (fw, fh), flags=cv2.INTER_LINEAR)[..., None]
    desk = np.float32(rng.uniform(0.12, 0.25))
    img = sheet * cover + desk * (1 - cover)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 2 / 255, img.shape)
    out = np.clip((img + noise) * 255, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 88])
    assert ok
    return bytes(buf)


# --- templates -----------------------------------------------------------------------


def _frame(card: Card, crop: str) -> tuple[Point, tuple[int, int]]:
    """OMRChecker's frame: top-left in page pixels and pageDimensions.

    With CropOnMarkers the frame runs between the four marker centres; with CropPage or
    no preprocessor it is the whole page."""
    if crop == "markers":
        (x0, y0), _, (x1, y1), _ = card.marker_centres
        return (x0, y0), (round(x1 - x0), round(y1 - y0))
    return (0.0, 0.0), (card.width, card.height)


def omrchecker_template(
    card: Card,
    *,
    crop: str = "markers",
    values: str = "mcq5",
    off_by: tuple[float, float] = (0, 0),
    box_share: float = 1.0,
) -> dict[str, Any]:
    """The card's OMRChecker v1 template.json.

    ``crop``: "markers" (CropOnMarkers with ``omr_marker.png``), "page" (CropPage: the
    page's edges), "page+markers" (CropPage, then CropOnMarkers on the page it cut out, as
    OMRChecker's phone-photo samples do), "none" (the picture is the page). ``values``: "mcq5" (QTYPE_MCQ5, read
    as A..E) or "digits" (custom ``bubbleValues`` 1..5 as printed). ``off_by`` moves every
    block's origin by (dx, dy) template pixels: a template written by hand, a little off
    the print. ``box_share`` draws every bubble's box that share of its printed width and
    height, centred on it: OMRChecker reads only the box, so a template written by hand
    may give one far smaller than the print."""
    (fx, fy), dims = _frame(card, "markers" if crop == "page+markers" else crop)
    blocks: dict[str, Any] = {}
    default = card.question_blocks[0].size
    for block in card.blocks:
        w, h = block.size
        ox, oy = block.origin
        entry: dict[str, Any] = {
            "fieldLabels": [f"{block.labels[0]}..{block.labels[-1].lstrip('qid')}"],
            "origin": [round(ox - w / 2 - fx + off_by[0]), round(oy - h / 2 - fy + off_by[1])],
            "bubblesGap": block.bubbles_gap,
            "labelsGap": block.labels_gap,
        }
        if block.vertical:
            entry["fieldType"] = "QTYPE_INT"
        elif values == "mcq5":
            entry["fieldType"] = "QTYPE_MCQ5"
        else:
            entry["bubbleValues"] = list(block.values)
            entry["direction"] = "horizontal"
        if box_share != 1.0:
            small = [round(box_share * w), round(box_share * h)]
            entry["origin"] = [entry["origin"][0] + (w - small[0]) // 2, entry["origin"][1] + (h - small[1]) // 2]
            entry["bubbleDimensions"] = small
        elif block.size != default:
            entry["bubbleDimensions"] = [w, h]
        blocks[block.name] = entry
    n_questions = sum(len(b.labels) for b in card.question_blocks)
    data: dict[str, Any] = {
        "pageDimensions": list(dims),
        "bubbleDimensions": list(default),
        "customLabels": {"student_id": ["id1..8"]},
        "fieldBlocks": blocks,
        "outputColumns": ["student_id", f"q1..{n_questions}"],
        "emptyValue": "",
        "preProcessors": [],
    }
    if crop == "page+markers":
        data["preProcessors"].append({"name": "CropPage", "options": {"morphKernel": [10, 10]}})
    if crop in ("markers", "page+markers"):
        ratio = card.width / card.marker_size
        data["preProcessors"].append(
            {
                "name": "CropOnMarkers",
                "options": {"relativePath": "omr_marker.png", "sheetToMarkerWidthRatio": round(ratio, 2)},
            }
        )
    elif crop == "page":
        data["preProcessors"].append({"name": "CropPage", "options": {"morphKernel": [10, 10]}})
    return data


def omrchecker_config(card: Card) -> dict[str, Any]:
    return {
        "dimensions": {
            "display_width": card.width,
            "display_height": card.height,
            "processing_width": card.width // 2,
            "processing_height": card.height // 2,
        },
        "outputs": {"show_image_level": 0},
    }


def write_omrchecker(
    card: Card,
    folder: Path,
    *,
    crop: str = "markers",
    values: str = "mcq5",
    off_by: tuple[float, float] = (0, 0),
    box_share: float = 1.0,
) -> Path:
    """Write template.json, config.json and (for markers) omr_marker.png; returns the template path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = omrchecker_template(card, crop=crop, values=values, off_by=off_by, box_share=box_share)
    (folder / "template.json").write_text(json.dumps(data, indent=2))
    (folder / "config.json").write_text(json.dumps(omrchecker_config(card), indent=2))
    if crop in ("markers", "page+markers"):
        ok, buf = cv2.imencode(".png", marker_picture(card.marker, card.marker_size))
        assert ok
        (folder / "omr_marker.png").write_bytes(bytes(buf))
    return folder / "template.json"


def project_template(card: Card) -> dict[str, Any]:
    """The card in this project's template format (workers/omr/template.py).

    Bubbles as ``{"width", "height", "shape"}`` per block; ``alignment`` names how the
    card is found: "timing" (with its tracks) for a timing-mark card, "page" for
    a card without markers, "markers" (with ``"identical": true`` unless this project's
    own orienting marker is printed) otherwise. Labels are "1".."N" and the student ID."""
    ids = card.id_block
    q = card.question_blocks
    inset = card.marker_centre - card.marker_size // 2

    def bubble(b: Block) -> dict[str, Any]:
        return {"width": b.size[0], "height": b.size[1], "shape": b.shape}

    data: dict[str, Any] = {
        "format": "academy-omr-template/1",
        "name": f"card-{card.name}",
        "title": card.name,
        "page": {"width": card.width, "height": card.height, "dpi": DPI},
        "marker": {"size": card.marker_size, "inset": inset},
        "bubble": bubble(q[0]),
        "student_id": {
            "digits": len(ids.labels),
            "origin": list(ids.origin),
            "column_gap": ids.labels_gap,
            "row_gap": ids.bubbles_gap,
            "bubble": bubble(ids),
        },
        "choices": list(CHOICES),
        "question_blocks": [
            {
                "first": int(b.labels[0][1:]),
                "count": len(b.labels),
                "origin": list(b.origin),
                "choice_gap": b.bubbles_gap,
                "row_gap": b.labels_gap,
                "bubble": bubble(b),
            }
            for b in q
        ],
    }
    if card.timing:
        data["alignment"] = {"kind": "timing", "tracks": timing_tracks(card)}
    elif card.marker == "none":
        data["alignment"] = {"kind": "page"}
    elif card.marker != "project":
        data["alignment"] = {"kind": "markers", "identical": True, "shape": card.marker}
    return data


def timing_tracks(card: Card) -> list[dict[str, Any]]:
    """The timing marks as evenly spaced tracks (``first``, ``step``, ``count``, ``size``):
    one per run of equally spaced marks (the student-number rows, then the question rows)."""
    marks = card.timing_marks
    runs: list[list[tuple[float, float, float, float]]] = [[marks[0]]]
    for prev, mark in itertools.pairwise(marks):
        run = runs[-1]
        step = mark[1] - prev[1]
        if len(run) == 1 or abs(step - (run[1][1] - run[0][1])) < 1:
            run.append(mark)
        else:
            runs.append([mark])
    return [
        {
            "first": [run[0][0], run[0][1]],
            "step": [0, run[1][1] - run[0][1]],
            "count": len(run),
            "size": [run[0][2], run[0][3]],
        }
        for run in runs
    ]


# --- sheets with their truth ------------------------------------------------------------


@dataclass(frozen=True)
class CardScan:
    name: str
    data: bytes
    truth: Truth


def make_cards(
    card: Card,
    count: int,
    seed: str,
    *,
    how: str = "scan",
    upside_down: Sequence[bool] | None = None,
    frame: tuple[int, int] | None = None,
) -> Iterator[CardScan]:
    """``count`` filled cards: ``how`` is "scan" (``corpus.degrade``: up to 3 degrees, a
    fifth upside down unless ``upside_down`` says so sheet by sheet), "photo"
    (``corpus.photograph``), "cropped" (:func:`scan_cropped`) or "darkbed" (a scan on a
    dark bed, so the page's edges show). ``frame``: the photos' (width, height), by default
    a phone's."""
    from tests.omr.corpus import degrade, photograph

    for i in range(count):
        rng = random.Random(f"card:{card.name}:{seed}:{i}")
        sheet = fill_card(card, rng)
        truth = sheet.truth
        if how == "photo":
            data = photograph(sheet.page, rng, frame=frame)
        elif how == "cropped":
            data = scan_cropped(sheet.page, rng)
        elif how in ("scan", "darkbed"):
            data, truth.upside_down = degrade(
                sheet.page,
                rng,
                upside_down=None if upside_down is None else upside_down[i],
                bed=0.25 if how == "darkbed" else None,
            )
        else:
            raise ValueError(f"unknown way to take a card: {how!r}")
        yield CardScan(f"{card.name}_{seed}_{i:03d}.jpg", data, truth)


def with_marker(card: Card, marker: str) -> Card:
    """The same card with other corner markers."""
    if marker not in MARKER_SHAPES:
        raise ValueError(marker)
    return replace(card, marker=marker, name=f"{card.name}-{marker}")
