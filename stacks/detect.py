"""Detection of a FastAPI app from its source: ``python app.py init PATH`` (and the synth checks).

Everything is read statically (``ast``, ``tomllib``, the Dockerfile's text): the app is never
imported, so its dependencies need not be installed here. Each finding keeps its evidence
(``file:line``); what static reading cannot tell is said, never guessed silently.

* :func:`detect` inspects a directory and returns the ``app`` section of the spec it implies,
  with what it found, what it assumed and what the user still has to decide.
* :func:`find_routes` lists the app's routes as far as they resolve statically (decorators,
  ``APIRouter(prefix=...)``, ``include_router(..., prefix=...)``, constants, f-strings and
  pydantic-settings defaults); ``complete`` tells whether anything could not be followed.
* :func:`entry_binding` tells what the entrypoint's attribute is at module level.
* :func:`write_app_section` writes the section into a spec file, textually: the rest of the
  file (comments included) is kept; an existing ``app`` section is replaced only when forced.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import difflib
import json
import os
import re
import shlex
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, TextIO

import yaml

# Directories never read: environments, caches, build output, tests.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "site-packages",
        "dist",
        "build",
        "tests",
        "test",
        "cdk.out",
        "cdktf.out",
    }
)
MAX_FILES = 2000
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 12
# Where an app conventionally lives (FastAPI CLI's own list, then src/ layouts and packages).
CONVENTIONAL_FILES = ("main.py", "app.py", "api.py", "asgi.py", "server.py")
CONVENTIONAL_PACKAGE_FILES = ("main.py", "app.py", "api.py", "asgi.py", "server.py", "__init__.py")
PREFERRED_APP_NAMES = ("app", "api", "application")
HTTP_METHODS = ("get", "post", "put", "delete", "patch", "options", "head", "trace")
# Health routes by preference: the last path segment.
HEALTH_NAMES = (
    "health",
    "healthz",
    "health-check",
    "healthcheck",
    "health_check",
    "_health",
    "livez",
    "live",
    "liveness",
    "status",
    "ping",
    "readyz",
    "ready",
)
SERVER_PACKAGES = ("uvicorn", "gunicorn", "uvicorn-worker", "hypercorn", "granian", "daphne", "fastapi-cli")
DRIVER_PACKAGES = {
    "asyncpg": "asyncpg",
    "psycopg": "psycopg",
    "psycopg-binary": "psycopg",
    "psycopg-c": "psycopg",
    "psycopg-pool": "psycopg",
    "psycopg2": "psycopg2",
    "psycopg2-binary": "psycopg2",
}
ORM_PACKAGES = ("sqlalchemy", "sqlmodel")
LOCK_FILES = ("uv.lock", "poetry.lock", "pdm.lock")
URL_VARIABLE = re.compile(
    r"^(?:[A-Z0-9]+_)*(?:DATABASE|DB|POSTGRES|POSTGRESQL|PG|SQLALCHEMY_DATABASE)_(?:URL|URI|DSN)$"
)
PART_NAMES = {
    "host": ("POSTGRES_SERVER", "POSTGRES_HOST", "DB_HOST", "DATABASE_HOST", "PGHOST"),
    "port": ("POSTGRES_PORT", "DB_PORT", "DATABASE_PORT", "PGPORT"),
    "user": ("POSTGRES_USER", "DB_USER", "DATABASE_USER", "DB_USERNAME", "PGUSER"),
    "password": ("POSTGRES_PASSWORD", "DB_PASSWORD", "DATABASE_PASSWORD", "PGPASSWORD"),
    "database": ("POSTGRES_DB", "POSTGRES_DATABASE", "DB_NAME", "DATABASE_NAME", "PGDATABASE"),
}
SECRET_KEY_NAMES = (
    "SECRET_KEY",
    "JWT_SECRET_KEY",
    "JWT_SECRET",
    "APP_SECRET_KEY",
    "APP_SECRET",
    "SESSION_SECRET",
)
# Variables the platforms or the constructs set: never the user's to provide.
PLATFORM_VARIABLES = frozenset({"PORT", "HOST", "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "PYTHONPATH"})
PLATFORM_PREFIXES = ("AWS_", "LAMBDA_", "FASTAPI_DEPLOY_", "CLOUD_RUN_", "X_GOOGLE_", "GOOGLE_CLOUD_")
CLOUD_RUN_PORT = 8080


class DetectionError(Exception):
    """No FastAPI app could be found (or the spec file cannot take one)."""


# --------------------------------------------------------------------------------------------
# The app's source: modules by import name, parsed once.


_TREES: dict[tuple[str, int, int], ast.Module | None] = {}


def parse_file(path: Path) -> ast.Module | None:
    """The file's syntax tree (cached by path, size and modification time); None if unreadable."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _TREES:
        tree: ast.Module | None = None
        if stat.st_size <= MAX_FILE_BYTES:
            try:
                tree = ast.parse(path.read_bytes(), filename=str(path))
            except (SyntaxError, ValueError, OSError):
                tree = None
        _TREES[key] = tree
    return _TREES[key]


