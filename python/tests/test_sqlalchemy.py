"""SQLAlchemy 2 with psycopg 3 (sync) and asyncpg (asyncio): every transaction carries the
request context of the code that opened it, and nothing else."""

import asyncio
import random
import threading
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import pg_safeguard
from pg_safeguard.sqlalchemy import (
    EncryptedBytes, EncryptedJSON, EncryptedText, Ulid, decrypted, install, ulid_primary_key,
)

from conftest import ROWS_PER_TENANT, TENANTS, engine_args


class Base(DeclarativeBase):
    pass


class Visit(Base):
    __tablename__ = "visits"
    id: Mapped[uuid.UUID] = ulid_primary_key()
    tenant_id: Mapped[uuid.UUID]
    note: Mapped[str]


class Chart(Base):
    __tablename__ = "charts"
    id: Mapped[str] = mapped_column(Ulid, primary_key=True, server_default=text("safeguard.gen_ulid()"))
    tenant_id: Mapped[uuid.UUID]
    history = mapped_column(EncryptedText)
    scan = mapped_column(EncryptedBytes)
    extra = mapped_column(EncryptedJSON)


@pytest.fixture(scope="module")
def engine():
    url, connect_args = engine_args("psycopg", "sg_py_app")
    engine = install(create_engine(url, connect_args=connect_args, pool_size=4, max_overflow=0))
    yield engine
    engine.dispose()


def test_no_context_sees_nothing_and_cannot_write(engine):
    with Session(engine) as session:
        assert session.scalars(select(Visit)).all() == []
        session.add(Visit(tenant_id=TENANTS[0], note="forged"))
        with pytest.raises(DBAPIError) as failure:
            session.commit()
        assert failure.value.orig.sqlstate == "42501"


def test_context_scopes_reads_and_writes(engine):
    tenant, actor = TENANTS[1], uuid.uuid4()
    with pg_safeguard.request_context(tenant_id=tenant, actor_id=actor, request_id="req-sync-1"):
        with Session(engine) as session:
            visits = session.scalars(select(Visit)).all()
            assert {v.tenant_id for v in visits} == {tenant} and len(visits) == ROWS_PER_TENANT
            session.add(Visit(tenant_id=tenant, note="written from SQLAlchemy"))
            session.commit()
            created = session.scalars(select(Visit).where(Visit.note == "written from SQLAlchemy")).one()
            # The next transaction of the same session carries the context again.
            assert session.execute(text("SELECT safeguard.current_tenant()")).scalar_one() == tenant
        with engine.connect() as conn:
            entry = conn.execute(
                text("SELECT actor_id, request_id FROM safeguard.audit_log "
                     "WHERE table_name = 'visits' AND record_id = jsonb_build_object('id', CAST(:id AS text))"),
                {"id": str(created.id)},
            ).one()
    assert entry.actor_id == actor and entry.request_id == "req-sync-1"
    # Outside the block the same pooled connections see nothing again.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT safeguard.current_tenant()")).scalar_one() is None
        assert conn.execute(select(sa.func.count()).select_from(Visit)).scalar_one() == 0


def test_concurrent_requests_in_threads_never_see_another_tenant(engine):
    failures = []

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(150):
            tenant = rng.choice(TENANTS)
            with pg_safeguard.request_context(tenant_id=tenant):
                with engine.connect() as conn:
                    seen = conn.execute(select(Visit.tenant_id)).scalars().all()
            if not seen or set(seen) != {tenant}:
                failures.append((tenant, set(seen)))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_encrypted_columns_round_trip_through_bound_parameters(engine, reader_dsn):
    tenant = TENANTS[2]
    with pg_safeguard.request_context(tenant_id=tenant):
        with Session(engine) as session:
            chart = Chart(tenant_id=tenant, history="asthma since 2019", scan=b"\x00\xffscan",
                          extra={"allergies": ["penicillin"]})
            session.add(chart)
            session.commit()
            stored = session.execute(select(Chart.id, Chart.history, Chart.scan, Chart.extra)
                                     .where(Chart.id == chart.id)).one()
    ulid = stored.id
    assert len(ulid) == 26 and all(v.startswith("sgenc:") for v in (stored.history, stored.scan, stored.extra))
    url, connect_args = engine_args("psycopg", "sg_py_reader")
    reader = install(create_engine(url, connect_args=connect_args))
    try:
        with pg_safeguard.request_context(tenant_id=tenant), reader.connect() as conn:
            plain = conn.execute(select(decrypted(Chart.history), decrypted(Chart.scan), decrypted(Chart.extra))
                                 .where(Chart.id == ulid)).one()
    finally:
        reader.dispose()
    assert plain == ("asthma since 2019", b"\x00\xffscan", {"allergies": ["penicillin"]})


