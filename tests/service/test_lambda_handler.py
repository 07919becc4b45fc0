"""The sample on Lambda, driven as Lambda runs it: one fresh interpreter (an execution
environment) imports the runtime entry ``serverless_fastapi_entry.lambda_api`` (the handler the
stack deploys) and serves a series of API Gateway events.

The events are the templates in ``tests/events`` changed as API Gateway would
change them, for HTTP API (payload 2.0) and REST API (payload 1.0). The driver
runs once for the whole module; each test reads the responses and the log lines.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from constructs_lib.runtime import ENTRY_DIR
from stacks.spec import SAMPLE_APP
from tests.conftest import ROOT, SERVICE_DIR, TEST_SECRET_KEY, PostgresForTests
from tests.service.lambda_driver import BINARY_COOKIES, BINARY_PAYLOAD, FUNCTION_NAME

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("lambda_driver.py")
EVENTS = ROOT / "tests" / "events"
API = "/api/v1"
PASSWORD = "correct horse battery"

Event = dict[str, Any]
Query = Sequence[tuple[str, str]]


def _template(name: str) -> Event:
    event: Event = json.loads((EVENTS / name).read_text())
    return event


HTTP_API_DEFAULT = _template("http_api_v2_get.json")
HTTP_API_NAMED = _template("http_api_v2_named_stage.json")
REST_API = _template("rest_api_v1_get.json")
HOST = REST_API["headers"]["Host"]


def _body(body: bytes | str | None, base64_body: bool) -> tuple[str | None, dict[str, str]]:
    """The event's body string, and the Content-Length header the client sent."""
    if body is None:
        return None, {}
    raw = body.encode() if isinstance(body, str) else body
    text = base64.b64encode(raw).decode() if base64_body else raw.decode()
    return text, {"Content-Length": str(len(raw))}


def http_api_event(
    method: str,
    path: str,
    *,
    stage: str = "$default",
    query: Query = (),
    headers: dict[str, str] | None = None,
    cookies: Sequence[str] = (),
    body: bytes | str | None = None,
    base64_body: bool = False,
) -> Event:
    """Payload 2.0: a named stage stays in the path; cookies come in their own list."""
    event = copy.deepcopy(HTTP_API_DEFAULT if stage == "$default" else HTTP_API_NAMED)
    context = event["requestContext"]
    context["stage"] = stage
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event["rawPath"] = context["http"]["path"] = raw_path
    context["http"]["method"] = method
    event["rawQueryString"] = urlencode(list(query))
    if query:
        joined: dict[str, list[str]] = {}
        for key, value in query:
            joined.setdefault(key, []).append(value)
        event["queryStringParameters"] = {key: ",".join(values) for key, values in joined.items()}
    if cookies:
        event["cookies"] = list(cookies)
    text, length = _body(body, base64_body)
    event["headers"].update({name.lower(): value for name, value in {**(headers or {}), **length}.items()})
    if text is not None:
        event["body"] = text
        event["isBase64Encoded"] = base64_body
    return event


def rest_api_event(
    method: str,
    path: str,
    *,
    query: Query = (),
    headers: dict[str, str] | None = None,
    cookies: Sequence[str] = (),
    body: bytes | str | None = None,
    base64_body: bool = False,
    context_path: str | None = None,
) -> Event:
    """Payload 1.0 on stage ``prod`` under ``/{proxy+}`` (the root under ``/``):
    only ``requestContext.path`` has the stage; cookies are a Cookie header."""
    event = copy.deepcopy(REST_API)
    context = event["requestContext"]
    event["path"] = path
    event["httpMethod"] = context["httpMethod"] = method
    context["path"] = context_path if context_path is not None else f"/prod{path}"
    if path == "/":
        event["resource"] = context["resourcePath"] = "/"
        event["pathParameters"] = None
    else:
        event["pathParameters"] = {"proxy": path.removeprefix("/")}
    if query:
        multi: dict[str, list[str]] = {}
        for key, value in query:
            multi.setdefault(key, []).append(value)
        event["multiValueQueryStringParameters"] = multi
        event["queryStringParameters"] = {key: values[-1] for key, values in multi.items()}
    text, length = _body(body, base64_body)
    sent = {**(headers or {}), **length}
    if cookies:
        sent["Cookie"] = "; ".join(cookies)
    for name, value in sent.items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    event["body"] = text
    event["isBase64Encoded"] = base64_body and text is not None
    return event


