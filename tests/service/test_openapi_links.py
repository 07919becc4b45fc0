"""The OpenAPI document's links (webapi.openapi_links) point at what exists.

A link to a missing operation, a parameter the target does not take, or a value the source
response does not hold is no error anywhere: clients and schemathesis just never follow it.
So each is checked here against the document the app serves.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI

from tests.service.conftest import make_settings
from webapi.main import API_PREFIX, create_app
from webapi.openapi_links import LINKS, Link, LinkError, add_links, install_links

UNUSED_DATABASE = "postgresql+asyncpg://unused@127.0.0.1:1/unused"  # the document needs none
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The runtime expressions the links use (OpenAPI 3.x, "Runtime Expressions").
RESPONSE_BODY = re.compile(r"^\$response\.body#(/.*)$")
REQUEST_BODY = re.compile(r"^\$request\.body#(/.*)$")
REQUEST_PATH = re.compile(r"^\$request\.path\.([A-Za-z_][A-Za-z0-9_]*)$")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(make_settings(UNUSED_DATABASE))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def links(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], str]]:
    """(name, source operation, link, source status) for every link in the document."""
    for _, _, operation in operations(document):
        for status, response in operation["responses"].items():
            for name, link in response.get("links", {}).items():
                yield name, operation, link, status


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = document
        for token in schema["$ref"].removeprefix("#/").split("/"):
            target = target[token]
        schema = target
    return schema


def holds(document: dict[str, Any], schema: dict[str, Any], pointer: str) -> bool:
    """Whether a JSON value described by ``schema`` can hold something at ``pointer``."""
    schema = resolve(document, schema)
    if pointer in ("", "/"):
        return True
    token, _, rest = pointer.removeprefix("/").partition("/")
    rest = f"/{rest}" if rest else ""
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        if holds(document, branch, pointer):
            return True
    if token.isdigit() and "items" in schema:
        return holds(document, schema["items"], rest)
    properties = schema.get("properties", {})
    return token in properties and holds(document, properties[token], rest)


def json_schema(document: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The schema of a request or response body's one media type."""
    (content,) = body["content"].values()
    return resolve(document, content["schema"])


def operation_by_id(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    found = [
        operation for _, _, operation in operations(document) if operation["operationId"] == operation_id
    ]
    assert len(found) == 1, f"{len(found)} operations with operationId {operation_id}"
    return found[0]


def test_the_app_serves_every_link(document: dict[str, Any]) -> None:
    served = {(name, source["operationId"], status) for name, source, _, status in links(document)}
    assert served, "no links: create_app must call install_links(app, API_PREFIX)"
    assert len(served) == len(LINKS) == len(list(links(document)))


def test_each_link_targets_one_operation_with_the_parameters_it_sets(document: dict[str, Any]) -> None:
    for name, source, link, status in links(document):
        where = f"{source['operationId']} {status} {name}"
        assert set(link) <= {"operationId", "parameters", "requestBody", "description"}, where
        target = operation_by_id(document, link["operationId"])
        parameters = {parameter["name"]: parameter for parameter in target.get("parameters", [])}
        set_here = link.get("parameters", {})
        assert set(set_here) <= set(parameters), f"{where}: {set(set_here) - set(parameters)}"
        # A path parameter left out would be generated at random: the link would lead nowhere.
        required = {name for name, parameter in parameters.items() if parameter["in"] == "path"}
        assert required <= set(set_here), f"{where}: {required - set(set_here)} not set"
        if "requestBody" in link:
            properties = json_schema(document, target["requestBody"]).get("properties", {})
            assert set(link["requestBody"]) <= set(properties), where


def test_each_expression_names_a_value_the_source_has(document: dict[str, Any]) -> None:
    for name, source, link, status in links(document):
        where = f"{source['operationId']} {status} {name}"
        source_path_parameters = {p["name"] for p in source.get("parameters", []) if p["in"] == "path"}
        expressions = [*link.get("parameters", {}).values(), *link.get("requestBody", {}).values()]
        assert expressions, where
        for expression in expressions:
            if match := RESPONSE_BODY.match(expression):
                schema = json_schema(document, source["responses"][status])
                assert holds(document, schema, match[1]), f"{where}: {expression}"
            elif match := REQUEST_BODY.match(expression):
                schema = json_schema(document, source["requestBody"])
                assert holds(document, schema, match[1]), f"{where}: {expression}"
            elif match := REQUEST_PATH.match(expression):
                assert match[1] in source_path_parameters, f"{where}: {expression}"
            else:
                pytest.fail(f"{where}: unexpected expression {expression}")


def test_schemathesis_builds_its_state_machine_from_the_links(document: dict[str, Any]) -> None:
    # Its own validation: unknown operations, parameters, expressions (InvalidStateMachine).
    schema = schemathesis.openapi.from_dict(copy.deepcopy(document))  # it adds links of its own
    machine = schema.as_state_machine()
    declared = {
        link.full_name
        for transitions in machine._transitions.operations.values()  # type: ignore[attr-defined]
        for link in transitions.outgoing
        if not link.is_inferred  # schemathesis adds links of its own guessing
    }
    assert len(declared) == len(LINKS)


def test_each_link_names_its_target_by_the_operation_id_generated_for_it(document: dict[str, Any]) -> None:
    for link in LINKS:
        (method, path), (target_method, target_path) = link.source, link.target
        served = document["paths"][API_PREFIX + path][method.lower()]["responses"][link.status]["links"]
        target = document["paths"][API_PREFIX + target_path][target_method.lower()]
        assert served[link.name]["operationId"] == target["operationId"], link


def test_the_document_is_generated_once() -> None:
    app = create_app(make_settings(UNUSED_DATABASE))
    install_links(app, API_PREFIX)  # again: no second set of links
    assert app.openapi() is app.openapi()
    assert len(list(links(app.openapi()))) == len(LINKS)


@pytest.mark.parametrize(
    "link",
    [
        Link("Nowhere", ("POST", "/items"), "201", ("GET", "/nowhere/{id}"), {"id": "$response.body#/id"}),
        Link("FromNowhere", ("GET", "/nowhere"), "200", ("GET", "/items/{item_id}")),
        Link("Undeclared", ("POST", "/items"), "418", ("GET", "/items/{item_id}")),
    ],
)
def test_a_link_to_or_from_nothing_is_refused(link: Link) -> None:
    document = copy.deepcopy(create_app(make_settings(UNUSED_DATABASE)).openapi())
    with pytest.raises(LinkError):
        add_links(document, API_PREFIX, (link,))