def python_files(root: Path) -> Iterator[Path]:
    """The ``.py`` files under ``root`` (bounded; environments, caches and tests left out)."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not d.startswith(".")
            and not d.endswith(".egg-info")
            and depth < MAX_DEPTH
        )
        for name in sorted(filenames):
            if name.endswith(".py"):
                count += 1
                if count > MAX_FILES:
                    return
                yield Path(dirpath) / name


class Source:
    """The modules importable from ``root`` (the app's source root); paths shown relative to
    ``base`` (the app's directory)."""

    def __init__(self, root: Path, base: Path | None = None) -> None:
        self.root = root.resolve()
        self.base = (base or root).resolve()
        self.files: dict[str, Path] = {}
        self.packages: set[str] = set()
        if self.root.is_dir():
            for path in python_files(self.root):
                parts = path.relative_to(self.root).with_suffix("").parts
                if not all(part.isidentifier() for part in parts):
                    continue
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                    if not parts:
                        continue
                    self.packages.add(".".join(parts))
                self.files.setdefault(".".join(parts), path)

    def tree(self, module: str) -> ast.Module | None:
        path = self.files.get(module)
        return parse_file(path) if path else None

    def where(self, module: str, node: ast.AST | None = None) -> str:
        """``file:line`` of ``node`` in ``module``, relative to the app's directory."""
        path = self.files.get(module)
        if path is None:
            return module
        shown = os.path.relpath(path, self.base)
        line = getattr(node, "lineno", None)
        return f"{shown}:{line}" if line else shown

    def absolute(self, module: str, node: ast.ImportFrom) -> str:
        """The absolute module an ``ImportFrom`` in ``module`` names."""
        if not node.level:
            return node.module or ""
        package = module if module in self.packages else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{node.module}" if node.module else package


# --------------------------------------------------------------------------------------------
# Name resolution: what a name or attribute denotes, as far as the source tells.

Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class ModuleRef:
    name: str


@dataclass(frozen=True)
class Obj:
    """A value bound by an assignment: ``name`` in ``module`` (in function ``function``, or at
    module level), ``value`` the expression assigned."""

    module: str
    function: str | None
    name: str
    value: ast.expr = field(compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.module, self.function, self.name)


@dataclass(frozen=True)
class Def:
    module: str
    node: Function | ast.ClassDef = field(compare=False, hash=False)


Resolved = ModuleRef | Obj | Def


@dataclass(frozen=True)
class Scope:
    module: str
    function: Function | None = None


def _top_level(body: Sequence[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at module level, including those under if/try/with (not in functions)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _top_level(stmt.body)
            yield from _top_level(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _top_level(stmt.body)
            for handler in stmt.handlers:
                yield from _top_level(handler.body)
            yield from _top_level(stmt.orelse)
            yield from _top_level(stmt.finalbody)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            yield from _top_level(stmt.body)


def _function_statements(function: Function) -> Iterator[ast.stmt]:
    """A function's own statements (not those of nested functions or classes)."""
    stack: list[ast.stmt] = list(reversed(function.body))
    while stack:
        stmt = stack.pop()
        yield stmt
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for name in ("body", "orelse", "finalbody"):
            stack.extend(reversed(getattr(stmt, name, []) or []))
        for handler in getattr(stmt, "handlers", []) or []:
            stack.extend(reversed(handler.body))


def _targets(stmt: ast.stmt) -> list[tuple[str, ast.expr | None]]:
    """Names a statement binds, with the value assigned when it is one plain assignment."""
    if isinstance(stmt, ast.Assign):
        out: list[tuple[str, ast.expr | None]] = []
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                out.append((target.id, stmt.value))
            else:
                out.extend((name, None) for name in _bound_names(target))
        return out
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return [(stmt.target.id, stmt.value)]
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
        return [(stmt.target.id, None)]
    if isinstance(stmt, ast.For | ast.AsyncFor):
        return [(name, None) for name in _bound_names(stmt.target)]
    if isinstance(stmt, ast.With | ast.AsyncWith):
        return [
            (name, None)
            for item in stmt.items
            if item.optional_vars is not None
            for name in _bound_names(item.optional_vars)
        ]
    return []


def _bound_names(target: ast.expr) -> list[str]:
    """Names an assignment target binds (``a``, ``a, b``, ``*rest``; not ``a.b`` nor ``a[0]``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _bound_names(element)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []


def _call_name(expr: ast.expr | None) -> str | None:
    """``FastAPI`` for ``FastAPI(...)`` or ``fastapi.FastAPI(...)``."""
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


class Resolver:
    """Resolves names and attributes across the app's modules (bounded depth)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._bindings: dict[str, dict[str, list[Any]]] = {}
        self._locals: dict[int, dict[str, list[Any]]] = {}

    def module_bindings(self, module: str) -> dict[str, list[Any]]:
        """Module-level names: each to the statements binding it."""
        if module not in self._bindings:
            bindings: dict[str, list[Any]] = {}
            tree = self.source.tree(module)
            for stmt in _top_level(tree.body if tree else []):
                for name, binding in self._stmt_bindings(module, stmt):
                    bindings.setdefault(name, []).append(binding)
            self._bindings[module] = bindings
        return self._bindings[module]

    def _stmt_bindings(
        self, module: str, stmt: ast.stmt, function: str | None = None
    ) -> list[tuple[str, Any]]:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return [(stmt.name, Def(module, stmt))]
        if isinstance(stmt, ast.ImportFrom):
            base = self.source.absolute(module, stmt)
            out: list[tuple[str, Any]] = []
            for alias in stmt.names:
                if alias.name == "*":
                    out.append(("*", ("star", base)))
                else:
                    out.append((alias.asname or alias.name, ("from", base, alias.name, stmt)))
            return out
        if isinstance(stmt, ast.Import):
            return [
                (
                    alias.asname or alias.name.partition(".")[0],
                    ModuleRef(alias.name if alias.asname else alias.name.partition(".")[0]),
                )
                for alias in stmt.names
            ]
        return [
            (name, Obj(module, function, name, value) if value is not None else None)
            for name, value in _targets(stmt)
        ]

    def local_bindings(self, module: str, function: Function) -> dict[str, list[Any]]:
        if id(function) in self._locals:
            return self._locals[id(function)]
        bindings: dict[str, list[Any]] = {}
        self._locals[id(function)] = bindings
        for arg in (*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs):
            bindings.setdefault(arg.arg, []).append(None)
        for stmt in _function_statements(function):
            for name, binding in self._stmt_bindings(module, stmt, function.name):
                bindings.setdefault(name, []).append(binding)
        return bindings

    def lookup(self, name: str, scope: Scope, depth: int = 0) -> Resolved | None:
        if depth > 8:
            return None
        if scope.function is not None:
            local = self.local_bindings(scope.module, scope.function).get(name)
            if local is not None:
                return self._single(local, depth)
        found = self.module_bindings(scope.module).get(name)
        if found is None:
            if scope.module in self.source.packages and f"{scope.module}.{name}" in self.source.files:
                return ModuleRef(f"{scope.module}.{name}")
            return None
        return self._single(found, depth)

    def _single(self, bindings: list[Any], depth: int) -> Resolved | None:
        if len(bindings) != 1:
            return None
        binding = bindings[0]
        if isinstance(binding, tuple) and binding[0] == "from":
            _, base, attr, _node = binding
            if f"{base}.{attr}" in self.source.files:
                return ModuleRef(f"{base}.{attr}")
            if base in self.source.files:
                return self.lookup(attr, Scope(base), depth + 1)
            return None
        if isinstance(binding, ModuleRef | Obj | Def):
            return binding
        return None

    def resolve(self, expr: ast.expr, scope: Scope, depth: int = 0) -> Resolved | None:
        if depth > 8:
            return None
        if isinstance(expr, ast.Name):
            return self.lookup(expr.id, scope, depth)
        if isinstance(expr, ast.Attribute):
            owner = self.resolve(expr.value, scope, depth + 1)
            if isinstance(owner, ModuleRef):
                submodule = f"{owner.name}.{expr.attr}"
                if submodule in self.source.files:
                    return ModuleRef(submodule)
                if owner.name in self.source.files:
                    return self.lookup(expr.attr, Scope(owner.name), depth + 1)
        return None

    def scope_of(self, resolved: Obj) -> Scope:
        if resolved.function is None:
            return Scope(resolved.module)
        function = self.find_function(resolved.module, resolved.function)
        return Scope(resolved.module, function)

    def find_function(self, module: str, name: str) -> Function | None:
        tree = self.source.tree(module)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                return node
        return None

    def string(self, expr: ast.expr | None, scope: Scope, depth: int = 0) -> str | None:
        """The constant string ``expr`` evaluates to, as far as the source tells."""
        value: str | None = None
        if expr is None or depth > 10:
            pass
        elif isinstance(expr, ast.Constant):
            value = expr.value if isinstance(expr.value, str) else None
        elif isinstance(expr, ast.JoinedStr):
            value = self._joined(expr, scope, depth)
        elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left, right = self.string(expr.left, scope, depth + 1), self.string(expr.right, scope, depth + 1)
            value = None if left is None or right is None else left + right
        else:
            value = self._bound_string(expr, scope, depth)
        return value

    def _joined(self, expr: ast.JoinedStr, scope: Scope, depth: int) -> str | None:
        """An f-string whose every part resolves."""
        parts: list[str | None] = []
        for value in expr.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(value.value)
            elif (
                isinstance(value, ast.FormattedValue) and value.conversion == -1 and value.format_spec is None
            ):
                parts.append(self.string(value.value, scope, depth + 1))
            else:
                parts.append(None)
        return None if None in parts else "".join(part or "" for part in parts)

    def _bound_string(self, expr: ast.expr, scope: Scope, depth: int) -> str | None:
        """A name bound to a string, or a settings attribute with a string default."""
        if isinstance(expr, ast.Attribute):
            cls = self.class_of(self.resolve(expr.value, scope, depth + 1), depth + 1)
            if cls is not None:
                return self.class_default(cls, expr.attr, depth + 1)
        resolved = self.resolve(expr, scope, depth + 1)
        return (
            self.string(resolved.value, self.scope_of(resolved), depth + 1)
            if isinstance(resolved, Obj)
            else None
        )

    def class_of(self, resolved: Resolved | None, depth: int = 0) -> Def | None:
        """The class (in the source) an object is an instance of, or the class itself:
        ``settings = Settings()``, ``settings = get_settings()`` (returning ``Settings()``)."""
        calls: list[tuple[ast.expr, Scope]] = []
        if depth > 8 or resolved is None:
            return None
        if isinstance(resolved, Def) and isinstance(resolved.node, ast.ClassDef):
            return resolved
        if isinstance(resolved, Def) and isinstance(resolved.node, Function):
            scope = Scope(resolved.module, resolved.node)
            calls = [
                (stmt.value.func, scope)
                for stmt in _function_statements(resolved.node)
                if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Call)
            ]
        elif isinstance(resolved, Obj) and isinstance(resolved.value, ast.Call):
            calls = [(resolved.value.func, self.scope_of(resolved))]
        for func, scope in calls:
            callee = self.resolve(func, scope, depth + 1)
            found = self.class_of(callee, depth + 1) if isinstance(callee, Def) else None
            if found is not None:
                return found
        return None

    def class_default(self, cls: Def, attr: str, depth: int) -> str | None:
        node = cls.node
        assert isinstance(node, ast.ClassDef)
        for stmt in node.body:
            for name, value in _targets(stmt):
                if name == attr:
                    default = _field_default(value) if _call_name(value) == "Field" else value
                    return self.string(default, Scope(cls.module), depth + 1)
        return None


def _field_default(call: ast.expr | None) -> ast.expr | None:
    """The default given to pydantic's ``Field(...)``, if any."""
    if not isinstance(call, ast.Call):
        return None
    if call.args and not (isinstance(call.args[0], ast.Constant) and call.args[0].value is Ellipsis):
        return call.args[0]
    for keyword in call.keywords:
        if keyword.arg == "default":
            return keyword.value
    return None


# --------------------------------------------------------------------------------------------
# Routes.


@dataclass(frozen=True)
class Route:
    path: str
    methods: tuple[str, ...]
    where: str


@dataclass
class _Router:
    kind: str  # "app" or "router"
    prefix: str | None
    where: str
    routes: list[tuple[str | None, tuple[str, ...], str]] = field(default_factory=list)
    includes: list[tuple[tuple[str, str | None, str] | None, str | None, str]] = field(default_factory=list)
    mounts: list[str | None] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


@dataclass
class RouteScan:
    """The app's routes; ``complete`` False when something could not be followed (``notes``)."""

    routes: list[Route]
    complete: bool
    notes: list[str]
    mounts: list[str] = field(default_factory=list)
    app_where: str | None = None

    def paths(self, method: str = "GET") -> list[str]:
        return sorted({route.path for route in self.routes if method in route.methods})

    def matches(self, path: str, method: str = "GET") -> bool:
        for route in self.routes:
            if method not in route.methods:
                continue
            pattern = re.sub(r"\\\{[^}:]+:path\\\}", ".*", re.escape(route.path))
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
            if re.fullmatch(pattern, path):
                return True
        return False

    def mounted_under(self, path: str) -> bool:
        return any(path == mount or path.startswith(mount.rstrip("/") + "/") for mount in self.mounts)


COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.TryStar)


class _RouteCollector:
    """One pass over every module: routers and apps, what is registered on them, what is
    included where."""

    def __init__(self, source: Source, resolver: Resolver) -> None:
        self.source = source
        self.resolver = resolver
        self.routers: dict[tuple[str, str | None, str], _Router] = {}
        self.unattributed: list[str] = []
        for module in sorted(source.files):
            tree = source.tree(module)
            if tree is not None:
                self._visit(tree.body, Scope(module))

    def router(self, expr: ast.expr, scope: Scope) -> _Router | None:
        resolved = self.resolver.resolve(expr, scope)
        return self.router_of(resolved)

    def router_of(self, resolved: Resolved | None, depth: int = 0) -> _Router | None:
        if not isinstance(resolved, Obj) or depth > 6:
            return None
        if resolved.key in self.routers:
            return self.routers[resolved.key]
        kind = {"FastAPI": "app", "APIRouter": "router"}.get(_call_name(resolved.value) or "")
        if kind is None:
            # An alias (application = app), or an app made by a factory (app = create_app()).
            value = resolved.value
            target = value.func if isinstance(value, ast.Call) else value
            followed = self.resolver.resolve(target, self.resolver.scope_of(resolved))
            if (
                isinstance(value, ast.Call)
                and isinstance(followed, Def)
                and isinstance(followed.node, Function)
            ):
                made, _ = app_object(self.resolver, followed.module, followed.node.name)
                return self.router_of(made, depth + 1)
            return self.router_of(followed, depth + 1) if not isinstance(value, ast.Call) else None
        call = resolved.value
        assert isinstance(call, ast.Call)
        scope = self.resolver.scope_of(resolved)
        where = self.source.where(resolved.module, call)
        prefix: str | None = ""
        router = _Router(kind=kind, prefix="", where=where)
        for keyword in call.keywords:
            if keyword.arg == "prefix":
                prefix = self.resolver.string(keyword.value, scope)
                if prefix is None:
                    router.unknown.append(f"{where}: prefix {ast.unparse(keyword.value)} does not resolve")
            elif keyword.arg == "routes":
                router.unknown.append(f"{where}: routes= given to the constructor")
            elif keyword.arg is None:
                router.unknown.append(f"{where}: **{ast.unparse(keyword.value)} given to the constructor")
        router.prefix = prefix
        if kind == "app":
            self._builtin_routes(router, call, scope, where)
        self.routers[resolved.key] = router
        return router

    def _builtin_routes(self, router: _Router, call: ast.Call, scope: Scope, where: str) -> None:
        """FastAPI's own routes: the OpenAPI schema and the docs, unless turned off."""
        given = {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg}
        urls: dict[str, str | None] = {}
        for name, default in (
            ("openapi_url", "/openapi.json"),
            ("docs_url", "/docs"),
            ("redoc_url", "/redoc"),
        ):
            expr = given.get(name)
            if expr is None:
                urls[name] = default
            elif isinstance(expr, ast.Constant) and expr.value is None:
                urls[name] = None
            else:
                urls[name] = self.resolver.string(expr, scope)
        if urls["openapi_url"] is None:
            return
        router.routes.append((urls["openapi_url"], ("GET", "HEAD"), f"{where} (FastAPI's schema)"))
        for name in ("docs_url", "redoc_url"):
            if urls[name]:
                router.routes.append((urls[name], ("GET", "HEAD"), f"{where} (FastAPI's docs)"))

    def _visit(self, body: Sequence[ast.stmt], scope: Scope) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                for decorator in stmt.decorator_list:
                    self._decorator(decorator, scope)
                self._visit(stmt.body, Scope(scope.module, stmt))
            elif isinstance(stmt, ast.ClassDef):
                self._visit(stmt.body, scope)
            elif isinstance(stmt, COMPOUND):
                for child in ast.iter_child_nodes(stmt):
                    if isinstance(child, ast.expr | ast.withitem):
                        self._calls(child, scope)
                for name in ("body", "orelse", "finalbody"):
                    self._visit(getattr(stmt, name, None) or [], scope)
                for handler in getattr(stmt, "handlers", None) or []:
                    self._visit(handler.body, scope)
            else:
                self._calls(stmt, scope)

    def _calls(self, node: ast.AST, scope: Scope) -> None:
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
                self._call(inner, scope)

    def _decorator(self, decorator: ast.expr, scope: Scope) -> None:
        if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
            return
        method = decorator.func.attr
        if method not in (*HTTP_METHODS, "api_route", "route"):
            return
        router = self.router(decorator.func.value, scope)
        if router is None:
            return
        where = self.source.where(scope.module, decorator)
        path_expr = decorator.args[0] if decorator.args else _keyword(decorator, "path")
        path = self.resolver.string(path_expr, scope)
        if method in HTTP_METHODS:
            methods: tuple[str, ...] = (method.upper(),)
        else:
            methods = self._methods(_keyword(decorator, "methods"), scope, where, router)
        router.routes.append((path, methods, where))
        if path is None:
            router.unknown.append(
                f"{where}: path {ast.unparse(path_expr) if path_expr else '?'} does not resolve"
            )

    def _methods(self, expr: ast.expr | None, scope: Scope, where: str, router: _Router) -> tuple[str, ...]:
        if expr is None:
            return ("GET",)
        if isinstance(expr, ast.List | ast.Tuple | ast.Set):
            names = [self.resolver.string(element, scope) for element in expr.elts]
            if all(names):
                return tuple(str(name).upper() for name in names)
        router.unknown.append(f"{where}: methods {ast.unparse(expr)} do not resolve")
        return ()

    def _call(self, call: ast.Call, scope: Scope) -> None:
        assert isinstance(call.func, ast.Attribute)
        method = call.func.attr
        if method not in ("include_router", "add_api_route", "add_route", "mount", "api_route"):
            return
        router = self.router(call.func.value, scope)
        where = self.source.where(scope.module, call)
        if router is None:
            if method in ("include_router", "add_api_route"):
                self.unattributed.append(
                    f"{where}: {ast.unparse(call.func)} on an object that does not resolve"
                )
            return
        first = call.args[0] if call.args else None
        if method == "include_router":
            child_expr = first or _keyword(call, "router")
            child = self.router(child_expr, scope) if child_expr is not None else None
            prefix_expr = _keyword(call, "prefix")
            prefix = "" if prefix_expr is None else self.resolver.string(prefix_expr, scope)
            key = None
            if child is not None:
                key = next(k for k, v in self.routers.items() if v is child)
            else:
                shown = ast.unparse(child_expr) if child_expr is not None else "?"
                router.unknown.append(f"{where}: include_router({shown}) does not resolve to a router")
            if prefix is None:
                router.unknown.append(
                    f"{where}: include prefix {ast.unparse(prefix_expr or ast.Constant(''))} does not resolve"
                )
            router.includes.append((key, prefix, where))
        elif method == "mount":
            path = self.resolver.string(first or _keyword(call, "path"), scope)
            router.mounts.append(path)
            if path is None:
                router.unknown.append(f"{where}: a mount whose path does not resolve")
        elif method in ("add_api_route", "add_route"):
            path = self.resolver.string(first or _keyword(call, "path"), scope)
            methods = self._methods(_keyword(call, "methods"), scope, where, router)
            router.routes.append((path, methods, where))
            if path is None:
                router.unknown.append(f"{where}: {method} path does not resolve")


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def app_object(resolver: Resolver, module: str, attribute: str) -> tuple[Obj | None, str | None]:
    """The ``FastAPI(...)`` binding the entrypoint leads to (through a factory's ``return``),
    or None with the reason."""
    resolved = resolver.lookup(attribute, Scope(module))
    for _ in range(6):
        if resolved is None:
            return None, f"{module}:{attribute}: the app object could not be followed statically"
        if isinstance(resolved, Obj):
            name = _call_name(resolved.value)
            if name == "FastAPI":
                return resolved, None
            if isinstance(resolved.value, ast.Call):
                resolved = resolver.resolve(resolved.value.func, resolver.scope_of(resolved))
                continue
            resolved = resolver.resolve(resolved.value, resolver.scope_of(resolved))
            continue
        if isinstance(resolved, Def) and isinstance(resolved.node, Function):
            scope = Scope(resolved.module, resolved.node)
            returns = [
                stmt.value
                for stmt in _function_statements(resolved.node)
                if isinstance(stmt, ast.Return) and stmt.value is not None
            ]
            if len(returns) != 1:
                return None, f"{resolved.node.name}() has {len(returns)} return values"
            value = returns[0]
            if isinstance(value, ast.Call) and _call_name(value) == "FastAPI":
                return None, f"{resolved.node.name}() returns FastAPI(...) without naming it"
            resolved = resolver.resolve(value, scope)
            continue
        return None, f"{module}:{attribute} is not a FastAPI app or a function returning one"
    return None, f"{module}:{attribute}: too many indirections"


def find_routes(source: Source, module: str, attribute: str) -> RouteScan:
    """The routes of the app ``module:attribute``, read from the source."""
    resolver = Resolver(source)
    app, reason = app_object(resolver, module, attribute)
    if app is None:
        return RouteScan(routes=[], complete=False, notes=[reason or "the app object was not found"])
    collector = _RouteCollector(source, resolver)
    root = collector.router_of(app)
    assert root is not None
    routes: list[Route] = []
    notes: list[str] = list(collector.unattributed)
    mounts: list[str] = []

    def expand(router: _Router, prefix: str | None, seen: frozenset[int]) -> None:
        if id(router) in seen:
            notes.append(f"{router.where}: a router included in itself")
            return
        seen = seen | {id(router)}
        notes.extend(router.unknown)
        base = None if prefix is None or router.prefix is None else prefix + router.prefix
        for path, methods, where in router.routes:
            if base is not None and path is not None:
                routes.append(Route(base + path, methods, where))
        for mount in router.mounts:
            if base is not None and mount is not None:
                mounts.append(base + mount)
        for key, include_prefix, _where in router.includes:
            if key is None:
                continue
            child_prefix = None if base is None or include_prefix is None else base + include_prefix
            expand(collector.routers[key], child_prefix, seen)

    expand(root, "", frozenset())
    return RouteScan(
        routes=routes,
        complete=not notes,
        notes=notes,
        mounts=mounts,
        app_where=source.where(app.module, app.value),
    )


# --------------------------------------------------------------------------------------------
# The entrypoint.


@dataclass(frozen=True)
class EntryBinding:
    """What ``module:attribute`` is at module level: ``app`` (an assignment of FastAPI(...) or of
    a call returning one), ``factory`` (a function), ``other`` (bound, kind unknown),
    ``missing``, or ``unknown`` (star imports, module ``__getattr__``: cannot tell)."""

    kind: str
    where: str | None = None
    text: str | None = None


def entry_binding(source: Source, module: str, attribute: str) -> EntryBinding:
    resolver = Resolver(source)
    tree = source.tree(module)
    if tree is None:
        return EntryBinding("unknown")
    bindings = resolver.module_bindings(module)
    found = bindings.get(attribute)
    if not found:
        if "*" in bindings or "__getattr__" in bindings:
            return EntryBinding("unknown")
        return EntryBinding("missing")
    binding = found[-1]
    return _classify(resolver, module, binding, 0)


def _classify(resolver: Resolver, module: str, binding: Any, depth: int) -> EntryBinding:
    source = resolver.source
    if isinstance(binding, Def):
        where = source.where(binding.module, binding.node)
        if isinstance(binding.node, ast.ClassDef):
            return EntryBinding("other", where, f"class {binding.node.name}")
        return EntryBinding("factory", where, f"def {binding.node.name}()")
    if isinstance(binding, Obj):
        where = source.where(binding.module, binding.value)
        text = f"{binding.name} = {_short(binding.value)}"
        callee = (
            resolver.resolve(binding.value.func, Scope(binding.module))
            if isinstance(binding.value, ast.Call)
            else None
        )
        made_by_factory = isinstance(callee, Def) and _returns_fastapi(resolver, callee)
        is_app = _call_name(binding.value) == "FastAPI" or made_by_factory
        return EntryBinding("app" if is_app else "other", where, text)
    if isinstance(binding, tuple) and binding[0] == "from" and depth < 6:
        return _classify_import(resolver, module, binding, depth)
    return EntryBinding("other")


def _classify_import(resolver: Resolver, module: str, binding: tuple[Any, ...], depth: int) -> EntryBinding:
    """``from base import attr``: what ``attr`` is in ``base`` (when ``base`` is the app's)."""
    source = resolver.source
    _, base, attr, node = binding
    where = source.where(module, node)
    inner = resolver.module_bindings(base).get(attr) if base in source.files else None
    if inner:
        return _classify(resolver, base, inner[-1], depth + 1)
    if f"{base}.{attr}" in source.files:
        return EntryBinding("other", where, f"from {base} import {attr} (a module)")
    kind = "missing" if base in source.files else "other"
    return EntryBinding(kind, where, f"from {base} import {attr}")


def _returns_fastapi(resolver: Resolver, definition: Def) -> bool:
    node = definition.node
    if not isinstance(node, Function):
        return False
    if node.returns is not None and ast.unparse(node.returns).split(".")[-1] == "FastAPI":
        return True
    app, _ = app_object(resolver, definition.module, node.name)
    return app is not None


def _short(expr: ast.expr, limit: int = 60) -> str:
    text = ast.unparse(expr)
    if isinstance(expr, ast.Call) and len(text) > limit:
        text = f"{ast.unparse(expr.func)}(...)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Detection.


@dataclass
class Detection:
    """The ``app`` section detected for ``directory`` (the app's own directory, which may be
    below the PATH given), with the evidence."""

    directory: Path
    values: dict[str, Any]
    app_directory: Path
    project: str
    comments: dict[str, str] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)
    to_decide: list[str] = field(default_factory=list)
    routes: RouteScan | None = None


@dataclass(frozen=True)
class Dependency:
    name: str  # normalized: lowercase, "-" separators
    extras: tuple[str, ...]
    where: str


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def _requirement(text: str, where: str) -> Dependency | None:
    match = _REQUIREMENT.match(text)
    if not match:
        return None
    extras = tuple(normalize(extra.strip()) for extra in (match.group(2) or "").split(",") if extra.strip())
    return Dependency(normalize(match.group(1)), extras, where)


def read_requirements(path: Path, base: Path, depth: int = 0) -> list[Dependency]:
    out: list[Dependency] = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ", "-c ", "--constraint ")) and depth < 3:
            included = path.parent / line.split(None, 1)[1].strip()
            if line.startswith(("-r", "--requirement")):
                out.extend(read_requirements(included, base, depth + 1))
            continue
        if line.startswith("-") or ("://" in line.split(";")[0] and "@" not in line):
            continue
        dependency = _requirement(line, f"{os.path.relpath(path, base)}:{number}")
        if dependency:
            out.append(dependency)
    return out


def _line_of(text: str, pattern: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if re.search(pattern, line):
            return number
    return None


def read_pyproject(path: Path, base: Path) -> tuple[dict[str, Any], list[Dependency]]:
    text = path.read_text(errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}, []
    shown = os.path.relpath(path, base)
    deps: list[Dependency] = []
    for requirement in data.get("project", {}).get("dependencies", []) or []:
        if isinstance(requirement, str):
            line = _line_of(text, re.escape(requirement.split(";")[0].strip()[:30]))
            dependency = _requirement(requirement, f"{shown}:{line}" if line else shown)
            if dependency:
                deps.append(dependency)
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {}) or {}
    for name, spec in poetry.items():
        if normalize(name) == "python":
            continue
        extras = tuple(spec.get("extras", ())) if isinstance(spec, dict) else ()
        line = _line_of(text, rf"^\s*{re.escape(name)}\s*=")
        deps.append(
            Dependency(normalize(name), tuple(map(normalize, extras)), f"{shown}:{line}" if line else shown)
        )
    return data, deps


@dataclass
class _Entry:
    directory: Path
    source_root: str
    module: str
    attribute: str
    factory: bool | None
    evidence: str
    how: str


def _module_of(directory: Path, file: Path) -> tuple[str, str] | None:
    """(source_root, module) for a file of the app: src/ layouts import from src."""
    relative = file.relative_to(directory)
    root = "."
    if relative.parts[0] == "src" and len(relative.parts) > 1:
        root, relative = "src", Path(*relative.parts[1:])
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    return root, ".".join(parts)


def _candidate_files(directory: Path) -> list[Path]:
    files = [directory / name for name in CONVENTIONAL_FILES]
    packages: list[Path] = []
    for base in (directory, directory / "src"):
        if not base.is_dir():
            continue
        for child in sorted(base.iterdir()):
            if child.is_dir() and child.name not in SKIP_DIRS and child.name.isidentifier():
                packages.append(child)
    # app/ first (FastAPI CLI's convention), then the others.
    packages.sort(key=lambda package: (package.name != "app", package.parent.name == "src", package.name))
    for package in packages:
        files.extend(package / name for name in CONVENTIONAL_PACKAGE_FILES)
    return [file for file in files if file.is_file()]


def _entry_in_file(directory: Path, file: Path) -> _Entry | None:
    located = _module_of(directory, file)
    tree = parse_file(file)
    if located is None or tree is None:
        return None
    source_root, module = located
    shown = os.path.relpath(file, directory)
    apps: list[tuple[str, ast.stmt]] = []
    factories: list[tuple[str, ast.stmt]] = []
    defs = {
        stmt.name: stmt
        for stmt in _top_level(tree.body)
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    source = Source(directory / source_root, directory)
    resolver = Resolver(source)
    for stmt in _top_level(tree.body):
        for name, value in _targets(stmt):
            if value is None:
                continue
            made_by_factory = (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id in defs
                and _returns_fastapi(resolver, Def(module, defs[value.func.id]))
            )
            if _call_name(value) == "FastAPI" or made_by_factory:
                apps.append((name, stmt))
    for name, node in defs.items():
        if _returns_fastapi(resolver, Def(module, node)):
            factories.append((name, node))
    for found, factory in ((apps, False), (factories, True)):
        if found:
            found.sort(key=lambda item: (item[0] not in PREFERRED_APP_NAMES, item[1].lineno))
            name, stmt = found[0]
            text = ast.unparse(stmt).splitlines()[0]
            if isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None:
                text = f"{name} = {_short(stmt.value)}"
            return _Entry(
                directory,
                source_root,
                module,
                name,
                factory,
                f"{shown}:{stmt.lineno}: {text}",
                "by convention",
            )
    return None


def _find_entry(directory: Path) -> _Entry | None:
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(errors="replace")
        try:
            entrypoint = tomllib.loads(text).get("tool", {}).get("fastapi", {}).get("entrypoint")
        except tomllib.TOMLDecodeError:
            entrypoint = None
        if isinstance(entrypoint, str) and re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", entrypoint):
            module, _, attribute = entrypoint.partition(":")
            line = _line_of(text, r"^\s*entrypoint\s*=")
            for root in (".", "src"):
                source = Source(directory / root, directory)
                if module in source.files:
                    binding = entry_binding(source, module, attribute)
                    factory = {"app": False, "factory": True}.get(binding.kind)
                    evidence = f"pyproject.toml:{line}: [tool.fastapi] entrypoint = {entrypoint!r}"
                    if binding.where:
                        evidence += f"; {binding.where}: {binding.text}"
                    return _Entry(directory, root, module, attribute, factory, evidence, "[tool.fastapi]")
    for file in _candidate_files(directory):
        entry = _entry_in_file(directory, file)
        if entry is not None:
            return entry
    return None


def _locate(path: Path) -> _Entry:
    entry = _find_entry(path)
    if entry is not None:
        return entry
    found = [
        entry
        for child in sorted(path.iterdir())
        if child.is_dir() and child.name not in SKIP_DIRS and not child.name.startswith(".")
        for entry in [_find_entry(child)]
        if entry is not None
    ]
    if found:
        return found[0]
    looked = ", ".join((*CONVENTIONAL_FILES, "app/main.py", "<package>/main.py|app.py", "src/<package>/..."))
    raise DetectionError(
        f"no FastAPI app found in {path}: no [tool.fastapi] entrypoint in pyproject.toml, and no "
        f"module-level `app = FastAPI(...)` nor function returning FastAPI in {looked} (here or one "
        "directory down). Write the app section by hand (stacks/spec.py documents it), or add "
        '[tool.fastapi] entrypoint = "module:attribute" to pyproject.toml'
    )


def _dependencies(directory: Path, detection: Detection) -> list[Dependency]:
    requirements = sorted(directory.glob("requirements*.txt")) + sorted(directory.glob("requirements/*.txt"))
    production = [
        file for file in requirements if not re.search(r"dev|test|lint|doc|ci|type", file.name, re.IGNORECASE)
    ]
    preferred = directory / "requirements.txt"
    chosen_requirements = preferred if preferred.is_file() else (production[0] if production else None)
    pyproject = directory / "pyproject.toml"
    locks = [name for name in LOCK_FILES if (directory / name).is_file()]
    py_deps: list[Dependency] = []
    if pyproject.is_file():
        _, py_deps = read_pyproject(pyproject, directory)
    if pyproject.is_file() and py_deps and (locks or chosen_requirements is None):
        detection.values["dependencies"] = "pyproject.toml"
        lock = f" with {locks[0]}" if locks else ""
        detection.comments["dependencies"] = f"locked by {locks[0]}" if locks else "no lock file"
        detection.found.append(f"dependencies: pyproject.toml{lock} ({len(py_deps)} declared)")
        if not locks:
            detection.to_decide.append(
                "app.dependencies: pyproject.toml has no lock file (uv.lock, poetry.lock or pdm.lock): "
                "run `uv lock` in the app's directory for reproducible bundles"
            )
        if chosen_requirements is not None:
            detection.assumed.append(
                f"dependencies: pyproject.toml{lock} rather than {chosen_requirements.name} (both exist)"
            )
        return py_deps
    if chosen_requirements is not None:
        deps = read_requirements(chosen_requirements, directory)
        shown = os.path.relpath(chosen_requirements, directory)
        detection.values["dependencies"] = shown
        pinned = all("==" in line for line in _requirement_lines(chosen_requirements))
        detection.comments["dependencies"] = "pinned" if pinned else "not pinned: locked at synth"
        detection.found.append(f"dependencies: {shown} ({len(deps)} requirements)")
        others = [os.path.relpath(file, directory) for file in requirements if file != chosen_requirements]
        if others:
            detection.assumed.append(f"dependencies: {shown}, not {', '.join(others)}")
        return deps
    detection.to_decide.append(
        "app.dependencies: no requirements*.txt and no pyproject.toml with dependencies: "
        "write the app's dependencies (fastapi at least) into requirements.txt"
    )
    return []


def _requirement_lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text(errors="replace").splitlines()
        if line.strip() and not line.strip().startswith(("#", "-"))
    ]


@dataclass(frozen=True)
class EnvRead:
    name: str
    required: bool
    annotation: str
    where: str
    how: str  # "settings" or "environ"


def environment_reads(source: Source) -> list[EnvRead]:
    """Variables the app reads: pydantic-settings fields and ``os.environ``/``os.getenv``."""
    reads: list[EnvRead] = []
    settings_classes = _settings_classes(source)
    for module, node in settings_classes:
        prefix = _env_prefix(node)
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            name = stmt.target.id
            annotation = ast.unparse(stmt.annotation)
            if name.startswith("_") or name == "model_config" or "ClassVar" in annotation:
                continue
            required = stmt.value is None
            env_name = prefix + name
            if isinstance(stmt.value, ast.Call) and _call_name(stmt.value) == "Field":
                required = (
                    _field_default(stmt.value) is None and _keyword(stmt.value, "default_factory") is None
                )
                for alias in ("validation_alias", "alias"):
                    given = _keyword(stmt.value, alias)
                    if isinstance(given, ast.Constant) and isinstance(given.value, str):
                        env_name = given.value
                        break
            reads.append(
                EnvRead(env_name.upper(), required, annotation, source.where(module, stmt), "settings")
            )
    for module in sorted(source.files):
        tree = source.tree(module)
        for found in ast.walk(tree) if tree else ():
            read = _environ_read(found)
            if read is not None:
                name, required = read
                reads.append(EnvRead(name, required, "str", source.where(module, found), "environ"))
    return reads


def _settings_classes(source: Source) -> list[tuple[str, ast.ClassDef]]:
    classes: dict[str, tuple[str, ast.ClassDef]] = {}
    for module in sorted(source.files):
        tree = source.tree(module)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, (module, node))
    settings: dict[str, tuple[str, ast.ClassDef]] = {}
    changed = True
    while changed:
        changed = False
        for name, (module, node) in classes.items():
            if name in settings:
                continue
            bases = {ast.unparse(base).split(".")[-1] for base in node.bases}
            if "BaseSettings" in bases or bases & set(settings):
                settings[name] = (module, node)
                changed = True
    return list(settings.values())


def _env_prefix(node: ast.ClassDef) -> str:
    for stmt in node.body:
        for name, value in _targets(stmt):
            if name == "model_config" and isinstance(value, ast.Call):
                prefix = _keyword(value, "env_prefix")
                if isinstance(prefix, ast.Constant) and isinstance(prefix.value, str):
                    return prefix.value
        if isinstance(stmt, ast.ClassDef) and stmt.name == "Config":
            for inner in stmt.body:
                for name, value in _targets(inner):
                    if (
                        name == "env_prefix"
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                    ):
                        return value.value
    return ""


def _is_environ(expr: ast.expr) -> bool:
    return (isinstance(expr, ast.Attribute) and expr.attr == "environ") or (
        isinstance(expr, ast.Name) and expr.id == "environ"
    )


def _environ_read(node: ast.AST) -> tuple[str, bool] | None:
    """``os.environ["X"]`` (required), ``os.environ.get("X")``, ``os.getenv("X")``."""
    if isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value, True
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        key = node.args[0]
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return None
        getenv = (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
            isinstance(func, ast.Name) and func.id == "getenv"
        )
        get = (
            isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault") and _is_environ(func.value)
        )
        if getenv or get:
            return key.value, False
    return None


def _imports(source: Source) -> dict[str, str]:
    """Top-level package names imported anywhere in the app, each to its first ``file:line``."""
    found: dict[str, str] = {}
    for module in sorted(source.files):
        tree = source.tree(module)
        for node in ast.walk(tree) if tree else ():
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.partition(".")[0], source.where(module, node))
    return found


