"""A sheet sent as WebP (phones and chat apps save pictures so) is read like a JPEG."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from tests.omr.test_foreign_cards import CARD, _answers, _card, _expected
from workers.omr.cli import main as cli_main
from workers.omr.reader import read_sheet
from workers.omr.template import load_template


def _webp(seed: int, answers: dict[str, str], student_id: str) -> bytes:
    ok, buf = cv2.imencode(".webp", _card(CARD, answers, student_id, seed=seed), [cv2.IMWRITE_WEBP_QUALITY, 90])
    assert ok
    return bytes(buf)


def test_a_webp_sheet_is_read_not_refused_as_an_unknown_format() -> None:
    answers = _answers(11)
    reading = read_sheet(_webp(11, answers, "6020"), load_template(CARD))
    assert reading.answers == _expected(answers)
    assert reading.student_id == "6020"


def test_the_command_line_reads_a_webp_file_in_a_folder(tmp_path: Path) -> None:
    answers = _answers(12)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "sheet.webp").write_bytes(_webp(12, answers, "7777"))
    (tmp_path / "t.json").write_text(json.dumps(CARD))
    out = tmp_path / "out.json"
    cli_main(["read", "--template", str(tmp_path / "t.json"), "--out", str(out), str(tmp_path / "in")])
    result = json.loads(out.read_text())
    assert result["sheet.webp"]["answers"] == _expected(answers)
