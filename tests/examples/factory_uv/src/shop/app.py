"""The app factory: ``uvicorn --factory shop.app:create_app``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shop import notes
from shop.db import make_engine

# How many times the lifespan started in this process (the tests check it runs once).
STARTUPS = {"count": 0}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    STARTUPS["count"] += 1
    app.state.engine = make_engine()
    yield
    await app.state.engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(title="shop", lifespan=lifespan)
    app.include_router(notes.router)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/startups")
    def startups() -> dict[str, int]:
        return {"startups": STARTUPS["count"]}

    return app