def _module_level_imports(source: Source) -> set[str]:
    """Packages imported at module level (run at import on Lambda too)."""
    found: set[str] = set()
    for module in sorted(source.files):
        tree = source.tree(module)
        for stmt in _top_level(tree.body if tree else []):
            if isinstance(stmt, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in stmt.names)
            elif isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module:
                found.add(stmt.module.partition(".")[0])
    return found


def _drivers(source: Source, deps: list[Dependency], imports: dict[str, str]) -> dict[str, str]:
    """PostgreSQL drivers declared or imported, each to its evidence."""
    drivers: dict[str, str] = {}
    for dependency in deps:
        driver = DRIVER_PACKAGES.get(dependency.name)
        if driver:
            drivers.setdefault(driver, f"{dependency.where}: {dependency.name}")
        if dependency.name == "sqlalchemy" and "asyncpg" in dependency.extras:
            drivers.setdefault("asyncpg", f"{dependency.where}: sqlalchemy[asyncpg]")
    for package in ("asyncpg", "psycopg", "psycopg2"):
        if package in imports:
            drivers.setdefault(package, f"{imports[package]}: import {package}")
    return drivers


def _database(source: Source, deps: list[Dependency], detection: Detection) -> set[str]:
    """The ``database`` section; returns the variable names it accounts for."""
    imports = _imports(source)
    drivers = _drivers(source, deps, imports)
    orm = [dependency.where for dependency in deps if dependency.name in ORM_PACKAGES]
    orm += [imports[name] for name in ORM_PACKAGES if name in imports]
    if not drivers:
        detection.values["database"] = {"enabled": False}
        if orm:
            detection.found.append(
                "database: SQLAlchemy/SQLModel but no PostgreSQL driver (asyncpg, psycopg, psycopg2): none"
            )
            detection.to_decide.append(
                "app.database: the app uses SQLAlchemy without a PostgreSQL driver (SQLite?): no database is "
                "provisioned; add a driver to its dependencies and set app.database.enabled if it needs one"
            )
        else:
            detection.found.append("database: no PostgreSQL driver in the dependencies or imports: none")
        return set()
    chosen = next(iter(drivers))
    if len(drivers) > 1:
        imported = [driver for driver in drivers if driver in imports]
        if "create_async_engine" in _names_used(source) and "asyncpg" in drivers:
            chosen = "asyncpg"
        elif imported:
            chosen = imported[0]
        detection.assumed.append(f"database.driver: {chosen} of {', '.join(drivers)} (imported or async)")
    detection.found.append(f"database.driver: {chosen} ({drivers[chosen]})")
    detection.comments["database.driver"] = drivers[chosen].split(": ")[0]
    database: dict[str, Any] = {"enabled": True, "driver": chosen}
    reads = {read.name: read for read in sorted(environment_reads(source), key=lambda r: r.how != "settings")}
    accounted = _database_settings(reads, database, detection)
    if database["settings"] == "url":
        if not orm:
            database["url_scheme"] = "postgresql"
            detection.found.append(
                f"database.url_scheme: postgresql ({chosen} used directly: no SQLAlchemy/SQLModel)"
            )
        else:
            where = orm[0].split(": ")[0]
            detection.found.append(f"database URL form: postgresql+{chosen}:// (SQLAlchemy's, {where})")
    detection.values["database"] = database
    return accounted


