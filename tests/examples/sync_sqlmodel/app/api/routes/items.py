from fastapi import APIRouter
from sqlmodel import select

from app.api.deps import SessionDep
from app.models import Item, ItemCreate

router = APIRouter(prefix="/items", tags=["items"])


@router.get("/")
def read_items(session: SessionDep) -> list[Item]:
    return list(session.exec(select(Item).order_by(Item.id)))


@router.post("/", status_code=201)
def create_item(session: SessionDep, item_in: ItemCreate) -> Item:
    item = Item.model_validate(item_in)
    session.add(item)
    session.commit()
    session.refresh(item)
    return item
