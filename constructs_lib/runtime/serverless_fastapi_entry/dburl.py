"""A PostgreSQL address in the form each driver (and the app's URL validation) accepts.

Plain standard library: the constructs use it at synth (Cloud Run's secret holds the URL), the
Lambda entry at init (from the RDS secret). Measured against a real server through a socket
directory named like Cloud Run's ``/cloudsql/PROJECT:REGION:INSTANCE``, SQLAlchemy 2.1:

* ``scheme://user:pw@/db?host=/cloudsql/...`` (no host): every driver, raw or through
  SQLAlchemy; pydantic's ``PostgresDsn`` refuses it ("empty host").
* ``scheme://user:pw@localhost/db?host=/cloudsql/...``: libpq (psycopg, psycopg2), raw or
  through SQLAlchemy, and SQLAlchemy's asyncpg dialect take the query's host, and
  ``PostgresDsn`` accepts it; raw ``asyncpg.connect`` dials localhost:5432 instead.
* a percent-encoded socket path as the host: only the raw drivers.

So psycopg and psycopg2 get the ``localhost`` form, and asyncpg the host-less one unless the app
validates its URL with a host required (``host_required``).
"""

from __future__ import annotations

from urllib.parse import quote

DRIVERS = ("asyncpg", "psycopg", "psycopg2")
DEFAULT_SCHEMES = {
    "asyncpg": "postgresql+asyncpg",
    "psycopg": "postgresql+psycopg",
    "psycopg2": "postgresql+psycopg2",
}
SOCKET_PLACEHOLDER_HOST = "localhost"


def database_url(
    *,
    driver: str,
    user: str,
    password: str,
    database: str,
    host: str | None = None,
    port: int | str | None = None,
    socket_dir: str | None = None,
    scheme: str | None = None,
    host_required: bool = False,
) -> str:
    """A URL for ``driver``: over TCP (``host``, ``port``) or through ``socket_dir``."""
    if driver not in DRIVERS:
        raise ValueError(f"driver must be one of {', '.join(DRIVERS)}, got {driver!r}")
    if (host is None) == (socket_dir is None):
        raise ValueError("give either host (TCP) or socket_dir (a Unix socket directory)")
    scheme = scheme or DEFAULT_SCHEMES[driver]
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    name = quote(database, safe="")
    if host is not None:
        address = host if port is None else f"{host}:{port}"
        return f"{scheme}://{credentials}@{address}/{name}"
    placeholder = SOCKET_PLACEHOLDER_HOST if (driver != "asyncpg" or host_required) else ""
    # The socket path is kept as it is (":" and "/" are legal in a query value, and Terraform
    # interpolates the connection name into it at deploy time).
    return f"{scheme}://{credentials}@{placeholder}/{name}?host={socket_dir}"