def _database_settings(reads: dict[str, EnvRead], database: dict[str, Any], detection: Detection) -> set[str]:
    """How the app reads where its database is: a URL variable, or POSTGRES_*-like parts."""
    urls = sorted(
        (name for name in reads if URL_VARIABLE.match(name)),
        key=lambda name: (name != "DATABASE_URL", not reads[name].required, name),
    )
    parts = {
        part: next((name for name in names if name in reads), None) for part, names in PART_NAMES.items()
    }
    if urls:
        variable, read = urls[0], reads[urls[0]]
        database.update(settings="url", url_variable=variable)
        detection.found.append(
            f"database.url_variable: {variable} ({read.where}: {variable}: {read.annotation})"
        )
        detection.comments["database.url_variable"] = read.where
        if "PostgresDsn" in read.annotation:
            database["host_required"] = True
            detection.found.append(
                f"database.host_required: {variable} is a PostgresDsn ({read.where}), which refuses a URL "
                "without a host"
            )
        if len(urls) > 1:
            detection.assumed.append(f"database.url_variable: {variable}, not {', '.join(urls[1:])}")
        return {variable}
    if all(parts[part] for part in ("host", "user", "password", "database")):
        names = {part: name for part, name in parts.items() if name}
        database.update(settings="parts", parts=names)
        shown = ", ".join(f"{part} {name} ({reads[name].where})" for part, name in names.items())
        detection.found.append(f"database.settings: parts: {shown}")
        if parts["port"] is None:
            detection.assumed.append(
                "database.parts.port: the app reads no port variable (5432 assumed by it)"
            )
        return set(names.values())
    database.update(settings="url", url_variable="DATABASE_URL")
    detection.assumed.append(
        "database.url_variable: DATABASE_URL (no DATABASE_URL-like setting nor POSTGRES_* parts found)"
    )
    detection.to_decide.append(
        "app.database: how does the app find its database? DATABASE_URL is assumed; set "
        "app.database.url_variable, or settings: parts with app.database.parts"
    )
    return {"DATABASE_URL"}


