"""A bubble alone in its question, filled half-way (a hurried or half-erased-looking mark),
is read as the answer and left to a person; an erasure's faint residue is not an answer."""

from __future__ import annotations

from workers.omr.classify import Levels, read_field
from workers.omr.template import Field

LEVELS = Levels(empty=0.1, mark=0.9, noise=0.01, references=40)
QUESTION = Field("q7", ("A", "B", "C", "D"), tuple((100.0 + 40 * c, 100.0) for c in range(4)), block="MCQ")
DIGIT = Field("id1", tuple("0123456789"), tuple((100.0, 100.0 + 30 * r) for r in range(10)), block="ID")


def _fill(scores: list[float]) -> list[float]:
    """Fills that give these scores (0 = the sheet's empty level, 1 = its mark level)."""
    return [LEVELS.empty + s * (LEVELS.mark - LEVELS.empty) for s in scores]


def test_a_lone_half_filled_bubble_is_the_answer_and_goes_to_a_person() -> None:
    r = read_field(QUESTION, _fill([0.02, 0.45, 0.05, 0.0]), LEVELS)
    assert (r.values, r.review) == (("B",), True)


def test_an_erasure_residue_alone_in_its_question_is_no_answer() -> None:
    r = read_field(QUESTION, _fill([0.0, 0.22, 0.03, 0.01]), LEVELS)
    assert r.values == ()


def test_a_half_filled_bubble_next_to_a_smudge_is_no_answer() -> None:
    # Two candidates: not a lone mark, so nothing is read and a person decides.
    r = read_field(QUESTION, _fill([0.3, 0.45, 0.0, 0.0]), LEVELS)
    assert (r.values, r.review) == ((), True)


def test_a_light_student_id_digit_is_read_and_settled() -> None:
    r = read_field(DIGIT, _fill([0.0] * 3 + [0.45] + [0.0] * 6), LEVELS, single=True)
    assert (r.values, r.review) == (("3",), False)
