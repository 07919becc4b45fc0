"""Docker-free Lambda bundling for a Python service: locked wheels for the target, plus the source.

The core (:func:`build_bundle`, :func:`content_hash`, :func:`lock_requirements`) is plain
Python and does not import aws-cdk-lib, so it can build a bundle for any
``(python_version, architecture)`` pair, for Lambda or for this machine, without starting
jsii. :func:`lambda_code` is the CDK glue.

One module per job:

* :mod:`.target`: what a bundle is built for (:class:`BundleTarget`, the host, runtimes);
* :mod:`.source`: which files of the app (and of the extra sources) go in;
* :mod:`.dependencies`: the app's dependency files, hash-locked per target;
* :mod:`.install`: the lock installed with uv (wheels; pure-Python source builds);
* :mod:`.prune`: what installed dependencies never need on Lambda;
* :mod:`.bytecode`: stripping, bytecode, file modes;
* :mod:`.build`: the bundle and its content hash;
* :mod:`.docker`: the Docker fallback's script, which builds the same bundle;
* :mod:`.cdk`: :class:`LocalPythonBundler` and :func:`lambda_code`;
* :mod:`.tools`, :mod:`.errors`: the programs run, the errors raised.
"""

from constructs_lib.aws.bundling.build import (
    BUNDLER_VERSION,
    build_bundle,
    build_locked_bundle,
    content_hash,
    locked_content_hash,
)
from constructs_lib.aws.bundling.bytecode import compile_bytecode, normalize_modes, strip_debug_info
from constructs_lib.aws.bundling.cdk import LocalPythonBundler, lambda_code
from constructs_lib.aws.bundling.dependencies import Dependencies, hash_locked_pins, lock_requirements
from constructs_lib.aws.bundling.docker import (
    DockerInput,
    docker_bundling_command,
    docker_bundling_script,
    stage_docker_input,
)
from constructs_lib.aws.bundling.errors import BundlingError, MissingWheelError
from constructs_lib.aws.bundling.install import install_requirements, uv_install_command
from constructs_lib.aws.bundling.prune import drop_packages, prune_dependencies, unreferenced_test_dirs
from constructs_lib.aws.bundling.source import DEFAULT_EXCLUDES, extra_source_files, source_files
from constructs_lib.aws.bundling.target import (
    ARCHITECTURES,
    BundleTarget,
    host_architecture,
    host_manylinux,
    host_python_version,
    lambda_manylinux,
    python_version_of,
)
from constructs_lib.aws.bundling.tools import (
    elf_strip_tool,
    find_uv,
    target_interpreter,
    uv_python,
    uv_version,
)

__all__ = [
    "ARCHITECTURES",
    "BUNDLER_VERSION",
    "DEFAULT_EXCLUDES",
    "BundleTarget",
    "BundlingError",
    "Dependencies",
    "DockerInput",
    "LocalPythonBundler",
    "MissingWheelError",
    "build_bundle",
    "build_locked_bundle",
    "compile_bytecode",
    "content_hash",
    "docker_bundling_command",
    "docker_bundling_script",
    "drop_packages",
    "elf_strip_tool",
    "extra_source_files",
    "find_uv",
    "hash_locked_pins",
    "host_architecture",
    "host_manylinux",
    "host_python_version",
    "install_requirements",
    "lambda_code",
    "lambda_manylinux",
    "lock_requirements",
    "locked_content_hash",
    "normalize_modes",
    "prune_dependencies",
    "python_version_of",
    "source_files",
    "stage_docker_input",
    "strip_debug_info",
    "target_interpreter",
    "unreferenced_test_dirs",
    "uv_install_command",
    "uv_python",
    "uv_version",
]