def _names_used(source: Source) -> set[str]:
    names: set[str] = set()
    for module in sorted(source.files):
        tree = source.tree(module)
        for node in ast.walk(tree) if tree else ():
            if isinstance(node, ast.alias):
                names.add(node.asname or node.name)
    return names


def _migrations(directory: Path, deps: list[Dependency], detection: Detection) -> None:
    ini = directory / "alembic.ini"
    if ini.is_file():
        text = ini.read_text(errors="replace")
        parser = configparser.ConfigParser(interpolation=None)
        location = None
        try:
            parser.read_string(text)
            location = parser.get("alembic", "script_location", fallback=None)
        except configparser.Error:
            pass
        line = _line_of(text, r"^\s*script_location\s*=")
        detection.values["migrations"] = {"kind": "alembic", "config": "alembic.ini"}
        detection.found.append(f"migrations: alembic (alembic.ini:{line}: script_location = {location})")
        if location:
            resolved = directory / location.replace("%(here)s", ".").strip()
            if ":" not in location and not resolved.is_dir():
                detection.to_decide.append(
                    f"app.migrations: alembic.ini's script_location {location} is not a directory"
                )
        return
    detection.values["migrations"] = {"kind": "none"}
    if any(dependency.name == "alembic" for dependency in deps):
        detection.to_decide.append(
            "app.migrations: alembic is a dependency but there is no alembic.ini in the app's directory: "
            "set app.migrations (kind alembic with config, or a command)"
        )
    else:
        detection.found.append("migrations: none (no alembic.ini)")


