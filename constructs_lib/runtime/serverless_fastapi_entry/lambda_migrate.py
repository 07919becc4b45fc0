"""The migration function's handler: ``serverless_fastapi_entry.lambda_migrate.handler``,
run by the deployment (a CDK Trigger) before the new code takes traffic."""

from __future__ import annotations

import logging
from typing import Any

from . import environment, migrate


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    logging.basicConfig(level=logging.INFO, force=True)
    environment.resolve()
    return {"status": migrate.run()}
