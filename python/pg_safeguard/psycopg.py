"""psycopg 3: transactions that start with the current request context, in one round trip.

psycopg has no hook at transaction start, so the context is set where the transaction opens::

    with pg_safeguard.psycopg.transaction(conn):          # BEGIN; SELECT set_context(...) ... COMMIT
        conn.execute("SELECT * FROM patients")

    with pg_safeguard.psycopg.connection(pool) as conn:   # psycopg_pool: borrow + transaction
        ...

``transaction`` sends ``BEGIN`` and ``safeguard.set_context(...)`` as one simple-protocol query
(psycopg quotes the values), so the context costs no round trip of its own; then the block's
statements; then ``COMMIT``, or ``ROLLBACK`` when the block raises. With no context set
(``request_context``) only ``BEGIN`` is sent and the database sees none. The database forgets the
context at COMMIT or ROLLBACK, before the connection goes back to the pool. Inside the block,
``conn.transaction()`` makes a savepoint, as in any psycopg transaction.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from psycopg import sql
from psycopg.pq import TransactionStatus

from .context import current_context

SET_CONTEXT = "SELECT safeguard.set_context(%s::uuid, %s::uuid, %s::uuid, %s::text)"


def begin_statement() -> sql.Composed:
    """``BEGIN`` followed by ``set_context`` with the current context as quoted literals (values
    a driver binds are not allowed beside a second statement), or ``BEGIN`` alone."""
    context = current_context()
    if context is None:
        return sql.Composed([sql.SQL("BEGIN")])
    literals = [sql.NULL if value is None else sql.Literal(value) for value in context.params()]
    return sql.SQL("BEGIN; SELECT safeguard.set_context({}::uuid, {}::uuid, {}::uuid, {}::text)").format(*literals)


def set_context(conn: Any) -> bool:
    """Sends the current context in the connection's open transaction; False when none is set.
    For code that opens its transactions itself (``transaction`` saves this round trip)."""
    context = current_context()
    if context is None:
        return False
    conn.execute(SET_CONTEXT, context.params())
    return True


@contextlib.contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """A transaction that begins with the current request context: COMMIT at the end of the
    block, ROLLBACK if it raises. The connection must not be in a transaction already."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("pg_safeguard.psycopg.transaction() needs a connection outside any transaction")
    # In autocommit mode psycopg sends no BEGIN of its own: the one in begin_statement() is the
    # transaction's, and psycopg's state follows the server's (savepoints inside, commit()).
    was_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        # prepare=False: psycopg would otherwise prepare a text it sees often (a lone BEGIN),
        # which costs a round trip of its own the first time.
        conn.execute(begin_statement(), prepare=False)
        try:
            yield conn
        except BaseException:
            if conn.info.transaction_status != TransactionStatus.IDLE and not conn.closed:
                conn.execute("ROLLBACK", prepare=False)
            raise
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("COMMIT", prepare=False)
    finally:
        if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
            conn.autocommit = was_autocommit


@contextlib.contextmanager
def connection(pool: Any) -> Iterator[Any]:
    """A connection of a ``psycopg_pool.ConnectionPool`` inside a transaction with the context."""
    with pool.connection() as conn, transaction(conn):
        yield conn
