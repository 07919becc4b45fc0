"""What goes wrong while bundling, and what the user can do about it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from constructs_lib.aws.bundling.target import BundleTarget


class BundlingError(RuntimeError):
    """The bundle could not be built; the message says why and what to do."""


class MissingWheelError(BundlingError):
    """Locked dependencies have no wheel for the target platform and Python version, and do not
    build from source into pure-Python wheels: each needs compiling for the target."""

    def __init__(self, packages: Sequence[str], target: BundleTarget, detail: str) -> None:
        self.packages = tuple(packages)
        self.target = target
        names = ", ".join(self.packages)
        where = f"{target.uv_platform} / {target.cpython_tag}"
        super().__init__(
            f"no wheel for {names} on {where}, and building from source here does not give a "
            f"pure-Python wheel (each needs compiling for the target). Choices:\n"
            f"  1. Docker bundling: docker_fallback=True on the construct compiles them in the "
            f"Lambda runtime's build image (needs a running Docker daemon);\n"
            f"  2. another architecture or Python version for which {names} publish wheels: "
            f"the spec's compute.architecture, or the Lambda Python runtime;\n"
            f"  3. a wheel you build for {where} yourself, in a directory named by a "
            f"`--find-links <directory>` line of the requirements file.\n"
            f"{detail}"
        )
