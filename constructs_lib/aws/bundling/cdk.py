"""The CDK glue: :class:`LocalPythonBundler` (``aws_cdk.ILocalBundling``) and :func:`lambda_code`.

aws-cdk-lib is imported only when one of them is used, never when this module is imported.
"""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from constructs_lib.aws.bundling.build import build_bundle, locked_content_hash
from constructs_lib.aws.bundling.dependencies import Dependencies, lock_requirements
from constructs_lib.aws.bundling.docker import docker_bundling_command, stage_docker_input
from constructs_lib.aws.bundling.errors import MissingWheelError
from constructs_lib.aws.bundling.source import DEFAULT_EXCLUDES
from constructs_lib.aws.bundling.target import BundleTarget, python_version_of
from constructs_lib.aws.bundling.tools import elf_strip_tool, find_uv, target_interpreter, uv_version

if TYPE_CHECKING:
    from aws_cdk import aws_lambda

log = logging.getLogger(__name__)

_EMPTY: Mapping[str, Path] = {}


@functools.cache
def _declare_jsii_interface() -> None:
    """``@jsii.implements(aws_cdk.ILocalBundling)`` for :class:`LocalPythonBundler`, applied once.

    The decorator only records the interface on the class, for jsii to read when an instance
    first crosses into JavaScript; applying it here instead of at the class statement keeps
    aws-cdk-lib (and its jsii kernel) out of imports that only build bundles.
    """
    import aws_cdk  # noqa: PLC0415 - deferred on purpose, see above
    import jsii  # noqa: PLC0415

    jsii.implements(aws_cdk.ILocalBundling)(LocalPythonBundler)


class LocalPythonBundler:
    """CDK local bundling (``aws_cdk.ILocalBundling``) with :func:`build_bundle`.

    ``try_bundle`` returns False, so that CDK bundles in Docker instead, only when a dependency
    needs compiling for the target (:class:`MissingWheelError`) and ``docker_fallback`` is on;
    otherwise that error, like every other failure, fails the synth.
    """

    def __init__(
        self,
        *,
        source_dir: Path,
        dependencies: Dependencies | None = None,
        python_version: str,
        architecture: str,
        manylinux: str | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDES,
        drop_packages: Sequence[str] = (),
        extra_requirements: Sequence[str] = (),
        extra_sources: Mapping[str, Path] = _EMPTY,
        lock_dir: Path | None = None,
        docker_fallback: bool = False,
        requirements: Path | None = None,
    ) -> None:
        _declare_jsii_interface()
        self.source_dir = source_dir
        self.dependencies = dependencies
        self.requirements = requirements
        self.target = BundleTarget.create(python_version, architecture, manylinux)
        self.exclude = tuple(exclude)
        self.drop_packages = tuple(drop_packages)
        self.extra_requirements = tuple(extra_requirements)
        self.extra_sources = dict(extra_sources)
        self.lock_dir = lock_dir
        self.docker_fallback = docker_fallback

    def try_bundle(self, output_dir: str, *_options: Any, **_kwargs: Any) -> bool:
        """Called by CDK (through jsii) with an empty ``output_dir`` and the BundlingOptions."""
        output = Path(output_dir)
        try:
            build_bundle(
                output,
                source_dir=self.source_dir,
                dependencies=self.dependencies,
                requirements=self.requirements,
                python_version=self.target.python_version,
                architecture=self.target.architecture,
                manylinux=self.target.manylinux,
                exclude=self.exclude,
                drop_packages=self.drop_packages,
                extra_requirements=self.extra_requirements,
                extra_sources=self.extra_sources,
                lock_dir=self.lock_dir,
            )
        except MissingWheelError as error:
            if not self.docker_fallback:
                raise
            log.warning(
                "no wheel for %s on %s / %s: falling back to Docker bundling (needs a running Docker daemon)",
                ", ".join(error.packages),
                self.target.uv_platform,
                self.target.cpython_tag,
            )
            for child in output.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            return False
        return True


def lambda_code(
    *,
    source_dir: Path,
    runtime: aws_lambda.Runtime,
    architecture: aws_lambda.Architecture,
    dependencies: Dependencies | None = None,
    requirements: Path | None = None,
    extra_requirements: Sequence[str] = (),
    extra_sources: Mapping[str, Path] = _EMPTY,
    lock_dir: Path | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    drop_packages: Sequence[str] = (),
    docker_fallback: bool = False,
) -> aws_lambda.Code:
    """The Lambda code asset for ``source_dir``, bundled locally with uv (in Docker only with
    ``docker_fallback`` and a dependency that needs compiling for the target).

    ``dependencies`` (default: :meth:`Dependencies.detect` of ``source_dir``; ``requirements``
    is the older spelling of ``Dependencies.from_path``) plus ``extra_requirements`` are locked
    for the target at synth (:func:`lock_requirements`): ``lock_dir`` is required unless they
    are a requirements file already pinned with hashes that has every extra. ``extra_sources``
    (bundle destination → file or directory) go in after the app's source. The asset hash is
    :func:`content_hash` of the inputs, so it does not depend on when or where the bundle is
    built; with bundling skipped (``aws:cdk:bundling-stacks``) nothing is built, but the lock
    is resolved (the hash covers it). ``drop_packages`` names installed distributions left out
    of the bundle (the function never imports them: e.g. the ASGI server only a container runs).
    """
    import aws_cdk  # noqa: PLC0415 - the CDK-free core must not load aws-cdk-lib on import
    from aws_cdk import aws_lambda  # noqa: PLC0415

    source_dir = source_dir.resolve()
    if dependencies is not None and requirements is not None:
        raise ValueError("give dependencies or requirements, not both")
    if requirements is not None:
        dependencies = Dependencies.from_path(requirements)
    elif dependencies is None:
        dependencies = Dependencies.detect(source_dir)
    target = BundleTarget.create(python_version_of(runtime), architecture.name)
    lock = lock_requirements(dependencies, target, extra_requirements=extra_requirements, lock_dir=lock_dir)
    asset_hash = locked_content_hash(
        source_dir=source_dir,
        lock=lock,
        target=target,
        exclude=exclude,
        drop_packages=drop_packages,
        extra_requirements=extra_requirements,
        extra_sources=extra_sources,
    )
    docker_input = stage_docker_input(source_dir, lock, extra_sources, exclude)
    return aws_lambda.Code.from_asset(
        str(docker_input.asset_dir),
        asset_hash_type=aws_cdk.AssetHashType.CUSTOM,
        asset_hash=asset_hash,
        bundling=aws_cdk.BundlingOptions(
            image=runtime.bundling_image,
            platform=architecture.docker_platform,
            command=docker_bundling_command(
                requirements=docker_input.requirements,
                exclude=exclude,
                drop_packages=drop_packages,
                extra_sources=docker_input.extra_sources,
                uv_version=None if lock is None else uv_version(find_uv()),
                strip=elf_strip_tool() is not None,
                bytecode=target_interpreter(target.python_version) is not None,
            ),
            local=LocalPythonBundler(
                source_dir=source_dir,
                dependencies=dependencies,
                python_version=target.python_version,
                architecture=target.architecture,
                exclude=exclude,
                drop_packages=drop_packages,
                extra_requirements=extra_requirements,
                extra_sources=extra_sources,
                lock_dir=lock_dir,
                docker_fallback=docker_fallback,
            ),
        ),
    )
