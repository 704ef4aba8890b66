"""SQLAlchemy 2 (sync and asyncio engines): the request context on every transaction, and column
types for the extension's types.

::

    engine = create_engine("postgresql+psycopg://app@db/clinic")
    pg_safeguard.sqlalchemy.install(engine)          # or an AsyncEngine (asyncpg, psycopg)

    with pg_safeguard.request_context(tenant_id=tenant, actor_id=user, request_id=rid):
        with Session(engine) as session:             # each transaction begins with set_context
            session.scalars(select(Patient)).all()

``install`` listens to the engine's ``begin`` event: the first thing each transaction runs is
``safeguard.set_context(...)`` with the context of the code that opened it, or nothing when no
context is set (the database then sees none: isolated tables give no rows). The database keeps the
context for that transaction only, so pooled connections never carry it further.
"""

from __future__ import annotations

import json
from typing import Any, List, Optional

from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, Text, cast, event, func, inspect, select, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import mapped_column, registry
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import LargeBinary, UserDefinedType

from .context import current_context

_SET_CONTEXT = text(
    "SELECT safeguard.set_context(CAST(:tenant_id AS uuid), CAST(:actor_id AS uuid), "
    "CAST(:impersonator_id AS uuid), CAST(:request_id AS text))"
)


def _set_context_on_begin(conn: Connection) -> None:
    context = current_context()
    if context is None:
        return
    tenant_id, actor_id, impersonator_id, request_id = context.params()
    conn.execute(
        _SET_CONTEXT,
        {"tenant_id": tenant_id, "actor_id": actor_id, "impersonator_id": impersonator_id, "request_id": request_id},
    )


def install(engine: Any) -> Any:
    """Makes every transaction of ``engine`` (an ``Engine`` or an ``AsyncEngine``) begin with the
    current request context. Idempotent; returns the engine."""
    target: Engine = getattr(engine, "sync_engine", engine)
    if not event.contains(target, "begin", _set_context_on_begin):
        event.listen(target, "begin", _set_context_on_begin)
    return engine


def ulid_primary_key(**kwargs: Any) -> Any:
    """A native ``uuid`` primary key filled by ``safeguard.ulid()`` in the database (time-ordered,
    a valid UUIDv7): ``id: Mapped[uuid.UUID] = ulid_primary_key()``."""
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=text("safeguard.ulid()"), **kwargs)


class _ExtensionType(UserDefinedType):
    """A type of the extension, bound through a cast from a type every driver sends (text,
    bytea), so no driver needs a codec for it, and read back as text."""

    cache_ok = True
    sql_name = ""
    bind_as: Any = Text

    def get_col_spec(self, **kw: Any) -> str:
        return self.sql_name

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(cast(bindvalue, self.bind_as), self)

    def column_expression(self, colexpr: Any) -> Any:
        return cast(colexpr, Text)


class Ulid(_ExtensionType):
    """The 16-byte ``safeguard.ulid`` type; values are 26-character ULID strings in Python."""

    sql_name = "safeguard.ulid"
    cache_ok = True  # SQLAlchemy reads it from each class itself


class EncryptedText(_ExtensionType):
    """``safeguard.encrypted_text``: write plain ``str``; reads return the envelope
    (``sgenc:...``), never plaintext. Read plaintext with ``decrypted(column)`` (a role granted
    ``safeguard.decrypt``) or through a decrypted view."""

    sql_name = "safeguard.encrypted_text"
    cache_ok = True  # SQLAlchemy reads it from each class itself


class EncryptedBytes(_ExtensionType):
    """``safeguard.encrypted_bytea``: write ``bytes``; reads return the envelope text."""

    sql_name = "safeguard.encrypted_bytea"
    cache_ok = True  # SQLAlchemy reads it from each class itself
    bind_as = LargeBinary


