"""Cloud Run / container entry: ``python -m webapi.serve``.

Listens on 0.0.0.0:$PORT (8080 by default). uvicorn stops accepting on SIGTERM and
lets in-flight requests finish (Cloud Run gives 10 s before SIGKILL).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping


def forwarded_allow_ips(env: Mapping[str, str]) -> str:
    """Whose X-Forwarded-For / -Proto to believe. On Cloud Run (K_SERVICE is set) only Google's
    front end reaches the container, so any. Elsewhere only FORWARDED_ALLOW_IPS (your proxies),
    by default uvicorn's 127.0.0.1: a client must not choose the address it is seen from."""
    if "FORWARDED_ALLOW_IPS" in env:
        return env["FORWARDED_ALLOW_IPS"]
    return "*" if env.get("K_SERVICE") else "127.0.0.1"


def main() -> None:
    # Loaded without the cyclic collector, then everything loading built frozen (out of the
    # collector's sight for good) and the collector on again: without it, collections walk
    # the hundreds of thousands of objects the imports make, for no garbage. Measured: start-up
    # to the first /health 475 -> 414 ms (bench/cloudrun_bench.py). gc.freeze's own pattern.
    gc.disable()
    try:
        import uvicorn  # noqa: PLC0415

        from webapi.logs import configure_logging  # noqa: PLC0415
        from webapi.main import create_app  # noqa: PLC0415

        configure_logging()
        app = create_app()
    finally:
        gc.freeze()
        gc.enable()
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "0.0.0.0"),  # noqa: S104 - a container must listen on all interfaces
        port=int(os.environ.get("PORT", "8080")),
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips(os.environ),
        timeout_graceful_shutdown=8,
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
