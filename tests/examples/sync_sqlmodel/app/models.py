from sqlmodel import Field, SQLModel


class ItemBase(SQLModel):
    title: str = Field(max_length=255)


class Item(ItemBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


class ItemCreate(ItemBase):
    pass
