"""psycopg 3: transactions that start with the current request context.

psycopg has no hook at transaction start, so the context is set where the transaction opens::

    with pg_safeguard.psycopg.transaction(conn):          # BEGIN; set_context(...); ...; COMMIT
        conn.execute("SELECT * FROM patients")

    with pg_safeguard.psycopg.connection(pool) as conn:   # psycopg_pool: borrow + transaction
        ...

Both send ``safeguard.set_context`` only when a context is set (``request_context``); the
database forgets it at COMMIT or ROLLBACK, before the connection goes back to the pool.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .context import current_context

SET_CONTEXT = "SELECT safeguard.set_context(%s::uuid, %s::uuid, %s::uuid, %s::text)"


def set_context(conn: Any) -> bool:
    """Sends the current context in the connection's open transaction; False when none is set."""
    context = current_context()
    if context is None:
        return False
    conn.execute(SET_CONTEXT, context.params())
    return True


@contextlib.contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """``conn.transaction()`` that begins with the current request context."""
    with conn.transaction():
        set_context(conn)
        yield conn


@contextlib.contextmanager
def connection(pool: Any) -> Iterator[Any]:
    """A connection of a ``psycopg_pool.ConnectionPool`` inside a transaction with the context."""
    with pool.connection() as conn, transaction(conn):
        yield conn
