"""asyncpg: transactions that start with the current request context, in one round trip.

::

    async with pg_safeguard.asyncpg.transaction(conn):      # BEGIN; SELECT set_context(...) ... COMMIT
        rows = await conn.fetch("SELECT * FROM patients")

    async with pg_safeguard.asyncpg.acquire(pool) as conn:  # asyncpg.Pool: borrow + transaction
        ...

``transaction`` sends ``BEGIN`` and ``safeguard.set_context(...)`` as one simple-protocol query,
so the context costs no round trip of its own; then the block's statements; then ``COMMIT``, or
``ROLLBACK`` when the block raises. With no context set only ``BEGIN`` is sent and the database
sees none. The database forgets the context at COMMIT or ROLLBACK, before the connection goes back
to the pool.

asyncpg refuses ``conn.transaction()`` inside a transaction it did not start: inside the block use
``SAVEPOINT``/``RELEASE``/``ROLLBACK TO`` statements, or open the transaction with
``conn.transaction()`` and call ``set_context(conn)`` first (one round trip more).
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Optional

from .context import current_context

SET_CONTEXT = "SELECT safeguard.set_context($1::uuid, $2::uuid, $3::uuid, $4::text)"


def _literal(value: Optional[str]) -> str:
    """A SQL literal of ``value``: an escape string, read the same whatever
    ``standard_conforming_strings`` says. NUL cannot be in PostgreSQL text."""
    if value is None:
        return "NULL"
    if "\x00" in value:
        raise ValueError("a request context value cannot contain NUL")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def begin_statement() -> str:
    """``BEGIN`` followed by ``set_context`` with the current context as literals (asyncpg binds
    parameters only in a single-statement query), or ``BEGIN`` alone."""
    context = current_context()
    if context is None:
        return "BEGIN"
    tenant, actor, impersonator, request_id = (_literal(value) for value in context.params())
    return f"BEGIN; SELECT safeguard.set_context({tenant}::uuid, {actor}::uuid, {impersonator}::uuid, {request_id}::text)"


async def set_context(conn: Any) -> bool:
    """Sends the current context in the connection's open transaction; False when none is set.
    For transactions opened with ``conn.transaction()`` (``transaction`` saves this round trip)."""
    context = current_context()
    if context is None:
        return False
    await conn.execute(SET_CONTEXT, *context.params())
    return True


@contextlib.asynccontextmanager
async def transaction(conn: Any) -> AsyncIterator[Any]:
    """A transaction that begins with the current request context: COMMIT at the end of the
    block, ROLLBACK if it raises. The connection must not be in a transaction already."""
    if conn.is_in_transaction():
        raise RuntimeError("pg_safeguard.asyncpg.transaction() needs a connection outside any transaction")
    await conn.execute(begin_statement())
    try:
        yield conn
    except BaseException:
        if conn.is_in_transaction() and not conn.is_closed():
            await conn.execute("ROLLBACK")
        raise
    if conn.is_in_transaction():
        await conn.execute("COMMIT")


@contextlib.asynccontextmanager
async def acquire(pool: Any) -> AsyncIterator[Any]:
    """A connection of an ``asyncpg.Pool`` inside a transaction with the context."""
    async with pool.acquire() as conn, transaction(conn):
        yield conn
