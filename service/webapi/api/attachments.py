"""Files attached to items: the API hands out presigned URLs, the bytes never pass through it
(except with the local backend, where the app plays the object store).

The routes are registered per app by :func:`routers_for`, because two things depend on the
settings: the local backend's own routes, and the size limit the OpenAPI document states.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urljoin

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError

from webapi.api.responses import errors
from webapi.config import Settings
from webapi.deps import OptionalStorageDep, OwnedItem, SessionDep, SettingsDep, item_not_found
from webapi.schemas import (
    AttachmentCreate,
    AttachmentDownload,
    AttachmentPublic,
    AttachmentUpload,
    ErrorResponse,
    UploadInstructions,
)
from webapi.services import attachments as attachments_service
from webapi.services.items import ItemGone
from webapi.storage import Storage, StorageError, local_routes

NOT_ENABLED = "attachments are not enabled"


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    declared = errors(*codes)
    # 404 also answers every attachment route while STORAGE_BACKEND is unset.
    declared[404] = {"model": ErrorResponse, "description": f"Not found (or not yours), or {NOT_ENABLED}"}
    if 503 in declared:
        declared[503] = {"model": ErrorResponse, "description": "Database or object storage unavailable"}
    return declared


async def get_storage(storage: OptionalStorageDep, settings: SettingsDep) -> Storage:
    """The process's storage backend (built once in startup). A 404 while the feature is off:
    the routes stay in the OpenAPI document and say why they find nothing."""
    if settings.storage_backend is None or storage is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_ENABLED)
    return storage


StorageDep = Annotated[Storage, Depends(get_storage)]


def _unavailable() -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, "Storage unavailable, retry later", headers={"Retry-After": "5"}
    )


def _absolute(request: Request, url: str) -> str:
    # The local backend's URLs are relative to the app's root (root_path included).
    return urljoin(str(request.base_url), url)


async def create_attachment(
    *,
    storage: StorageDep,
    item_id: uuid.UUID,
    data: AttachmentCreate,
    item: OwnedItem,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> AttachmentUpload:
    try:
        attachment, ticket = await attachments_service.create_attachment(
            session=session,
            storage=storage,
            item=item,
            data=data,
            prefix=settings.uploads_prefix,
            max_bytes=settings.upload_max_bytes,
        )
    except attachments_service.UploadTooLarge as exc:
        # The limit is in the OpenAPI schema (see routers_for): a 422 like any other bound.
        problem = {"type": "less_than_equal", "loc": ("body", "size"), "msg": str(exc), "input": data.size}
        raise RequestValidationError([problem]) from None
    except ItemGone:
        raise item_not_found() from None
    except attachments_service.TooManyAttachments:
        limit = attachments_service.MAX_ATTACHMENTS_PER_ITEM
        raise HTTPException(status.HTTP_409_CONFLICT, f"An item holds at most {limit} attachments") from None
    except StorageError as exc:
        raise _unavailable() from exc
    return AttachmentUpload(
        **AttachmentPublic.model_validate(attachment).model_dump(),
        upload=UploadInstructions(
            method=ticket.method,
            url=_absolute(request, ticket.url),
            fields=ticket.fields,
            headers=ticket.headers,
            expires_at=ticket.expires_at,
        ),
    )


async def list_attachments(
    *, storage: StorageDep, item_id: uuid.UUID, item: OwnedItem, session: SessionDep, request: Request
) -> list[AttachmentDownload]:
    attachments = await attachments_service.list_attachments(session=session, item=item)
    try:
        links = await attachments_service.download_links(storage=storage, attachments=attachments)
    except StorageError as exc:
        raise _unavailable() from exc
    return [
        AttachmentDownload(
            **AttachmentPublic.model_validate(attachment).model_dump(),
            download_url=_absolute(request, url),
            expires_at=expires_at,
        )
        for attachment, url, expires_at in links
    ]


async def delete_attachment(
    *, storage: StorageDep, item_id: uuid.UUID, attachment_id: uuid.UUID, item: OwnedItem, session: SessionDep
) -> Response:
    attachment = await attachments_service.get_attachment(
        session=session, item=item, attachment_id=attachment_id
    )
    try:
        if attachment is None:
            raise attachments_service.AttachmentGone
        await attachments_service.delete_attachment(session=session, storage=storage, attachment=attachment)
    except attachments_service.AttachmentGone:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Attachment not found") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _size_limit_schema(max_bytes: int) -> dict[str, Any]:
    """Merged into the POST's request body schema: this deployment's UPLOAD_MAX_BYTES."""
    size = {"maximum": max_bytes, "description": f"Exact size in bytes, at most {max_bytes}"}
    return {"requestBody": {"content": {"application/json": {"schema": {"properties": {"size": size}}}}}}


def routers_for(settings: Settings) -> list[APIRouter]:
    """The attachment routes, and with the local backend the routes that play the object store.
    A list, not one router including the other: FastAPI re-analyses every route of a router
    nested without a prefix when that router is included, work the app's startup can skip."""
    router = APIRouter(prefix="/items/{item_id}/attachments", tags=["attachments"])
    router.add_api_route(
        "",
        create_attachment,
        methods=["POST"],
        response_model=AttachmentUpload,
        status_code=status.HTTP_201_CREATED,
        summary="Attach a file to one of your items: returns where to upload it",
        responses=_responses(400, 401, 409, 413, 503),
        openapi_extra=_size_limit_schema(settings.upload_max_bytes),
    )
    router.add_api_route(
        "",
        list_attachments,
        methods=["GET"],
        response_model=list[AttachmentDownload],
        summary="The files attached to one of your items, each with a download link",
        responses=_responses(401, 503),
    )
    router.add_api_route(
        "/{attachment_id}",
        delete_attachment,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Remove a file from one of your items",
        responses=_responses(401, 503),
    )
    return [router, local_routes.router] if settings.storage_backend == "local" else [router]
