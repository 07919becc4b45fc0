"""What every storage backend offers: presigned uploads and downloads, and deletion.

The object key is always chosen by the server; the client's filename travels only as
metadata and in the Content-Disposition of downloads.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol
from urllib.parse import quote

# RFC 8187 attr-char, less the ones `quote` always keeps (letters, digits, "_.-~").
_ATTR_CHARS = "!#$&+^`|"


class StorageError(Exception):
    """The object store (or the service that signs for it) could not be reached or refused."""


@dataclass(frozen=True)
class UploadTicket:
    """How a client uploads one object: a form POST (S3, local) or a PUT (GCS)."""

    method: Literal["POST", "PUT"]
    url: str
    expires_at: datetime
    fields: dict[str, str] = field(default_factory=dict)  # form fields to send before the file
    headers: dict[str, str] = field(default_factory=dict)  # headers the PUT must carry


class Storage(Protocol):
    async def presign_upload(
        self, *, key: str, content_type: str, size: int, filename: str
    ) -> UploadTicket: ...

    async def presign_download(
        self, *, key: str, filename: str, content_type: str
    ) -> tuple[str, datetime]: ...

    async def delete(self, key: str) -> None: ...


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact one (RFC 6266 / RFC 8187).

    Format characters (Unicode Cf: right-to-left overrides, zero-width joiners...) are left out:
    "invoice\u202efdp.exe" must not show up as "invoiceexe.pdf" in a save dialog."""
    filename = "".join(c for c in filename if unicodedata.category(c) != "Cf")
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe=_ATTR_CHARS)}"