class EncryptedJSON(_ExtensionType):
    """``safeguard.encrypted_jsonb``: write any JSON-serialisable value; reads return the envelope."""

    sql_name = "safeguard.encrypted_jsonb"
    cache_ok = True  # SQLAlchemy reads it from each class itself
    bind_as = JSONB

    def bind_processor(self, dialect: Any) -> Any:
        return lambda value: None if value is None else json.dumps(value)

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(cast(cast(bindvalue, Text), JSONB), self)


# Reflection (Alembic autogenerate, Table(..., autoload_with=...)) knows the extension's types by
# the names PostgreSQL prints for them, instead of warning and reading them as NullType.
for _type in (Ulid, EncryptedText, EncryptedBytes, EncryptedJSON):
    postgresql_base.ischema_names[_type.sql_name] = _type


def decrypted(column: Any) -> ColumnElement[Any]:
    """``safeguard.decrypt(column)``: the plaintext, for roles granted it (42501 otherwise)."""
    kind = getattr(column, "type", None)
    result_type: Optional[Any] = {EncryptedBytes: LargeBinary, EncryptedJSON: JSONB}.get(type(kind), Text)
    return func.safeguard.decrypt(column, type_=result_type)


# The audit log, for reading. Its own MetaData: it is the extension's table, so it never enters
# an application's metadata (nor an Alembic autogenerate of it). The database refuses writes to
# it from anyone; roles see the entries of the current tenant.
audit_metadata = MetaData(schema="safeguard")
audit_log = Table(
    "audit_log",
    audit_metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("occurred_at", DateTime(timezone=True)),
    Column("tenant_id", UUID(as_uuid=True)),
    Column("actor_id", UUID(as_uuid=True)),
    Column("impersonator_id", UUID(as_uuid=True)),
    Column("request_id", Text),
    Column("db_user", Text),
    Column("application_name", Text),
    Column("txid", BigInteger),
    Column("table_schema", Text),
    Column("table_name", Text),
    Column("operation", Text),
    Column("record_id", JSONB),
    Column("old_data", JSONB),
    Column("new_data", JSONB),
    Column("changed_columns", ARRAY(Text)),
)


class AuditEntry:
    """One entry of the audit log, mapped (on ``audit_log``) for ORM queries:
    ``session.scalars(select(AuditEntry).where(AuditEntry.request_id == rid))``. Read-only: a
    flush that would insert, update or delete one raises before reaching the database (which
    refuses it anyway)."""

    id: Any
    operation: str

    def __repr__(self) -> str:
        return f"<AuditEntry {self.operation} {self.table_schema}.{self.table_name} {self.record_id} at {self.occurred_at}>"


_audit_registry = registry(metadata=audit_metadata)
_audit_registry.map_imperatively(AuditEntry, audit_log)


def _refuse_write(mapper: Any, connection: Any, target: Any) -> None:
    raise TypeError("the audit log is written by the database's triggers only: AuditEntry is read-only")


for _event in ("before_insert", "before_update", "before_delete"):
    event.listen(AuditEntry, _event, _refuse_write)


def history(session: Any, obj: Any) -> List[AuditEntry]:
    """The audit entries of one mapped object, oldest first (``safeguard.audit_history``), as
    ``AuditEntry`` objects: its table and primary key identify the record, through updates of
    its other columns."""
    state = inspect(obj)
    table = state.mapper.local_table
    # The log names a record by its primary key's column names and values, as JSON.
    key = {column.name: value for column, value in zip(state.mapper.primary_key, state.identity or ())}
    if not key:
        raise ValueError("the object has no identity yet: flush or load it first")
    query = text(
        "SELECT * FROM safeguard.audit_history("
        "CAST(concat_ws('.', quote_ident(CAST(:schema AS text)), quote_ident(CAST(:table AS text))) AS regclass), "
        "CAST(:record_id AS jsonb)) ORDER BY occurred_at, id"
    ).bindparams(schema=table.schema, table=table.name, record_id=json.dumps(key, default=str))
    return list(session.scalars(select(AuditEntry).from_statement(query)))
