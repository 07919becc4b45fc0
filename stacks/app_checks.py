"""Synth-time checks of the app a spec names, read from its source (no import: the app's
dependencies are built for the target, not this machine). Each problem names its spec field."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    if not (module_path.with_suffix(".py").is_file() or (module_path / "__init__.py").is_file()):
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
    return problems
