from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.omr.corpus import degrade, fill_sheet
from workers.base import BadInput, JobInput
from workers.omr.processor import OmrGradingProcessor
from workers.omr.template import Template

ROOT = Path(__file__).resolve().parents[2]


def test_processor_declares_the_contract() -> None:
    p = OmrGradingProcessor()
    assert p.job_type == "omr_grading"
    assert p.input_key == "image_path"
    assert p.wants_gpu is True  # the photo classifier; warmed in a premium child
    assert p.extensions == {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".pdf"}
    assert p.quality_gate is True


def test_run_returns_answers_confidence_review_and_overlay(template: Template, template_dict: dict[str, Any]) -> None:
    rng = random.Random(21)
    page, truth = fill_sheet(template, rng)
    data, _ = degrade(page, rng)
    stages: list[str] = []
    result = OmrGradingProcessor().run(
        JobInput(params={"template": template_dict}, data=data, progress=lambda s, _p: stages.append(s))
    )
    assert result.data["student_id"] == truth.student_id
    assert {k: tuple(v) for k, v in result.data["answers"].items()} == truth.answers
    assert set(result.data["confidence"]) == set(truth.answers)
    assert result.confidence == min([*result.data["confidence"].values(), result.data["student_id_confidence"]])
    assert result.review == bool(result.data["review"])
    (artifact,) = result.artifacts
    assert artifact.name == "overlay.png"
    assert artifact.content_type == "image/png"
    overlay = cv2.imdecode(np.frombuffer(artifact.data, np.uint8), cv2.IMREAD_COLOR)
    assert overlay is not None
    assert overlay.shape[:2] == (round(template.height / 2), round(template.width / 2))
    assert stages[-1] == "done"


def test_overlay_marks_read_bubbles_green(template: Template, template_dict: dict[str, Any]) -> None:
    rng = random.Random(22)
    page, truth = fill_sheet(template, rng)
    result = OmrGradingProcessor().run(JobInput(params={"template": template_dict}, data=degrade(page, rng)[0]))
    overlay = cv2.imdecode(np.frombuffer(result.artifacts[0].data, np.uint8), cv2.IMREAD_COLOR)
    assert overlay is not None
    q = next(q for q in template.questions if len(truth.answers[q.label]) == 1 and q.label not in result.data["review"])
    x, y = q.centres[q.values.index(truth.answers[q.label][0])]
    b, g, r = overlay[round((y - template.bubble_radius) / 2) - 1, round(x / 2)].astype(int)
    assert g > r + 60
    assert g > b + 60


def test_validate_rejects_a_missing_or_bad_template() -> None:
    p = OmrGradingProcessor()
    with pytest.raises(BadInput) as info:
        p.validate({})
    assert info.value.code == "TEMPLATE_INVALID"
    with pytest.raises(BadInput) as info:
        p.validate({"template": {"format": "academy-omr-template/1"}})
    assert info.value.code == "TEMPLATE_INVALID"


def test_validate_rejects_an_unknown_mode(template_dict: dict[str, Any]) -> None:
    with pytest.raises(BadInput) as info:
        OmrGradingProcessor().validate({"template": template_dict, "mode": "video"})
    assert info.value.code == "INVALID_PAYLOAD"
    OmrGradingProcessor().validate({"template": template_dict, "mode": "scan"})


def test_run_without_a_file_is_file_required(template_dict: dict[str, Any]) -> None:
    with pytest.raises(BadInput) as info:
        OmrGradingProcessor().run(JobInput(params={"template": template_dict}))
    assert info.value.code == "FILE_REQUIRED"


def test_run_on_a_corrupt_file_raises_bad_input(template_dict: dict[str, Any]) -> None:
    with pytest.raises(BadInput) as info:
        OmrGradingProcessor().run(JobInput(params={"template": template_dict}, data=b"\xff\xd8\xff\xe0broken"))
    assert info.value.code == "FILE_UNREADABLE"


def test_importing_the_processor_loads_neither_cv2_numpy_django_nor_celery() -> None:
    code = (
        "import sys, workers.omr.processor, workers.omr.cli;"
        "print(sorted(m for m in ('cv2', 'numpy', 'django', 'celery', 'pypdfium2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_package_source_never_imports_django_or_celery() -> None:
    for path in (ROOT / "workers" / "omr").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in ("django", "celery"):
            assert f"import {name}" not in text, path
            assert f"from {name}" not in text, path


def test_each_page_of_a_pdf_is_read_by_its_own_job(template: Template, template_dict: dict[str, Any]) -> None:
    import cv2
    import numpy as np
    import pypdfium2 as pdfium

    from workers.omr.pdf import image_to_pdf
    from workers.omr.render import filled_sheet_jpeg

    pdf = pdfium.PdfDocument.new()
    for sid in ("11111111", "22222222"):
        jpeg = filled_sheet_jpeg(template, student_id=sid, answers={"1": template.questions[0].values[2]})
        page = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE), dtype=np.uint8)
        pdf.import_pages(pdfium.PdfDocument(image_to_pdf(page, template.dpi)))
    out = io.BytesIO()
    pdf.save(out)
    read = [
        OmrGradingProcessor().run(JobInput(params={"template": template_dict, "page": n}, data=out.getvalue()))
        for n in (1, 2)
    ]
    assert [r.data["student_id"] for r in read] == ["11111111", "22222222"]
    assert read[1].data["answers"]["1"] == [template.questions[0].values[2]]
