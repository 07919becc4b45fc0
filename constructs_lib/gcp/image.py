"""What Cloud Build builds, and the image's tag: a content hash of the build context (plain
Python, no cdktf)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# Never part of the tag, whatever .dockerignore says: caches, bytecode, local environments,
# version control, and the synth's own output (a build context at a repository's root holds
# cdktf.out/, which every synth rewrites: hashed, each synth would give a new tag).
IGNORED_NAMES = frozenset(
    {
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".env",
        ".venv",
        ".git",
        "cdktf.out",
        "cdk.out",
    }
)
IGNORED_SUFFIXES = (".pyc", ".pyo")
DOCKERIGNORE = ".dockerignore"


@dataclass(frozen=True, kw_only=True)
class BuildContext:
    """The directory Cloud Build uploads and builds, ``dockerfile`` inside it (a POSIX path
    relative to it). ``deploy_path`` names the directory for the deploy (relative to the
    Terraform working directory, ``${path.module}/...``); None copies it into the synth output as
    an asset (a generated context). ``runs_entry``: the image holds our runtime entry
    (``serverless_fastapi_entry``), as a generated one does."""

    directory: Path
    dockerfile: str = "Dockerfile"
    deploy_path: str | None = None
    runs_entry: bool = False

    def __post_init__(self) -> None:
        relative = PurePosixPath(self.dockerfile)
        # It goes into a shell command and a Cloud Build substitution (comma-separated).
        if (
            not re.fullmatch(r"[\w.@+/-]+", self.dockerfile)
            or relative.is_absolute()
            or ".." in relative.parts
        ):
            raise ValueError(
                f"dockerfile must be a path inside the build context {self.directory}, "
                f"got {self.dockerfile!r}"
            )
        if not (self.directory / relative).is_file():
            raise ValueError(
                f"no Dockerfile at {self.directory / relative} (the build context is {self.directory})"
            )


def own_build_context(
    app_dir: Path,
    *,
    dockerfile: str = "Dockerfile",
    context: str = ".",
    deploy_base: Path,
    deploy_prefix: str,
) -> BuildContext:
    """The app's own Dockerfile (relative to ``app_dir``), built from ``context`` (relative to
    ``app_dir``: ``..`` for a monorepo whose Dockerfile needs the repository's root).
    ``deploy_base`` is the directory the deploy runs in, named ``deploy_prefix`` there
    (``${path.module}`` for Terraform's working directory)."""
    directory = (app_dir / context).resolve()
    file = (app_dir / dockerfile).resolve()
    if not file.is_relative_to(directory):
        raise ValueError(
            f"the Dockerfile {file} lies outside its build context {directory}: Cloud Build uploads "
            f"the context only (set the build context to a directory that holds both)"
        )
    return BuildContext(
        directory=directory,
        dockerfile=file.relative_to(directory).as_posix(),
        # Quoted for the shell (the deploy runs it); the prefix is Terraform's, interpolated first.
        deploy_path=f"{deploy_prefix}/{shlex.quote(relative_path(directory, deploy_base))}",
    )


def relative_path(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def source_hash(source_dir: Path, dockerfile: str = "Dockerfile") -> str:
    """SHA-256 over the relative paths and bytes of the build context's files (what its
    .dockerignore leaves in, and always the Dockerfile): the same content gives the same tag
    on any machine, any change gives a new one."""
    if not (source_dir / dockerfile).is_file():
        raise ValueError(f"source_dir must hold a Dockerfile ({dockerfile}), got {source_dir}")
    ignore = DockerIgnore.read(source_dir / DOCKERIGNORE)
    digest = hashlib.sha256()
    files = {rel for rel in context_files(source_dir, ignore)} | {PurePosixPath(dockerfile)}
    for rel in sorted(files, key=PurePosixPath.as_posix):
        for part in (rel.as_posix().encode(), (source_dir / rel).read_bytes()):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def context_files(source_dir: Path, ignore: DockerIgnore) -> Iterator[PurePosixPath]:
    """The files of the build context that reach the build, as relative paths."""
    for dirpath, dirnames, filenames in os.walk(source_dir):
        base = PurePosixPath(Path(dirpath).relative_to(source_dir).as_posix())
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_NAMES and not ignore.prunes(base / d))
        for name in sorted(filenames):
            rel = base / name
            if name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES) or ignore.excludes(rel):
                continue
            yield rel


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    negated: bool


@dataclass(frozen=True)
class DockerIgnore:
    """A .dockerignore's rules, as Docker applies them: ``*``, ``?``, ``[...]`` within one path
    segment, ``**`` across any number; a rule that matches a directory matches what is below
    it; ``!`` takes a path back in; the last matching rule decides."""

    rules: tuple[_Rule, ...] = ()

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        return cls.parse(path.read_text(encoding="utf-8").splitlines() if path.is_file() else ())

    @classmethod
    def parse(cls, lines: Sequence[str]) -> DockerIgnore:
        rules = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).replace(os.sep, "/").lstrip("/")
            if pattern in ("", "."):
                continue
            rules.append(_Rule(re.compile(_regex(pattern)), negated))
        return cls(tuple(rules))

    def excludes(self, rel: PurePosixPath) -> bool:
        prefixes = [PurePosixPath(*rel.parts[: i + 1]).as_posix() for i in range(len(rel.parts))]
        excluded = False
        for rule in self.rules:
            if any(rule.pattern.fullmatch(prefix) for prefix in prefixes):
                excluded = not rule.negated
        return excluded

    def prunes(self, directory: PurePosixPath) -> bool:
        """The whole directory is left out (no ``!`` rule could take part of it back)."""
        return not any(rule.negated for rule in self.rules) and self.excludes(directory)


def _regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") or body.startswith("!") else body) + "]")
            i = end + 1
            continue
        elif char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)
