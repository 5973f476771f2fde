"""OMRChecker's evaluation.json as this project's answer key.

The result is ``{"questions": {label: scheme}}`` in question order, where every question
carries the marking of the section it belongs to, resolved to floats::

    {"correct": ["B", "C"], "points": 3.0, "weights": {"B": 3.0, "C": 1.5},
     "incorrect": -1.0, "unmarked": 0.0}

- ``correct``: the accepted responses. A plain string answer is one response (for a
  custom label such as a two-digit "q5" it is the joined value, e.g. "12"); a list is
  several accepted ones; weighted pairs list every response that has its own score.
- ``points``: the section's score for a correct response; ``weights`` (weighted answers
  only) gives the score of each listed response instead.
- ``incorrect`` / ``unmarked``: the section's scores for a wrong or blank response.

Scores may be numbers or strings such as "3/2" or "-2/3"; they are parsed exactly with
``fractions.Fraction`` and only then turned into floats. Keys are read from ``options``
(OMRChecker's place for them) or, leniently, from the top level. ``answer_key_image_path``
(reading the key off a filled sheet) is refused: export the key as CSV instead.
"""

from __future__ import annotations

import ast
import csv
import io
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from workers.omr.omrchecker import expand_labels, read_json
from workers.omr.template import TemplateError

MAX_QUESTIONS: Final = 1000
MARKING_KEYS: Final = ("correct", "incorrect", "unmarked")


def load_evaluation(source: str | Path | Mapping[str, Any], *, base_dir: str | Path | None = None) -> dict[str, Any]:
    if isinstance(source, Mapping):
        data: Mapping[str, Any] = source
    else:
        path = Path(source)
        data = read_json(path, "evaluation")
        base_dir = path.parent if base_dir is None else base_dir
    options = data.get("options", {})
    if not isinstance(options, Mapping):
        raise TemplateError("evaluation options: must be an object")

    def option(key: str) -> Any:
        return options[key] if key in options else data.get(key)

    kind = data.get("source_type")
    if kind == "custom":
        questions = expand_labels(option("questions_in_order"), "questions_in_order")
        answers = option("answers_in_order")
        if not isinstance(answers, list) or len(answers) != len(questions):
            raise TemplateError(
                f"answers_in_order: must be a list of {len(questions)} answers, one per question in questions_in_order"
            )
        pairs = list(zip(questions, answers, strict=True))
    elif kind == "csv":
        pairs = _csv_key(option("answer_key_csv_path"), option("answer_key_image_path"), base_dir)
    else:
        raise TemplateError(f"source_type: must be 'custom' or 'csv', not {kind!r}")
    if len(pairs) > MAX_QUESTIONS:
        raise TemplateError(f"the answer key has more than {MAX_QUESTIONS} questions")
    key = {q: _answer(a, q) for q, a in pairs}
    if len(key) != len(pairs):
        raise TemplateError("the answer key names a question twice")
    schemes = _schemes(data.get("marking_schemes"), list(key))
    out: dict[str, Any] = {}
    for question, (accepted, weights) in key.items():
        scheme = schemes[question]
        entry: dict[str, Any] = {"correct": accepted, "points": float(scheme["correct"])}
        if weights is not None:
            entry["weights"] = {choice: float(score) for choice, score in weights.items()}
        entry["incorrect"] = float(scheme["incorrect"])
        entry["unmarked"] = float(scheme["unmarked"])
        out[question] = entry
    return {"questions": out}


