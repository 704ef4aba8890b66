"""The request context: who the current request works for, carried in a ``contextvars`` variable.

Set it once where a request, a job or a test starts; every transaction the integrations open
while it is set starts with ``safeguard.set_context(...)`` (``pg_safeguard.sqlalchemy``,
``pg_safeguard.psycopg``, ``pg_safeguard.asyncpg``). The database keeps the context for that
transaction only, so a pooled connection never carries it to its next user; with no context set
the integrations send nothing and the database sees none: isolated tables return no rows and
refuse writes (fail closed).
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple, Union

UuidLike = Union[uuid.UUID, str]


@dataclass(frozen=True)
class RequestContext:
    """What ``safeguard.set_context()`` receives: tenant, actor, impersonator, request id."""

    tenant_id: Optional[uuid.UUID] = None
    actor_id: Optional[uuid.UUID] = None
    impersonator_id: Optional[uuid.UUID] = None
    request_id: Optional[str] = None

    def params(self) -> Tuple[Optional[str], Optional[str], Optional[str], Optional[str]]:
        """The four arguments of ``safeguard.set_context``, as text (every driver binds text)."""
        return (
            None if self.tenant_id is None else str(self.tenant_id),
            None if self.actor_id is None else str(self.actor_id),
            None if self.impersonator_id is None else str(self.impersonator_id),
            self.request_id,
        )


_current: contextvars.ContextVar[Optional[RequestContext]] = contextvars.ContextVar(
    "pg_safeguard_request_context", default=None
)


def _as_uuid(value: Optional[UuidLike], name: str) -> Optional[uuid.UUID]:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"{name} must be a UUID") from None


def make_context(
    tenant_id: Optional[UuidLike] = None,
    actor_id: Optional[UuidLike] = None,
    impersonator_id: Optional[UuidLike] = None,
    request_id: Optional[str] = None,
) -> RequestContext:
    """A validated context (UUIDs parsed here, so a malformed one fails in Python, not in SQL)."""
    return RequestContext(
        _as_uuid(tenant_id, "tenant_id"),
        _as_uuid(actor_id, "actor_id"),
        _as_uuid(impersonator_id, "impersonator_id"),
        request_id,
    )


@contextlib.contextmanager
def request_context(
    tenant_id: Optional[UuidLike] = None,
    actor_id: Optional[UuidLike] = None,
    impersonator_id: Optional[UuidLike] = None,
    request_id: Optional[str] = None,
) -> Iterator[RequestContext]:
    """Sets the context for the block (a web request, a background job, a test), then restores
    what was there before. Works across threads and asyncio tasks like any ``ContextVar``: a task
    created inside the block inherits it."""
    token = _current.set(make_context(tenant_id, actor_id, impersonator_id, request_id))
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)


def current_context() -> Optional[RequestContext]:
    """The context set by the innermost ``request_context`` block, or None."""
    return _current.get()

