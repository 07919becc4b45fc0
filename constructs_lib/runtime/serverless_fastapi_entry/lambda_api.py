"""The API function's handler: ``serverless_fastapi_entry.lambda_api.handler``.

At import (Lambda's init phase): the secrets become environment variables, the app is
imported (or built by its factory), and its lifespan starts, in the event loop Mangum keeps
for every later invocation, so what startup opens (a pool, a client) survives warm
invocations.

In a SnapStart init (a version being published), the hooks of ``snapstart`` are registered
around the app's own: before the snapshot, what the first request builds is prepared and the
database and cache connections are closed; after each restore, ``random`` is reseeded.
"""

from __future__ import annotations

import asyncio
from functools import cached_property
from typing import Any

from mangum import Mangum
from mangum.handlers import HTTPGateway

from . import environment
from .asgi import ASGIApp, Lifespan, Receive, Scope, Send, WithLifespanState, collector_paused, load_app
from .snapstart import SnapStartHooks


class StagePrefix:
    """Tell the app the URL prefix API Gateway added, so links and the docs work.

    * REST API (payload 1.0): ``requestContext.path`` is ``/prod/users`` while ``path`` is
      ``/users``; the prefix is the difference.
    * HTTP API (payload 2.0) on a named stage: ``rawPath`` keeps ``/{stage}``.

    The ASGI path keeps the prefix and ``root_path`` names it, as the ASGI spec wants.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def prefix(event: dict[str, Any], path: str) -> str:
        context = event.get("requestContext") or {}
        if event.get("version") == "2.0":
            stage = context.get("stage") or "$default"
            stage_prefix = f"/{stage}"
            if stage != "$default" and (path == stage_prefix or path.startswith(stage_prefix + "/")):
                return stage_prefix
            return ""
        full_path = context.get("path") or ""
        # The bare stage URL (".../prod") arrives as path "/" with requestContext.path "/prod".
        for tail in (path, path.rstrip("/")):
            if full_path != tail and full_path.endswith(tail):
                return full_path[: len(full_path) - len(tail)].rstrip("/")
        return ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = scope.get("aws.event")
        if scope["type"] == "http" and event:
            prefix = self.prefix(event, scope["path"])
            if prefix:
                scope = dict(scope)
                scope["root_path"] = prefix
                if not scope["path"].startswith(prefix + "/") and scope["path"] != prefix:
                    scope["path"] = prefix + scope["path"]
        await self.app(scope, receive, send)


class HttpApiEvents(HTTPGateway):
    """Mangum's HTTP API (and payload 1.0) handler, building the ASGI scope once per event:
    Mangum's ``scope`` is a property it reads twice per invocation."""

    @cached_property
    def scope(self) -> Any:
        return HTTPGateway.scope.fget(self)  # type: ignore[attr-defined]


environment.resolve()
# Before the app is imported, so that the app's own hooks run between the entry's (None
# unless this init is SnapStart's).
snapstart = SnapStartHooks.register()
with collector_paused():  # the app loaded and started without the cyclic collector, then frozen
    app = load_app()
    lifespan = Lifespan(app)
    asgi_handler = Mangum(
        StagePrefix(WithLifespanState(app, lifespan)), lifespan="off", custom_handlers=[HttpApiEvents]
    )
    # Mangum set up the event loop it runs every invocation in: start the app in it, once.
    loop = asyncio.get_event_loop()
    loop.run_until_complete(lifespan.startup())
if snapstart is not None:
    snapstart.serve(app, asgi_handler, loop)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return asgi_handler(event, context)
