"""Pure ASGI middleware (no BaseHTTPMiddleware: no extra task or body copy per request).

Order, outermost first: RequestContext -> CORS -> UnhandledErrors -> BodySizeLimit -> app.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webapi.logs import log_context

access_log = logging.getLogger("webapi.access")
error_log = logging.getLogger("webapi.error")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=(\d))?")


def current_request_id() -> str | None:
    ctx = log_context.get()
    return ctx.get("request_id") if ctx else None


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Request id (accepted from X-Request-ID or generated, always echoed), the
    platform's ids (Lambda request id, Cloud Trace), and one JSON access-log line."""

    def __init__(self, app: ASGIApp, *, gcp_project: str | None = None) -> None:
        self.app = app
        self.gcp_project = gcp_project

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        context: dict[str, Any] = {"request_id": request_id}
        lambda_context = scope.get("aws.context")
        if lambda_context is not None:
            context["aws_request_id"] = getattr(lambda_context, "aws_request_id", None)
        trace = _CLOUD_TRACE.match(headers.get("x-cloud-trace-context", ""))
        if trace:
            trace_id = trace.group(1).lower()
            key = "logging.googleapis.com/trace"
            context[key] = f"projects/{self.gcp_project}/traces/{trace_id}" if self.gcp_project else trace_id
            if trace.group(2):
                context["logging.googleapis.com/spanId"] = trace.group(2)
            context["logging.googleapis.com/trace_sampled"] = trace.group(3) == "1"
        token = log_context.set(context)
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_code,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            log_context.reset(token)


class UnhandledErrorMiddleware:
    """An exception nothing else handled: log it with the request id, answer a
    JSON 500 that reveals nothing of the internals.

    One raised after the whole response was sent (a background task, a cleanup) is logged and
    ends there: re-raised, it would make the server close the connection, and a request the
    client had already sent on it would be dropped, its work done but never answered. Only a
    response cut off midway is re-raised, for the server to end it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = response_complete = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started, response_complete
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response_complete = True

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error_log.exception("unhandled exception", extra={"path": scope.get("path")})
            if response_complete:
                return
            if response_started:
                raise
            await send_json(
                send, 500, {"detail": "Internal Server Error", "request_id": current_request_id()}
            )


# A refused body is read and thrown away, up to a bound, before the 413 goes out.
DRAIN_FACTOR = 4  # up to this many times the limit past the limit...
DRAIN_CAP_BYTES = 8 * 1024 * 1024  # ...but never more than this
DRAIN_SECONDS = 5.0
_CLOSE = {"Connection": "close"}


class BodySizeLimitMiddleware:
    """Refuse request bodies over the limit with a JSON 413 that ordinary clients get to read.

    A Content-Length over the limit is refused before the app runs; a body without one (chunked)
    as soon as it crosses the limit. Either way the rest of the body is first read and thrown
    away, up to min(4 x the limit, 8 MiB) past the limit and ``drain_seconds``: a client that
    writes its whole body before it reads (urllib, requests) then reads the 413 instead of
    meeting a reset. Every 413 says ``Connection: close``, and uvicorn closes the connection
    after it: a body larger or slower than the bound is cut off there. (Left to itself, uvicorn
    would read and discard the rest of a refused body for as long as the client sends.) A client
    that sent ``Expect: 100-continue`` has sent no body yet and is answered at once. On Lambda the
    whole body arrives in one message, so there is nothing to drain.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        path_limits: Mapping[str, int] | None = None,
        drain_cap_bytes: int = DRAIN_CAP_BYTES,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})  # other limits for exact paths (uploads)
        self.drain_cap_bytes = drain_cap_bytes
        self.drain_seconds = drain_seconds

    @staticmethod
    def _too_large(limit: int) -> HTTPException:
        return HTTPException(413, f"Request body exceeds {limit} bytes", headers=dict(_CLOSE))

    def _drain_bound(self, limit: int) -> int:
        """How much of a refused body, in all, is read before the 413."""
        return limit + min(DRAIN_FACTOR * limit, self.drain_cap_bytes)

    async def _drain(self, receive: Receive, *, received: int, bound: int) -> None:
        """Read and throw away the rest of the body while it stays within ``bound`` bytes in all
        and ``drain_seconds``; past either, stop (the 413 then closes the connection on the rest)."""
        try:
            async with asyncio.timeout(self.drain_seconds):
                while received <= bound:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    received += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]  # the limits name paths inside the app
        limit = self.path_limits.get(path, self.max_bytes)
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json(
                    send, 400, {"detail": "Invalid Content-Length header", "request_id": current_request_id()}
                )
                return
            if int(declared) > limit:
                bound = self._drain_bound(limit)
                if int(declared) <= bound and headers.get("expect", "").lower() != "100-continue":
                    await self._drain(receive, received=0, bound=bound)
                await send_json(
                    send,
                    413,
                    {"detail": self._too_large(limit).detail, "request_id": current_request_id()},
                    headers=_CLOSE,
                )
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await self._drain(receive, received=received, bound=self._drain_bound(limit))
                    # FastAPI re-raises HTTPException from body reading, and its
                    # handler turns it into the JSON 413 (with the Connection: close header).
                    raise self._too_large(limit)
            return message

        await self.app(scope, limited_receive, send)
