"""``python -m serverless_fastapi_entry serve`` (the generated image's command) or
``python -m serverless_fastapi_entry migrate`` (the migration job's)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from . import environment, migrate
from .asgi import collector_paused, load_app

log = logging.getLogger("serverless_fastapi_entry")


def serve() -> None:
    with collector_paused():  # the server and the app loaded without the cyclic collector
        import uvicorn  # noqa: PLC0415 - the container's server, not needed on Lambda

        app = load_app()  # an app or a factory, as the entrypoint says; uvicorn runs its lifespan
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "0.0.0.0"),  # noqa: S104 - a container listens on all interfaces
        port=int(os.environ.get("PORT", "8080")),
        proxy_headers=True,
        # On Cloud Run only Google's front end reaches the container.
        forwarded_allow_ips="*" if os.environ.get("K_SERVICE") else "127.0.0.1",
        timeout_graceful_shutdown=8,
        server_header=False,
    )


def run_migrations() -> None:
    log.info("migrations: %s", migrate.run())


def main(argv: list[str]) -> None:
    commands: dict[str, Callable[[], None]] = {"serve": serve, "migrate": run_migrations}
    if len(argv) != 2 or argv[1] not in commands:
        raise SystemExit("usage: python -m serverless_fastapi_entry {serve,migrate}")
    logging.basicConfig(level=logging.INFO)
    environment.resolve()
    commands[argv[1]]()


if __name__ == "__main__":
    main(sys.argv)
