from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from tests.omr.corpus import clean, degrade, fill_sheet
from workers.omr.cli import main
from workers.omr.pdf import image_to_pdf
from workers.omr.template import DEFAULT_TEMPLATE, Template

TPL = str(DEFAULT_TEMPLATE)


def _read(tmp_path: Path, *inputs: Path, jobs: int = 1) -> tuple[int, dict[str, dict[str, Any]]]:
    """``main()`` in this process with ``--jobs 1``; with more jobs, the command line in a
    process of its own (``python -m workers.omr``), as a user runs it: the test process
    holds the platform's broker connections, which a forked reader must not inherit."""
    out = tmp_path / "out.json"
    argv = ["read", "--template", TPL, "--out", str(out), "--jobs", str(jobs), *map(str, inputs)]
    if jobs == 1:
        rc = main(argv)
    else:
        root = Path(__file__).resolve().parents[2]
        rc = subprocess.run([sys.executable, "-m", "workers.omr", *argv], cwd=root, check=False).returncode
    return rc, json.loads(out.read_text(encoding="utf-8"))


def test_read_folder_keys_by_file_name_and_reports_bad_files_without_stopping(
    template: Template, tmp_path: Path
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    rng = random.Random(31)
    page, truth = fill_sheet(template, rng)
    (folder / "a.jpg").write_bytes(degrade(page, rng)[0])
    (folder / "b.png").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored")
    rc, result = _read(tmp_path, folder)
    assert rc == 1  # some inputs failed
    assert set(result) == {"a.jpg", "b.png"}
    assert result["b.png"] == {"error": {"code": "FILE_UNREADABLE", "message": "the file is not a readable image"}}
    a = result["a.jpg"]
    assert set(a) == {"student_id", "answers", "confidence", "review"}
    assert a["student_id"] == truth.student_id
    assert {k: tuple(v) for k, v in a["answers"].items()} == truth.answers


@pytest.mark.parametrize("jobs", [1, 3])
def test_a_batch_keeps_input_order_and_reads_each_sheet_as_if_alone(
    template: Template, tmp_path: Path, jobs: int
) -> None:
    # One process decodes the next file on a thread of its own while it reads a sheet;
    # several read a file each at once. Either way every entry must be its own file's,
    # in the order the files were given, errors included.
    rng = random.Random(7)
    files: list[Path] = []
    for name in ("c.jpg", "a.jpg", "gone.jpg", "e.jpg", "bad.png", "b.jpg"):
        path = tmp_path / name
        files.append(path)
        if name == "bad.png":
            path.write_bytes(b"\x89PNG broken")
        elif name != "gone.jpg":
            path.write_bytes(degrade(fill_sheet(template, rng)[0], rng)[0])
    rc, batch = _read(tmp_path, *files, jobs=jobs)
    assert rc == 1
    assert list(batch) == [f.name for f in files]
    assert batch["gone.jpg"]["error"]["code"] == "FILE_NOT_FOUND"
    assert batch["bad.png"]["error"]["code"] == "FILE_UNREADABLE"
    for path in files:
        if path.exists() and path.suffix == ".jpg":
            _, alone = _read(tmp_path, path, jobs=1)
            assert batch[path.name] == alone[path.name]


def test_processes_write_the_same_json_as_one_process(template: Template, tmp_path: Path) -> None:
    # Files of the same name in two folders, a PDF of two pages and a broken file.
    import cv2
    import numpy as np

    rng = random.Random(53)
    for folder in ("mon", "tue"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.jpg").write_bytes(degrade(fill_sheet(template, rng)[0], rng)[0])
    (tmp_path / "tue" / "z.png").write_bytes(b"\x89PNG broken")
    doc = pdfium.PdfDocument.new()
    for _ in range(2):
        page = fill_sheet(template, rng)[0]
        gray = np.asarray(cv2.imdecode(np.frombuffer(clean(page), np.uint8), cv2.IMREAD_GRAYSCALE), np.uint8)
        doc.import_pages(pdfium.PdfDocument(image_to_pdf(gray, template.dpi)))
    doc.save(str(tmp_path / "tue" / "class.pdf"))
    inputs = (tmp_path / "mon", tmp_path / "tue")
    rc_one, one = _read(tmp_path, *inputs, jobs=1)
    rc_many, many = _read(tmp_path, *inputs, jobs=4)
    assert (rc_one, rc_many) == (1, 1)
    assert list(one) == ["a.jpg", str(tmp_path / "tue" / "a.jpg"), "class.pdf#1", "class.pdf#2", "z.png"]
    assert json.dumps(many) == json.dumps(one)
    assert one["class.pdf#2"]["student_id"].isdigit()


@pytest.mark.parametrize("jobs", ["-1", "two", "1.5"])
def test_jobs_must_be_a_whole_number(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["read", "--template", TPL, "--jobs", jobs, "x.jpg"])
    assert stop.value.code == 2
    assert "whole number of processes" in capsys.readouterr().err


def test_read_pdf_gives_one_entry_per_page(template: Template, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    pages = []
    truths = []
    for seed in (41, 42):
        page, truth = fill_sheet(template, random.Random(seed))
        pages.append(np.asarray(cv2.imdecode(np.frombuffer(clean(page), np.uint8), cv2.IMREAD_GRAYSCALE), np.uint8))
        truths.append(truth)
    doc = pdfium.PdfDocument.new()
    for img in pages:
        src = pdfium.PdfDocument(image_to_pdf(img, template.dpi))
        doc.import_pages(src)
    pdf = tmp_path / "class.pdf"
    doc.save(str(pdf))
    rc, result = _read(tmp_path, pdf)
    assert rc == 0
    assert list(result) == ["class.pdf#1", "class.pdf#2"]
    for i, truth in enumerate(truths, start=1):
        assert result[f"class.pdf#{i}"]["student_id"] == truth.student_id


def test_pdf_with_no_pages_is_an_error_entry(tmp_path: Path) -> None:
    doc = pdfium.PdfDocument.new()
    pdf = tmp_path / "empty.pdf"
    doc.save(str(pdf))
    rc, result = _read(tmp_path, pdf)
    assert rc == 1
    assert result["empty.pdf"]["error"]["code"] == "PDF_NO_PAGES"


def test_pdf_with_over_300_pages_is_refused_before_reading(tmp_path: Path) -> None:
    doc = pdfium.PdfDocument.new()
    for _ in range(301):
        doc.new_page(595, 842)
    pdf = tmp_path / "huge.pdf"
    doc.save(str(pdf))
    rc, result = _read(tmp_path, pdf)
    assert rc == 1
    assert result == {
        "huge.pdf": {"error": {"code": "PDF_TOO_MANY_PAGES", "message": result["huge.pdf"]["error"]["message"]}}
    }


def test_render_writes_a_pdf_and_a_png(tmp_path: Path) -> None:
    pdf, png = tmp_path / "sheet.pdf", tmp_path / "sheet.png"
    assert main(["render", "--template", TPL, "--out", str(pdf)]) == 0
    assert main(["render", "--template", TPL, "--out", str(png)]) == 0
    assert len(pdfium.PdfDocument(str(pdf))) == 1
    assert png.read_bytes().startswith(b"\x89PNG")


def test_rendered_pdf_reads_back_blank(tmp_path: Path) -> None:
    pdf = tmp_path / "sheet.pdf"
    main(["render", "--template", TPL, "--out", str(pdf)])
    rc, result = _read(tmp_path, pdf)
    assert rc == 0
    assert all(v == [] for v in result["sheet.pdf#1"]["answers"].values())


def test_bad_template_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "t.json"
    bad.write_text('{"format": "nope"}')
    assert main(["read", "--template", str(bad), str(tmp_path)]) == 2
    assert "TEMPLATE_INVALID" in capsys.readouterr().err