# --------------------------------------------------------------------------------------------
# Dockerfile.


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int


def dockerfile_instructions(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, value = joined.partition(" ")
        out.append(Instruction(keyword.upper(), value.strip(), start))
    return out


def _exec_form(value: str) -> list[str] | None:
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
    return None


def _copy_sources(instruction: Instruction) -> list[str] | None:
    """The sources of a COPY/ADD from the build context (None: from a stage or a URL)."""
    exec_form = _exec_form(instruction.value)
    words = exec_form if exec_form is not None else shlex.split(instruction.value, posix=True)
    flags = [word for word in words if word.startswith("--")]
    if any(flag.startswith("--from") for flag in flags):
        return None
    args = [word for word in words if not word.startswith("--")]
    sources = args[:-1]
    if any("://" in source for source in sources):
        return None
    return sources


def _exists(context: Path, source: str) -> bool:
    cleaned = source.lstrip("/")
    cleaned = cleaned[2:] if cleaned.startswith("./") else cleaned
    if cleaned in ("", "."):
        return True
    if any(char in cleaned for char in "*?["):
        return any(context.glob(cleaned))
    return (context / cleaned).exists()


def _dockerfile(path: Path, directory: Path, detection: Detection) -> Path | None:
    """The Dockerfile and its command; returns its build context when that is a parent of the
    app's directory (a monorepo: the image copies more than the app's directory)."""
    candidates = [directory / "Dockerfile"]
    if path.resolve() != directory.resolve():
        candidates.append(path / "Dockerfile")
    dockerfile = next((candidate for candidate in candidates if candidate.is_file()), None)
    if dockerfile is None:
        detection.found.append("Dockerfile: none (Cloud Run builds a generated image)")
        return None
    dockerfile = dockerfile.resolve()
    instructions = dockerfile_instructions(dockerfile.read_text(errors="replace"))
    copies = [
        (instruction, _copy_sources(instruction))
        for instruction in instructions
        if instruction.keyword in ("COPY", "ADD")
    ]
    sources = [source for _, found in copies if found for source in found]
    contexts = [dockerfile.parent, *list(dockerfile.parent.parents)[:3]]
    context = next(
        (candidate for candidate in contexts if all(_exists(candidate, source) for source in sources)), None
    )
    shown = os.path.relpath(dockerfile, directory)
    detection.values["dockerfile"] = shown
    detection.found.append(f"dockerfile: {shown}")
    outer: Path | None = None
    if context is None:
        missing = [source for source in sources if not _exists(dockerfile.parent, source)]
        detection.to_decide.append(
            f"app.build_context: the Dockerfile copies {', '.join(missing)}, found neither beside it nor in "
            "a "
            "parent directory: set app.build_context"
        )
    elif context != directory.resolve():
        evidence = next(
            (
                f"{shown}:{instruction.line}: {instruction.keyword} {instruction.value}"
                for instruction, found in copies
                if found and not all(_exists(dockerfile.parent, source) for source in found)
            ),
            shown,
        )
        outside = sorted(
            {
                source.rstrip("/")
                for source in sources
                if not (context / source).resolve().is_relative_to(directory) and (context / source).exists()
            }
        )
        detection.found.append(
            f"build context: {os.path.relpath(context, directory)}, the app's parent (the Dockerfile "
            "copies from "
            f"there: {evidence})"
        )
        copied = f" (the image copies {', '.join(outside)} from there too)" if outside else ""
        detection.assumed.append(
            f"path: the build context {context.name}/, so that the Lambda bundle holds what the image holds"
            f"{copied}; the app imports from {os.path.relpath(directory, context)} (source_root)"
        )
        outer = context
    command = next(
        (instruction for instruction in reversed(instructions) if instruction.keyword == "CMD"), None
    )
    entrypoint = next(
        (instruction for instruction in reversed(instructions) if instruction.keyword == "ENTRYPOINT"), None
    )
    if command is None and entrypoint is None:
        detection.to_decide.append(
            "app.command: the Dockerfile has no CMD nor ENTRYPOINT: set app.command (argv serving on $PORT)"
        )
        return outer
    shown_command = " ".join(
        f"{instruction.keyword} {instruction.value}" for instruction in (entrypoint, command) if instruction
    )
    line = command.line if command is not None else entrypoint.line if entrypoint is not None else 0
    detection.found.append(f"the image's command: {shown_command} ({shown}:{line}), kept (app.command unset)")
    argv = [word for instruction in (entrypoint, command) if instruction for word in _argv(instruction.value)]
    port, why = listening_port(argv)
    if port is None:
        detection.to_decide.append(
            f"app.port: cannot tell which port `{' '.join(argv)}` listens on; Cloud Run sends requests to "
            f"app.port ({CLOUD_RUN_PORT} unless set) and sets $PORT to it"
        )
    elif port != CLOUD_RUN_PORT:
        detection.values["port"] = port
        detection.comments["port"] = why
        detection.found.append(f"port: {port}, {why}: Cloud Run sends requests there and sets $PORT to it")
    return outer


def _rebase(detection: Detection, base: Path) -> None:
    """Make the spec's paths relative to ``base``, a parent of the app's directory."""
    prefix = os.path.relpath(detection.app_directory, base)
    values = detection.values
    root = values.get("source_root", ".")
    values["source_root"] = prefix if root == "." else f"{prefix}/{root}"
    for key in ("dependencies", "dockerfile"):
        if key in values:
            values[key] = os.path.normpath(os.path.join(prefix, values[key]))
    migrations = values.get("migrations", {})
    if migrations.get("kind") == "alembic":
        migrations["config"] = os.path.normpath(os.path.join(prefix, migrations["config"]))
    detection.comments = {
        key: (
            os.path.normpath(os.path.join(prefix, comment))
            if re.match(r"^[\w./-]+:\d+$", comment)
            else comment
        )
        for key, comment in detection.comments.items()
    }
    detection.directory = base


def _argv(value: str) -> list[str]:
    exec_form = _exec_form(value)
    if exec_form is not None:
        return exec_form
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


# What a server listens on when its command line names no port.
SERVER_DEFAULT_PORTS = {"uvicorn": 8000, "fastapi": 8000, "gunicorn": 8000, "hypercorn": 8000}


def listening_port(argv: list[str]) -> tuple[int | None, str]:
    """The port the image's command listens on, and why: a flag, $PORT, or the server's default."""
    ports = _ports(argv)
    if ports:
        return ports[0], "from the image's command"
    if any("PORT" in word for word in argv):
        return CLOUD_RUN_PORT, "the command reads $PORT"
    for word in argv:
        server = PurePath(word).name
        if server in SERVER_DEFAULT_PORTS:
            return SERVER_DEFAULT_PORTS[server], f"{server}'s default (the command names no port)"
    return None, ""


def _ports(argv: list[str]) -> list[int]:
    """The ports a server command line listens on (``--port 80``, ``-b 0.0.0.0:80``, ``--bind=:80``)."""
    ports: list[int] = []
    for index, word in enumerate(argv):
        flag, equals, inline = word.partition("=")
        value = inline if equals else (argv[index + 1] if index + 1 < len(argv) else "")
        if flag == "--port" or (flag == "-p" and not equals):
            digits = value
        elif flag in ("--bind", "-b"):
            digits = value.rpartition(":")[2]
        else:
            continue
        if digits.isdigit():
            ports.append(int(digits))
    return ports


# --------------------------------------------------------------------------------------------
# The whole detection.


def choose_health(scan: RouteScan) -> tuple[str | None, str]:
    """The health path among the routes, and why."""
    paths = [path for path in scan.paths() if "{" not in path]
    builtins = {route.path for route in scan.routes if "(FastAPI's" in route.where}
    own = [path for path in paths if path not in builtins]
    for name in HEALTH_NAMES:
        matches = [path for path in own if path.rstrip("/").rsplit("/", 1)[-1].lower() == name]
        if matches:
            return min(matches, key=len), f"a route named {name}"
    loose = [path for path in own if "health" in path.lower()]
    if loose:
        return min(loose, key=len), "a route with health in its path"
    if "/" in own:
        return "/", "the root route (no health route)"
    return None, "no health route and no root route"


def detect(path: Path) -> Detection:
    """Inspect ``path`` (the app's directory, or a repository holding it one level down)."""
    path = path.resolve()
    if not path.is_dir():
        raise DetectionError(f"{path} is not a directory")
    entry = _locate(path)
    directory = entry.directory.resolve()
    detection = Detection(
        directory=directory, values={}, app_directory=directory, project=_project_name(path, directory)
    )
    if directory != path:
        detection.found.append(f"the app's directory: {os.path.relpath(directory, path)} (below {path.name})")
    _entry_values(entry, detection)
    source = Source(directory / entry.source_root, directory)
    deps = _dependencies(directory, detection)
    names = {dependency.name for dependency in deps}
    if deps and not any(name.startswith("fastapi") for name in names):
        detection.to_decide.append("app.dependencies: fastapi is not among the declared dependencies")
    _servers(source, deps, detection)
    detection.routes = find_routes(source, entry.module, entry.attribute)
    _health(detection.routes, detection)
    _migrations(directory, deps, detection)
    accounted = _database(source, deps, detection)
    if detection.values["migrations"]["kind"] != "none" and not detection.values["database"]["enabled"]:
        detection.values["migrations"] = {"kind": "none"}
        detection.to_decide.append(
            "app.migrations: the app has Alembic migrations but no PostgreSQL driver: migrations none "
            "(a database needs app.database.enabled, its driver, and app.migrations)"
        )
    outer = _dockerfile(path, directory, detection)
    reads = environment_reads(source)
    accounted |= _secret_key(reads, detection)
    _other_variables(reads, accounted, detection)
    if outer is not None:
        _rebase(detection, outer)
    return detection


def _entry_values(entry: _Entry, detection: Detection) -> None:
    entrypoint = f"{entry.module}:{entry.attribute}"
    detection.values["entrypoint"] = entrypoint
    detection.comments["entrypoint"] = entry.evidence.split(": ")[0]
    detection.found.append(f"entrypoint: {entrypoint} {entry.how} ({entry.evidence})")
    if entry.factory is not None:
        detection.values["factory"] = entry.factory
        kind = "a function" if entry.factory else "an app object"
        detection.found.append(f"factory: {str(entry.factory).lower()} ({kind})")
    else:
        detection.assumed.append(
            f"factory: told at start ({entrypoint} is neither FastAPI(...) nor a function)"
        )
    if entry.source_root != ".":
        detection.values["source_root"] = entry.source_root
        detection.found.append(f"source_root: {entry.source_root} (a src layout)")


def _servers(source: Source, deps: list[Dependency], detection: Detection) -> None:
    """The container's servers: left out of the Lambda bundle unless the app imports them."""
    servers = [dependency for dependency in deps if dependency.name in SERVER_PACKAGES]
    if not servers:
        detection.found.append("servers: none declared (the generated image brings uvicorn)")
        return
    detection.found.append("servers: " + ", ".join(f"{d.name} ({d.where})" for d in servers))
    imported = _module_level_imports(source)
    drop = [d.name for d in servers if d.name.replace("-", "_") not in imported]
    kept = [d.name for d in servers if d.name.replace("-", "_") in imported]
    if drop:
        detection.values["lambda_drop"] = drop
        detection.assumed.append(
            f"lambda_drop: {', '.join(drop)}: the container's server, never imported on Lambda"
        )
    if kept:
        detection.assumed.append(f"lambda_drop: {', '.join(kept)} kept (imported at module level)")


def _health(scan: RouteScan, detection: Detection) -> None:
    health, why = choose_health(scan)
    if health is not None:
        where = next(route.where for route in scan.routes if route.path == health)
        detection.values["health_path"] = health
        detection.comments["health_path"] = where
        detection.found.append(f"health_path: {health}: {why} ({where})")
    else:
        fallback = next((p for p in ("/openapi.json", "/docs") if scan.matches(p)), None)
        found_paths = ", ".join(scan.paths()) or "none"
        detection.values["health_path"] = fallback or "/health"
        if fallback is not None:
            detection.to_decide.append(
                f"app.health_path: {why} (GET routes found: {found_paths}); {fallback} (FastAPI's own) is "
                "used: add a cheap health route and set app.health_path"
            )
        else:
            detection.to_decide.append(
                f"app.health_path: {why} among the routes found ({found_paths}); /health assumed: set it"
            )
    if not scan.complete:
        more = " ..." if len(scan.notes) > 3 else ""
        detection.assumed.append(f"routes: not all resolved statically ({'; '.join(scan.notes[:3])}{more})")


def _secret_key(reads: list[EnvRead], detection: Detection) -> set[str]:
    secret = next((name for name in SECRET_KEY_NAMES if any(read.name == name for read in reads)), None)
    detection.values["secret_key_variable"] = secret
    if secret is None:
        detection.found.append(
            "secret_key_variable: none read (no SECRET_KEY-like setting): no key generated"
        )
        return set()
    read = next(read for read in reads if read.name == secret)
    detection.found.append(f"secret_key_variable: {secret} ({read.where}): a generated key is given")
    return {secret}


def _other_variables(reads: list[EnvRead], accounted: set[str], detection: Detection) -> None:
    required: dict[str, EnvRead] = {}
    optional: dict[str, EnvRead] = {}
    for read in reads:
        name = read.name
        if name in accounted or name in PLATFORM_VARIABLES or name.startswith(PLATFORM_PREFIXES):
            continue
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            continue
        if read.required:
            required.setdefault(name, read)
            optional.pop(name, None)
        elif name not in required:
            optional.setdefault(name, read)
    for name, read in sorted(required.items()):
        detection.to_decide.append(
            f"{name}: the app requires it ({read.where}, no default): give it under environment: "
            f"({name}: value) or, if secret, under secrets: [{name}]"
        )
    if optional:
        shown = ", ".join(f"{name} ({read.where})" for name, read in sorted(optional.items()))
        detection.to_decide.append(
            f"optional settings the app reads (each has a default): {shown}; set any under environment: "
            "or secrets:"
        )


# --------------------------------------------------------------------------------------------
# The spec file.

SECTION_ORDER = (
    "path",
    "entrypoint",
    "factory",
    "source_root",
    "dependencies",
    "dockerfile",
    "build_context",
    "command",
    "port",
    "health_path",
    "lambda_drop",
    "migrations",
    "database",
    "secret_key_variable",
)


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def render_app_section(values: dict[str, Any], comments: dict[str, str] | None = None) -> str:
    """The ``app:`` block, in the field order of the spec, with each finding's evidence."""
    comments = comments or {}
    lines = ["app:"]

    def emit(indent: int, key: str, value: Any, path: str) -> None:
        pad = "  " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            for inner_key, inner_value in value.items():
                emit(indent + 1, inner_key, inner_value, f"{path}.{inner_key}")
            return
        line = f"{pad}{key}: {_scalar(list(value) if isinstance(value, tuple) else value)}"
        comment = comments.get(path)
        if comment:
            line = f"{line.ljust(44)} # {comment}"
        lines.append(line)

    for key in sorted(
        values, key=lambda k: SECTION_ORDER.index(k) if k in SECTION_ORDER else len(SECTION_ORDER)
    ):
        emit(1, key, values[key], key)
    return "\n".join(lines) + "\n"


def _app_block(lines: list[str]) -> tuple[int, int] | None:
    """The [start, end) lines of the top-level ``app:`` key."""
    for index, line in enumerate(lines):
        if re.match(r"^app\s*:", line):
            end = index + 1
            while end < len(lines) and (not lines[end].strip() or lines[end][0] in " \t"):
                end += 1
            while end > index + 1 and not lines[end - 1].strip():
                end -= 1
            return index, end
    return None


def _project_name(path: Path, directory: Path) -> str:
    """The pyproject's name, else the directory's, as a spec project name."""
    name = path.name
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        try:
            declared = tomllib.loads(pyproject.read_text(errors="replace")).get("project", {}).get("name")
        except tomllib.TOMLDecodeError:
            declared = None
        name = declared if isinstance(declared, str) else name
    name = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:30].rstrip("-")
    return name if len(name) >= 3 else f"app-{name}".rstrip("-") if name else "my-app"


