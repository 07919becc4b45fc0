from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from webapi.db import DB_RETRY_AFTER_SECONDS, is_unavailable
from webapi.deps import DatabaseDep, SettingsDep
from webapi.schemas import Health, Readiness

router = APIRouter(tags=["health"])
log = logging.getLogger("webapi.health")


@router.get("/health", response_model=Health, summary="Liveness (no database)")
async def liveness() -> Health:
    return Health(status="ok")


@router.get(
    "/health/ready",
    response_model=Readiness,
    summary="Readiness: the database answers within the timeout",
    responses={503: {"model": Readiness, "description": "Database unreachable"}},
)
async def readiness(database: DatabaseDep, settings: SettingsDep) -> Readiness | JSONResponse:
    try:
        await database.ping(settings.readiness_timeout_seconds)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("readiness check failed", extra={"error": type(exc).__name__})
        body = Readiness(status="unavailable", database="unreachable")
        return JSONResponse(
            body.model_dump(), status_code=503, headers={"Retry-After": DB_RETRY_AFTER_SECONDS}
        )
    return Readiness(status="ready", database="ok")
