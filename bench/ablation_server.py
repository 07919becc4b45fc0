"""``python -m webapi.serve`` with parts of the service switched off, for :mod:`bench.ablations`.

A diagnostic, not a way to run the service: each switch (comma-separated in ``ABLATE``)
removes one thing the same-stack floor does not do, so that the throughput it gives back can
be measured under the same load:

* ``access-log``: the JSON access line (the ``webapi.access`` logger disabled);
* ``request-context``: the whole request-context middleware (request id, trace ids, access line);
* ``guards``: the unhandled-error and body-size middlewares;
* ``nested-routers``: the routers' routes registered on the app itself, each built once with
  its full path, instead of included (FastAPI 0.165 matches an included router's routes
  through a layer of its own per request);
* ``gc``: the cyclic garbage collector, off once the app is built;
* ``admission``: the database gate (``Database.admitted``): sessions go straight to the pool.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

# webapi.main.API_PREFIX, checked after the import: the routers must be patched before the
# service's modules (which build them) are imported.
API_PREFIX = "/api/v1"
ABLATIONS = ("access-log", "request-context", "guards", "nested-routers", "gc", "admission")


def chosen() -> set[str]:
    switches = {s for s in os.environ.get("ABLATE", "").split(",") if s}
    unknown = switches - set(ABLATIONS)
    if unknown:
        raise SystemExit(f"ABLATE: unknown {sorted(unknown)}; known: {', '.join(ABLATIONS)}")
    return switches


def apply(switches: set[str]) -> None:
    import fastapi  # noqa: PLC0415
    from fastapi import routing  # noqa: PLC0415

    if "nested-routers" in switches:
        # Every router with a prefix is included under API_PREFIX (webapi.main.create_app):
        # built with the full path instead, its routes go straight onto the app.
        original_init = routing.APIRouter.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("prefix"):
                kwargs["prefix"] = API_PREFIX + kwargs["prefix"]
            original_init(self, *args, **kwargs)

        def include_router(self: Any, router: Any, **_: Any) -> None:
            self.router.routes.extend(router.routes)
            self.router._mark_routes_changed()  # what add_api_route does after appending

        routing.APIRouter.__init__ = init  # type: ignore[method-assign]
        fastapi.FastAPI.include_router = include_router  # type: ignore[method-assign]

    import webapi.main  # noqa: PLC0415 - after the routers are patched

    if webapi.main.API_PREFIX != API_PREFIX:
        raise SystemExit(f"webapi.main.API_PREFIX is {webapi.main.API_PREFIX!r}, not {API_PREFIX!r}")
    removed = set()
    if "request-context" in switches:
        removed.add("RequestContextMiddleware")
    if "guards" in switches:
        removed |= {"UnhandledErrorMiddleware", "BodySizeLimitMiddleware"}
    original_add = fastapi.FastAPI.add_middleware

    def add_middleware(self: Any, middleware: Any, *args: Any, **kwargs: Any) -> None:
        if middleware.__name__ not in removed:
            original_add(self, middleware, *args, **kwargs)

    fastapi.FastAPI.add_middleware = add_middleware  # type: ignore[method-assign,assignment]

    original_create = webapi.main.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original_create(*args, **kwargs)
        if "access-log" in switches:
            logging.getLogger("webapi.access").disabled = True
        return app

    webapi.main.create_app = create_app

    if switches & {"gc", "admission"}:
        original_startup = webapi.main.startup

        async def startup(app: Any) -> None:
            await original_startup(app)
            if "gc" in switches:
                gc.disable()
            if "admission" in switches:
                app.state.db.gate = None

        webapi.main.startup = startup


def main() -> None:
    apply(chosen())
    from webapi import serve  # noqa: PLC0415

    serve.main()


if __name__ == "__main__":
    main()
