"""Request and response models, in families per resource. Requests forbid extra fields."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from webapi.models import DESCRIPTION_MAX_LENGTH, EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, TITLE_MAX_LENGTH

MAX_PAGE = 100_000
MAX_PER_PAGE = 100


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; reject it here as a 422, not a database error.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _special_use_domains_pattern() -> str:
    # JSON Schema patterns take no flags, so each letter matches both cases.
    def any_case(name: str) -> str:
        return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)

    return rf"^(?!.*[@.]({'|'.join(any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)})$)"


# The patterns document in the OpenAPI schema what the validators enforce, for clients
# (and generated tests) to know which strings are accepted.
Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": r"^[^\x00]*$"})]
Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH)]
Title = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH)]
Description = Annotated[Text, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
# email-validator also refuses special-use domains (RFC 6761: .test, .local, .invalid, ...),
# which `format: email` allows.
Email = Annotated[
    EmailStr,
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    Field(json_schema_extra={"pattern": _special_use_domains_pattern()}),
]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape (422 adds a list of problems)."""

    detail: str
    request_id: str | None = None


class UserCreate(RequestModel):
    email: Email
    name: Name
    password: Password


class UserPublic(ResponseModel):
    id: uuid.UUID
    email: str
    name: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class ItemCreate(RequestModel):
    title: Title
    description: Description | None = None


class ItemUpdate(RequestModel):
    title: Title | None = None
    description: Description | None = None


class ItemPublic(ResponseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str | None
    created_at: datetime
    updated_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(ge=0)
    page: int = Field(ge=1)
    per_page: int = Field(ge=1, le=MAX_PER_PAGE)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Lifetime of the token in seconds")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str


class Welcome(BaseModel):
    message: str
    docs: str
    version: str
