from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.service.conftest import API, SignedUp


def _json_lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_request_id_is_accepted_when_sane(client: httpx.AsyncClient) -> None:
    sent = await client.get("/health", headers={"X-Request-ID": "abc-123.XYZ"})
    assert sent.headers["x-request-id"] == "abc-123.XYZ"
    hostile = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces" + "x" * 200
    assert len(hostile.headers["x-request-id"]) == 32


async def test_one_structured_access_line_per_request(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="webapi.access")
    response = await client.get("/api/v1/items", headers={"X-Request-ID": "req-42"})
    lines = _json_lines(caplog, "webapi.access")
    assert len(lines) == 1
    record = lines[0]
    assert (record.method, record.path, record.status) == ("GET", "/api/v1/items", response.status_code)  # type: ignore[attr-defined]
    assert isinstance(record.latency_ms, float) and record.latency_ms >= 0  # type: ignore[attr-defined]
    handler = logging.getLogger().handlers[0]
    entry = json.loads(handler.format(record))
    assert entry["request_id"] == "req-42"
    assert entry["severity"] == "INFO"
    assert {"time", "method", "path", "status", "latency_ms"} <= entry.keys()


async def test_cloud_trace_context_is_logged(app: FastAPI, caplog: pytest.LogCaptureFixture) -> None:
    from webapi.middleware import RequestContextMiddleware

    caplog.set_level(logging.INFO, logger="webapi.access")
    traced = RequestContextMiddleware(app, gcp_project="my-project")
    transport = httpx.ASGITransport(app=traced)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await client.get(
            "/health", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
        )
    record = _json_lines(caplog, "webapi.access")[-1]
    entry = json.loads(logging.getLogger().handlers[0].format(record))
    assert (
        entry["logging.googleapis.com/trace"] == "projects/my-project/traces/105445aa7843bc8bf206b12000100000"
    )
    assert entry["logging.googleapis.com/spanId"] == "1"
    assert entry["logging.googleapis.com/trace_sampled"] is True


