"""The error responses each route declares in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from webapi.schemas import ErrorResponse


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request",
        401: "Missing, invalid or expired token",
        403: "Not allowed for this user",
        404: "Not found (or not yours)",
        409: "Conflict with existing data",
        413: "Request body too large",
        429: "Too many attempts; see Retry-After",
        503: "Database unavailable",
    }
    return {code: {"model": ErrorResponse, "description": descriptions[code]} for code in codes}
