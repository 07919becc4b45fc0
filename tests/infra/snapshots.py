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
# Terraform JSON: the Cloud Run image tag is a content hash of service/ (a new one per code edit).
_IMAGE_TAG = re.compile(r"(-docker\.pkg\.dev/[^\"\s]+:)[0-9a-f]{16}\b")


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


def normalise_terraform(config: dict[str, Any]) -> dict[str, Any]:
    """Terraform JSON (CDKTF): as :func:`normalise`, plus the image's content-hash tag and
    the provider versions (pinned by the installed bindings; tested on their own) hidden."""
    result = normalise(json.loads(_IMAGE_TAG.sub(r"\1<hash>", json.dumps(config, sort_keys=True))))
    for provider in result.get("terraform", {}).get("required_providers", {}).values():
        provider["version"] = "<version>"
    return result
