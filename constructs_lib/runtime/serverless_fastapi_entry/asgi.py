"""Load the app named by its entrypoint and run its lifespan once, outside any request.

Whatever the app uses (``lifespan=``, ``on_event`` handlers, a factory), the ASGI lifespan
protocol runs it: startup here, once; requests then get a copy of the state the lifespan
yielded, as an ASGI server gives them. Mangum runs with its own lifespan off: Mangum 0.22
would run startup and shutdown around every invocation (Kludex/mangum#342).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import ENTRYPOINT_VARIABLE, FACTORY_VARIABLE, SOURCE_ROOT_VARIABLE

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class EntrypointError(RuntimeError):
    """The entrypoint does not name an ASGI app or app factory."""


def add_source_root(root: str | None = None) -> None:
    """Put the app's import root (``src``, say, relative to the working directory or the
    bundle) first on sys.path."""
    root = root if root is not None else os.environ.get(SOURCE_ROOT_VARIABLE, "")
    if root and root != ".":
        base = Path(os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd())
        path = str((base / root).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the app is imported and started, then everything
    that built (modules, classes, routes, models, the app's clients) frozen: moved out of the
    collector's sight for the life of the process, and the collector on again.

    Importing an app allocates hundreds of thousands of long-lived objects; each allocation
    threshold crossed starts a collection that walks them all again, for no garbage (measured:
    the example service's container start-up 475 -> 414 ms, bench/cloudrun_bench.py). Later
    collections walk only what requests allocate. This is the pattern ``gc.freeze``'s
    documentation gives for a process that loads once and then serves. Cyclic garbage made
    while loading is kept, not collected: a start-up's worth, once."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def load_app(entrypoint: str | None = None, factory: bool | None = None) -> ASGIApp:
    """``module:attribute``: an ASGI app, or a factory called with no arguments."""
    entrypoint = entrypoint or os.environ.get(ENTRYPOINT_VARIABLE, "")
    if factory is None:
        flag = os.environ.get(FACTORY_VARIABLE, "").strip().lower()
        factory = {"1": True, "true": True, "0": False, "false": False}.get(flag)
    module_name, sep, attribute = entrypoint.partition(":")
    if not sep or not module_name or not attribute:
        raise EntrypointError(f"{ENTRYPOINT_VARIABLE} must look like 'module:attribute', got {entrypoint!r}")
    add_source_root()
    module = importlib.import_module(module_name)
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise EntrypointError(f"{entrypoint}: {module_name} has no attribute {attribute!r}") from None
    if factory is None:
        # An app is an ASGI callable taking (scope, receive, send); a factory takes nothing.
        factory = not _is_asgi_app(target)
    if factory:
        if not callable(target):
            raise EntrypointError(f"{entrypoint} is not an ASGI app (nor a factory returning one)")
        target = target()
    if not _is_asgi_app(target):
        raise EntrypointError(f"{entrypoint} is not an ASGI app (nor a factory returning one)")
    return target  # type: ignore[no-any-return]


def _is_asgi_app(candidate: Any) -> bool:
    if inspect.isclass(candidate) or not callable(candidate):
        return False
    call = candidate if inspect.isfunction(candidate) or inspect.ismethod(candidate) else candidate.__call__
    try:
        parameters = [
            p
            for p in inspect.signature(call).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(parameters) == 3


class Lifespan:
    """The app's lifespan, started once in ``loop`` and left open (an execution environment
    ends without notice; a container's server runs the shutdown itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.supported = True
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await inbox.put({"type": "lifespan.startup"})

        async def send(message: Message) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete" and not started.done():
                started.set_result(None)
            elif kind == "lifespan.startup.failed" and not started.done():
                started.set_exception(RuntimeError(f"lifespan startup failed: {message.get('message', '')}"))

        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}

        async def run() -> None:
            try:
                await self.app(scope, inbox.get, send)
            except BaseException as error:
                if not started.done():
                    # Raised before answering startup: the app does not speak lifespan.
                    self.supported = False
                    started.set_result(None)
                    return
                raise error
            if not started.done():
                started.set_result(None)

        self._task = asyncio.get_running_loop().create_task(run())
        await started


class WithLifespanState:
    """Each request's ``scope["state"]``: a shallow copy of what the lifespan put there."""

    def __init__(self, app: ASGIApp, lifespan: Lifespan) -> None:
        self.app = app
        self.lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.lifespan.state:
            scope = dict(scope)
            scope["state"] = {**self.lifespan.state, **scope.get("state", {})}
        await self.app(scope, receive, send)
