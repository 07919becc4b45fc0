"""One Lambda execution environment, for the tests: run as a fresh interpreter.

    python tests/service/lambda_driver.py RESULT_PATH < invocations.json

The environment must be what Lambda gives the function (cwd and PYTHONPATH the
service directory, ``AWS_LAMBDA_FUNCTION_NAME``, ``DATABASE_URL``...). stdin is a
JSON list of ``{"name": ..., "event": ...}``. The driver imports
``serverless_fastapi_entry.lambda_api`` (Lambda's init phase), adds the test-only routes, then
calls its ``handler`` once per event, in order, each with a fresh
context object, as warm invocations of one execution environment.

An event may carry ``{{token:NAME}}`` anywhere in it: the driver replaces it with
the ``access_token`` the invocation called NAME answered, so a login and the
requests that use its token can travel in the same run.

The result goes to RESULT_PATH as one JSON document; stdout holds only what the
service logs (one JSON object per line), exactly as Lambda would ship it.
"""

# No ``from __future__ import annotations``: FastAPI must resolve the test routes'
# annotations, which are imported inside add_test_routes, not at module level.
import gc
import json
import re
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any

# Not UTF-8 (every byte value, 0x80-0xFF included): the binary route answers it.
BINARY_PAYLOAD = bytes(range(256))
BINARY_COOKIES = {"session": "s3cr3t-session", "theme": "dark"}
FUNCTION_NAME = "test-fn"
MEMORY_MB = 512

_TOKEN = re.compile(r"\{\{token:([\w.\-]+)\}\}")


class LambdaContext:
    """The attributes and the one method the Python runtime's context offers that
    Mangum or the service could read."""

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = FUNCTION_NAME
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = MEMORY_MB
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
        self.log_group_name = f"/aws/lambda/{FUNCTION_NAME}"
        self.log_stream_name = "2026/11/25/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def add_test_routes(app: Any) -> None:
    """Routes that report what crossed the handler, byte for byte."""
    from fastapi import Request, Response

    @app.api_route("/_test/echo", methods=["GET", "POST"], include_in_schema=False)
    async def echo(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {
            "method": request.method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "cookies": request.cookies,
            "query": [[key, value] for key, value in request.query_params.multi_items()],
            "body_hex": body.hex(),
            "content_type": request.headers.get("content-type"),
        }

    @app.get("/_test/binary", include_in_schema=False)
    async def binary() -> Response:
        response = Response(BINARY_PAYLOAD, media_type="application/octet-stream")
        for name, value in BINARY_COOKIES.items():
            response.set_cookie(name, value, httponly=True)
        return response


def with_tokens(event: dict[str, Any], tokens: dict[str, str]) -> dict[str, Any]:
    text = json.dumps(event)
    if not _TOKEN.search(text):
        return event
    return json.loads(_TOKEN.sub(lambda match: tokens.get(match.group(1), "missing-token"), text))


def access_token(response: dict[str, Any]) -> str | None:
    try:
        body = json.loads(response.get("body") or "")
    except ValueError:
        return None
    return body.get("access_token") if isinstance(body, dict) else None


def run(invocations: list[dict[str, Any]]) -> dict[str, Any]:
    # The init phase: the runtime entry builds the app and runs its startup.
    from serverless_fastapi_entry import lambda_api as lambda_handler

    frozen_at_init = gc.get_freeze_count()
    app = lambda_handler.app
    add_test_routes(app)
    tokens: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    for invocation in invocations:
        context = LambdaContext()
        result: dict[str, Any] = {"name": invocation["name"], "aws_request_id": context.aws_request_id}
        try:
            response = lambda_handler.handler(with_tokens(invocation["event"], tokens), context)
        except Exception:
            result["error"] = traceback.format_exc()
        else:
            result["response"] = response
            token = access_token(response)
            if token:
                tokens[invocation["name"]] = token
        result["startup_count"] = getattr(app.state, "startup_count", 0)
        result["db_id"] = id(app.state.db)
        results.append(result)
    return {
        "startup_count": getattr(app.state, "startup_count", 0),
        "frozen_at_init": frozen_at_init,
        "results": results,
    }


def main() -> None:
    result_path = Path(sys.argv[1])
    invocations = json.load(sys.stdin)
    result_path.write_text(json.dumps(run(invocations)))


if __name__ == "__main__":
    main()
