"""The reader on answer cards printed the ways academies' vendors print them (tests/omr/cards.py).

Each card is filled by a student (pencil or sign pen: solid, scribbled, partial and light
marks, erasures, double marks, blanks, stray marks), scanned (a few degrees off, scaled,
blurred, noisy, JPEG; the first sheet of each set fed upside down) or photographed, and
read through the command line with the card's own template, OMRChecker's ``template.json``
where that format can say it. Every answer and the student number must come out exactly,
or the answer be flagged for review; a silent misread, a refused sheet or a wrong student
number fails the test, and so does flagging more than ``MAX_FLAGGED`` of the answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import pytest

from tests.omr import cards as C
from tests.omr.corpus import Truth
from workers.omr.cli import main as cli_main

#: OMRChecker's QTYPE_MCQ5 letters are the card's printed choices 1..5.
LETTER: Final = dict(zip(C.MCQ5_LETTERS, C.CHOICES, strict=True))
LETTER_OF: Final = {choice: letter for letter, choice in LETTER.items()}
#: share of answers a person may be asked to check on these small sets.
MAX_FLAGGED: Final = 0.05
#: scans: the first sheet of each set goes through the scanner upside down.
FLIPS: Final = (True, False)


@dataclass
class Tally:
    answers: int = 0
    flagged: int = 0
    problems: list[str] = field(default_factory=list)


def _read(template: Path, sheets: Sequence[C.CardScan], tmp: Path, *, photo: bool = False) -> dict[str, Any]:
    """``python -m workers.omr read --template T [--mode photo] --out F sheets...`` in-process."""
    for s in sheets:
        (tmp / s.name).write_bytes(s.data)
    out = tmp / "out.json"
    argv = ["read", "--template", str(template), "--out", str(out)]
    argv += ["--mode", "photo"] if photo else []
    status = cli_main([*argv, *(str(tmp / s.name) for s in sheets)])
    if status == 2:  # the template itself was refused (its message is on stderr)
        pytest.fail(f"the command line refused the template {template.name}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _tally(sheets: Sequence[C.CardScan], result: dict[str, Any], *, project: bool = False) -> Tally:
    """Compare each reading with the truth. ``project``: labels are "1".."N" (this
    project's template format) instead of the card's "q1".."qN"."""
    tally = Tally()
    for s in sheets:
        entry = result[s.name]
        if "error" in entry:
            tally.problems.append(f"{s.name}: refused {entry['error']['code']}: {entry['error']['message']}")
            continue
        if entry["student_id"] != s.truth.student_id:
            tally.problems.append(f"{s.name}: student id {entry['student_id']!r}, truth {s.truth.student_id!r}")
        review = set(entry["review"])
        for label, want in s.truth.answers.items():
            key = label[1:] if project else label
            got = sorted(LETTER.get(v, v) for v in entry["answers"].get(key, ["<missing>"]))
            tally.answers += 1
            tally.flagged += key in review
            if got != sorted(want) and key not in review:
                tally.problems.append(
                    f"{s.name} {label}: SILENT misread {got}, truth {list(want)} ({s.truth.kinds[label]})"
                )
    return tally


def _assert_exact(tally: Tally) -> None:
    assert tally.problems == []
    assert tally.flagged <= MAX_FLAGGED * tally.answers, f"{tally.flagged} of {tally.answers} answers flagged"


def _omrchecker(card: C.Card, tmp: Path, *, crop: str = "markers", values: str = "mcq5") -> Path:
    return C.write_omrchecker(card, tmp / "omrchecker", crop=crop, values=values)


def _project(card: C.Card, tmp: Path) -> Path:
    path = tmp / "template.json"
    path.write_text(json.dumps(C.project_template(card)), encoding="utf-8")
    return path


# --- scans through OMRChecker templates -----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "red",  # pink/red dropout ink, tall ellipses, digits inside, four hollow squares, legend
        "grey",  # light-grey circles, four solid squares
        "circle",  # four circle markers, wide ellipses
        "q200",  # 200 questions in five columns of small ellipses
        "dark",  # black circles and digits as dark as the markers
        "banded",  # rows shaded in turn, white bubbles printed on them
    ],
)
def test_scans_of_a_vendor_card_read_exactly_through_its_omrchecker_template(name: str, tmp_path: Path) -> None:
    card = C.CARDS[name]
    sheets = list(C.make_cards(card, 2, "scan", upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(_omrchecker(card, tmp_path), sheets, tmp_path)))


def test_a_folder_laid_out_as_omrchecker_has_it_is_read_without_its_marker_picture(tmp_path: Path) -> None:
    # OMRChecker keeps template.json and the marker picture in the folder of sheets.
    card = C.CARDS["red"]
    template = C.write_omrchecker(card, tmp_path)
    sheets = list(C.make_cards(card, 2, "scan", upside_down=FLIPS))
    for s in sheets:
        (tmp_path / s.name).write_bytes(s.data)
    out = tmp_path / "out.json"
    assert cli_main(["read", "--template", str(template), "--out", str(out), str(tmp_path)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(result) == sorted(s.name for s in sheets)
    _assert_exact(_tally(sheets, result))


def _shaped(card: C.Card, shape: str) -> C.Card:
    """The card with every bubble drawn as ``shape``."""
    blocks = tuple(replace(b, shape=shape) for b in card.question_blocks)
    return replace(
        card, name=f"{card.name}-{shape}", id_block=replace(card.id_block, shape=shape), question_blocks=blocks
    )


@pytest.mark.parametrize("bubble", ["ellipse", "rectangle"])
@pytest.mark.parametrize("seed", ["scan", "scan-2"])
def test_l_shaped_corner_markers_read_exactly(bubble: str, seed: str, tmp_path: Path) -> None:
    # Four identical L's. The page's own corners on the scanner lid are L's too, each
    # turned its own way: the four markers are the one picture turned alike, on a
    # rectangle. Upside down, all four are the picture turned half round.
    card = _shaped(C.CARDS["corner"], bubble)
    sheets = list(C.make_cards(card, 2, seed, upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(_omrchecker(card, tmp_path), sheets, tmp_path)))


@pytest.mark.parametrize("seed", ["scan", "scan-2"])
def test_rectangular_bubbles_read_exactly(seed: str, tmp_path: Path) -> None:
    # Boxes in black outline with a grey digit inside; four identical hollow squares.
    card = C.with_marker(C.CARDS["corner"], "hollow")
    sheets = list(C.make_cards(card, 2, seed, upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(_omrchecker(card, tmp_path), sheets, tmp_path)))


def test_a_different_bubble_size_in_each_block_with_custom_bubble_values_reads_exactly(tmp_path: Path) -> None:
    # Circles, tall ellipses and wide rectangles on one card; the answers' values are
    # the printed digits (OMRChecker ``bubbleValues``), not QTYPE_MCQ5 letters.
    card = C.CARDS["mixed"]
    sheets = list(C.make_cards(card, 2, "scan", upside_down=FLIPS))
    template = _omrchecker(card, tmp_path, values="digits")
    _assert_exact(_tally(sheets, _read(template, sheets, tmp_path)))


def test_a_card_without_corner_markers_reads_from_the_page_edges(tmp_path: Path) -> None:
    # OMRChecker CropPage: the sheet on a dark scanner bed, its edges the only frame.
    card = C.CARDS["bare"]
    sheets = list(C.make_cards(card, 2, "darkbed", how="darkbed", upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(_omrchecker(card, tmp_path, crop="page"), sheets, tmp_path)))


def test_a_scan_already_cropped_to_the_page_reads_without_a_preprocessor(tmp_path: Path) -> None:
    card = C.CARDS["bare"]
    sheets = list(C.make_cards(card, 2, "cropped", how="cropped"))
    _assert_exact(_tally(sheets, _read(_omrchecker(card, tmp_path, crop="none"), sheets, tmp_path)))


def test_a_hand_written_template_a_third_of_a_bubble_off_the_print_still_reads_exactly(tmp_path: Path) -> None:
    # Every block's origin 13 px low and 5 px right of the print (the bubbles are 38 px
    # high, 76 px apart): reading the template's boxes blindly would read the marks half
    # on their edge; the reader must find the blocks where they are printed.
    card = C.CARDS["red"]
    sheets = list(C.make_cards(card, 2, "off", upside_down=FLIPS))
    template = C.write_omrchecker(card, tmp_path / "omrchecker", off_by=(5, 13))
    _assert_exact(_tally(sheets, _read(template, sheets, tmp_path)))


@pytest.mark.parametrize(
    ("name", "share"),
    [
        # Light-grey circles, boxes under two fifths of them: the printed circles lie
        # beyond the sizes the layout first looks for, and the four identical markers
        # leave the sheet's turn to the layout too. The sheet fed upside down was
        # refused (TEMPLATE_MISMATCH), the other read through boxes a third of the
        # bubbles' size (every answer and the student number flagged).
        ("grey", 0.38),
        # Dropout-red ellipses with their digit inside, boxes half their size: the digit
        # passes for the outline at two thirds of the box in every block, and the sheet
        # was read at the digit's size, where a solid mark covers the paper looked for
        # round it: 40 of 90 answers read blank, silently. Looked at again from the box's
        # size up, the ellipses' outlines stand out twice as strongly.
        ("red", 0.5),
        # Rectangles, boxes under half their size: beside a box that small lie the
        # rectangle's own sides, which the outline search took off as a ruled line
        # would be, so no outline was found in any block (one sheet refused, the other's
        # student number unread).
        ("corner", 0.45),
    ],
)
def test_a_hand_written_template_with_bubble_boxes_far_smaller_than_the_print_reads_exactly(
    name: str, share: float, tmp_path: Path
) -> None:
    # OMRChecker reads only the box a template gives each bubble, so a template written
    # by hand may give a box far smaller than the printed bubble, centred in it.
    card = C.CARDS[name]
    sheets = list(C.make_cards(card, 2, "small-boxes", upside_down=FLIPS))
    path = C.write_omrchecker(card, tmp_path / "omrchecker", box_share=share)
    _assert_exact(_tally(sheets, _read(path, sheets, tmp_path)))


def test_digits_seen_on_every_other_row_do_not_keep_a_template_from_its_wide_look(tmp_path: Path) -> None:
    # The 200-question card through boxes under half its print: in the first look, at
    # the boxes' sizes, no block's mean bubble shows an outline, but every other row of a
    # block can show its digits' strokes as a small one. Counted at full strength, that
    # block outscored the second, wide look (which finds the printed ellipses) on one of
    # these sheets, and 109 of its 200 answers went to review.
    card = C.CARDS["q200"]
    sheets = list(C.make_cards(card, 3, "x1"))
    path = C.write_omrchecker(card, tmp_path / "omrchecker", box_share=0.45)
    _assert_exact(_tally(sheets, _read(path, sheets, tmp_path)))


def test_solid_marks_on_bubbles_measured_at_their_bold_digit_go_to_review_not_blank(tmp_path: Path) -> None:
    # Black circles with a bold black digit inside, through boxes under two fifths of
    # the circles: the digit is found as the bubble's outline in both looks, and every
    # bubble's middle is its digit, marked or not. A solid mark then shows only round
    # the digit, where the paper is looked for: 27 of 90 answers read blank, silently,
    # 16 of them solid marks. The covered surroundings now send such a field to a
    # person; a light mark can still leave them light enough to pass.
    card = C.CARDS["dark"]
    sheets = list(C.make_cards(card, 2, "small-boxes", upside_down=FLIPS))
    result = _read(C.write_omrchecker(card, tmp_path / "omrchecker", box_share=0.38), sheets, tmp_path)
    assert sum(kind == "solid" for s in sheets for kind in s.truth.kinds.values()) >= 40
    assert _unflagged(sheets, result, kind="solid") == []


@pytest.mark.parametrize("name", ["red", "grey", "corner"])
def test_a_choice_circled_instead_of_filled_is_read_or_flagged_never_read_blank(name: str, tmp_path: Path) -> None:
    # A student who rings a choice in pencil instead of filling it leaves its middle
    # paper: the reader read such a choice blank, silently. Where the ring darkens the
    # band of the printed outline well beyond the field's other bubbles, the field now
    # goes to a person, if the ring is not read as a mark outright. An elliptic ring round
    # a rectangle (corner) crosses less of its band: it passed under the old bar.
    card = C.CARDS[name]
    sheets = C.circled_scans(card, 2, "test")
    result = _read(_omrchecker(card, tmp_path), sheets, tmp_path)
    assert sum(kind == "circled" for s in sheets for kind in s.truth.kinds.values()) >= 30
    assert _unflagged(sheets, result) == []


@pytest.mark.parametrize("name", ["red", "grey", "dark"])
def test_a_mark_struck_out_beside_the_answer_chosen_goes_to_a_person(name: str, tmp_path: Path) -> None:
    # A student who changes an answer fills the new bubble and strikes the old one out
    # with an X drawn past it. Both are dark in the middle: the reader read two answers,
    # unflagged. The X's strokes leaving the bubble now send the field to a person.
    card = C.CARDS[name]
    sheets = C.crossed_scans(card, 2, "test")
    result = _read(_omrchecker(card, tmp_path), sheets, tmp_path)
    assert sum(kind == "crossed" for s in sheets for kind in s.truth.kinds.values()) >= 30
    assert _unflagged(sheets, result) == []
    # Two bubbles filled and neither struck out are two answers, read without a person.
    doubles = [(s.name, label) for s in sheets for label, kind in s.truth.kinds.items() if kind == "double"]
    assert len(doubles) >= 3
    assert [d for d in doubles if d[1] in result[d[0]]["review"]] == []


@pytest.mark.parametrize(
    ("name", "photo", "seed", "count"), [("q200", True, "x1", 1), ("red", True, "test", 2), ("dark", False, "test", 2)]
)
def test_a_choice_ticked_or_crossed_instead_of_filled_is_read_or_flagged_never_read_blank(
    name: str, photo: bool, seed: str, count: int, tmp_path: Path
) -> None:
    # A student who ticks a choice, or draws an X over it, instead of filling it darkens
    # a part of the bubble: under the midpoint, yet plainly an answer. The thresholds
    # doubt such a field; in photo mode the learned classifier, which never saw a tick,
    # read each such bubble as unmarked with certainty and lifted the doubt, and the field
    # read blank, silently (a public Turkish card's phone photos had six so). The
    # thresholds' doubt about strokes now stands whatever the classifier says. A tick
    # that only grazes its bubble, under LONE_LIGHT_BELOW's reach, is not seen as one.
    # (The 200-question photo of seed x1 had five ticks read blank so.)
    from workers.omr.classify import LONE_LIGHT_BELOW
    from workers.omr.omrchecker import load_omrchecker_template
    from workers.omr.reader import read_sheet

    card = C.CARDS[name]
    template = load_omrchecker_template(_omrchecker(card, tmp_path)).template
    seen = 0.5 * (1 - LONE_LIGHT_BELOW)  # the score (0 paper, 1 a mark) under that confidence
    ticks, unflagged = 0, []
    for sheet in C.ticked_scans(card, count, seed, photo=photo):
        reading = read_sheet(sheet.data, template, photo=photo)
        for question in reading.questions:
            if sheet.truth.kinds[question.label] != "ticked":
                continue
            k = C.MCQ5_LETTERS.index(LETTER_OF[sheet.truth.answers[question.label][0]])
            if question.scores[k] < seen:
                continue
            ticks += 1
            if question.values != (C.MCQ5_LETTERS[k],) and not question.review:
                unflagged.append(f"{sheet.name} {question.label}: read {question.values}, scores {question.scores}")
    assert ticks >= 30
    assert unflagged == []


def _unflagged(sheets: Sequence[C.CardScan], result: dict[str, Any], *, kind: str | None = None) -> list[str]:
    """The answers (of ``kind`` only, if given) read otherwise than the truth and not
    flagged; every sheet must have been read."""
    out = []
    for s in sheets:
        entry = result[s.name]
        assert "error" not in entry, entry
        for label, want in s.truth.answers.items():
            got = sorted(LETTER.get(v, v) for v in entry["answers"][label])
            if kind in (None, s.truth.kinds[label]) and got != sorted(want) and label not in entry["review"]:
                out.append(f"{s.name} {label}: read {got}, truth {list(want)} ({s.truth.kinds[label]})")
    return out


def _stretched(path: Path, kx: float, ky: float, *, boxes: bool = True) -> None:
    """Draw the OMRChecker template at ``path`` on a frame ``kx`` times as wide and ``ky``
    times as tall: what OMRChecker's warp of the markers' rectangle onto that frame
    shows, every position, box and gap stretched with it. ``boxes=False``: the bubble
    boxes keep their size, as a template written by hand on that frame draws them."""
    data = json.loads(path.read_text(encoding="utf-8"))
    w, h = data["pageDimensions"]
    data["pageDimensions"] = [round(w * kx), round(h * ky)]
    default = data["bubbleDimensions"]
    box_x, box_y = (kx, ky) if boxes else (1.0, 1.0)
    for block in data["fieldBlocks"].values():
        bw, bh = block.get("bubbleDimensions", default)
        block["bubbleDimensions"] = [round(bw * box_x), round(bh * box_y)]
        block["origin"] = [round(block["origin"][0] * kx), round(block["origin"][1] * ky)]
        # QTYPE_INT lays its digits out down the page, the choices run across.
        down = block.get("fieldType") == "QTYPE_INT"
        block["bubblesGap"] = round(block["bubblesGap"] * (ky if down else kx), 1)
        block["labelsGap"] = round(block["labelsGap"] * (kx if down else ky), 1)
    data["bubbleDimensions"] = [round(default[0] * box_x), round(default[1] * box_y)]
    path.write_text(json.dumps(data), encoding="utf-8")


def test_a_landscape_template_for_upright_markers_reads_as_omrchecker_stretches_it(tmp_path: Path) -> None:
    # A template drawn on a landscape frame for a card whose four markers stand upright
    # (a public OMRChecker template had pageDimensions 1846 x 1500): OMRChecker stretches
    # the markers' rectangle onto that frame whatever its shape, and reads there. The
    # reader took the sheet for one turned a quarter and refused it (TEMPLATE_MISMATCH);
    # a sheet both looks refuse is now looked at stretched, as OMRChecker does.
    card = C.CARDS["grey"]
    sheets = list(C.make_cards(card, 2, "landscape", upside_down=FLIPS))
    path = _omrchecker(card, tmp_path)
    _stretched(path, 1.5, 0.75)
    _assert_exact(_tally(sheets, _read(path, sheets, tmp_path)))


@pytest.mark.parametrize(("kx", "ky", "kind"), [(1.0, 3.0, "scan"), (0.6, 1.6, "landscape")])
def test_markers_are_found_at_the_size_the_pages_width_gives_whatever_the_frames_shape(
    tmp_path: Path, kx: float, ky: float, kind: str
) -> None:
    # OMRChecker sizes its marker as a share of the page's width (sheetToMarkerWidthRatio)
    # and stretches the markers' rectangle onto pageDimensions whatever that frame's
    # shape. Guessed through the frame's long side, a frame three times as tall as the
    # page, or a tall and narrow one over sheets scanned sideways, put the marker at under
    # half its print; the sizes searched missed it and the scans were refused.
    card = C.CARDS["grey"]
    sheets = list(C.make_cards(card, 2, kind, upside_down=FLIPS))
    path = _omrchecker(card, tmp_path)
    _stretched(path, kx, ky)
    _assert_exact(_tally(sheets, _read(path, sheets, tmp_path)))


def test_a_frame_stretched_one_way_on_the_sheet_has_its_bubble_boxes_looked_for_round(tmp_path: Path) -> None:
    # A public card's template set pageDimensions 1600 x 1600 for markers whose rectangle
    # is 3.3 times as wide as tall, and wrote square 40 x 40 boxes on that frame: on the
    # sheet each box is a bar a third as high as the round bubble printed there, beyond
    # the sizes the layout looks for, and the sheet was refused (TEMPLATE_MISMATCH). The
    # stretched look makes each box as round on the sheet as in the frame, of its area.
    import numpy as np

    from workers.omr.align import Alignment
    from workers.omr.omrchecker import load_omrchecker_template
    from workers.omr.reader import ROUND_STRETCH, round_on_sheet

    template = load_omrchecker_template(_omrchecker(C.CARDS["grey"], tmp_path)).template
    stretched = Alignment(np.diag([0.5, 1.5, 1.0]), 0, 0.87, 30.0, 220.0)
    rounded = round_on_sheet(template, stretched)
    assert [f.label for f in rounded.fields] == [f.label for f in template.fields]
    for before, after in zip(template.fields, rounded.fields, strict=True):
        (w, h), (rw, rh) = template.bubble_size(before), rounded.bubble_size(after)
        assert after.centres == before.centres
        assert rw * 0.5 == pytest.approx(rh * 1.5 * w / h)  # as wide against high as in the frame
        assert rw * rh == pytest.approx(w * h)
    # A frame stretched within what OMRChecker templates are written for is left alone.
    slight = Alignment(np.diag([1.0, ROUND_STRETCH * 0.99, 1.0]), 0, 1.0, 30.0, 220.0)
    assert round_on_sheet(template, slight) is template


@pytest.mark.parametrize("how", ["darkbed", "photo"])
def test_a_landscape_template_for_a_portrait_page_found_by_its_edges_reads_as_omrchecker_stretches_it(
    how: str, tmp_path: Path
) -> None:
    # The same for a card without markers (OMRChecker CropPage): the page found by its
    # edges is stretched onto the landscape frame. Its shape fitted the frame better
    # turned a quarter, so the reader took it sideways, where no bubble of the template
    # is printed, and refused it (TEMPLATE_MISMATCH; two public phone photos of such a
    # card). The other two turns are now looked at when neither way round shows the
    # template's bubbles.
    card = C.CARDS["bare"]
    sheets = list(C.make_cards(card, 2, f"landscape-{how}", how=how, upside_down=FLIPS))
    path = _omrchecker(card, tmp_path, crop="page")
    _stretched(path, 1.5, 0.75)
    _assert_exact(_tally(sheets, _read(path, sheets, tmp_path, photo=how == "photo")))


def test_a_scan_whose_markers_frame_only_part_of_the_page_reads_exactly(tmp_path: Path) -> None:
    # The card's four markers frame its answer grid, printed in the top left of a page
    # 1.8 times as wide and tall (a grid on an exam paper, questions beside it): a scan
    # shows the markers far from its corners and smaller than the whole picture
    # predicts. Such a scan was refused (NO_SHEET_FOUND); it is now found as a photo's
    # markers are, and read as a scan.
    import cv2
    import numpy as np

    card = C.CARDS["grey"]
    sheets = []
    for s in C.make_cards(card, 2, "on-a-page", upside_down=(False, False)):
        grid = cv2.imdecode(np.frombuffer(s.data, np.uint8), cv2.IMREAD_COLOR)
        assert grid is not None
        h, w = grid.shape[:2]
        page = np.full((h * 9 // 5, w * 9 // 5, 3), 248, np.uint8)
        page[h // 12 : h // 12 + h, w // 12 : w // 12 + w] = grid
        ok, buf = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        sheets.append(replace(s, data=bytes(buf)))
    _assert_exact(_tally(sheets, _read(_omrchecker(card, tmp_path), sheets, tmp_path)))


def test_an_exam_paper_whose_markers_frame_only_the_answer_grid_at_its_top_reads_exactly(tmp_path: Path) -> None:
    # Four alike markers round the answer grid in the top 37 % of an A4 page, the exam's
    # questions printed below (a public card's): the scan's lower quarters hold no
    # marker, so looking in each quarter found none (NO_SHEET_FOUND). The four are now
    # looked for anywhere on the scan, upside down too.
    card = C.exam_paper_card()
    sheets = list(C.make_cards(card, 3, "exam-paper", upside_down=(False, True, False)))
    _assert_exact(_tally(sheets, _read(_omrchecker(card, tmp_path), sheets, tmp_path)))


def test_a_block_a_whole_column_off_its_print_goes_to_review_not_read_one_choice_over(tmp_path: Path) -> None:
    # A public template put one block a bubble to the right of its print: the block
    # fits the print one column over as well as where it is, its last column lies on
    # bare paper, and every mark read as the choice beside it, confidently and unflagged.
    card = C.CARDS["grey"]
    sheets = list(C.make_cards(card, 2, "column-off", upside_down=FLIPS))
    path = _omrchecker(card, tmp_path)
    data = json.loads(path.read_text(encoding="utf-8"))
    first = card.question_blocks[0]
    data["fieldBlocks"][first.name]["origin"][0] += first.bubbles_gap
    path.write_text(json.dumps(data), encoding="utf-8")
    result = _read(path, sheets, tmp_path)
    assert _tally(sheets, result).problems == []
    for s in sheets:
        assert set(first.labels) <= set(result[s.name]["review"])


# --- scans through this project's template format ------------------------------------------


def test_a_card_with_a_timing_mark_track_and_no_corner_markers_reads_exactly(tmp_path: Path) -> None:
    card = C.CARDS["timing"]
    sheets = list(C.make_cards(card, 2, "scan", upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(_project(card, tmp_path), sheets, tmp_path), project=True))


def test_a_project_template_with_ellipses_reads_a_red_ink_card_with_a_legend(tmp_path: Path) -> None:
    card = C.CARDS["project"]
    sheets = list(C.make_cards(card, 2, "scan", upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(_project(card, tmp_path), sheets, tmp_path), project=True))


@pytest.mark.parametrize(("name", "seed"), [("circle", "hand"), ("corner", "hand"), ("corner", "hand-2")])
def test_discs_and_l_shaped_markers_named_by_a_project_template_read_exactly(
    name: str, seed: str, tmp_path: Path
) -> None:
    # The template names the markers' shape ("circle", "corner") and size, no picture.
    card = C.CARDS[name]
    sheets = list(C.make_cards(card, 2, seed, upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(_project(card, tmp_path), sheets, tmp_path), project=True))


def test_phone_photos_of_an_l_marker_card_read_exactly_through_its_project_template(tmp_path: Path) -> None:
    # Photos off centre on a desk: two markers may share a quarter of the picture.
    card = C.CARDS["corner"]
    sheets = list(C.make_cards(card, 3, "photo-hand", how="photo"))
    result = _read(_project(card, tmp_path), sheets, tmp_path, photo=True)
    _assert_exact(_tally(sheets, result, project=True))


def _built(card: C.Card, tmp: Path, *, bed: float | None = None) -> Path:
    """``python -m workers.omr template --from-blank`` on a scan of the blank card."""
    import random

    from tests.omr.corpus import degrade

    rng = random.Random(f"built:{card.name}")
    data, _ = degrade(C.fill_card(card, rng, blank=True).page, rng, upside_down=False, bed=bed)
    blank, out = tmp / "blank.jpg", tmp / "built.json"
    blank.write_bytes(data)
    counts = ["--questions", str(sum(len(b.labels) for b in card.question_blocks)), "--choices", "5"]
    counts += ["--id-digits", str(len(card.id_block.labels))]
    assert cli_main(["template", "--from-blank", str(blank), *counts, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", ["circle", "corner", "bare"])
def test_a_template_built_from_the_blank_card_reads_its_filled_scans_exactly(name: str, tmp_path: Path) -> None:
    # Discs, L's (whose ink is not centred on their square), or no marker at all: the
    # page's edges, the blank and the filled cards scanned on the same dark bed.
    card = C.CARDS[name]
    bare = card.marker == "none"
    template = _built(card, tmp_path, bed=0.25 if bare else None)
    how = "darkbed" if bare else "scan"
    sheets = list(C.make_cards(card, 2, "built", how=how, upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(template, sheets, tmp_path), project=True))


# --- what is printed is not a mark -------------------------------------------------------------


def test_a_blank_red_card_reads_blank_although_its_legend_shows_a_filled_bubble(tmp_path: Path) -> None:
    import random

    from tests.omr.corpus import degrade

    card = C.CARDS["red"]
    page = C.fill_card(card, random.Random("blank-red"), blank=True).page
    data, _ = degrade(page, random.Random("blank-red-scan"), upside_down=False)
    sheet = C.CardScan("blank.jpg", data, Truth("", {}))
    entry = _read(_omrchecker(card, tmp_path), [sheet], tmp_path)["blank.jpg"]
    assert "error" not in entry, entry.get("error")
    assert {k: v for k, v in entry["answers"].items() if k != "student_id" and v} == {}
    assert [r for r in entry["review"] if r != "student_id"] == []


def test_a_washed_out_copy_of_a_card_printed_faintly_on_shaded_rows_is_read_exactly(tmp_path: Path) -> None:
    # A phone scanner app's copy whitens light greys: the outlines of white bubbles on
    # shaded rows come out 0.05-0.1 from paper to ink, below the bar at which an outline
    # counts as printed, and a third of the bubbles "showed no print": the sheets were
    # refused as another card's. The bar follows the sheet's own print now, and each
    # block is found as the light holes its bubbles leave in the shade (read before
    # where the template put it, up to 75 of 90 answers flagged).
    pale = (225, 205, 215)
    card = replace(C.CARDS["banded"], name="washed-out", outline=pale, digit=pale)
    sheets = list(C.make_cards(card, 2, "faint2", upside_down=FLIPS))
    _assert_exact(_tally(sheets, _read(_omrchecker(card, tmp_path), sheets, tmp_path)))


def test_a_200_question_card_read_with_a_45_question_template_is_refused_not_misread(tmp_path: Path) -> None:
    # Same markers in the same places: only the template's own fields can tell.
    sheets = list(C.make_cards(C.CARDS["q200"], 1, "wrong", upside_down=(False,)))
    entry = _read(_omrchecker(C.CARDS["red"], tmp_path), sheets, tmp_path)[sheets[0].name]
    assert entry.get("error", {}).get("code") == "TEMPLATE_MISMATCH", entry.get("review")


# --- phone photos ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "crop"),
    [
        ("red", "markers"),
        ("circle", "markers"),
        ("corner", "markers"),  # the paper's corner on the desk is an L too
        ("bare", "page"),
        ("dark", "markers"),  # black rings and digits as dark as the marks
    ],
)
def test_phone_photos_of_a_vendor_card_read_exactly_in_photo_mode(name: str, crop: str, tmp_path: Path) -> None:
    card = C.CARDS[name]
    # A 1500 x 2000 frame puts the card at 85-140 dpi: enough, and quick to make.
    sheets = list(C.make_cards(card, 2, "photo", how="photo", frame=(1500, 2000)))
    result = _read(_omrchecker(card, tmp_path, crop=crop), sheets, tmp_path, photo=True)
    _assert_exact(_tally(sheets, result))


@pytest.mark.parametrize(("name", "seed", "index"), [("grey", "x2", 1), ("dark", "x2", 2)])
def test_a_photo_whose_filled_bubbles_outscore_its_markers_is_found_within_its_page(
    name: str, seed: str, index: int, tmp_path: Path
) -> None:
    # A photo showing the card small in a large picture (and, on the grey card, turned a
    # tenth of a right angle): filled bubbles between two of the photo search's steps of
    # size matched the square marker better than the markers did, and four of them in
    # the middle of the card made a sheet turned a quarter, which the layout refused
    # (TEMPLATE_MISMATCH). The markers are now looked for in the corners of the page
    # the paper's edges outline, where the photo would otherwise be refused.
    card = C.CARDS[name]
    sheet = list(C.make_cards(card, index + 1, seed, how="photo"))[index]
    result = _read(_omrchecker(card, tmp_path), [sheet], tmp_path, photo=True)
    _assert_exact(_tally([sheet], result))


def test_a_photo_through_boxes_under_the_pixel_floor_reads_by_its_printed_bubbles(tmp_path: Path) -> None:
    # Boxes under half the printed bubble, on a photo that shows the card small: the
    # boxes come to under 5 px across, the reader's floor, and the photo was refused
    # (RESOLUTION_TOO_LOW) though the bubbles printed are twice that. The wide look now
    # runs with the floor lowered as far as it reaches, and keeps the sheet only where
    # every block's printed bubbles, as measured, are above the floor.
    card = C.CARDS["mixed"]
    sheet = list(C.make_cards(card, 2, "x1", how="photo"))[1]
    result = _read(C.write_omrchecker(card, tmp_path / "omrchecker", box_share=0.45), [sheet], tmp_path, photo=True)
    _assert_exact(_tally([sheet], result))


def test_a_turn_under_which_the_bubbles_are_not_printed_gives_way_to_the_next(tmp_path: Path) -> None:
    # Four identical markers leave the sheet's turn to the layout's coarse look, which a
    # template lying a third of a row off its print can mislead: under the wrong turn
    # half its rows land on print as well, and on a public card one mark more on the
    # sheet tipped the choice, and the sheet was refused. The reader takes the first
    # turn, the likeliest first, under which the bubbles are printed.
    from workers.omr.align import align_turns, as_gray
    from workers.omr.decode import decode_for
    from workers.omr.omrchecker import load_omrchecker_template
    from workers.omr.reader import _first_fit

    card = C.CARDS["grey"]
    [scan] = C.make_cards(card, 1, "turns", upside_down=(False,))
    template = load_omrchecker_template(_omrchecker(card, tmp_path)).template
    image, by = decode_for(scan.data, template, photo=False)
    turns = align_turns(image, by)
    assert len({t.rotation for t in turns}) >= 2
    wrong_first = sorted(turns, key=lambda t: t.rotation != 180)
    alignment, _ = _first_fit(image, as_gray(image), by, wrong_first)
    assert alignment.rotation == 0
