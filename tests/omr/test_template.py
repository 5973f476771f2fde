from __future__ import annotations

from typing import Any

import pytest

from workers.omr.template import TemplateError, default_template, load_template


def test_default_template_has_40_questions_of_5_choices_and_8_id_digits() -> None:
    t = default_template()
    assert (t.width, t.height, t.dpi) == (1654, 2339, 200)
    assert [q.label for q in t.questions] == [str(i) for i in range(1, 41)]
    assert all(q.values == ("1", "2", "3", "4", "5") for q in t.questions)
    assert len(t.id_fields) == 8
    assert all(len(f.centres) == 10 for f in t.id_fields)


def test_bubble_centres_follow_block_origin_and_gaps(fresh_dict: dict[str, Any]) -> None:
    t = load_template(fresh_dict)
    block = fresh_dict["question_blocks"][1]
    q = next(q for q in t.questions if q.label == str(block["first"] + 3))
    x0, y0 = block["origin"]
    assert q.centres[2] == (x0 + 2 * block["choice_gap"], y0 + 3 * block["row_gap"])


def test_template_loads_from_json_text_and_bytes(fresh_dict: dict[str, Any]) -> None:
    import json

    text = json.dumps(fresh_dict)
    assert load_template(text) == load_template(text.encode()) == load_template(fresh_dict)


def test_four_choice_template_is_valid(fresh_dict: dict[str, Any]) -> None:
    fresh_dict["choices"] = ["A", "B", "C", "D"]
    assert load_template(fresh_dict).questions[0].values == ("A", "B", "C", "D")


def _broken(d: dict[str, Any], what: str) -> None:
    if what == "format":
        d["format"] = "something-else"
    elif what == "page":
        d["page"]["width"] = "wide"
    elif what == "choices_dup":
        d["choices"] = ["1", "1", "2"]
    elif what == "off_page":
        d["question_blocks"][0]["origin"] = [1640, 900]
    elif what == "overlap":
        d["question_blocks"][0]["choice_gap"] = 20
    elif what == "numbered_twice":
        d["question_blocks"][1]["first"] = 5
    elif what == "on_marker":
        d["question_blocks"][0]["origin"] = [100, 100]
        d["question_blocks"][0]["count"] = 1
    elif what == "no_blocks":
        d["question_blocks"] = []
    elif what == "bool_radius":
        d["bubble"]["radius"] = True


@pytest.mark.parametrize(
    "what",
    ["format", "page", "choices_dup", "off_page", "overlap", "numbered_twice", "on_marker", "no_blocks", "bool_radius"],
)
def test_malformed_template_is_rejected_with_template_invalid(fresh_dict: dict[str, Any], what: str) -> None:
    _broken(fresh_dict, what)
    with pytest.raises(TemplateError) as info:
        load_template(fresh_dict)
    assert info.value.code == "TEMPLATE_INVALID"
    assert info.value.message


def test_non_json_template_text_is_template_invalid() -> None:
    with pytest.raises(TemplateError) as info:
        load_template("{not json")
    assert info.value.code == "TEMPLATE_INVALID"


def test_omrchecker_template_gets_a_hint_to_import_it() -> None:
    with pytest.raises(TemplateError, match="OMRChecker"):
        load_template({"pageDimensions": [1, 1], "fieldBlocks": {}})


def test_an_omrchecker_template_older_than_v1_is_refused_naming_its_format() -> None:
    # The format OMRChecker's forks wrote before v1: its question types lived in their code.
    old = {
        "Dimensions": [2134, 1999],
        "BubbleDimensions": [50, 50],
        "QBlocks": {"Mcq1": {"qType": "QTYPE_MCQ5", "orig": [1375, 233], "gaps": [57, 62], "qNos": [[["q1"]]]}},
    }
    with pytest.raises(TemplateError, match=r"before v1 \(Dimensions, QBlocks\).*v1 template") as info:
        load_template(old)
    assert info.value.code == "TEMPLATE_INVALID"
    # ... and as OMRChecker's development branch wrote it in 2021-22, in lower case (a
    # public faculty card's): it was told only that it lacked this project's format.
    dev = {
        "dimensions": [2134, 1999],
        "bubbleDimensions": [50, 50],
        "qBlocks": {"Mcq1": {"qType": "QTYPE_MCQ5", "orig": [1375, 233], "gaps": [57, 62], "qNos": [[["q1"]]]}},
    }
    with pytest.raises(TemplateError, match=r"before v1 \(dimensions, qBlocks\).*v1 template"):
        load_template(dev)
