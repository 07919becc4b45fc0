from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shop.db import Note

router = APIRouter(prefix="/notes", tags=["notes"])


class NoteIn(BaseModel):
    text: str


class NoteOut(BaseModel):
    id: int
    text: str


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(request.app.state.engine, expire_on_commit=False) as db:
        yield db


Session = Annotated[AsyncSession, Depends(session)]


@router.post("", status_code=201)
async def create_note(note: NoteIn, db: Session) -> NoteOut:
    row = Note(text=note.text)
    db.add(row)
    await db.commit()
    return NoteOut(id=row.id, text=row.text)


@router.get("")
async def list_notes(db: Session) -> list[NoteOut]:
    rows = await db.scalars(select(Note).order_by(Note.id))
    return [NoteOut(id=row.id, text=row.text) for row in rows]
