"""The routes that stand in for the object store when STORAGE_BACKEND=local.

Registered only with the local backend, and left out of the OpenAPI document: clients
never call them by name, they follow the URLs the attachment routes hand out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import FileResponse
from starlette.datastructures import FormData, UploadFile

from webapi.deps import OptionalStorageDep
from webapi.storage.base import content_disposition
from webapi.storage.local import LocalStorage, SignatureError, UploadRejected

PREFIX = "/storage/local"
UPLOAD_PATH = f"{PREFIX}/upload"  # under the API prefix
router = APIRouter(prefix=PREFIX, tags=["storage"], include_in_schema=False)

_FORBIDDEN = "Upload refused: the signature is invalid or expired"


async def get_local_storage(storage: OptionalStorageDep) -> LocalStorage:
    if not isinstance(storage, LocalStorage):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    return storage


LocalStorageDep = Annotated[LocalStorage, Depends(get_local_storage)]


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Form field {name!r} is missing")
    return value


@router.post("/upload", status_code=status.HTTP_204_NO_CONTENT, response_model=None)
async def upload(request: Request, storage: LocalStorageDep) -> None:
    """A form POST as S3 takes it: key, Content-Type, policy, signature, then the file."""
    async with request.form(max_files=1, max_fields=16) as form:
        try:
            policy = storage.verify_policy(_field(form, "policy"), _field(form, "signature"))
        except SignatureError:
            raise HTTPException(status.HTTP_403_FORBIDDEN, _FORBIDDEN) from None
        if _field(form, "key") != policy.key:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Upload refused: the key is not the signed one")
        if _field(form, "Content-Type") != policy.content_type:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "Upload refused: the Content-Type is not the signed one"
            )
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Form field 'file' is missing")
        try:
            await storage.write(policy, file.file)
        except UploadRejected as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"Upload refused: {exc}") from None


@router.get("/{token}")
async def download(token: str, storage: LocalStorageDep) -> FileResponse:
    try:
        grant = storage.verify_download_token(token)
        path = storage.path_for(grant.key)
    except SignatureError:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "The link is invalid or expired") from None
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not uploaded yet")
    return FileResponse(
        path,
        media_type=grant.content_type,
        headers={
            "Content-Disposition": content_disposition(grant.filename),
            # User content served from the API's origin: never sniffed, never active.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )
