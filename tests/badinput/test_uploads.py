"""Uploads tried from outside: bodies cut off mid-way, zip member names, bytes that
cannot be what their name says, two files for one job, and slow clients.

The tests that need a real web server start the ``web`` entry of the ``Procfile`` (the
same command honcho runs in the demo) on a free loopback port, against the test
database, and talk to it over raw sockets: a body cut off is a socket shut mid-body,
a slow upload one that trickles.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from academy.models import AIJob, Exam, OmrBatch, Submission
from academy.rejections import REJECTION_MESSAGES
from academy.services.omr_batches import Upload, omr_batch_create
from tests.badinput import corpus
from workers.omr.render import filled_sheet_jpeg
from workers.omr.template import default_template

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = Path(os.environ.get("ACADEMY_VAR_DIR", "/tmp")) / "web-logs"
SHEET = default_template()


def sheet(student_id: str) -> bytes:
    return filled_sheet_jpeg(SHEET, student_id=student_id, answers={})


def roster_csv(rows: int) -> bytes:
    lines = ["이름,학년,반,연락처"] + [f"학생{i},3,A,010-1234-{i % 10000:04d}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------- the real web server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebServer:
    """The Procfile's ``web`` command on a loopback port, against the test database."""

    def __init__(self) -> None:
        self.port = _free_port()
        line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
        db = settings.DATABASES["default"]
        env = dict(os.environ)
        env.update(
            WEB_BIND=f"127.0.0.1:{self.port}",
            DJANGO_SETTINGS_MODULE="tests.settings",
            DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / "web.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["bash", "-c", "exec " + line.split(":", 1)[1].strip()],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web server exited; see {self.log_path}")
            try:
                if requests.get(self.url("/api/schema/"), timeout=5).status_code:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"the web server did not answer within 60 s; see {self.log_path}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def web(django_db_setup: Any, django_db_blocker: Any) -> Iterator[WebServer]:
    server = WebServer()
    try:
        yield server
    finally:
        server.stop()


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[str, bytes]:
    """(content type, body) for (field, file name or None, value) parts, in that order."""
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    for name, filename, value in parts:
        body.write(f"--{boundary}\r\n".encode())
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body.write(f"Content-Disposition: {disposition}\r\n".encode())
        if filename:
            body.write(b"Content-Type: application/octet-stream\r\n")
        body.write(b"\r\n" + value + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", body.getvalue()


def _request_head(path: str, token: str, content_type: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def post_cut_off(
    web: WebServer, path: str, token: str, parts: list[tuple[str, str | None, bytes]], *, sent: float
) -> Any:
    """POST a body that says its full length but stops after ``sent`` of it (the client's
    side of the socket is shut). Returns (status, JSON body) of the answer."""
    content_type, body = multipart(parts)
    with socket.create_connection(("127.0.0.1", web.port), timeout=60) as sock:
        sock.sendall(_request_head(path, token, content_type, len(body)))
        sock.sendall(body[: int(len(body) * sent)])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"chunked" in head.lower():  # de-chunk: size line, data, CRLF ... 0
        data, pos = b"", 0
        while (end := rest.find(b"\r\n", pos)) >= 0 and (size := int(rest[pos:end], 16)):
            data += rest[end + 2 : end + 2 + size]
            pos = end + 2 + size + 2
        rest = data
    return status, json.loads(rest)


def post_whole(web: WebServer, path: str, token: str, parts: list[tuple[str, str | None, bytes]]) -> Any:
    content_type, body = multipart(parts)
    headers = {"Authorization": f"Token {token}", "Content-Type": content_type}
    return requests.post(web.url(path), data=body, headers=headers, timeout=120)


# --------------------------------------------------------------------------- cut-off uploads


def test_a_cut_off_batch_upload_creates_nothing_and_its_retry_makes_the_whole_batch_once(
    web: WebServer, make_tenant: Any, api_for: Any
) -> None:
    _, token = make_tenant()
    exam_id = api_for(token).post("/api/v1/exams/", {"title": "t"}, format="json").json()["exam_id"]
    path = f"/api/v1/exams/{exam_id}/omr-batches/"
    # Six sheets, then the key: sent last, as a form serialiser may well do.
    parts: list[tuple[str, str | None, bytes]] = [("files", f"scan-{n}.jpg", sheet(f"2026{n:04d}")) for n in range(6)]
    parts.append(("idempotency_key", None, b"class-3-1"))

    status, body = post_cut_off(web, path, token, parts, sent=0.55)
    assert (status, body["rejection_code"]) == (400, "UPLOAD_INTERRUPTED"), body
    assert body["error"]  # a Korean message saying to send it all again
    assert (OmrBatch.objects.count(), Submission.objects.count(), AIJob.objects.count()) == (0, 0, 0)

    first = post_whole(web, path, token, parts)
    assert first.status_code == 201, first.text
    assert (first.json()["total_sheets"], first.json()["skipped"]) == (6, [])
    again = post_whole(web, path, token, parts)
    assert (again.status_code, again.json()["batch_id"]) == (200, first.json()["batch_id"])
    assert (OmrBatch.objects.count(), Submission.objects.count(), AIJob.objects.count()) == (1, 6, 6)


def test_a_body_cut_inside_a_part_header_is_refused_as_interrupted(
    web: WebServer, make_tenant: Any, api_for: Any
) -> None:
    _, token = make_tenant()
    exam_id = api_for(token).post("/api/v1/exams/", {"title": "t"}, format="json").json()["exam_id"]
    parts: list[tuple[str, str | None, bytes]] = [("files", "scan.jpg", sheet("20260001"))]
    status, body = post_cut_off(web, f"/api/v1/exams/{exam_id}/omr-batches/", token, parts, sent=0.0005)
    assert (status, body["rejection_code"]) == (400, "UPLOAD_INTERRUPTED"), body
    assert not OmrBatch.objects.exists()


def test_a_cut_off_job_upload_creates_no_job(web: WebServer, make_tenant: Any) -> None:
    _, token = make_tenant()
    parts: list[tuple[str, str | None, bytes]] = [
        ("job_type", None, b"excel_parsing"),
        ("file", "roster.csv", roster_csv(3000)),  # cut inside the rows: still a valid CSV
        ("idempotency_key", None, b"roster-1"),
    ]
    status, body = post_cut_off(web, "/api/v1/jobs/", token, parts, sent=0.5)
    assert (status, body["rejection_code"]) == (400, "UPLOAD_INTERRUPTED"), body
    assert not AIJob.objects.exists()
    whole = post_whole(web, "/api/v1/jobs/", token, parts)
    assert whole.status_code == 202, whole.text
    assert AIJob.objects.count() == 1


def test_an_upload_that_fails_midway_is_never_graded_and_its_retry_makes_the_whole_batch(
    eager: None, make_tenant: Any, api_for: Any
) -> None:
    tenant, token = make_tenant()
    exam_id = api_for(token).post("/api/v1/exams/", {"title": "t"}, format="json").json()["exam_id"]
    exam = Exam.objects.get(pk=exam_id)
    scans = [Upload(f"scan-{n}.jpg", sheet(f"2026{n:04d}")) for n in range(5)]

    def dies_after_three() -> Iterator[Upload]:
        yield from scans[:3]
        raise OSError("the web process lost its upload")  # a worker killed, a disk error...

    with pytest.raises(OSError, match="lost its upload"):
        omr_batch_create(tenant=tenant, exam=exam, uploads=dies_after_three(), idempotency_key="k")
    [part] = OmrBatch.objects.all()
    # Its saved sheets were read (eagerly, here), but part of the class is not the class.
    assert 0 < part.submissions.count() < 5
    assert (part.sealed_at, part.graded_at, part.interrupted_at is not None) == (None, None, True)
    assert part.skipped[-1]["code"] == "UPLOAD_INTERRUPTED"

    whole, created = omr_batch_create(tenant=tenant, exam=exam, uploads=scans, idempotency_key="k")
    assert created
    assert whole.pk != part.pk
    whole.refresh_from_db()
    part.refresh_from_db()
    assert (whole.total_sheets, whole.graded_at is not None) == (5, True)
    assert (part.graded_at, part.idempotency_key) == (None, None)  # gave its key to the whole batch
    again, created = omr_batch_create(tenant=tenant, exam=exam, uploads=scans, idempotency_key="k")
    assert (again.pk, created) == (whole.pk, False)


# --------------------------------------------------------------------------- zip member names


def test_every_zip_member_is_read_under_a_safe_name_or_listed_with_a_reason(
    eager: None, make_tenant: Any, api_for: Any
) -> None:
    _, token = make_tenant()
    api = api_for(token)
    exam_id = api.post("/api/v1/exams/", {"title": "t"}, format="json").json()["exam_id"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("./3-1/", b"")  # a directory entry: holds no file
        zf.writestr("./3-1/scan-2.jpg", sheet("20260002"))
        zf.writestr("../scan-3.jpg", sheet("20260003"))
        zf.writestr("/abs/scan-4.jpg", sheet("20260004"))
        zf.writestr("win\\scan-5.jpg", sheet("20260005"))
        zf.writestr("3-1/scan-2.jpg", sheet("20260006"))  # the same name once normalised
        zf.writestr("notes.txt", b"not a sheet")
        zf.writestr("inner.jpg", corpus.zip_bytes({"x.jpg": b"x"}))  # a zip under an image's name
        zf.writestr(".hidden.jpg", sheet("20260007"))
        zf.writestr("../", b"")  # nothing left of the name but a directory
    upload = SimpleUploadedFile("class.zip", buffer.getvalue())
    response = api.post(f"/api/v1/exams/{exam_id}/omr-batches/", {"files": [upload]}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    sheets = {s["sheet"]: s["student_id"] for s in body["sheets"]}
    assert sheets == {
        "class.zip/3-1/scan-2.jpg": "20260002",
        "class.zip/3-1/scan-2 (2).jpg": "20260006",
        "class.zip/scan-3.jpg": "20260003",
        "class.zip/abs/scan-4.jpg": "20260004",
        "class.zip/win/scan-5.jpg": "20260005",
    }
    skipped = {s["name"]: s["code"] for s in body["skipped"]}
    assert skipped == {
        "class.zip/notes.txt": "INVALID_FORMAT",
        "class.zip/inner.jpg": "INVALID_FORMAT",
        "class.zip/.hidden.jpg": "INVALID_FORMAT",
    }
    assert all(s["message"] for s in body["skipped"])


# --------------------------------------------------------------------------- files checked at dispatch


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


LIES = [
    ("text-named-jpg", "ocr", "note.jpg", b"this is a text file, not a photo\n" * 20, "FILE_UNREADABLE"),
    ("truncated-jpeg", "ocr", "scan.jpg", sheet("20260001")[:20000], "FILE_UNREADABLE"),
    ("truncated-jpeg-omr", "omr_grading", "scan.jpg", sheet("20260001")[:20000], "FILE_UNREADABLE"),
    ("png-header-20000x20000", "ocr", "huge.png", _png_header(20000, 20000), "IMAGE_TOO_LARGE"),
    ("png-header-20000x20000-omr", "omr_grading", "huge.png", _png_header(20000, 20000), "IMAGE_TOO_LARGE"),
    ("zip-named-xlsx", "excel_parsing", "roster.xlsx", corpus.zip_bytes({"a.txt": b"hi"}), "INVALID_FORMAT"),
    ("text-named-mp4", "homework_video_analysis", "hw.mp4", b"not a video at all" * 10, "INVALID_FORMAT"),
    ("png-named-mp4", "homework_video_analysis", "hw.mp4", _png_header(640, 480), "INVALID_FORMAT"),
    ("cut-pdf", "omr_grading", "scan.pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n" * 10, "FILE_UNREADABLE"),
    # Large enough that only its two ends are read (a PDF is checked once per page).
    (
        "cut-pdf-large",
        "omr_grading",
        "scan.pdf",
        b"%PDF-1.7\n" + b"1 0 obj\n<<>>\nendobj\n" * 20_000,
        "FILE_UNREADABLE",
    ),
]


@pytest.mark.parametrize("tier", ["basic", "premium"])
@pytest.mark.parametrize(("name", "job_type", "filename", "data", "code"), LIES, ids=[c[0] for c in LIES])
def test_bytes_that_cannot_be_what_they_claim_are_refused_at_dispatch_on_every_tier(
    make_tenant: Any, api_for: Any, tier: str, name: str, job_type: str, filename: str, data: bytes, code: str
) -> None:
    if job_type == "ocr" and shutil.which("tesseract") is None:
        pytest.skip("ocr is refused with BACKEND_NOT_CONFIGURED before its file is looked at")
    _, token = make_tenant(premium=True, fallback=True)  # premium: nothing gated, and a GPU to fall back to
    payload = {"template": SHEET.to_dict()} if job_type == "omr_grading" else {}
    request = {
        "job_type": job_type,
        "tier": tier,
        "payload": json.dumps(payload),
        "file": SimpleUploadedFile(filename, data),
    }
    response = api_for(token).post("/api/v1/jobs/", request, format="multipart")
    body = response.json()
    assert (response.status_code, body["rejection_code"]) == (400, code), body
    assert body["error"] == REJECTION_MESSAGES[code]
    assert not AIJob.objects.exists()


def test_a_real_workbook_and_a_real_video_header_still_pass_the_check() -> None:
    from workers import filecheck

    workbook = corpus.zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
    filecheck.content_check(workbook, extension=".xlsx")
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x08free"
    filecheck.content_check(mp4, extension=".mp4")
    filecheck.content_check(sheet("20260001"), extension=".jpg")


# --------------------------------------------------------------------------- two files for one job


def test_two_file_parts_for_one_job_are_refused_not_the_last_one_kept(make_tenant: Any, api_for: Any) -> None:
    _, token = make_tenant()
    request = {
        "job_type": "excel_parsing",
        "file": [SimpleUploadedFile("a.csv", roster_csv(2)), SimpleUploadedFile("b.csv", roster_csv(3))],
    }
    response = api_for(token).post("/api/v1/jobs/", request, format="multipart")
    body = response.json()
    assert (response.status_code, body["rejection_code"]) == (400, "INVALID_PAYLOAD"), body
    assert "파일 하나" in body["error"]
    assert not AIJob.objects.exists()


# --------------------------------------------------------------------------- slow clients, static files


def test_a_get_answers_within_200_ms_while_four_uploads_trickle_in(web: WebServer, make_tenant: Any) -> None:
    _, token = make_tenant()
    headers = {"Authorization": f"Token {token}"}
    requests.get(web.url("/api/v1/jobs/"), headers=headers, timeout=10).raise_for_status()  # warm
    content_type, body = multipart([("job_type", None, b"excel_parsing"), ("file", "r.csv", roster_csv(4000))])
    stop = threading.Event()
    started = threading.Barrier(5)

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
            sock.sendall(_request_head("/api/v1/jobs/", token, content_type, len(body)))
            started.wait()
            for i in range(80):  # at most 8 s; a slow phone on a bad line
                if stop.is_set():
                    break
                sock.sendall(body[i * 64 : (i + 1) * 64])
                time.sleep(0.1)
            # Then it gives up: the server refuses the cut body, nothing is created.

    senders = [threading.Thread(target=trickle) for _ in range(4)]
    for sender in senders:
        sender.start()
    started.wait()
    time.sleep(1.0)  # every upload is in the server now, waiting for its body
    took = []
    try:
        for _ in range(5):
            t0 = time.monotonic()
            try:
                requests.get(web.url("/api/v1/jobs/"), headers=headers, timeout=5).raise_for_status()
                took.append(time.monotonic() - t0)
            except requests.Timeout:
                took.append(5.0)
            time.sleep(0.1)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=15)
    print(f"GET while 4 uploads trickle: {', '.join(f'{t * 1000:.0f} ms' for t in took)}")
    assert statistics.median(took) < 0.2, took
    assert max(took) < 1.0, took
    assert not AIJob.objects.exists()


def test_the_admin_gets_its_css_from_the_web_server(web: WebServer) -> None:
    response = requests.get(web.url("/static/admin/css/base.css"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert b"body" in response.content


def test_the_demo_prints_the_flower_password_and_the_shaken_scans_codes_as_the_readme_says(
    eager: None, settings: Any
) -> None:
    from django.core.management import call_command

    settings.FLOWER_BASIC_AUTH = "demo:s3cret-word"
    out = io.StringIO()
    call_command("demo", wait=60, stdout=out)
    printed = out.getvalue()
    assert "user demo, password s3cret-word" in printed
    [lineage] = [line for line in printed.splitlines() if line.startswith("scan-4-shaky.jpg: ")]
    # Basic's gate refuses it, premium's reader refuses it with a code of its own.
    expected = "basic FALLBACK_TO_GPU BLUR_OR_SHAKE -> premium REJECTED_BAD_INPUT "
    assert lineage.startswith(f"scan-4-shaky.jpg: {expected}"), lineage
    assert lineage.rsplit(" ", 1)[1] in REJECTION_MESSAGES
    assert f"`{expected}<code>`" in (ROOT / "README.md").read_text()


def test_a_large_file_is_read_by_its_two_ends_for_the_check(settings: Any, tmp_path: Path) -> None:
    from academy import storage

    settings.MEDIA_ROOT = str(tmp_path)
    data = b"%PDF-1.7\n" + bytes(500_000) + b"\n%%EOF\n"
    path = "tenants/x/uploads/a/class.pdf"
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_bytes(data)
    ends = storage.file_read_ends(path, head=64 * 1024, tail=2048)
    assert ends == data[: 64 * 1024] + data[-2048:]