def new_spec_text(project: str, section: str) -> str:
    return (
        "# The deployment spec (stacks/spec.py documents every field). Written by `python app.py init`.\n"
        f"project: {project}\n"
        f"{section}"
        "gcp:\n"
        "  project: my-gcp-project   # your Google Cloud project id (to decide)\n"
        "  region: europe-west1\n"
    )


@dataclass
class WriteResult:
    written: bool
    action: str  # "created", "added", "replaced", "unchanged", "refused"
    diff: str


def write_app_section(spec_path: Path, section: str, *, project: str, force: bool = False) -> WriteResult:
    """Write ``section`` as the spec file's ``app`` section; the rest of the file is kept as it is.
    The result is validated with :func:`stacks.spec.load_spec` before it replaces the file."""
    from stacks.spec import SpecError, load_spec  # noqa: PLC0415 - stacks.spec reads this module's checks

    old = spec_path.read_text() if spec_path.is_file() else None
    if old is None:
        new, action = new_spec_text(project, section), "created"
    else:
        lines = old.splitlines(keepends=True)
        block = _app_block(lines)
        if block is None:
            loaded = yaml.safe_load(old) or {}
            if isinstance(loaded, dict) and "app" in loaded:
                raise DetectionError(
                    f"{spec_path}: its app section is not a plain top-level `app:` block; edit it by hand"
                )
            insert = next(
                (i + 1 for i, line in enumerate(lines) if re.match(r"^project\s*:", line)), len(lines)
            )
            if insert == len(lines) and lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            new, action = "".join([*lines[:insert], section, *lines[insert:]]), "added"
        else:
            start, end = block
            new, action = "".join([*lines[:start], section, *lines[end:]]), "replaced"
    diff = "".join(
        difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{spec_path} (now)",
            tofile=f"{spec_path} (written)",
        )
    )
    if old == new:
        return WriteResult(False, "unchanged", "")
    if action == "replaced" and not force:
        return WriteResult(False, "refused", diff)
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{spec_path.name}.", suffix=".tmp", dir=spec_path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(new)
        try:
            load_spec(Path(temporary))
        except SpecError as error:
            raise DetectionError(f"the spec that would be written does not load:\n{error}") from None
        os.replace(temporary, spec_path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return WriteResult(True, action, diff)


def init(path: Path, spec_path: Path, *, force: bool = False, out: TextIO | None = None) -> int:
    """``python app.py init PATH``: detect, report, write. Returns the exit status."""
    out = out or sys.stdout

    def say(line: str = "") -> None:
        out.write(line + "\n")

    try:
        detection = detect(path)
    except DetectionError as error:
        say(f"init: {error}")
        return 2
    spec_path = spec_path.resolve()
    values = {"path": os.path.relpath(detection.directory, spec_path.parent), **detection.values}
    comments = dict(detection.comments)
    section = render_app_section(values, comments)
    say(f"A FastAPI app in {detection.directory}")
    for title, items in (
        ("Found", detection.found),
        ("Assumed", detection.assumed),
        (
            "Still to decide",
            [*detection.to_decide, "gcp.project (and gcp.region): your Google Cloud project"],
        ),
    ):
        say(f"\n{title}:")
        for item in items:
            say(f"  - {item}")
    if detection.routes is not None:
        say(f"\nRoutes (GET): {', '.join(detection.routes.paths()) or 'none resolved'}")
    say(f"\nThe app section for {spec_path}:\n")
    say(section.rstrip("\n"))
    try:
        result = write_app_section(spec_path, section, project=detection.project, force=force)
    except DetectionError as error:
        say(f"\ninit: {error}")
        return 1
    if result.action == "refused":
        say(f"\n{spec_path} already has an app section: not replaced. The change would be:\n")
        say(result.diff.rstrip("\n"))
        say("\nRun again with --force to replace it (the rest of the file is kept).")
        return 1
    messages = {
        "created": f"Wrote {spec_path} (a new spec: project {detection.project}).",
        "added": f"Added the app section to {spec_path} (the rest of the file is unchanged).",
        "replaced": f"Replaced the app section of {spec_path} (--force; the rest of the file is unchanged):",
        "unchanged": f"{spec_path} already has this app section: nothing written.",
    }
    say("\n" + messages[result.action])
    if result.action == "replaced":
        say(result.diff.rstrip("\n"))
    spec_arg = os.path.relpath(spec_path)
    say(
        f"\nNext: SPEC={spec_arg} make synth"
        if spec_path.name != "deploy.yaml" or spec_arg != "deploy.yaml"
        else "\nNext: make synth"
    )
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python app.py init",
        description="Detect a FastAPI app and write the app section of the deployment spec.",
    )
    parser.add_argument("path", type=Path, help="the app's directory (or a repository holding it)")
    parser.add_argument(
        "--spec", type=Path, default=Path("deploy.yaml"), help="the spec file (default: deploy.yaml)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing app section")
    args = parser.parse_args(list(argv))
    return init(args.path, args.spec, force=args.force)
