"""Structured logging: one JSON object per line, with the request's context."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

# Set by the request middleware, read by every log line written during the request.
log_context: ContextVar[dict[str, Any] | None] = ContextVar("log_context", default=None)

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


_ENCODE = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, severity, logger, message, then the request
    context and any ``extra`` fields. Written for the hot path (one access line per
    request): one encoder, no datetime objects."""

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(record.msecs):03d}Z",
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key[0] != "_":
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODE(entry)


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Stamp every record with the current request's context when it is created,
    so the context survives whichever handler formats it, whenever."""
    record = _base_factory(*args, **kwargs)
    context = log_context.get()
    if context:
        record.__dict__.update(context)
    return record


def configure_logging(*, debug: bool = False) -> None:
    """Route everything through one JSON handler on stdout (Lambda and Cloud Run both
    ship stdout to their log service). Replaces handlers the runtime installed."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.setLogRecordFactory(_record_with_context)
    # The JSON lines carry none of these, so do not collect them for every record (the
    # logging HOWTO's "Optimization" settings): the caller's frame, thread, process names.
    logging._srcfile = None  # the documented switch that skips findCaller
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mangum", "mangum.http"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware writes the access log; uvicorn's and Mangum's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("mangum.http").setLevel(logging.WARNING)
