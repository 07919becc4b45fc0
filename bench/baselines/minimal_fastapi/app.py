"""The cold-start and bundle-size baseline: the smallest FastAPI app behind Mangum.

Bundled by the project's own bundler (``constructs_lib.aws.bundling``) from this directory
and ``requirements.txt`` (FastAPI and Mangum only, at the service's versions), then driven
exactly as the service's bundle is: ``app.handler(event, context)`` with an HTTP API 2.0
event for ``GET /health``.
"""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


handler = Mangum(app, lifespan="off")
