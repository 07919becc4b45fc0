"""Synthesize the Google Cloud stack (CDK for Terraform) for the tests.

The session fixtures ``gcp_dev``, ``gcp_prod`` and ``gcp_variant`` (tests/infra/conftest.py)
call :func:`synth_gcp` once each: importing the Google provider bindings costs seconds
and a gigabyte, so every GCP test shares them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stacks.spec import Spec

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

# prod with every optional part of the spec changed: private, remote state, other sizes,
# one extra secret, the cache and the uploads bucket on (with a CORS origin). Proves the
# values come from the spec and the optional parts switch.
VARIANT = {
    "spec.public": "false",
    "spec.gcp.state_bucket": "my-state",
    "spec.scaling.min_instances": "1",
    "spec.scaling.max_instances": "5",
    "spec.scaling.concurrency": "40",
    "spec.compute.cpu": "2",
    "spec.compute.memory_mib": "2048",
    "spec.secrets": "[STRIPE_API_KEY]",
    "spec.cache.enabled": "true",
    "spec.storage.enabled": "true",
    "spec.cors_origins": "[https://app.example.com]",
}

_REFERENCE = re.compile(r"\$\{([a-z0-9_]+)\.([A-Za-z0-9_-]+)(?:\.[^}]*)?\}")


@dataclass
class SynthesizedGcp:
    spec: Spec
    stack: Any  # stacks.gcp_stack.GcpServiceStack
    synth: str  # Testing.synth output: what the Testing.to_have_* matchers take
    json: dict[str, Any]

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """Resources of one type, by logical name (never hard-code one: they are generated)."""
        found: dict[str, dict[str, Any]] = self.json["resource"].get(kind, {})
        return found

    def single(self, kind: str) -> tuple[str, dict[str, Any]]:
        found = self.resources(kind)
        assert len(found) == 1, f"{kind}: {len(found)}"
        return next(iter(found.items()))

    def all_resources(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(``type.name``, properties) of every resource."""
        for kind, by_name in self.json["resource"].items():
            for name, props in by_name.items():
                yield f"{kind}.{name}", props

    def dependencies(self, address: str) -> set[str]:
        """What ``address`` waits for before Terraform creates it: ``depends_on`` and every
        ``${type.name.attr}`` reference, followed transitively."""
        direct = {
            resource: {*props.get("depends_on", []), *referenced(props)}
            for resource, props in self.all_resources()
        }
        seen: set[str] = set()
        todo = list(direct[address])
        while todo:
            current = todo.pop()
            if current in seen or current not in direct:
                continue
            seen.add(current)
            todo.extend(direct[current])
        return seen


def referenced(props: Any) -> set[str]:
    """``type.name`` of every resource ``props`` references (``depends_on`` excluded)."""
    text = json.dumps({k: v for k, v in props.items() if k != "depends_on"})
    return {f"{kind}.{name}" for kind, name in _REFERENCE.findall(text)}


def synth_gcp(stage: str, overrides: dict[str, str] | None = None) -> SynthesizedGcp:
    from cdktf import Testing

    from stacks.gcp_stack import GcpServiceStack
    from stacks.spec import load_spec

    spec = load_spec(context=overrides or {}, stage=stage)
    app = Testing.app()
    stack = GcpServiceStack(app, f"{spec.name}-gcp", spec=spec)
    synthesized = Testing.synth(stack)
    return SynthesizedGcp(spec=spec, stack=stack, synth=synthesized, json=json.loads(synthesized))