BUILDERS = {"v2": http_api_event, "v1": rest_api_event}
APIS = list(BUILDERS)
# The root_path the app must see: the REST API's stage; none on the $default stage.
STAGE_PREFIX = {"v2": "", "v1": "/prod"}
JSON = {"Content-Type": "application/json"}


def email_for(api: str, variant: str = "") -> str:
    return f"lambda-{api}{variant}@example.com"


def user_json(email: str) -> str:
    return json.dumps({"email": email, "name": "Lambda User", "password": PASSWORD})


def flow_events(api: str) -> list[tuple[str, Event]]:
    """The API flow and the transport checks, for one payload version."""
    build = BUILDERS[api]
    bearer = {"Authorization": f"Bearer {{{{token:{api}.login}}}}"}
    form = urlencode({"username": email_for(api), "password": PASSWORD})
    item = json.dumps({"title": f"Item via {api}", "description": "made through Lambda"})
    invalid_user = json.dumps({"email": "not-an-email", "name": "x", "password": "short"})
    events = {
        "health": build("GET", "/health", headers={"X-Request-ID": f"req-{api}-health"}),
        "sign_up": build("POST", f"{API}/users", headers=JSON, body=user_json(email_for(api))),
        "sign_up_base64": build(
            "POST", f"{API}/users", headers=JSON, body=user_json(email_for(api, "-b64")), base64_body=True
        ),
        "sign_up_again": build("POST", f"{API}/users", headers=JSON, body=user_json(email_for(api))),
        "login": build(
            "POST",
            f"{API}/auth/token",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=form,
        ),
        "me": build("GET", f"{API}/users/me", headers=bearer),
        "me_without_token": build("GET", f"{API}/users/me"),
        "create_item": build("POST", f"{API}/items", headers={**JSON, **bearer}, body=item),
        "list_items": build("GET", f"{API}/items", query=[("page", "1"), ("per_page", "5")], headers=bearer),
        "unknown_route": build("GET", f"{API}/no-such-route"),
        "invalid_sign_up": build("POST", f"{API}/users", headers=JSON, body=invalid_user),
        "echo": build(
            "GET", "/_test/echo", query=[("tag", "a"), ("tag", "b"), ("q", "x y")], cookies=["a=1", "b=two"]
        ),
        "echo_binary_body": build(
            "POST",
            "/_test/echo",
            headers={"Content-Type": "application/octet-stream"},
            body=BINARY_PAYLOAD,
            base64_body=True,
        ),
        "binary": build("GET", "/_test/binary"),
    }
    return [(f"{api}.{name}", event) for name, event in events.items()]


# The docs behind each kind of stage: (site, the prefix the links must carry).
DOCS_SITES = [("rest-prod", "/prod"), ("http-dev", "/dev"), ("http-default", "")]


def docs_events() -> list[tuple[str, Event]]:
    sites = {
        "rest-prod": rest_api_event,
        "http-dev": lambda method, path: http_api_event(method, path, stage="dev"),
        "http-default": http_api_event,
    }
    return [
        (f"{site}.{name}", build("GET", path))
        for site, build in sites.items()
        for name, path in (
            ("docs", "/docs"),
            ("docs_slash", "/docs/"),
            ("openapi", "/openapi.json"),
            ("root", "/"),
        )
    ] + [
        # A REST API answers the bare stage URL (.../prod) on the root resource; the
        # event's requestContext.path is then "/prod", with no trailing slash.
        ("rest-prod.root_bare", rest_api_event("GET", "/", context_path="/prod")),
        # An HTTP API named stage, bare: rawPath "/dev".
        ("http-dev.root_bare", http_api_event("GET", "", stage="dev")),
    ]


def all_events() -> list[tuple[str, Event]]:
    return [event for api in APIS for event in flow_events(api)] + docs_events()


@dataclass
class LambdaRun:
    startup_count: int
    frozen_at_init: int
    results: dict[str, dict[str, Any]]
    stdout_lines: list[str]
    stderr: str

    def response(self, name: str) -> dict[str, Any]:
        result = self.results[name]
        assert "error" not in result, result["error"]
        response: dict[str, Any] = result["response"]
        return response

    @property
    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout_lines]