def test_async_engine_with_asyncpg_thousands_of_requests():
    async def run():
        url, connect_args = engine_args("asyncpg", "sg_py_app")
        engine = install(create_async_engine(url, connect_args=connect_args, pool_size=5, max_overflow=0))
        foreign, empty = [], []
        semaphore = asyncio.Semaphore(50)

        async def request(n):
            tenant = random.choice(TENANTS)
            async with semaphore:
                with pg_safeguard.request_context(tenant_id=tenant, request_id=f"async-{n}"):
                    async with engine.connect() as conn:
                        rows = (await conn.execute(select(Visit.tenant_id))).scalars().all()
                        request_id = (await conn.execute(text("SELECT safeguard.current_request_id()"))).scalar_one()
            if not rows:
                empty.append(n)
            if set(rows) - {tenant} or request_id != f"async-{n}":
                foreign.append((n, tenant, set(rows), request_id))

        await asyncio.gather(*(request(n) for n in range(2000)))
        async with engine.connect() as conn:  # no context: nothing
            count = (await conn.execute(select(sa.func.count()).select_from(Visit))).scalar_one()
        await engine.dispose()
        return foreign, empty, count

    foreign, empty, count = asyncio.run(run())
    assert foreign == [] and empty == [] and count == 0


def test_history_of_an_object(engine):
    from pg_safeguard.sqlalchemy import audit_log, history

    tenant, actor = TENANTS[3], uuid.uuid4()
    with pg_safeguard.request_context(tenant_id=tenant, actor_id=actor, request_id="req-history"):
        with Session(engine) as session:
            visit = Visit(tenant_id=tenant, note="first")
            session.add(visit)
            session.commit()
            visit.note = "second"
            session.commit()
            entries = history(session, visit)
            # The log is readable as a table too; writes to it are refused by the database.
            logged = session.execute(select(sa.func.count()).select_from(audit_log)
                                     .where(audit_log.c.request_id == "req-history")).scalar_one()
            with pytest.raises(DBAPIError):
                session.execute(audit_log.delete().where(audit_log.c.request_id == "req-history"))
    assert [e.operation for e in entries] == ["INSERT", "UPDATE"]
    assert entries[1].changed_columns == ["note"] and all(e.actor_id == actor for e in entries)
    assert logged == 2


def test_audit_entries_as_a_read_only_model(engine):
    from pg_safeguard.sqlalchemy import AuditEntry

    tenant = TENANTS[6]
    with pg_safeguard.request_context(tenant_id=tenant, request_id="req-model"):
        with Session(engine) as session:
            session.add(Visit(tenant_id=tenant, note="modelled"))
            session.commit()
            (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.request_id == "req-model")).all()
            assert (entry.operation, entry.table_name, entry.tenant_id) == ("INSERT", "visits", tenant)
            assert entry.new_data["note"] == "modelled"
            entry.request_id = "forged"
            with pytest.raises(TypeError, match="read-only"):
                session.flush()
            session.rollback()
            session.delete(session.get(AuditEntry, entry.id))
            with pytest.raises(TypeError, match="read-only"):
                session.flush()
            session.rollback()
            forged = AuditEntry()
            forged.id, forged.operation = uuid.uuid4(), "INSERT"
            session.add(forged)
            with pytest.raises(TypeError, match="read-only"):
                session.flush()
