"""Where job input files and artifacts live: Django's default storage, per tenant.

Every path a job may name sits under ``tenants/<slug>/``. A payload path is checked
against that prefix and against the storage root (``..``, absolute paths and symlinks
that leave the root are refused), so one academy can never point a job at another's
file.
"""

from __future__ import annotations

import logging
import posixpath
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from academy.models import Tenant

logger = logging.getLogger(__name__)


class StorageRejection(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def tenant_prefix(tenant: Tenant | None) -> str:
    return f"tenants/{tenant.slug}/" if tenant is not None else "tenants/_system/"


@dataclass(frozen=True)
class StoredFile:
    path: str
    size: int


def _clean(path: str) -> str:
    if not isinstance(path, str) or not path or "\x00" in path:
        raise StorageRejection("INVALID_PATH", "path must be a non-empty string")
    if path.startswith(("/", "\\")) or ":" in path.split("/")[0]:
        raise StorageRejection("INVALID_PATH", "absolute paths are not allowed")
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal.startswith("..") or "/../" in f"/{normal}/":
        raise StorageRejection("INVALID_PATH", "path leaves the storage root")
    return normal


def file_check(path: str, *, tenant: Tenant | None) -> StoredFile:
    """The stored file behind a payload path, or a StorageRejection with a code."""
    normal = _clean(path)
    if not normal.startswith(tenant_prefix(tenant)):
        raise StorageRejection("INVALID_PATH", "path is outside the tenant's files")
    try:
        local = default_storage.path(normal)
    except SuspiciousFileOperation as exc:
        raise StorageRejection("INVALID_PATH", str(exc)) from exc
    except NotImplementedError:  # remote storage: no local path, no symlinks to follow
        local = None
    if local is not None:
        root = Path(default_storage.path("")).resolve()
        real = Path(local).resolve()
        if root not in real.parents:
            raise StorageRejection("INVALID_PATH", "path resolves outside the storage root")
        if not real.is_file():
            raise StorageRejection("FILE_NOT_FOUND", f"no file at {normal}")
        return StoredFile(normal, real.stat().st_size)
    if not default_storage.exists(normal):
        raise StorageRejection("FILE_NOT_FOUND", f"no file at {normal}")
    return StoredFile(normal, default_storage.size(normal))


def file_read(path: str) -> bytes:
    with default_storage.open(path, "rb") as fh:
        data: bytes = fh.read()
    return data


def file_read_ends(path: str, *, head: int, tail: int) -> bytes:
    """The stored file's first ``head`` and last ``tail`` bytes, joined (the file is
    longer than both): what a format check needs of a large file, without reading it."""
    with default_storage.open(path, "rb") as fh:
        data: bytes = fh.read(head)
        if tail:
            fh.seek(-tail, 2)
            data += fh.read(tail)
    return data


def upload_save(*, tenant: Tenant, name: str, data: bytes) -> str:
    """Store an uploaded file under the tenant's prefix and return its storage path."""
    base = posixpath.basename(name.replace("\\", "/")) or "upload"
    path = f"{tenant_prefix(tenant)}uploads/{uuid.uuid4().hex}/{base}"
    return str(default_storage.save(path, ContentFile(data)))


def artifact_save(*, tenant: Tenant | None, job_id: str, name: str, data: bytes, run: str = "") -> str:
    """Store a job's file. With ``run`` (the run's lease token) it goes in a folder of
    that run's own, so a run can write before it knows it still owns the job."""
    base = posixpath.basename(name) or "artifact"
    folder = f"{tenant_prefix(tenant)}artifacts/{job_id}/"
    path = f"{folder}{posixpath.basename(run)}/{base}" if run else f"{folder}{base}"
    if default_storage.exists(path):  # a re-run of the same job replaces its artifact
        default_storage.delete(path)
    return str(default_storage.save(path, ContentFile(data)))


def artifacts_delete(paths: list[str]) -> None:
    """Remove files no row points at any more (best effort: a leftover file is harmless)."""
    for path in paths:
        try:
            default_storage.delete(path)
        except OSError:
            logger.warning("artifact_delete_failed path=%s", path)


# --- signed, expiring download links -------------------------------------------------------

_SIGNING_SALT = "academy.storage.download"


def download_token(*, artifact_id: int) -> str:
    """An opaque token for one artifact; :func:`download_resolve` accepts it for a while."""
    from django.core import signing

    return signing.TimestampSigner(salt=_SIGNING_SALT).sign_object({"a": artifact_id}, compress=True)


def download_resolve(token: str, *, max_age: float) -> int | None:
    """The artifact id behind a token, or None when it is forged or expired."""
    from django.core import signing

    try:
        value = signing.TimestampSigner(salt=_SIGNING_SALT).unsign_object(token, max_age=max_age)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    artifact_id = value.get("a") if isinstance(value, dict) else None
    return artifact_id if isinstance(artifact_id, int) else None
