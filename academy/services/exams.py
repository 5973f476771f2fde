"""Exams and their answer keys: validated before they are stored, so grading can trust them."""

from __future__ import annotations

import math
from typing import Any, Final

from django.db import transaction

from academy.models import AnswerKey, Exam, Tenant
from academy.rejections import Rejection

MAX_QUESTIONS: Final = 500
_SCORE_KEYS: Final = ("points", "incorrect", "unmarked")


def template_clean(raw: Any) -> dict[str, Any]:
    """The exam's sheet template as stored: the project's format, checked by the reader.

    ``None`` or ``"default"`` picks the shipped 40-question sheet. An OMRChecker
    template is imported as ``{"format": "omrchecker-v1", "template": <template.json>,
    "marker_png": <base64 of the marker image>, "config": <config.json>}``; a template
    aligned by a reference picture (FeatureBasedAlignment) adds ``"reference_png"``.
    """
    from workers.omr.errors import OmrError
    from workers.omr.omrchecker import STORED_FORMAT, stored_template_load
    from workers.omr.template import default_template, load_template

    if raw is None or raw == "default":
        return default_template().to_dict()
    if isinstance(raw, dict) and raw.get("format") == STORED_FORMAT:
        try:
            stored_template_load(raw)  # converts and checks; the original is what is kept
        except OmrError as exc:
            raise Rejection("TEMPLATE_INVALID", exc.message) from exc
        return {k: raw[k] for k in ("format", "template", "marker_png", "reference_png", "config") if k in raw}
    if not isinstance(raw, dict):
        raise Rejection("TEMPLATE_INVALID", 'template must be a JSON object or "default"')
    try:
        return load_template(raw).to_dict()
    except OmrError as exc:
        raise Rejection("TEMPLATE_INVALID", exc.message) from exc


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Rejection("INVALID_PAYLOAD", f"{what} must be a number")
    return float(value)


def answer_key_clean(raw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(questions, scheme) from ``{"questions": {...}, "scheme": {...}}``; see ``AnswerKey``.

    ``{"omrchecker_evaluation": {...}}`` imports an OMRChecker ``evaluation.json`` (its
    ``custom`` form: a CSV key names a file the server does not have) with its
    multiple-correct and weighted answers and its marking schemes.
    """
    if isinstance(raw, dict) and "omrchecker_evaluation" in raw:
        raw = _evaluation_import(raw["omrchecker_evaluation"])
    if not isinstance(raw, dict) or not isinstance(raw.get("questions"), dict) or not raw["questions"]:
        raise Rejection("INVALID_PAYLOAD", "answer_key.questions must be a non-empty object")
    if len(raw["questions"]) > MAX_QUESTIONS:
        raise Rejection("INVALID_PAYLOAD", f"at most {MAX_QUESTIONS} questions")
    questions: dict[str, Any] = {}
    for label, spec in raw["questions"].items():
        if isinstance(spec, (str, list)):  # shorthand: just the correct choice(s)
            spec = {"correct": spec}
        if not isinstance(spec, dict):
            raise Rejection("INVALID_PAYLOAD", f"question {label}: expected an object")
        correct = spec.get("correct", [])
        correct = [correct] if isinstance(correct, str) else correct
        if not isinstance(correct, list) or not all(isinstance(c, str) and c for c in correct):
            raise Rejection("INVALID_PAYLOAD", f"question {label}: correct must be a list of choices")
        clean: dict[str, Any] = {"correct": correct, "points": 1.0}
        for name in _SCORE_KEYS:
            if name in spec:
                clean[name] = _number(spec[name], f"question {label}: {name}")
        weights = spec.get("weights")
        if weights is not None:
            if not isinstance(weights, dict) or not weights:
                raise Rejection("INVALID_PAYLOAD", f"question {label}: weights must be an object")
            clean["weights"] = {str(k): _number(v, f"question {label}: weight of {k}") for k, v in weights.items()}
        if not correct and "weights" not in clean:
            raise Rejection("INVALID_PAYLOAD", f"question {label}: no correct answer")
        questions[str(label)] = clean
    scheme_raw = raw.get("scheme") or {}
    if not isinstance(scheme_raw, dict):
        raise Rejection("INVALID_PAYLOAD", "answer_key.scheme must be an object")
    scheme = {k: _number(scheme_raw[k], f"scheme.{k}") for k in ("incorrect", "unmarked") if k in scheme_raw}
    return questions, scheme


def _evaluation_import(evaluation: Any) -> dict[str, Any]:
    from workers.omr.errors import OmrError
    from workers.omr.omrchecker import evaluation_load

    if not isinstance(evaluation, dict) or evaluation.get("source_type") != "custom":
        raise Rejection("INVALID_PAYLOAD", "omrchecker_evaluation must be an evaluation.json of source_type custom")
    try:
        return evaluation_load(evaluation)
    except OmrError as exc:
        raise Rejection("INVALID_PAYLOAD", exc.message) from exc


@transaction.atomic
def exam_create(*, tenant: Tenant, title: str, template: Any = None, answer_key: Any = None) -> Exam:
    exam = Exam.objects.create(tenant=tenant, title=title[:200], sheet_template=template_clean(template))
    if answer_key is not None:
        answer_key_set(exam=exam, answer_key=answer_key)
    return exam


@transaction.atomic
def answer_key_set(*, exam: Exam, answer_key: Any) -> AnswerKey:
    """Replace the exam's key. Sheets already graded are not regraded (say so to callers)."""
    questions, scheme = answer_key_clean(answer_key)
    key, _ = AnswerKey.objects.update_or_create(exam=exam, defaults={"questions": questions, "scheme": scheme})
    return key
