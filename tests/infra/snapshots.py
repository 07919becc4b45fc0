"""Normalise synthesized templates so a snapshot changes only when the infrastructure does."""

from __future__ import annotations

import json
import re
from typing import Any

# Content hashes (asset keys, Lambda version logical IDs) change with every code edit.
_HASHES = (
    (re.compile(r"[0-9a-f]{64}(\.zip|\.json)?"), r"<hash>\1"),
    (re.compile(r"(CurrentVersion[0-9A-F]{8})[0-9a-f]{32}"), r"\1<hash>"),
)
# Things only the CDK version decides.
_VERSION_KEYS = ("BootstrapVersion", "CheckBootstrapVersion")


def normalise(template: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(template, sort_keys=True)
    for pattern, replacement in _HASHES:
        text = pattern.sub(replacement, text)
    result: dict[str, Any] = json.loads(text)
    for section in ("Parameters", "Rules"):
        for key in _VERSION_KEYS:
            result.get(section, {}).pop(key, None)
        if section in result and not result[section]:
            del result[section]
    return result
