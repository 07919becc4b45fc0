"""Synth-time checks of the app a spec names, read from its source (no import: the app's
dependencies are built for the target, not this machine). Each problem names its spec field.

What static reading cannot settle (a star import, routes added by a loop or a helper) is not
reported: only what the source shows to be wrong is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stacks.detect import RouteScan, Source, entry_binding, find_routes

if TYPE_CHECKING:
    from stacks.spec import App


def check_app(app: App) -> list[str]:
    """The problems with ``app``, as ``"app.<field>: ..."`` lines; empty when none."""
    problems: list[str] = []
    directory = app.directory
    if not directory.is_dir():
        return [f"app.path: {directory} is not a directory"]
    root = (directory / app.source_root).resolve()
    if not root.is_dir():
        problems.append(f"app.source_root: {root} is not a directory")
        return problems
    module_path = root.joinpath(*app.module.split("."))
    if module_path.with_suffix(".py").is_file() or (module_path / "__init__.py").is_file():
        problems.extend(_entrypoint_problems(app, Source(root, directory)))
    else:
        problems.append(
            f"app.entrypoint: no module {app.module} under {root} "
            f"(looked for {module_path.with_suffix('.py').name} and {module_path.name}/__init__.py)"
        )
    if app.dependencies is not None and not (directory / app.dependencies).is_file():
        problems.append(f"app.dependencies: no file {directory / app.dependencies}")
    if app.migrations.kind.value == "alembic" and not (directory / app.migrations.config).is_file():
        problems.append(
            f"app.migrations.config: no Alembic configuration at {directory / app.migrations.config}"
        )
    if app.migrations.kind.value != "none" and not app.database.enabled:
        problems.append(
            f"app.migrations.kind: {app.migrations.kind.value} migrations need a database, and "
            "app.database.enabled is false (set migrations.kind to none, or enable the database)"
        )
    if app.dockerfile is not None and not (directory / app.dockerfile).is_file():
        problems.append(
            f"app.dockerfile: no file {(directory / app.dockerfile).resolve()} (relative to app.path)"
        )
    if app.build_context is not None and not (directory / app.build_context).is_dir():
        problems.append(
            f"app.build_context: {(directory / app.build_context).resolve()} is not a directory "
            "(relative to app.path)"
        )
    return problems


def _entrypoint_problems(app: App, source: Source) -> list[str]:
    binding = entry_binding(source, app.module, app.attribute)
    shown = f"{binding.where}: {binding.text}" if binding.where else ""
    if binding.kind == "missing":
        return [
            f"app.entrypoint: {app.module} defines no {app.attribute!r} at module level "
            "(an assignment, a def or an import)"
        ]
    if binding.kind == "factory" and app.factory is False:
        return [f"app.factory: false, but {app.entrypoint} is a function ({shown}): set app.factory true"]
    if binding.kind == "app" and app.factory is True:
        return [f"app.factory: true, but {app.entrypoint} is an app ({shown}): set app.factory false"]
    # The default /health too: Cloud Run's startup probe would fail the deploy on a path that
    # does not answer.
    if binding.kind in ("app", "factory"):
        scan = find_routes(source, app.module, app.attribute)
        problem = health_problem(app.health_path, scan)
        if problem:
            return [problem]
    return []


def health_problem(health_path: str, scan: RouteScan) -> str | None:
    """``app.health_path`` absent from routes that all resolved; None when present or unknown."""
    if not scan.complete or scan.matches(health_path) or scan.mounted_under(health_path):
        return None
    paths = scan.paths()
    other = health_path[:-1] if health_path.endswith("/") else health_path + "/"
    hint = f" (did you mean {other}? FastAPI answers the other one with a redirect)" if other in paths else ""
    return (
        f"app.health_path: {health_path} is not among the app's GET routes{hint}; "
        f"found: {', '.join(paths) or 'none'} (read from the source, from {scan.app_where})"
    )
