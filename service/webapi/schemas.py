"""Request and response models, in families per resource. Requests forbid extra fields."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from webapi.models import (
    CONTENT_TYPE_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    FILENAME_MAX_LENGTH,
    NAME_MAX_LENGTH,
    TITLE_MAX_LENGTH,
)

MAX_PAGE = 100_000
MAX_PER_PAGE = 100


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; reject it here as a 422, not a database error.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _lowercase(email: str) -> str:
    # Lowercasing can leave a pair that NFC composes ("Ϊ" + U+0301 lowercases to "ϊ" + U+0301,
    # which is "ΐ"): normalised again, the canonical form is its own canonical form.
    return unicodedata.normalize("NFC", email.lower())


def _special_use_domains_pattern() -> str:
    # JSON Schema patterns take no flags, so each letter matches both cases.
    def any_case(name: str) -> str:
        return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)

    return rf"^(?!.*[@.]({'|'.join(any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)})$)"


# The patterns document in the OpenAPI schema what the validators enforce, for clients
# (and generated tests) to know which strings are accepted.
Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": r"^[^\x00]*$"})]
# Trimmed first, in a constraint of its own: the length bounds that follow then count what is
# stored ("   " is empty, a 200-character title with a trailing space fits).
# (On str, not Text: Text's published pattern would override the one below.)
Trimmed = Annotated[str, AfterValidator(_no_nul), StringConstraints(strip_whitespace=True)]
# What strip_whitespace removes: Unicode White_Space, as pydantic-core's trim (not str.isspace,
# which also takes \x1c-\x1f).
_WHITESPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _trimmed_length_pattern(max_length: int) -> str:
    """The published form of "1 to max_length characters once trimmed, no NUL": minLength and
    maxLength would count the surrounding whitespace, which the service accepts and trims."""
    edge = rf"[^{_WHITESPACE}\x00]"
    return rf"^[{_WHITESPACE}]*{edge}(?:[^\x00]{{0,{max_length - 2}}}{edge})?[{_WHITESPACE}]*$"


def _trimmed(max_length: int) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": _trimmed_length_pattern(max_length),
            "description": f"1 to {max_length} characters once leading and trailing whitespace is trimmed",
        }
    )


Name = Annotated[
    Trimmed, StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH), _trimmed(NAME_MAX_LENGTH)
]
Title = Annotated[
    Trimmed, StringConstraints(min_length=1, max_length=TITLE_MAX_LENGTH), _trimmed(TITLE_MAX_LENGTH)
]
Description = Annotated[Text, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
# email-validator also refuses special-use domains (RFC 6761: .test, .local, .invalid, ...),
# which `format: email` allows. Its normal form (NFC; the domain through IDNA, so a fullwidth
# "\uff45" is "e" and "xn--bcher-kva" is "bücher") keeps the local part's case: lowercased
# whole, the value is the one form stored and looked up (emails.canonical_email), and the
# length bound is that form's.
Email = Annotated[
    EmailStr,
    AfterValidator(_lowercase),
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    Field(json_schema_extra={"pattern": _special_use_domains_pattern()}),
]


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _utf8_only(cls, value: Any) -> Any:
        # JSON may escape a lone surrogate ("\udfff"), which no UTF-8 text (nor PostgreSQL) can
        # hold. One rule for every string of every request, nested ones too, before any field's
        # own checks, with the error pydantic itself gives constrained strings for it.
        for text in _strings(value):
            try:
                text.encode()
            except UnicodeEncodeError:
                raise PydanticCustomError(
                    "string_unicode",
                    "Input should be a valid string, unable to parse raw data as a unicode string",
                ) from None
        return value


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


class UserProfile(ResponseModel):
    """Another account as every signed-in user sees it: no email address. Listing addresses to
    any account would hand out the login names that a lockout needs (docs/service.md, Decisions)."""

    id: uuid.UUID
    name: str
    created_at: datetime


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


# Attachments. The filename is metadata only (the object key is the server's), but it is
# shown back in Content-Disposition: no path separators, no control characters (Cc is exactly
# \x00-\x1f and \x7f-\x9f, as in the pattern). Lone surrogates are every request's rule
# (RequestModel); a surrogate range in the pattern would make schema-driven clients drop it.
def _plain_filename(value: str) -> str:
    if any(c in "/\\" or unicodedata.category(c) == "Cc" for c in value):
        raise ValueError("must not contain path separators or control characters")
    if value in (".", ".."):
        raise ValueError("must be a file name")
    return value


# RFC 6838 section 4.2: type "/" subtype, restricted-name characters, no parameters.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]{0,126}"
MEDIA_TYPE_PATTERN = rf"^{_RESTRICTED_NAME}/{_RESTRICTED_NAME}$"
# The widest UPLOAD_MAX_BYTES allows (one S3 PUT/POST); each deployment states its own limit.
UPLOAD_SIZE_CEILING = 5 * 1024**3

Filename = Annotated[
    str,
    StringConstraints(min_length=1, max_length=FILENAME_MAX_LENGTH),
    AfterValidator(_plain_filename),
    Field(
        json_schema_extra={"pattern": r"^(?!\.{1,2}$)[^/\\\x00-\x1f\x7f-\x9f]+$"},
        examples=["report.pdf"],
    ),
]
MediaType = Annotated[
    str,
    StringConstraints(max_length=CONTENT_TYPE_MAX_LENGTH, pattern=MEDIA_TYPE_PATTERN),
    Field(examples=["application/pdf"]),
]


class AttachmentCreate(RequestModel):
    filename: Filename
    content_type: MediaType
    size: int = Field(
        ge=1, le=UPLOAD_SIZE_CEILING, description="Exact size in bytes, at most UPLOAD_MAX_BYTES"
    )


class AttachmentPublic(ResponseModel):
    id: uuid.UUID
    item_id: uuid.UUID
    filename: str
    content_type: str
    size: int
    created_at: datetime


class UploadInstructions(BaseModel):
    """Send the file here: ``POST`` a multipart form with ``fields`` first and the file last
    (as ``file``), or ``PUT`` the bytes with exactly ``headers``."""

    method: Literal["POST", "PUT"]
    url: str
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: datetime


class AttachmentUpload(AttachmentPublic):
    upload: UploadInstructions


class AttachmentDownload(AttachmentPublic):
    download_url: str
    expires_at: datetime
