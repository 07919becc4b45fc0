"""What the constructs ship into the app's Lambda bundle and generated container image.

``serverless_fastapi_entry`` is copied as a top-level package beside the app's own code. It
imports only the standard library, Mangum (Lambda) or uvicorn (container), and boto3 (the
Lambda Python runtime's own), so it adds nothing the app must declare.
"""

from pathlib import Path

ENTRY_PACKAGE = "serverless_fastapi_entry"
ENTRY_DIR = Path(__file__).resolve().parent / ENTRY_PACKAGE
# What the entry needs beyond the standard library, added to the app's own dependencies.
LAMBDA_REQUIREMENTS = ("mangum>=0.17,<1",)
CONTAINER_REQUIREMENTS = ("uvicorn>=0.30",)
# The Alembic runner's source, for an image that does not hold the entry (`python -c SOURCE`).
# Terraform would read "${" or "%{" in a string as its own syntax: the source has neither.
ALEMBIC_RUNNER_SOURCE = (ENTRY_DIR / "alembic_runner.py").read_text(encoding="utf-8")
if "${" in ALEMBIC_RUNNER_SOURCE or "%{" in ALEMBIC_RUNNER_SOURCE:
    raise RuntimeError("alembic_runner.py must not contain Terraform template syntax")
