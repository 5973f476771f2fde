"""A template built from one blank card (workers/omr/blank.py) reads that card's filled sheets.

The blanks are the vendor-style cards of tests/omr/cards.py, printed empty and scanned
(a few degrees off, scaled, blurred, noisy, JPEG). The template is built from the blank
and three counts, written by the command line, and the card's filled scans are read with
it: every answer and student number must come out exactly or be flagged, as with the
card's hand-written template. Counts that do not match the card, and a page that is not
an answer sheet, are refused with a code and what was found.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import pytest

from tests.omr import cards as C
from tests.omr.corpus import degrade
from workers.omr.blank import (
    BLANK_COUNTS_MISMATCH,
    NOT_A_BUBBLE_SHEET,
    Proposal,
    omrchecker_files,
    proposal_picture,
    propose_template,
)
from workers.omr.cli import main as cli_main
from workers.omr.errors import OmrError
from workers.omr.omrchecker import load_omrchecker_template
from workers.omr.template import Template, parse_template

#: how far (template pixels) a found bubble centre may lie from where the card prints it.
CENTRE_TOL: Final = 1.5
DEV_BLANK: Final = Path(__file__).resolve().parents[2].parent / "shared" / "omr-dev" / "blank" / "blank-scan.jpg"


def _blank_scan(card: C.Card) -> bytes:
    return C.blank_scan(card, seed=f"blank:{card.name}")


def _propose(card: C.Card, numbering: str = "columns") -> Proposal:
    counts = _counts(card)
    return propose_template(
        _blank_scan(card),
        questions=counts["questions"],
        choices=counts["choices"],
        id_digits=counts["id_digits"],
        numbering=numbering,
    )


def _counts(card: C.Card) -> dict[str, int]:
    return {
        "questions": sum(len(b.labels) for b in card.question_blocks),
        "choices": len(C.CHOICES),
        "id_digits": len(card.id_block.labels),
    }


_proposals: dict[str, Proposal] = {}


def _proposal(name: str) -> Proposal:
    if name not in _proposals:
        card = C.CARDS[name]
        _proposals[name] = _propose(card)
    return _proposals[name]


def _to_card(template: Template, card: C.Card) -> Any:
    """Template pixels -> the card's page pixels, through the four marker centres."""
    src = np.array(template.marker_centres, np.float32)
    dst = np.array(card.marker_centres, np.float32)
    hom = cv2.getPerspectiveTransform(src, dst)
    return lambda p: cv2.perspectiveTransform(np.array([[p]], np.float64), hom)[0, 0]


@pytest.mark.parametrize("name", ["red", "mixed", "project"])
def test_every_bubble_of_a_blank_card_is_found_where_it_is_printed(name: str) -> None:
    card = C.CARDS[name]
    tpl = parse_template(_proposal(name).template)
    to_card = _to_card(tpl, card)
    printed = {f"{b.labels[i][1:]}": row for b in card.question_blocks for i, row in enumerate(b.centres())}
    assert [q.label for q in tpl.questions] == [str(n) for n in range(1, len(printed) + 1)]
    worst = 0.0
    for q in tpl.questions:
        assert q.values == C.CHOICES
        for found, want in zip(q.centres, printed[q.label], strict=True):
            x, y = to_card(found)
            worst = max(worst, math.hypot(x - want[0], y - want[1]))
    ids = card.id_block.centres()
    assert len(tpl.id_fields) == len(ids)
    for f, column in zip(tpl.id_fields, ids, strict=True):
        assert f.values == tuple("0123456789")
        for found, want in zip(f.centres, column, strict=True):
            x, y = to_card(found)
            worst = max(worst, math.hypot(x - want[0], y - want[1]))
    assert worst <= CENTRE_TOL
    # The bubble's printed size and shape, per block, in the card's pixels.
    scale = (card.marker_centres[1][0] - card.marker_centres[0][0]) / (
        tpl.marker_centres[1][0] - tpl.marker_centres[0][0]
    )
    w, h = tpl.bubble_size(tpl.questions[0])
    want_w, want_h = card.question_blocks[0].size
    assert abs(w * scale - want_w) <= 3
    assert abs(h * scale - want_h) <= 3
    for block in card.question_blocks:  # each block keeps its own size and shape
        q = next(q for q in tpl.questions if q.label == block.labels[0][1:])
        w, h = tpl.bubble_size(q)
        assert abs(w * scale - block.size[0]) <= 3
        assert abs(h * scale - block.size[1]) <= 3
        assert q.shape == block.shape