def _csv_key(csv_path: object, image_path: object, base_dir: str | Path | None) -> list[tuple[str, object]]:
    if csv_path is None:
        if image_path is not None:
            raise TemplateError(
                "answer_key_image_path (reading the key from a filled sheet) is not supported; "
                "give answer_key_csv_path or a custom answer key"
            )
        raise TemplateError("answer_key_csv_path: required when source_type is 'csv'")
    if not isinstance(csv_path, str) or not csv_path:
        raise TemplateError("answer_key_csv_path: must be a file name")
    if base_dir is None:
        raise TemplateError("answer_key_csv_path: a base folder is needed to find the CSV")
    path = Path(base_dir) / csv_path
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise TemplateError(f"cannot read the answer key CSV {path}: {exc.strerror}") from exc
    pairs: list[tuple[str, object]] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if len(cells) != 2 or not cells[0] or not cells[1]:
            raise TemplateError(f"{path.name} line {n}: expected 'question,answer'")
        pairs.append((cells[0], _csv_answer(cells[1], f"{path.name} line {n}")))
    if not pairs:
        raise TemplateError(f"{path.name}: the answer key CSV is empty")
    return pairs


def _csv_answer(cell: str, where: str) -> object:
    """As OMRChecker reads the answer column: a literal list, "A,B" (any of), or one answer."""
    if cell.startswith("["):
        try:
            return ast.literal_eval(cell)  # literals only: no code runs
        except (ValueError, SyntaxError) as exc:
            raise TemplateError(f"{where}: {cell!r} is not a valid answer list") from exc
    if "," in cell:
        return [part.strip() for part in cell.split(",")]
    return cell


def _answer(value: object, question: str) -> tuple[list[str], dict[str, Fraction] | None]:
    where = f"answer for {question}"
    if isinstance(value, str) and value:
        return [value], None
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        if len(value) < 2 or len(set(value)) != len(value):
            raise TemplateError(f"{where}: a list of answers needs at least two different answers")
        return list(value), None
    if isinstance(value, list) and value and all(isinstance(v, (list, tuple)) for v in value):
        weights: dict[str, Fraction] = {}
        for pair in value:
            if len(pair) != 2 or not isinstance(pair[0], str) or not pair[0] or pair[0] in weights:
                raise TemplateError(f"{where}: weighted answers must be distinct [answer, score] pairs")
            weights[pair[0]] = _score(pair[1], where)
        return list(weights), weights
    raise TemplateError(f"{where}: must be a string, a list of strings or a list of [answer, score] pairs")


def _score(value: object, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TemplateError(f"{where}: score {value!r} must be a number or a fraction like '-2/3'")
    try:
        # Through str so that 0.1 means one tenth, not the binary float nearest to it.
        score = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError) as exc:
        raise TemplateError(f"{where}: score {value!r} must be a number or a fraction like '-2/3'") from exc
    if abs(score) > 10_000:
        raise TemplateError(f"{where}: score {value!r} is out of range")
    return score


def _marking(value: object, where: str) -> dict[str, Fraction]:
    if not isinstance(value, Mapping):
        raise TemplateError(f"{where}: must be an object with correct, incorrect and unmarked")
    missing = [k for k in MARKING_KEYS if k not in value]
    if missing:
        raise TemplateError(f"{where}: {', '.join(missing)} missing")
    return {k: _score(value[k], f"{where}.{k}") for k in MARKING_KEYS}


def _schemes(value: object, questions: list[str]) -> dict[str, dict[str, Fraction]]:
    """Each question's marking: its section's, else DEFAULT's."""
    if not isinstance(value, Mapping) or "DEFAULT" not in value:
        raise TemplateError("marking_schemes: must be an object with a DEFAULT scheme")
    default = _marking(value["DEFAULT"], "marking_schemes.DEFAULT")
    resolved = dict.fromkeys(questions, default)
    owner: dict[str, str] = {}
    for name, section in value.items():
        if name == "DEFAULT":
            continue
        where = f"marking_schemes.{name}"
        if not isinstance(section, Mapping):
            raise TemplateError(f"{where}: must be an object with questions and marking")
        marking = _marking(section.get("marking"), f"{where}.marking")
        for q in expand_labels(section.get("questions"), f"{where}.questions"):
            if q not in resolved:
                raise TemplateError(f"{where}: question {q!r} is not in the answer key")
            if q in owner:
                raise TemplateError(f"{where}: question {q!r} is already in section {owner[q]!r}")
            owner[q] = str(name)
            resolved[q] = marking
    return resolved