@pytest.fixture(scope="module")
def lambda_run(postgres: PostgresForTests, tmp_path_factory: pytest.TempPathFactory) -> LambdaRun:
    database_url = postgres.migrated("app_lambda")
    invocations = [{"name": name, "event": event} for name, event in all_events()]
    result_path = tmp_path_factory.mktemp("lambda") / "result.json"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        # The bundle's layout: the app's code beside the runtime entry, which is the handler.
        "PYTHONPATH": os.pathsep.join([str(SERVICE_DIR), str(ENTRY_DIR.parent)]),
        "LAMBDA_TASK_ROOT": str(SERVICE_DIR),
        "FASTAPI_DEPLOY_ENTRYPOINT": SAMPLE_APP.entrypoint,
        "FASTAPI_DEPLOY_FACTORY": "1",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
    }
    process = subprocess.run(
        [sys.executable, str(DRIVER), str(result_path)],
        input=json.dumps(invocations),
        cwd=SERVICE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    output = json.loads(result_path.read_text())
    return LambdaRun(
        startup_count=output["startup_count"],
        frozen_at_init=output["frozen_at_init"],
        results={result["name"]: result for result in output["results"]},
        stdout_lines=[line for line in process.stdout.splitlines() if line.strip()],
        stderr=process.stderr,
    )


def header(response: dict[str, Any], name: str) -> str | None:
    value: str | None = (response.get("headers") or {}).get(name)
    return value


def body_bytes(response: dict[str, Any]) -> bytes:
    body: str = response.get("body", "")
    return base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()


def json_body(response: dict[str, Any], status: int) -> Any:
    assert response["statusCode"] == status, response
    assert header(response, "content-type") == "application/json"
    assert response["isBase64Encoded"] is False
    return json.loads(body_bytes(response))


def set_cookies(api: str, response: dict[str, Any]) -> list[str]:
    """Set-Cookie as each payload version returns it: 2.0 in ``cookies``, 1.0 in
    ``multiValueHeaders`` (both ways leave none in the single-value headers)."""
    assert "set-cookie" not in (response.get("headers") or {})
    if api == "v2":
        cookies: list[str] = response.get("cookies", [])
        return cookies
    multi: list[str] = response["multiValueHeaders"].get("set-cookie", [])
    return multi


def access_logs(run: LambdaRun) -> list[dict[str, Any]]:
    return [entry for entry in run.logs if entry.get("logger") == "webapi.access"]


# --- Startup, logs and request ids ------------------------------------------------


def test_every_invocation_returned_a_response(lambda_run: LambdaRun) -> None:
    assert len(lambda_run.results) == len(all_events())
    for name in lambda_run.results:
        assert lambda_run.response(name)["statusCode"] < 500, name


def test_init_takes_the_startup_objects_out_of_the_collectors_way(lambda_run: LambdaRun) -> None:
    # gc.freeze() at startup: the modules, routes and models (tens of thousands of objects)
    # are no longer walked by every full collection during invocations.
    assert lambda_run.frozen_at_init > 10_000


def test_startup_runs_once_per_execution_environment(lambda_run: LambdaRun) -> None:
    results = list(lambda_run.results.values())
    assert len(results) >= 10
    assert lambda_run.startup_count == 1
    assert {result["startup_count"] for result in results} == {1}
    # The same Database (engine and pool) serves every warm invocation.
    assert len({result["db_id"] for result in results}) == 1
    startups = [entry for entry in lambda_run.logs if entry["message"] == "application startup"]
    assert len(startups) == 1
    assert startups[0]["platform"] == "lambda"
    assert startups[0]["environment"] == "test"


def test_logs_are_json_lines_only(lambda_run: LambdaRun) -> None:
    """Lambda ships stdout and stderr to CloudWatch: nothing but JSON lines there."""
    assert lambda_run.stderr == ""
    assert lambda_run.stdout_lines
    for line in lambda_run.stdout_lines:
        assert isinstance(json.loads(line), dict), line


def test_one_access_log_line_per_invocation_with_both_request_ids(lambda_run: LambdaRun) -> None:
    by_aws_id: dict[str, list[dict[str, Any]]] = {}
    for entry in access_logs(lambda_run):
        by_aws_id.setdefault(entry["aws_request_id"], []).append(entry)
    for name, result in lambda_run.results.items():
        response = lambda_run.response(name)
        [entry] = by_aws_id.pop(result["aws_request_id"])
        assert entry["request_id"] == header(response, "x-request-id"), name
        assert entry["status"] == response["statusCode"], name
    assert not by_aws_id


@pytest.mark.parametrize("api", APIS)
def test_request_id_sent_is_echoed(lambda_run: LambdaRun, api: str) -> None:
    assert header(lambda_run.response(f"{api}.health"), "x-request-id") == f"req-{api}-health"


@pytest.mark.parametrize("api", APIS)
def test_request_id_generated_when_absent(lambda_run: LambdaRun, api: str) -> None:
    generated = [header(lambda_run.response(f"{api}.{name}"), "x-request-id") for name in ("me", "binary")]
    for request_id in generated:
        assert request_id is not None
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert generated[0] != generated[1]


# --- The API flow, through both payload versions -----------------------------------


@pytest.mark.parametrize("api", APIS)
def test_health(lambda_run: LambdaRun, api: str) -> None:
    assert json_body(lambda_run.response(f"{api}.health"), 200) == {"status": "ok"}


@pytest.mark.parametrize(
    ("api", "name", "email"),
    [
        (api, name, email_for(api, variant))
        for api in APIS
        for name, variant in (("sign_up", ""), ("sign_up_base64", "-b64"))
    ],
)
def test_sign_up(lambda_run: LambdaRun, api: str, name: str, email: str) -> None:
    user = json_body(lambda_run.response(f"{api}.{name}"), 201)
    assert user["email"] == email
    assert user["name"] == "Lambda User"
    assert "password" not in json.dumps(user)


@pytest.mark.parametrize("api", APIS)
def test_duplicate_sign_up_is_409(lambda_run: LambdaRun, api: str) -> None:
    body = json_body(lambda_run.response(f"{api}.sign_up_again"), 409)
    assert body["detail"] == "Email already registered"


@pytest.mark.parametrize("api", APIS)
def test_login_with_form_body(lambda_run: LambdaRun, api: str) -> None:
    token = json_body(lambda_run.response(f"{api}.login"), 200)
    assert token["token_type"] == "bearer"
    assert token["access_token"].count(".") == 2
    assert token["expires_in"] > 0


@pytest.mark.parametrize("api", APIS)
def test_me_with_bearer_token(lambda_run: LambdaRun, api: str) -> None:
    me = json_body(lambda_run.response(f"{api}.me"), 200)
    signed_up = json_body(lambda_run.response(f"{api}.sign_up"), 201)
    assert me["id"] == signed_up["id"]
    assert me["email"] == email_for(api)


@pytest.mark.parametrize("api", APIS)
def test_me_without_token_is_401(lambda_run: LambdaRun, api: str) -> None:
    response = lambda_run.response(f"{api}.me_without_token")
    body = json_body(response, 401)
    assert body["detail"] == "Not authenticated"
    assert header(response, "www-authenticate") == "Bearer"


@pytest.mark.parametrize("api", APIS)
def test_create_then_list_items_with_pagination_query(lambda_run: LambdaRun, api: str) -> None:
    created = json_body(lambda_run.response(f"{api}.create_item"), 201)
    owner = json_body(lambda_run.response(f"{api}.sign_up"), 201)
    assert created["title"] == f"Item via {api}"
    assert created["owner_id"] == owner["id"]
    page = json_body(lambda_run.response(f"{api}.list_items"), 200)
    assert (page["page"], page["per_page"], page["total"]) == (1, 5, 1)
    assert [item["id"] for item in page["items"]] == [created["id"]]


@pytest.mark.parametrize("api", APIS)
def test_unknown_route_is_json_404(lambda_run: LambdaRun, api: str) -> None:
    response = lambda_run.response(f"{api}.unknown_route")
    body = json_body(response, 404)
    assert body == {"detail": "Not Found", "request_id": header(response, "x-request-id")}


@pytest.mark.parametrize("api", APIS)
def test_invalid_body_is_json_422(lambda_run: LambdaRun, api: str) -> None:
    body = json_body(lambda_run.response(f"{api}.invalid_sign_up"), 422)
    locations = {tuple(error["loc"]) for error in body["detail"]}
    assert {("body", "email"), ("body", "password")} <= locations


# --- What crosses the handler: cookies, queries, bodies, binary --------------------


@pytest.mark.parametrize("api", APIS)
def test_cookies_and_multi_value_query_reach_the_app(lambda_run: LambdaRun, api: str) -> None:
    echo = json_body(lambda_run.response(f"{api}.echo"), 200)
    assert echo["cookies"] == {"a": "1", "b": "two"}
    assert echo["query"] == [["tag", "a"], ["tag", "b"], ["q", "x y"]]
    assert echo["body_hex"] == ""
    # The app sees the stage as root_path, and the path with it (ASGI spec).
    assert echo["root_path"] == STAGE_PREFIX[api]
    assert echo["path"] == f"{STAGE_PREFIX[api]}/_test/echo"


@pytest.mark.parametrize("api", APIS)
def test_base64_request_body_arrives_as_the_exact_bytes(lambda_run: LambdaRun, api: str) -> None:
    echo = json_body(lambda_run.response(f"{api}.echo_binary_body"), 200)
    assert echo["method"] == "POST"
    assert echo["content_type"] == "application/octet-stream"
    assert bytes.fromhex(echo["body_hex"]) == BINARY_PAYLOAD


@pytest.mark.parametrize("api", APIS)
def test_binary_response_is_base64(lambda_run: LambdaRun, api: str) -> None:
    response = lambda_run.response(f"{api}.binary")
    assert response["statusCode"] == 200
    assert header(response, "content-type") == "application/octet-stream"
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == BINARY_PAYLOAD


@pytest.mark.parametrize("api", APIS)
def test_set_cookie_headers_come_out_separately(lambda_run: LambdaRun, api: str) -> None:
    cookies = set_cookies(api, lambda_run.response(f"{api}.binary"))
    assert len(cookies) == len(BINARY_COOKIES)
    for cookie, (name, value) in zip(cookies, BINARY_COOKIES.items(), strict=True):
        assert cookie.startswith(f"{name}={value};")
        assert "HttpOnly" in cookie


# --- Docs behind a stage prefix -----------------------------------------------------


@pytest.mark.parametrize(("site", "prefix"), DOCS_SITES)
def test_docs_page_points_at_the_staged_openapi(lambda_run: LambdaRun, site: str, prefix: str) -> None:
    response = lambda_run.response(f"{site}.docs")
    assert response["statusCode"] == 200
    assert header(response, "content-type") == "text/html; charset=utf-8"
    assert f"url: '{prefix}/openapi.json'" in body_bytes(response).decode()


@pytest.mark.parametrize(("site", "prefix"), DOCS_SITES)
def test_openapi_through_the_stage(lambda_run: LambdaRun, site: str, prefix: str) -> None:
    schema = json_body(lambda_run.response(f"{site}.openapi"), 200)
    assert f"{API}/users" in schema["paths"]
    assert "/_test/echo" not in schema["paths"]
    assert schema.get("servers", []) == ([{"url": prefix}] if prefix else [])


@pytest.mark.parametrize(("site", "prefix"), DOCS_SITES)
def test_root_names_the_staged_docs(lambda_run: LambdaRun, site: str, prefix: str) -> None:
    assert json_body(lambda_run.response(f"{site}.root"), 200)["docs"] == f"{prefix}/docs"


@pytest.mark.parametrize(("site", "prefix"), DOCS_SITES)
def test_trailing_slash_redirect_keeps_the_stage(lambda_run: LambdaRun, site: str, prefix: str) -> None:
    response = lambda_run.response(f"{site}.docs_slash")
    assert response["statusCode"] == 307
    assert header(response, "location") == f"https://{HOST}{prefix}/docs"


def test_http_bare_named_stage_redirects_into_the_stage(lambda_run: LambdaRun) -> None:
    response = lambda_run.response("http-dev.root_bare")
    assert response["statusCode"] == 307
    assert header(response, "location") == f"https://{HOST}/dev/"


def test_rest_bare_stage_url_names_the_staged_docs(lambda_run: LambdaRun) -> None:
    assert json_body(lambda_run.response("rest-prod.root_bare"), 200)["docs"] == "/prod/docs"
