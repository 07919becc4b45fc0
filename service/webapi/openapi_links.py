"""OpenAPI 3 links: how a response's values feed the next request (the API's resource flow).

A client (or schemathesis' stateful phase) follows them: the ``id`` a sign-up returns reads
that user, the ``id`` of a created item reads, changes and deletes it and attaches files to
it, an attachment's ``id`` removes it. They are declared here, in one table, and added to the
document FastAPI generates by :func:`install_links`; each names its target operation by the
operationId the document gives the target's path and method (never a hand-copied id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

# Runtime expressions (OpenAPI 3.0, "Runtime Expressions").
BODY_ID = "$response.body#/id"


@dataclass(frozen=True)
class Link:
    """A link from the ``status`` response of ``source`` to ``target``, each a (method, path)
    under the API prefix. ``parameters``: the target's parameter name to a runtime expression;
    ``request_body``: the target's body fields to runtime expressions."""

    name: str
    source: tuple[str, str]
    status: str
    target: tuple[str, str]
    parameters: Mapping[str, str] = field(default_factory=dict)
    request_body: Mapping[str, str] | None = None
    description: str = ""


USERS = "/users"
USER = "/users/{user_id}"
ME = "/users/me"
TOKEN = "/auth/token"  # noqa: S105 - a path, not a secret
ITEMS = "/items"
ITEM = "/items/{item_id}"
ATTACHMENTS = "/items/{item_id}/attachments"
ATTACHMENT = "/items/{item_id}/attachments/{attachment_id}"


def _item_links(source: tuple[str, str], status: str, item_id: str) -> list[Link]:
    """What a response naming one of your items leads to (``item_id``: where its id is)."""
    parameters = {"item_id": item_id}
    read = [Link("ReadItem", source, status, ("GET", ITEM), parameters, description="Read the item")]
    return [
        *(read if source != ("GET", ITEM) else []),  # not from a read of the item itself
        Link("UpdateItem", source, status, ("PATCH", ITEM), parameters, description="Change the item"),
        Link("DeleteItem", source, status, ("DELETE", ITEM), parameters, description="Delete the item"),
        Link(
            "ListAttachments",
            source,
            status,
            ("GET", ATTACHMENTS),
            parameters,
            description="The files attached to the item",
        ),
        Link(
            "CreateAttachment",
            source,
            status,
            ("POST", ATTACHMENTS),
            parameters,
            description="Attach a file to the item",
        ),
    ]