async def test_unhandled_error_is_a_json_500_logged_with_the_request_id(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    caplog.set_level(logging.ERROR, logger="webapi.error")
    response = await client.get("/boom", headers={"X-Request-ID": "req-boom"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error", "request_id": "req-boom"}
    assert "hunter2" not in response.text
    errors = _json_lines(caplog, "webapi.error")
    assert errors and errors[-1].exc_info is not None
    entry = json.loads(logging.getLogger().handlers[0].format(errors[-1]))
    assert entry["request_id"] == "req-boom" and "hunter2" in entry["exception"]


async def test_body_over_the_limit_is_413_by_content_length(
    client: httpx.AsyncClient, user: SignedUp
) -> None:
    big = {"title": "t", "description": "x" * 70_000}  # the test app's limit is 64 KiB
    response = await client.post(f"{API}/items", json=big, headers=user.headers)
    assert response.status_code == 413
    assert "exceeds" in response.json()["detail"]
    assert response.headers["connection"] == "close"
    listing = await client.get(f"{API}/items", headers=user.headers)
    assert listing.json()["total"] == 0


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient, user: SignedUp) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 10_000

    response = await client.post(
        f"{API}/items", content=chunks(), headers={**user.headers, "content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["detail"] == "Request body exceeds 65536 bytes"
    assert response.headers["connection"] == "close"  # the rest of the body is not read


async def test_invalid_content_length_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/users", content=b"{}", headers={"content-length": "abc", "content-type": "application/json"}
    )
    assert response.status_code == 400


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404 and missing.json()["detail"] == "Not Found"
    wrong_method = await client.put("/health")
    assert wrong_method.status_code == 405 and "detail" in wrong_method.json()


async def test_cors_from_settings(client: httpx.AsyncClient) -> None:
    allowed = await client.options(
        f"{API}/items",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    denied = await client.options(
        f"{API}/items", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in denied.headers
    simple = await client.get("/health", headers={"Origin": "https://app.example.com"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_path_limits_name_paths_inside_the_app_under_a_root_path() -> None:
    """Behind an API Gateway stage the ASGI path carries the root_path (/dev/...): a per-path
    limit still applies to the route it names."""
    from webapi.middleware import BodySizeLimitMiddleware

    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limited = BodySizeLimitMiddleware(app, max_bytes=1024, path_limits={"/upload": 10_000})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"x" * 5000, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for root, path in (("", "/upload"), ("/dev", "/dev/upload")):
        scope = {"type": "http", "path": path, "root_path": root, "headers": [(b"content-length", b"5000")]}
        await limited(scope, receive, send)
    assert reached == ["/upload", "/dev/upload"]
    other = {
        "type": "http",
        "path": "/dev/items",
        "root_path": "/dev",
        "headers": [(b"content-length", b"5000")],
    }
    await limited(other, receive, send)
    assert sent[-2]["status"] == 413


# --- a refused body: read up to a bound, then a 413 that closes the connection -------------


class _Body:
    """An ASGI receive handing out a body in pieces (``pieces`` None: without end), each after
    ``pause`` seconds; ``taken`` counts the pieces the app read."""

    def __init__(self, piece: int, pieces: int | None, pause: float = 0.0) -> None:
        self.piece, self.pieces, self.pause, self.taken = piece, pieces, pause, 0

    async def __call__(self) -> dict[str, Any]:
        if self.pause:
            await asyncio.sleep(self.pause)
        self.taken += 1
        more = self.pieces is None or self.taken < self.pieces
        return {"type": "http.request", "body": b"x" * self.piece, "more_body": more}


async def _refuse(
    body: _Body, headers: dict[str, str], *, max_bytes: int = 1024, **options: Any
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The limit in front of an app that reads the whole body, as FastAPI does: the answer."""
    from starlette.exceptions import HTTPException

    from webapi.middleware import BodySizeLimitMiddleware, send_json

    async def app(scope: Any, receive: Any, send: Any) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except HTTPException as exc:  # what the app's handler does with it
            await send_json(send, exc.status_code, {"detail": exc.detail}, headers=exc.headers)
            return
        await send_json(send, 200, {})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": "/items",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
    }
    await BodySizeLimitMiddleware(app, max_bytes=max_bytes, **options)(scope, body, send)
    start, answer = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, json.loads(answer["body"])


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_refused_body_is_read_to_its_end_before_the_413(declared: bool) -> None:
    """A client that writes its whole body before reading would otherwise meet a reset."""
    body = _Body(piece=500, pieces=9)  # 4500 bytes: over the 1024 limit, within 1024 + 4 x 1024
    status, headers, answer = await _refuse(body, {"content-length": "4500"} if declared else {})
    assert (status, answer["detail"]) == (413, "Request body exceeds 1024 bytes")
    assert body.taken == 9  # all of it
    assert headers["connection"] == "close"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_past_the_bound_is_not_read_on(declared: bool) -> None:
    body = _Body(piece=500, pieces=None)  # without end
    status, headers, _ = await _refuse(body, {"content-length": str(10 * 1024 * 1024)} if declared else {})
    assert status == 413 and headers["connection"] == "close"
    # Declared: answered from the header. Chunked: read up to the bound (1024 + 4096), no further.
    assert body.taken == (0 if declared else 11)


async def test_the_bound_is_capped() -> None:
    body = _Body(piece=1000, pieces=None)
    status, _, _ = await _refuse(body, {}, max_bytes=10_000, drain_cap_bytes=5_000)
    assert status == 413 and body.taken == 16  # 10 000 + 5 000, and the piece that went past


async def test_a_client_expecting_100_continue_is_answered_before_it_sends() -> None:
    body = _Body(piece=500, pieces=9)
    status, headers, _ = await _refuse(body, {"content-length": "4500", "expect": "100-continue"})
    assert status == 413 and headers["connection"] == "close"
    assert body.taken == 0  # the server never asked for the body


async def test_a_trickling_body_is_read_for_drain_seconds_only() -> None:
    body = _Body(piece=10, pieces=None, pause=0.02)  # 500 bytes a second, without end
    started = time.monotonic()
    status, headers, _ = await _refuse(body, {"content-length": "4000"}, drain_seconds=0.3)
    assert status == 413 and headers["connection"] == "close"
    assert 0.25 < time.monotonic() - started < 2
    assert body.taken < 40


async def test_on_lambda_an_over_size_body_is_a_json_413_at_once(app: FastAPI) -> None:
    """API Gateway hands Mangum the whole body in one message: nothing to drain, no wait."""
    from mangum import Mangum

    from tests.service.lambda_driver import LambdaContext
    from tests.service.test_lambda_handler import http_api_event

    big = json.dumps({"title": "t", "description": "x" * 70_000})  # the test app's limit is 64 KiB

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.new_event_loop()  # Mangum runs the app in the thread's loop, as on Lambda
        asyncio.set_event_loop(loop)
        try:
            return Mangum(app, lifespan="off")(event, LambdaContext())  # type: ignore[arg-type]
        finally:
            loop.close()

    declared = http_api_event("POST", f"{API}/items", body=big, headers={"Content-Type": "application/json"})
    undeclared = copy.deepcopy(declared)
    del undeclared["headers"]["content-length"]
    for event in (declared, undeclared):
        started = time.monotonic()
        result = await asyncio.to_thread(invoke, event)
        assert time.monotonic() - started < 2
        assert result["statusCode"] == 413, result
        assert json.loads(result["body"])["detail"] == "Request body exceeds 65536 bytes"
