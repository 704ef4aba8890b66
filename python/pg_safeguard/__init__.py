"""pg_safeguard for Python: the request context on every pooled transaction (SQLAlchemy sync and
asyncio, psycopg, asyncpg), column types for the extension's types, and lint in test suites.

The integrations live in submodules so that only the drivers you use are imported:
``pg_safeguard.sqlalchemy``, ``pg_safeguard.psycopg``, ``pg_safeguard.asyncpg``,
``pg_safeguard.lint``.
"""

from .context import RequestContext, current_context, make_context, request_context

__all__ = ["RequestContext", "current_context", "make_context", "request_context"]
__version__ = "0.2.0"