LINKS: tuple[Link, ...] = (
    # Users. Deleting your own account is left out on purpose: a link from your own id
    # (GET /users/me) to DELETE /users/{user_id} would end the session of whoever follows it.
    Link(
        "ReadUser",
        ("POST", USERS),
        "201",
        ("GET", USER),
        {"user_id": BODY_ID},
        description="Read the user just signed up",
    ),
    Link(
        "DeleteUser",
        ("POST", USERS),
        "201",
        ("DELETE", USER),
        {"user_id": BODY_ID},
        description="Delete the account (only its owner may: 403 for anyone else)",
    ),
    Link(
        "LogIn",
        ("POST", USERS),
        "201",
        ("POST", TOKEN),
        request_body={"username": "$request.body#/email", "password": "$request.body#/password"},
        description="Log in as the user just signed up",
    ),
    Link(
        "ReadUser",
        ("GET", USERS),
        "200",
        ("GET", USER),
        {"user_id": "$response.body#/items/0/id"},
        description="Read the first user of the page",
    ),
    Link(
        "ReadUser", ("GET", ME), "200", ("GET", USER), {"user_id": BODY_ID}, description="Read yourself by id"
    ),
    # Items.
    *_item_links(("POST", ITEMS), "201", BODY_ID),
    *_item_links(("GET", ITEM), "200", BODY_ID),
    Link(
        "ReadItem",
        ("GET", ITEMS),
        "200",
        ("GET", ITEM),
        {"item_id": "$response.body#/items/0/id"},
        description="Read the first item of the page",
    ),
    Link(
        "ReadOwner",
        ("GET", ITEM),
        "200",
        ("GET", USER),
        {"user_id": "$response.body#/owner_id"},
        description="Read the item's owner",
    ),
    Link("ReadItem", ("PATCH", ITEM), "200", ("GET", ITEM), {"item_id": BODY_ID}, description="Read it back"),
    Link(
        "DeleteItem",
        ("PATCH", ITEM),
        "200",
        ("DELETE", ITEM),
        {"item_id": BODY_ID},
        description="Delete the item",
    ),
    Link(
        "ReadItem",
        ("DELETE", ITEM),
        "204",
        ("GET", ITEM),
        {"item_id": "$request.path.item_id"},
        description="The deleted item is gone (404)",
    ),
    Link(
        "ListAttachments",
        ("DELETE", ITEM),
        "204",
        ("GET", ATTACHMENTS),
        {"item_id": "$request.path.item_id"},
        description="So are its attachments (404)",
    ),
    # Attachments.
    Link(
        "DeleteAttachment",
        ("POST", ATTACHMENTS),
        "201",
        ("DELETE", ATTACHMENT),
        {"item_id": "$response.body#/item_id", "attachment_id": BODY_ID},
        description="Remove the file just attached",
    ),
    Link(
        "ListAttachments",
        ("POST", ATTACHMENTS),
        "201",
        ("GET", ATTACHMENTS),
        {"item_id": "$response.body#/item_id"},
        description="The item's files, this one among them",
    ),
    Link(
        "ReadItem",
        ("POST", ATTACHMENTS),
        "201",
        ("GET", ITEM),
        {"item_id": "$response.body#/item_id"},
        description="Read the item the file is attached to",
    ),
    Link(
        "DeleteAttachment",
        ("GET", ATTACHMENTS),
        "200",
        ("DELETE", ATTACHMENT),
        {"item_id": "$request.path.item_id", "attachment_id": "$response.body#/0/id"},
        description="Remove the first file listed",
    ),
)


class LinkError(LookupError):
    """A link names an operation or a response the document does not have."""


def _operation(schema: Mapping[str, Any], prefix: str, method: str, path: str) -> dict[str, Any]:
    operation = schema.get("paths", {}).get(prefix + path, {}).get(method.lower())
    if not isinstance(operation, dict):
        raise LinkError(f"no operation {method} {prefix}{path} in the OpenAPI document")
    return operation


def add_links(schema: dict[str, Any], prefix: str, links: tuple[Link, ...] = LINKS) -> dict[str, Any]:
    """Add ``links`` to the generated ``schema`` (in place; also returned). Raises LinkError if
    a source, its response or a target is not in the document."""
    for link in links:
        source = _operation(schema, prefix, *link.source)
        target = _operation(schema, prefix, *link.target)
        operation_id = target.get("operationId")
        if not operation_id:
            raise LinkError(f"{link.target[0]} {prefix}{link.target[1]} has no operationId")
        response = source.get("responses", {}).get(link.status)
        if response is None:
            raise LinkError(f"{link.source[0]} {prefix}{link.source[1]} declares no {link.status} response")
        definition: dict[str, Any] = {"operationId": operation_id}
        if link.parameters:
            definition["parameters"] = dict(link.parameters)
        if link.request_body is not None:
            definition["requestBody"] = dict(link.request_body)
        if link.description:
            definition["description"] = link.description
        named = response.setdefault("links", {})
        if link.name in named:
            raise LinkError(f"two links named {link.name} from {link.source} {link.status}")
        named[link.name] = definition
    return schema


def install_links(app: FastAPI, prefix: str) -> None:
    """Make ``app.openapi()`` (and so /openapi.json, /docs) include the links: the document is
    generated once, links added, and cached on the app as FastAPI caches its own. A second
    call changes nothing."""
    if getattr(app.state, "openapi_links", False):
        return  # already installed: once is enough
    app.state.openapi_links = True
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = generate()  # FastAPI caches it on the app (app.openapi_schema) as it returns it
        try:
            add_links(schema, prefix)
        except BaseException:
            app.openapi_schema = None  # never serve a document with some of the links
            raise
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
