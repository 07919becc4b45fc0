"""psycopg2 used directly (no SQLAlchemy): DATABASE_URL is a libpq URL, postgresql://..."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2.extensions import connection


@contextmanager
def connect() -> Iterator[connection]:
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    try:
        with conn:
            yield conn
    finally:
        conn.close()
