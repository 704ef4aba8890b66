"""asyncpg: transactions that start with the current request context.

::

    async with pg_safeguard.asyncpg.transaction(conn):      # BEGIN; set_context(...); ...; COMMIT
        rows = await conn.fetch("SELECT * FROM patients")

    async with pg_safeguard.asyncpg.acquire(pool) as conn:  # asyncpg.Pool: borrow + transaction
        ...

The context is sent only when one is set; the database forgets it at COMMIT or ROLLBACK, before
the connection goes back to the pool.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

from .context import current_context

SET_CONTEXT = "SELECT safeguard.set_context($1::uuid, $2::uuid, $3::uuid, $4::text)"


async def set_context(conn: Any) -> bool:
    """Sends the current context in the connection's open transaction; False when none is set."""
    context = current_context()
    if context is None:
        return False
    await conn.execute(SET_CONTEXT, *context.params())
    return True


@contextlib.asynccontextmanager
async def transaction(conn: Any) -> AsyncIterator[Any]:
    """``conn.transaction()`` that begins with the current request context."""
    async with conn.transaction():
        await set_context(conn)
        yield conn


@contextlib.asynccontextmanager
async def acquire(pool: Any) -> AsyncIterator[Any]:
    """A connection of an ``asyncpg.Pool`` inside a transaction with the context."""
    async with pool.acquire() as conn, transaction(conn):
        yield conn