def test_a_red_ink_blank_with_four_identical_markers_says_so_in_its_alignment() -> None:
    assert _proposal("red").template["alignment"] == {"kind": "markers", "identical": True, "shape": "hollow"}
    # This project's own markers (the top-left one hollow) orient the sheet by themselves.
    assert _proposal("project").template["alignment"] == {"kind": "markers"}


@pytest.mark.parametrize("name", ["red", "timing"])
def test_the_template_built_from_a_blank_reads_the_cards_filled_scans(name: str, tmp_path: Path) -> None:
    card = C.CARDS[name]
    blank = tmp_path / "blank.jpg"
    blank.write_bytes(_blank_scan(card))
    out = tmp_path / "template.json"
    counts = _counts(card)
    rc = cli_main(
        [
            "template",
            "--from-blank",
            str(blank),
            "--questions",
            str(counts["questions"]),
            "--choices",
            str(counts["choices"]),
            "--id-digits",
            str(counts["id_digits"]),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    sheets = list(C.make_cards(card, 4, "blank", upside_down=[True, False, False, False]))
    folder = tmp_path / "sheets"
    folder.mkdir()
    for s in sheets:
        (folder / s.name).write_bytes(s.data)
    result = tmp_path / "out.json"
    assert cli_main(["read", "--template", str(out), "--out", str(result), str(folder)]) == 0
    read = json.loads(result.read_text(encoding="utf-8"))
    flagged = answers = 0
    for s in sheets:
        entry = read[s.name]
        assert entry["student_id"] == s.truth.student_id, s.name
        for label, truth in s.truth.answers.items():
            number = label.removeprefix("q")
            answers += 1
            if number in entry["review"]:
                flagged += 1
                continue
            assert sorted(entry["answers"][number]) == sorted(truth), (s.name, number)
    assert flagged <= 0.02 * answers


@pytest.mark.parametrize("name", sorted(C.CARDS))
def test_each_card_design_printed_blank_gives_its_counts_and_alignment(name: str) -> None:
    """Red, pink, black and light-grey print; circles, tall and wide ellipses, rectangles;
    45 and 200 questions; solid, hollow, round and L-shaped markers, timing marks, none."""
    card = C.CARDS[name]
    ok, png = cv2.imencode(".png", C.draw_card(card))
    assert ok
    counts = _counts(card)
    proposal = propose_template(
        bytes(png), questions=counts["questions"], choices=counts["choices"], id_digits=counts["id_digits"]
    )
    tpl = parse_template(proposal.template)
    assert len(tpl.questions) == counts["questions"]
    assert len(tpl.id_fields) == counts["id_digits"]
    kind = "timing" if card.timing else "page" if card.marker == "none" else "markers"
    assert proposal.template["alignment"]["kind"] == kind
    if kind == "markers" and card.marker != "project":
        assert proposal.template["alignment"]["shape"] == card.marker


def test_a_blank_builds_the_same_on_a_busy_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The L-cornered card's blank needs closer looks; how many it gets is counted in work,
    not in seconds, so a worker slowed down by other load builds the same template."""
    card = C.CARDS["corner"]
    ok, png = cv2.imencode(".png", C.draw_card(card))
    assert ok
    counts = _counts(card)

    def build() -> dict[str, Any]:
        return propose_template(
            bytes(png), questions=counts["questions"], choices=counts["choices"], id_digits=counts["id_digits"]
        ).template

    idle = build()
    clock = iter(range(0, 10**9, 60))  # a minute passes between any two looks at the clock
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(clock)))
    assert build() == idle


def test_a_card_without_corner_markers_is_aligned_by_its_timing_marks() -> None:
    card = C.CARDS["timing"]
    alignment = _proposal("timing").template["alignment"]
    assert alignment["kind"] == "timing"
    # One mark per bubble row down the left edge: the ten ID rows and the fifteen question
    # rows are spaced differently, so they are two evenly spaced tracks.
    assert sorted(t["count"] for t in alignment["tracks"]) == [10, 15]
    assert len(card.timing_marks) == 25


def test_counts_that_do_not_match_the_card_are_refused_with_what_was_found() -> None:
    data = _blank_scan(C.CARDS["red"])
    with pytest.raises(OmrError) as caught:
        propose_template(data, questions=44, choices=5, id_digits=8)
    assert caught.value.code == BLANK_COUNTS_MISMATCH
    assert caught.value.message.startswith("found 45 question rows of 5, expected 44")
    with pytest.raises(OmrError) as caught:
        propose_template(data, questions=45, choices=4, id_digits=8)
    assert caught.value.code == BLANK_COUNTS_MISMATCH
    assert "found 0 question rows of 4, expected 45" in caught.value.message
    with pytest.raises(OmrError) as caught:
        propose_template(data, questions=45, choices=5, id_digits=7)
    assert caught.value.code == BLANK_COUNTS_MISMATCH
    assert caught.value.message == "found a block of 8 student-ID columns (of 10 bubbles), expected one block of 7"


def test_the_command_line_refuses_with_the_code_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = tmp_path / "blank.jpg"
    blank.write_bytes(_blank_scan(C.CARDS["red"]))
    out = tmp_path / "template.json"
    args = ["template", "--from-blank", str(blank), "--questions", "46", "--choices", "5", "--id-digits", "8"]
    rc = cli_main([*args, "--out", str(out)])
    assert rc == 1
    assert not out.exists()
    assert "BLANK_COUNTS_MISMATCH: found 45 question rows of 5, expected 46" in capsys.readouterr().err


def test_a_page_that_is_not_a_bubble_sheet_is_refused() -> None:
    page = np.full((2339, 1654, 3), 250, np.uint8)
    for i in range(40):
        cv2.putText(
            page, "Dear parents, the monthly test is on Saturday.", (120, 200 + 48 * i), 0, 1.1, (20, 20, 20), 2
        )
    cv2.rectangle(page, (100, 150), (1550, 2200), (20, 20, 20), 3)
    ok, buf = cv2.imencode(".png", page)
    assert ok
    with pytest.raises(OmrError) as caught:
        propose_template(bytes(buf), questions=20, choices=5, id_digits=0)
    assert caught.value.code == NOT_A_BUBBLE_SHEET


def test_rows_numbering_runs_across_the_blocks_before_going_down() -> None:
    card = C.CARDS["red"]
    by_column = parse_template(_proposal("red").template)
    by_row = parse_template(_propose(card, numbering="rows").template)
    # Down the columns, question 2 is under question 1; across, it is the next block's first
    # row, and question 4 is under question 1 (three blocks side by side).
    first = {q.label: q.centres[0] for q in by_column.questions}
    across = {q.label: q.centres[0] for q in by_row.questions}
    assert first["2"][0] == pytest.approx(first["1"][0])
    assert first["2"][1] > first["1"][1]
    assert across["1"] == pytest.approx(first["1"])
    assert across["2"] == pytest.approx(first["16"])
    assert across["3"] == pytest.approx(first["31"])
    assert across["4"] == pytest.approx(first["2"])
    assert across["45"] == pytest.approx(first["45"])


def test_the_omrchecker_export_puts_every_bubble_where_the_project_template_does(tmp_path: Path) -> None:
    proposal = _proposal("red")
    for name, content in omrchecker_files(proposal).items():
        (tmp_path / name).write_bytes(content)
    assert (tmp_path / "omr_marker.png").exists()
    sheet = load_omrchecker_template(tmp_path / "template.json")
    native = parse_template(proposal.template)
    theirs = {f.label: f for f in sheet.template.fields}
    for q in native.questions:
        other = theirs[f"q{q.label}"]
        assert other.values == q.values
        # Both frames are marker-centred; OMRChecker's origins are whole pixels.
        dx = other.centres[0][0] - sheet.template.marker_centres[0][0] - (q.centres[0][0] - native.marker_centres[0][0])
        dy = other.centres[0][1] - sheet.template.marker_centres[0][1] - (q.centres[0][1] - native.marker_centres[0][1])
        assert abs(dx) <= 1, q.label
        assert abs(dy) <= 1, q.label


def test_the_picture_of_a_proposal_is_a_png_of_the_straightened_card() -> None:
    proposal = _proposal("red")
    png = proposal_picture(proposal)
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None
    h, w = picture.shape[:2]
    assert abs(w / h - proposal.template["page"]["width"] / proposal.template["page"]["height"]) < 0.01
    # The found bubbles are drawn in green: there is green where question 1's first bubble is.
    tpl = parse_template(proposal.template)
    x, y = tpl.questions[0].centres[0]
    bw, _ = tpl.bubble_size(tpl.questions[0])
    k = w / tpl.width
    patch = picture[round(y * k) - 3 : round(y * k) + 4, round((x - bw / 2) * k) - 3 : round((x - bw / 2) * k) + 4]
    green = (patch[..., 1].astype(int) - patch[..., 2].astype(int)) > 60
    assert green.any()


@pytest.mark.skipif(not DEV_BLANK.exists(), reason="the omr-dev set is not next to this checkout")
def test_the_dev_cards_blank_scan_gives_its_three_columns_and_eight_digits() -> None:
    proposal = propose_template(DEV_BLANK.read_bytes(), questions=45, choices=5, id_digits=8)
    data = proposal.template
    assert [b["count"] for b in data["question_blocks"]] == [15, 15, 15]
    assert data["student_id"]["digits"] == 8
    assert data["alignment"]["kind"] == "markers"


def test_a_proposal_numbered_again_row_wise_and_back_is_unchanged() -> None:
    from workers.omr.blank import template_renumber

    proposal = _proposal("red").template
    rows = template_renumber(proposal, "rows")
    assert [(b["first"], b["step"]) for b in rows["question_blocks"]] == [(1, 3), (2, 3), (3, 3)]
    labels = {q.label: q.centres[0] for q in parse_template(rows).questions}
    assert sorted(map(int, labels)) == list(range(1, 46))
    assert template_renumber(rows, "columns") == proposal


def _down_card() -> C.Card:
    """Four blocks of ten questions whose five choices run down a column, two bands of two."""
    blocks = tuple(
        C.Block(
            f"Q{k}",
            tuple(f"q{1 + k * 10 + i}" for i in range(10)),
            C.CHOICES,
            (300 + 600.0 * (k % 2), 1000 + 500.0 * (k // 2)),
            48,
            52,
            (34, 26),
            vertical=True,
        )
        for k in range(4)
    )
    return replace(C.red_card(), name="down", question_blocks=blocks, legend=False)


def test_a_card_whose_choices_run_down_a_column_is_read_with_its_built_template() -> None:
    card = _down_card()
    proposal = propose_template(_blank_scan(card), questions=40, choices=5, id_digits=8)
    blocks = proposal.template["question_blocks"]
    # Numbered left to right in each block, the blocks band by band.
    assert [(b["first"], b["count"], b["direction"]) for b in blocks] == [(i * 10 + 1, 10, "down") for i in range(4)]
    tpl = parse_template(proposal.template)
    from workers.omr.decode import decode_image
    from workers.omr.reader import read_gray

    for sheet in C.make_cards(card, 2, "down", upside_down=[False, True]):
        reading = read_gray(decode_image(sheet.data), tpl, photo=False).to_dict()
        assert reading["student_id"] == sheet.truth.student_id
        for label, truth in sheet.truth.answers.items():
            number = label.removeprefix("q")
            assert number in reading["review"] or sorted(reading["answers"][number]) == sorted(truth), number


# --- the matrix of card designs, over several scans of each blank ----------------------------


def _design_card(questions: int, choices: int, *, down: bool, id_digits: int, red: bool) -> C.Card:
    """A card of the generator's print in one design of the matrix a teacher may bring:
    20 to 200 questions, 4 or 5 choices across a row or down a column, 6 to 10 ID digits,
    red or black print. Blocks of choices down are ten questions wide, three to a band;
    blocks across fill up to five columns, their bubbles sized to the rows' spacing."""
    values = tuple(str(i) for i in range(1, choices + 1))
    labels = tuple(f"id{i}" for i in range(1, id_digits + 1))
    ids = C.Block("StudentID", labels, C.DIGITS, (212, 437), 44, 40 if id_digits > 8 else 44, (20, 30), vertical=True)
    blocks = []
    if down:
        for k in range(math.ceil(questions / 10)):
            first, count = 1 + k * 10, min(10, questions - k * 10)
            origin = (260 + 470.0 * (k % 3), 1000.0 + (choices * 50 + 130) * (k // 3))
            blocks.append(
                C.Block(
                    f"Q{first}",
                    tuple(f"q{first + i}" for i in range(count)),
                    values,
                    origin,
                    50,
                    44,
                    (30, 24),
                    vertical=True,
                )
            )
    else:
        columns = (
            1 if questions <= 25 else 2 if questions <= 50 else 3 if questions <= 90 else 4 if questions <= 140 else 5
        )
        per = math.ceil(questions / columns)
        row_gap = min(70.0, 1300 / per)
        h = round(min(36, 0.7 * row_gap))
        step = (C.WIDTH - 200) / columns
        for k in range(columns):
            first, count = 1 + k * per, min(per, questions - k * per)
            blocks.append(
                C.Block(
                    f"Q{first}",
                    tuple(f"q{first + i}" for i in range(count)),
                    values,
                    (205 + k * step, 900.0),
                    min(65.0, (step - 130) / choices),
                    row_gap,
                    (round(h * 0.67), h),
                )
            )
    colours: dict[str, Any] = {"ink": C.RED, "outline": C.PINK, "digit": C.PINK} if red else {}
    name = f"design-{questions}-{choices}{'down' if down else 'across'}-{id_digits}-{'red' if red else 'black'}"
    return C.Card(name, ids, tuple(blocks), marker="hollow" if red else "solid", **colours)


#: (questions, choices, choices down, ID digits, red print): every value of each axis.
DESIGNS: Final = (
    (20, 5, False, 6, True),
    (20, 4, True, 10, False),
    (60, 4, False, 10, True),
    (60, 5, True, 7, True),
    (100, 4, False, 8, False),
    (150, 5, False, 9, True),
    (200, 4, False, 6, False),
    (200, 5, False, 10, True),
)


def _read_silent_flagged(card: C.Card, template: dict[str, Any], seed: str, *, how: str) -> tuple[int, int, int]:
    """Silent misreads, flagged answers and answers over one filled sheet of ``card``."""
    from workers.omr.decode import decode_image
    from workers.omr.reader import read_gray

    tpl = parse_template(template)
    silent = flagged = answers = 0
    for sheet in C.make_cards(card, 1, seed, how=how):
        reading = read_gray(decode_image(sheet.data), tpl, photo=how == "photo").to_dict()
        assert reading["student_id"] == sheet.truth.student_id
        for label, truth in sheet.truth.answers.items():
            number = label.removeprefix("q")
            answers += 1
            if number in reading["review"]:
                flagged += 1
            elif sorted(reading["answers"][number]) != sorted(truth):
                silent += 1
    return silent, flagged, answers


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: "-".join(map(str, d)))
def test_each_design_builds_from_three_scans_of_its_blank_and_reads_its_filled_sheets(
    design: tuple[int, int, bool, int, bool],
) -> None:
    questions, choices, down, digits, red = design
    card = _design_card(questions, choices, down=down, id_digits=digits, red=red)
    for seed in range(3):
        rng = random.Random(f"blank:{card.name}:{seed}")
        data, _ = degrade(C.fill_card(card, rng, blank=True).page, rng, upside_down=False)
        proposal = propose_template(data, questions=questions, choices=choices, id_digits=digits)
        tpl = parse_template(proposal.template)
        assert [q.label for q in tpl.questions] == [str(n) for n in range(1, questions + 1)]
        assert len(tpl.id_fields) == digits
        if seed == 0:
            silent, flagged, answers = _read_silent_flagged(card, proposal.template, "design", how="scan")
            assert silent == 0
            # A person sees an erasure that left a fifth of a mark or more (classify's
            # lone_light_marks): one such answer on a sheet of 20 is not too many.
            assert flagged <= max(1, 0.02 * answers)


@pytest.mark.parametrize("name", ["grey", "q200", "mixed"])
def test_light_small_and_mixed_print_builds_on_every_one_of_five_scans(name: str) -> None:
    """Light-grey outlines and small bubbles with their digit inside lose a bubble here and
    there to the shape search; the block's lattice and the printed ring find it again."""
    card = C.CARDS[name]
    counts = _counts(card)
    for seed in range(5):
        rng = random.Random(f"blank:{name}:{seed}")
        data, _ = degrade(C.fill_card(card, rng, blank=True).page, rng, upside_down=False)
        tpl = parse_template(
            propose_template(
                data, questions=counts["questions"], choices=counts["choices"], id_digits=counts["id_digits"]
            ).template
        )
        assert len(tpl.questions) == counts["questions"], seed
        assert len(tpl.id_fields) == counts["id_digits"], seed


@pytest.mark.parametrize(("questions", "choices"), [(60, 4), (200, 5)])
def test_a_blank_phone_photo_builds_a_template_that_reads_the_cards_photos(questions: int, choices: int) -> None:
    card = _design_card(questions, choices, down=False, id_digits=10, red=True)
    from tests.omr.corpus import photograph

    rng = random.Random(f"blank:{card.name}:photo")
    data = photograph(C.fill_card(card, rng, blank=True).page, rng)
    proposal = propose_template(data, questions=questions, choices=choices, id_digits=10, photo=True)
    # A photographed hollow square is told by its shape on the straightened page.
    assert proposal.template["alignment"] == {"kind": "markers", "identical": True, "shape": "hollow"}
    silent, flagged, answers = _read_silent_flagged(card, proposal.template, "photo", how="photo")
    assert silent == 0
    assert flagged <= 0.02 * answers


def test_a_bubble_the_card_does_not_print_is_not_made_up_from_the_blocks_lattice() -> None:
    card = C.CARDS["red"]
    page = C.draw_card(card)
    x, y = card.question_blocks[1].centres()[7][2]  # question 23, choice 3: left unprinted
    w, h = card.question_blocks[1].size
    page[round(y - h) : round(y + h), round(x - w) : round(x + w)] = 255
    ok, png = cv2.imencode(".png", page)
    assert ok
    with pytest.raises(OmrError) as caught:
        propose_template(bytes(png), questions=45, choices=5, id_digits=8)
    assert caught.value.code == BLANK_COUNTS_MISMATCH
    assert caught.value.message.startswith("found 44 question rows of 5, expected 45")


def _marker_relative(tpl: Template) -> dict[str, tuple[float, float]]:
    """Each question's first bubble as a share of the way between the corner markers."""
    (ax, ay), (bx, _), _, (_, dy) = tpl.marker_centres
    return {q.label: ((q.centres[0][0] - ax) / (bx - ax), (q.centres[0][1] - ay) / (dy - ay)) for q in tpl.questions}


@pytest.mark.parametrize("name", ["red", "down"])
def test_a_blank_scanned_sideways_is_numbered_as_the_upright_one(name: str) -> None:
    """The question numbers printed before each row (red) or the boxes printed above each
    block (down: choices down a column, no numbers) say which way is up."""
    card = _down_card() if name == "down" else C.CARDS[name]
    counts = {"questions": 40, "choices": 5, "id_digits": 8} if name == "down" else _counts(card)
    page = C.fill_card(card, random.Random(f"turn:{name}"), blank=True).page
    upright: dict[str, tuple[float, float]] = {}
    for turns in (0, 1, 3):  # quarter turns clockwise, as it lay on the scanner
        turned = np.ascontiguousarray(np.rot90(page, k=-turns))
        data, _ = degrade(turned, random.Random(f"turn:{name}:{turns}"), upside_down=False)
        proposal = propose_template(
            data, questions=counts["questions"], choices=counts["choices"], id_digits=counts["id_digits"]
        )
        assert proposal.found.get("turned", 0) == (360 - 90 * turns) % 360
        found = _marker_relative(parse_template(proposal.template))
        upright = upright or found
        assert found.keys() == upright.keys()
        for label, (x, y) in found.items():
            assert abs(x - upright[label][0]) < 0.003, (turns, label)
            assert abs(y - upright[label][1]) < 0.003, (turns, label)
