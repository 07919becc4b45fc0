"""Cloud Run / container entry: ``python -m webapi.serve``.

Listens on 0.0.0.0:$PORT (8080 by default). uvicorn stops accepting on SIGTERM and
lets in-flight requests finish (Cloud Run gives 10 s before SIGKILL).
"""

from __future__ import annotations

import os

import uvicorn

from webapi.logs import configure_logging


def main() -> None:
    configure_logging()
    uvicorn.run(
        "webapi.main:create_app",
        factory=True,
        host=os.environ.get("HOST", "0.0.0.0"),  # noqa: S104 - a container must listen on all interfaces
        port=int(os.environ.get("PORT", "8080")),
        proxy_headers=True,
        forwarded_allow_ips="*",
        timeout_graceful_shutdown=8,
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
