"""Rules every request body follows: valid Unicode text, trimming before the length bounds,
one canonical form of an email address, and published patterns that match what is accepted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError

from tests.service.conftest import API, SignedUp, make_settings
from webapi.config import Settings
from webapi.emails import canonical_email
from webapi.schemas import Name, RequestModel, Title
from webapi.storage import build_storage

PASSWORD = "correct horse battery"
SURROGATE = "\\udfff"  # a JSON escape: json.dumps would never write a lone surrogate, a client may


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Attachments on (local backend), so that every request body can be sent here.
    return make_settings(database_url, storage_backend="local", local_storage_dir=str(tmp_path / "storage"))


@pytest.fixture
def app(app: FastAPI, settings: Settings) -> FastAPI:
    app.state.storage = build_storage(settings)  # what startup() does once per process
    return app


async def new_item(client: httpx.AsyncClient, user: SignedUp) -> str:
    created = await client.post(f"{API}/items", json={"title": "t"}, headers=user.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


# Lone surrogates ---------------------------------------------------------------------------

VALID_BODIES: dict[str, dict[str, Any]] = {
    "POST /users": {"email": "sur@example.com", "name": "Sur", "password": PASSWORD},
    "POST /items": {"title": "t", "description": "d"},
    "PATCH /items/{item_id}": {"title": "t", "description": "d"},
    "POST /items/{item_id}/attachments": {"filename": "a.pdf", "content_type": "application/pdf", "size": 1},
}
SURROGATE_CASES = [
    (route, field)
    for route, body in VALID_BODIES.items()
    for field, value in body.items()
    if isinstance(value, str)
]


@pytest.mark.parametrize(("route", "field"), SURROGATE_CASES, ids=[f"{r} {f}" for r, f in SURROGATE_CASES])
async def test_lone_surrogates_are_422_in_every_text_field(
    client: httpx.AsyncClient, user: SignedUp, route: str, field: str
) -> None:
    method, path = route.split(" ")
    if "{item_id}" in path:
        path = path.replace("{item_id}", await new_item(client, user))
    body = dict(VALID_BODIES[route])
    value = str(body[field])
    body[field] = value[:1] + "~~" + value[1:]  # "s~~ur@example.com", "a~~pplication/pdf", ...
    content = json.dumps(body).replace("~~", SURROGATE)
    assert json.loads(content)[field] == value[:1] + "\udfff" + value[1:]  # what the server decodes

    response = await client.request(
        method,
        f"{API}{path}",
        content=content.encode("ascii"),
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {
            "type": "string_unicode",
            "loc": ["body", field],
            "msg": "Input should be a valid string, unable to parse raw data as a unicode string",
        }
    ]


def test_every_text_field_of_every_json_body_is_sent_a_surrogate(app: FastAPI) -> None:
    def is_text(field: dict[str, Any]) -> bool:
        return field.get("type") == "string" or any(is_text(option) for option in field.get("anyOf", []))

    doc = app.openapi()
    published = {}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                name = body["schema"]["$ref"].rsplit("/", 1)[-1]
                properties = doc["components"]["schemas"][name]["properties"]
                route = f"{method.upper()} {path.removeprefix(API)}"
                published[route] = {field for field, schema in properties.items() if is_text(schema)}
    sent: dict[str, set[str]] = {}
    for route, field in SURROGATE_CASES:
        sent.setdefault(route, set()).add(field)
    assert sent == published


def test_the_surrogate_rule_reaches_nested_strings() -> None:
    class Tagged(RequestModel):
        tags: list[str]
        labels: dict[str, list[str]]

    assert Tagged(tags=["a"], labels={"k": ["v"]}).tags == ["a"]
    for data, field in (
        ({"tags": ["a", "\udfff"], "labels": {}}, "tags"),
        ({"tags": [], "labels": {"k": ["v", "\ud800"]}}, "labels"),
        ({"tags": [], "labels": {"\udfff": []}}, "labels"),
    ):
        with pytest.raises(ValidationError) as caught:
            Tagged.model_validate(data)
        assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("string_unicode", (field,))]


# Trimming before the length bounds ---------------------------------------------------------


async def test_whitespace_only_title_and_name_are_refused(client: httpx.AsyncClient, user: SignedUp) -> None:
    created = await client.post(f"{API}/items", json={"title": "   "}, headers=user.headers)
    assert created.status_code == 422, created.text
    assert [e["loc"] for e in created.json()["detail"]] == [["body", "title"]]

    item_id = await new_item(client, user)
    patched = await client.patch(f"{API}/items/{item_id}", json={"title": " \t "}, headers=user.headers)
    assert patched.status_code == 422, patched.text
    assert (await client.get(f"{API}/items/{item_id}", headers=user.headers)).json()["title"] == "t"

    signed_up = await client.post(
        f"{API}/users", json={"email": "blank@example.com", "name": "   ", "password": PASSWORD}
    )
    assert signed_up.status_code == 422, signed_up.text
    assert [e["loc"] for e in signed_up.json()["detail"]] == [["body", "name"]]


async def test_the_length_bounds_apply_to_the_trimmed_value(
    client: httpx.AsyncClient, user: SignedUp
) -> None:
    longest = "x" * 200
    created = await client.post(f"{API}/items", json={"title": f" {longest}   "}, headers=user.headers)
    assert created.status_code == 201, created.text
    assert created.json()["title"] == longest

    patched = await client.patch(
        f"{API}/items/{created.json()['id']}", json={"title": f"{'y' * 200}  "}, headers=user.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "y" * 200
    too_long = await client.post(f"{API}/items", json={"title": "x" * 201}, headers=user.headers)
    assert too_long.status_code == 422

    signed_up = await client.post(
        f"{API}/users", json={"email": "long@example.com", "name": "n" * 100 + "  ", "password": PASSWORD}
    )
    assert signed_up.status_code == 201, signed_up.text
    assert signed_up.json()["name"] == "n" * 100


def test_the_published_pattern_states_the_trimmed_bounds(app: FastAPI) -> None:
    """minLength/maxLength would count the whitespace the service trims ("\t" would be valid, 200
    characters and a space invalid: schemathesis found the first). The pattern states the rule,
    and agrees with the API's validation on the edges."""
    schemas = app.openapi()["components"]["schemas"]
    name = schemas["UserCreate"]["properties"]["name"]
    title = schemas["ItemCreate"]["properties"]["title"]
    [update_title, _] = schemas["ItemUpdate"]["properties"]["title"]["anyOf"]
    for field, longest in ((name, 100), (title, 200), (update_title, 200)):
        assert "minLength" not in field and "maxLength" not in field
        pattern = re.compile(field["pattern"])
        adapter = TypeAdapter(Title if longest == 200 else Name)
        samples = [
            "x",
            " x ",
            "\t",
            "   ",
            "",
            "\u3000x\u3000",
            "\x1cx",
            "x\x00",
            "x" * longest,
            "x" * longest + "   ",
            " " + "x" * longest,
            "x" * (longest + 1),
            "a" + " " * (longest - 2) + "b",
            "\u2028" + "y" * longest,
            "x\n" * (longest // 2),
        ]
        for sample in samples:
            try:
                adapter.validate_python(sample)
                accepted = True
            except ValidationError:
                accepted = False
            assert bool(pattern.search(sample)) == accepted, (longest, sample)


# One canonical email address ---------------------------------------------------------------

# Each group: forms of one address that sign-up accepts and stores as the first one's canonical form.
EQUIVALENT_EMAILS = {
    "fullwidth domain": [
        "f1@\uff45xample.com",
        "f1@example.com",
        "F1@EXAMPLE.COM",
        "f1@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\uff0e\uff43\uff4f\uff4d",
        "f1@example\u3002com",
    ],
    "decomposed": [
        "jose\u0301@example.com",
        "jos\u00e9@example.com",
        "JOSE\u0301@Example.com",
        "JOS\u00c9@example.com",
    ],
    "idn domain": [
        "user@BÜCHER.example.com",
        "user@bücher.example.com",
        "user@bu\u0308cher.example.com",
        "user@xn--bcher-kva.example.com",
        "USER@XN--BCHER-KVA.EXAMPLE.COM",
    ],
    # Fullwidth letters are a different local part (the mailbox's own business), but one in any case.
    "fullwidth local part": ["\uff262@example.com", "\uff462@example.com"],
    "spaces and case": [
        "  Mixed.Case@Example.COM  ",
        "mixed.case@example.com",
        "MIXED.CASE@EXAMPLE.COM ",
        "Mixed <Mixed.Case@Example.com>",  # EmailStr takes a display name
    ],
    # Lowercased, "Ϊ" + U+0301 is "ϊ" + U+0301, which NFC composes to "ΐ".
    "composed after lowercasing": [
        "\u03aa\u0301x@example.com",
        "\u03ca\u0301x@example.com",
        "\u0390x@example.com",
    ],
}
ALL_FORMS = [form for forms in EQUIVALENT_EMAILS.values() for form in forms]


def test_equivalent_emails_have_one_canonical_form() -> None:
    for group, forms in EQUIVALENT_EMAILS.items():
        canonical = {canonical_email(form) for form in forms}
        assert len(canonical) == 1, (group, canonical)
        [address] = canonical
        assert canonical_email(address) == address
    assert canonical_email("f1@\uff45xample.com") == "f1@example.com"
    assert canonical_email("JOSE\u0301@example.com") == "jos\u00e9@example.com"
    assert canonical_email("user@XN--BCHER-KVA.example.com") == "user@bücher.example.com"
    assert (
        canonical_email("\uff262@example.com") == "\uff462@example.com" != canonical_email("f2@example.com")
    )
    assert canonical_email("\u03aa\u0301x@example.com") == "\u0390x@example.com"


@pytest.mark.parametrize(
    "raw", ["not-an-email", "  Not@An@Email ", "", "a@example.test", "a\x00@example.com", "\udfff"]
)
def test_canonical_email_of_a_non_address_is_only_trimmed_and_lowercased(raw: str) -> None:
    assert canonical_email(raw) == raw.strip().lower()


@pytest.mark.parametrize("form", ALL_FORMS)
async def test_sign_up_stores_the_canonical_email(client: httpx.AsyncClient, form: str) -> None:
    created = await client.post(f"{API}/users", json={"email": form, "name": "N", "password": PASSWORD})
    assert created.status_code == 201, created.text
    assert created.json()["email"] == canonical_email(form)


def _others(forms: list[str]) -> Iterator[tuple[str, str]]:
    for form in forms:
        for other in forms:
            if other != form:
                yield form, other


async def log_in(client: httpx.AsyncClient, username: str) -> int:
    response = await client.post(f"{API}/auth/token", data={"username": username, "password": PASSWORD})
    return response.status_code


@pytest.mark.parametrize("form", ALL_FORMS)
async def test_log_in_with_the_sign_up_form(client: httpx.AsyncClient, form: str) -> None:
    created = await client.post(f"{API}/users", json={"email": form, "name": "N", "password": PASSWORD})
    assert created.status_code == 201, created.text
    assert await log_in(client, form) == 200


@pytest.mark.parametrize("group", list(EQUIVALENT_EMAILS))
async def test_log_in_with_any_equivalent_form(client: httpx.AsyncClient, group: str) -> None:
    forms = EQUIVALENT_EMAILS[group]
    created = await client.post(f"{API}/users", json={"email": forms[0], "name": "N", "password": PASSWORD})
    assert created.status_code == 201, created.text
    assert {other: await log_in(client, other) for other in forms} == dict.fromkeys(forms, 200)


@pytest.mark.parametrize("group", list(EQUIVALENT_EMAILS))
async def test_equivalent_forms_are_one_account(client: httpx.AsyncClient, group: str) -> None:
    forms = EQUIVALENT_EMAILS[group]
    first = await client.post(f"{API}/users", json={"email": forms[0], "name": "N", "password": PASSWORD})
    assert first.status_code == 201, first.text
    for other in forms[1:]:
        again = await client.post(f"{API}/users", json={"email": other, "name": "N", "password": PASSWORD})
        assert again.status_code == 409, (other, again.text)


# Published patterns ------------------------------------------------------------------------


def _patterns(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from _patterns(value)


def test_every_published_pattern_compiles_without_surrogates(app: FastAPI) -> None:
    patterns = list(_patterns(app.openapi()))
    assert len(patterns) >= 4  # text, email, filename, media type
    for pattern in patterns:
        re.compile(pattern)
        assert not re.search(r"\\u[dD][89a-fA-F]", pattern), pattern
        assert not re.search("[\ud800-\udfff]", pattern), pattern


FILENAMES = [
    "report.pdf",
    "ü.txt",
    "report é.pdf",
    ".hidden",
    "...",
    "a..b",
    "\u0098",
    "a\u0085b",
    "\x7f",
    "tab\there",
    "a\x00",
    "a/b",
    "a\\b",
    ".",
    "..",
    "\u202e.txt",
]


async def test_filename_pattern_agrees_with_the_api(
    client: httpx.AsyncClient, user: SignedUp, app: FastAPI
) -> None:
    schema = app.openapi()["components"]["schemas"]["AttachmentCreate"]["properties"]["filename"]
    assert "\\ud800" not in schema["pattern"].lower()
    pattern = re.compile(schema["pattern"])
    item_id = await new_item(client, user)
    disagreements = {}
    for name in FILENAMES:
        response = await client.post(
            f"{API}/items/{item_id}/attachments",
            json={"filename": name, "content_type": "application/pdf", "size": 1},
            headers=user.headers,
        )
        assert response.status_code in (201, 422), response.text
        if (response.status_code == 201) != bool(pattern.search(name)):
            disagreements[name] = response.status_code
    assert disagreements == {}
    # The refusals the pattern must make (a schema-valid client never sends these).
    for name in ("\u0098", "a/b", "..", ".", "\x7f", "a\x00"):
        assert not pattern.search(name), name
