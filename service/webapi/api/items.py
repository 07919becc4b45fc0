from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from webapi.api.responses import errors
from webapi.deps import (
    CurrentUser,
    OptionalStorageDep,
    OwnedItem,
    PaginationDep,
    SessionDep,
    item_not_found,
    unauthorized,
)
from webapi.schemas import ItemCreate, ItemPublic, ItemUpdate, Page
from webapi.services import items as items_service

router = APIRouter(prefix="/items", tags=["items"])


@router.post(
    "",
    response_model=ItemPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Create an item you own",
    responses=errors(400, 401, 413, 503),
)
async def create_item(data: ItemCreate, session: SessionDep, user: CurrentUser) -> ItemPublic:
    try:
        item = await items_service.create_item(session=session, owner=user, data=data)
    except items_service.OwnerGone:
        raise unauthorized("Invalid or expired token") from None
    return ItemPublic.model_validate(item)


@router.get("", response_model=Page[ItemPublic], summary="Your items", responses=errors(401, 503))
async def list_items(session: SessionDep, user: CurrentUser, pagination: PaginationDep) -> Page[ItemPublic]:
    items, total = await items_service.list_items(
        session=session, owner=user, page=pagination.page, per_page=pagination.per_page
    )
    return Page[ItemPublic](
        items=[ItemPublic.model_validate(i) for i in items],
        total=total,
        page=pagination.page,
        per_page=pagination.per_page,
    )


@router.get(
    "/{item_id}", response_model=ItemPublic, summary="One of your items", responses=errors(401, 404, 503)
)
async def read_item(item_id: uuid.UUID, item: OwnedItem) -> ItemPublic:
    return ItemPublic.model_validate(item)


@router.patch(
    "/{item_id}",
    response_model=ItemPublic,
    summary="Change one of your items (absent fields stay; null description clears it)",
    responses=errors(400, 401, 404, 413, 503),
)
async def update_item(
    item_id: uuid.UUID, data: ItemUpdate, item: OwnedItem, session: SessionDep
) -> ItemPublic:
    try:
        updated = await items_service.update_item(session=session, item=item, data=data)
    except items_service.ItemGone:
        raise item_not_found() from None
    return ItemPublic.model_validate(updated)


@router.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one of your items",
    responses=errors(401, 404, 503),
)
async def delete_item(
    item_id: uuid.UUID, item: OwnedItem, session: SessionDep, storage: OptionalStorageDep
) -> Response:
    try:
        await items_service.delete_item(session=session, item=item, storage=storage)
    except items_service.ItemGone:
        raise item_not_found() from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
