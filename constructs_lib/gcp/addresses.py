"""Terraform addresses that a construct's inner structure does not change.

CDK for Terraform names a resource after its construct path (``service/postgres/sql`` becomes
``service_postgres_sql_<hash of the path>``), so moving a resource into a sub-construct renames
it, and Terraform then destroys the old one and creates the new one: a new Cloud SQL instance,
empty. CloudRunService's parts are :class:`Part` sub-constructs: each resource they create goes
through :func:`flat`, which gives it the name it would have as a direct child of the part's
parent. The parts organise the code; the addresses stay those of a flat construct.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TypeVar

from cdktf import TerraformElement, TerraformResource, TerraformStack
from constructs import Construct

# cdktf's makeUniqueId (lib/private/unique.ts, cdktf 0.21), which this mirrors.
_HIDDEN_ID = "Default"
_HIDDEN_FROM_HUMAN_ID = "Resource"
_HASH_LEN = 8
_MAX_HUMAN_LEN = 240
_MAX_ID_LEN = 255

E = TypeVar("E", bound=TerraformElement)


class Part(Construct):
    """A sub-construct that adds nothing to the Terraform addresses of what it creates:
    create every resource through :func:`flat`."""


def make_unique_id(components: Sequence[str]) -> str:
    """The logical id cdktf gives a construct path (the components below the stack)."""
    components = [c for c in components if c != _HIDDEN_ID]
    if not components:
        raise ValueError("no components to name")
    if len(components) == 1:
        candidate = _allowed(components[0])
        if len(candidate) <= _MAX_ID_LEN:
            return candidate
    digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()
    deduped: list[str] = []
    for component in components:
        if not deduped or not deduped[-1].endswith(component):
            deduped.append(component)
    human = "_".join(_allowed(c) for c in deduped if c != _HIDDEN_FROM_HUMAN_ID)[:_MAX_HUMAN_LEN]
    return f"{human}_{digest[:_HASH_LEN].upper()}"


def flat(element: E) -> E:
    """``element`` named as if every :class:`Part` above it were not there. Call it on the new
    resource before anything refers to it (cdktf fixes a name at its first reference)."""
    scopes = element.node.scopes
    stack_index = next(i for i, scope in enumerate(scopes) if isinstance(scope, TerraformStack))
    below_stack = scopes[stack_index + 1 :]
    if any(isinstance(scope, Part) for scope in below_stack[:-1]):
        components = [scope.node.id for scope in below_stack if not isinstance(scope, Part)]
        element.override_logical_id(make_unique_id(components))
    return element


def check_unique_addresses(scope: Construct) -> None:
    """Two resources of one type with one name would overwrite each other in the output."""
    seen: set[tuple[str, str]] = set()
    for child in scope.node.find_all():
        if isinstance(child, TerraformResource):
            address = (child.terraform_resource_type, child.friendly_unique_id)
            if address in seen:
                raise ValueError(f"two resources at {'.'.join(address)}: give one another construct id")
            seen.add(address)


def _allowed(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "", text)
