"""Exception handlers: every error the API returns is JSON with a ``detail``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from webapi.db import DB_RETRY_AFTER_SECONDS, is_unavailable
from webapi.middleware import current_request_id

log = logging.getLogger("webapi.error")


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """The methods some route takes for the request's path. Starlette's 405 names only those of
    the first route that matched the path (POST of ``POST /items``, not GET of ``GET /items``)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    )


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    headers = exc.headers
    if exc.status_code == 405 and (allowed := allowed_methods(request)):
        headers = {**(headers or {}), "Allow": allowed}
    return JSONResponse(
        {"detail": exc.detail, "request_id": current_request_id()},
        status_code=exc.status_code,
        headers=headers,
    )


async def validation_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in error.items() if k in ("type", "loc", "msg")} for error in exc.errors()]
    return JSONResponse(
        {"detail": jsonable_encoder(errors), "request_id": current_request_id()}, status_code=422
    )


async def database_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    if not is_unavailable(exc):
        raise exc  # a real bug: the unhandled-error middleware logs it and answers 500
    log.warning("database unavailable", extra={"error": type(exc).__name__})
    return JSONResponse(
        {"detail": "Database unavailable, retry shortly", "request_id": current_request_id()},
        status_code=503,
        headers={"Retry-After": DB_RETRY_AFTER_SECONDS},
    )


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    for error_type in (SQLAlchemyError, DBAPIError, OSError, TimeoutError):
        app.add_exception_handler(error_type, database_exception_handler)
