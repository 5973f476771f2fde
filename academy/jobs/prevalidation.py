"""Pre-validation: bad input is refused with a code before any job row exists.

Structural checks (payload shape, job type, processor parameters, the input file's
path, presence, size and extension) apply to every tier: no pool should be handed a
job that cannot start. The quality gate on what the client declares (OMR photos,
sizes and durations, content types) applies to lite and basic, whose no-fail policy would
otherwise turn a hopeless input into a "DONE" nobody can use; so does the measured one,
on the image itself, for processors that declare ``quality_gate``. What the file's
bytes show at once (its real format, a cut end, the pixel count in its header, a zip
that is no workbook: ``workers.filecheck``) is checked on every tier.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from django.conf import settings

from academy import policies, storage
from academy.models import Tenant
from academy.rejections import Rejection
from academy.states import NO_FAIL_TIERS
from workers import registry
from workers.base import BadInput

ALLOWED_CONTENT_TYPES = frozenset(
    {
        "image/jpeg", "image/jpg", "image/png", "image/webp", "image/tiff",
        "video/mp4", "video/quicktime",
        "application/pdf", "application/zip", "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)  # fmt: skip


def payload_check(payload: Any, *, job_type: str | None = None) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise Rejection("INVALID_PAYLOAD", "payload must be a JSON object")
    try:
        size = len(json.dumps(payload, ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise Rejection("INVALID_PAYLOAD", f"payload is not JSON-serialisable: {exc}") from exc
    spec = policies.JOB_TYPES.get(job_type or "")
    limit = (spec.max_payload_bytes if spec else None) or settings.MAX_PAYLOAD_BYTES
    if size > limit:
        raise Rejection("PAYLOAD_TOO_LARGE", f"payload is {size} bytes; the limit is {limit}")
    return payload


def job_type_check(job_type: Any) -> str:
    # Look the processor up first: that loads plug-ins, which may add job types.
    processor = registry.get(job_type) if isinstance(job_type, str) else None
    if not isinstance(job_type, str) or job_type not in policies.JOB_TYPES:
        raise Rejection("UNKNOWN_JOB_TYPE", f"unknown job type {job_type!r}")
    if processor is None:
        raise Rejection("JOB_TYPE_NOT_AVAILABLE", f"{job_type} has no processor in this build yet")
    return job_type


def _quality_gate(*, job_type: str, payload: dict[str, Any], max_mb: int) -> None:
    """The lite/basic gate, on the values a client declares (mode, size, duration, content type)."""
    if job_type == "omr_grading" and str(payload.get("mode") or "").lower() in {"photo", "video"}:
        raise Rejection("OMR_PHOTO_NOT_ALLOWED", "basic reads scans only")
    size_mb = payload.get("file_size_mb")
    if size_mb is None and payload.get("file_size_bytes") is not None:
        try:
            size_mb = int(payload["file_size_bytes"]) / (1024 * 1024)
        except (TypeError, ValueError):
            raise Rejection("INVALID_PAYLOAD", "file_size_bytes must be an integer") from None
    if size_mb is not None:
        try:
            too_big = float(size_mb) > max_mb
        except (TypeError, ValueError):
            raise Rejection("INVALID_PAYLOAD", "file_size_mb must be a number") from None
        if too_big:
            raise Rejection("FILE_TOO_LARGE", f"declared {size_mb} MB; the limit is {max_mb} MB")
    if job_type == "homework_video_analysis" and payload.get("duration_seconds") is not None:
        try:
            too_long = float(payload["duration_seconds"]) > 600
        except (TypeError, ValueError):
            raise Rejection("INVALID_PAYLOAD", "duration_seconds must be a number") from None
        if too_long:
            raise Rejection("VIDEO_TOO_LONG", "videos are limited to 600 s")
    content_type = str(payload.get("content_type") or payload.get("file_type") or "").strip().lower()
    if content_type and content_type not in ALLOWED_CONTENT_TYPES:
        raise Rejection("INVALID_FORMAT", f"content type {content_type} is not accepted")


def input_file_check(
    *, job_type: str, payload: dict[str, Any], tenant: Tenant | None, max_mb: int
) -> storage.StoredFile | None:
    processor = registry.get(job_type)
    assert processor is not None
    key = processor.input_key
    if key is None:
        return None
    path = payload.get(key)
    if not path:
        raise Rejection("FILE_REQUIRED", f"payload.{key} is required")
    try:
        stored = storage.file_check(path, tenant=tenant)
    except storage.StorageRejection as exc:
        raise Rejection(exc.code, str(exc)) from exc
    if stored.size == 0:
        raise Rejection("EMPTY_FILE", f"{stored.path} is empty")
    if stored.size > max_mb * 1024 * 1024:
        raise Rejection("FILE_TOO_LARGE", f"{stored.size} bytes; the limit is {max_mb} MB")
    extension = posixpath.splitext(stored.path)[1].lower()
    if processor.extensions and extension not in processor.extensions:
        raise Rejection("INVALID_FORMAT", f"{extension or 'no extension'} is not one of {sorted(processor.extensions)}")
    return stored


def prevalidate(*, job_type: str, tier: str, payload: dict[str, Any], tenant: Tenant | None) -> None:
    """Raise :class:`Rejection` for input no pool should get. ``job_type`` is checked."""
    spec = policies.JOB_TYPES[job_type]
    if tier in NO_FAIL_TIERS:
        _quality_gate(job_type=job_type, payload=payload, max_mb=spec.max_file_mb)
    processor = registry.get(job_type)
    assert processor is not None
    try:
        processor.validate(payload)
    except BadInput as exc:
        raise Rejection(exc.code, exc.message) from exc
    stored = input_file_check(job_type=job_type, payload=payload, tenant=tenant, max_mb=spec.max_file_mb)
    if stored is None:
        return
    if tier in NO_FAIL_TIERS and getattr(processor, "quality_gate", False) and _is_image(stored):
        # The gate decodes the image through the guarded decoder, whose header,
        # format and truncation checks are the content check's: one read, not two.
        image_quality_check(stored)
        return
    file_content_check(stored)


def _is_image(stored: storage.StoredFile) -> bool:
    from workers.omr.bundle import IMAGE_EXTENSIONS

    return posixpath.splitext(stored.path)[1].lower() in IMAGE_EXTENSIONS


def file_content_check(stored: storage.StoredFile) -> None:
    """What the bytes show at once, whatever the name claims (``workers.filecheck``)."""
    from workers import filecheck

    extension = posixpath.splitext(stored.path)[1].lower()
    plan = filecheck.read_plan(extension)
    if plan is None or plan[0] + plan[1] >= stored.size:
        data = storage.file_read(stored.path)
    else:
        data = storage.file_read_ends(stored.path, head=plan[0], tail=plan[1])
    try:
        filecheck.content_check(data, extension=extension)
    except BadInput as exc:
        raise Rejection(exc.code, exc.message) from exc


def image_quality_check(stored: storage.StoredFile) -> None:
    """Decode the actual image and measure it (size, blur, darkness): lite and basic.

    A PDF is measured page by page by the worker instead: drawing every page here would
    put a whole batch's rasterising on the web process.
    """
    from workers.imagecheck import quality_check
    from workers.omr.bundle import IMAGE_EXTENSIONS

    if posixpath.splitext(stored.path)[1].lower() not in IMAGE_EXTENSIONS:
        return
    try:
        quality_check(storage.file_read(stored.path))
    except BadInput as exc:
        raise Rejection(exc.code, exc.message) from exc


def input_key_for(job_type: str) -> str | None:
    """The payload key an uploaded file's path goes under, for API uploads."""
    processor = registry.get(job_type) if job_type in policies.JOB_TYPES else None
    return processor.input_key if processor is not None else None
