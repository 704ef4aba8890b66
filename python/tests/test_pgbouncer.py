"""Through PgBouncer 1.18 in transaction mode (scripts/pgbouncer.sh: four server connections per
database and user, and an alias NAME_single with one): the pooled concurrency tests again, with the
settings each driver needs there (docs/poolers.md), and a client that forgets the context on a
server connection that served another tenant a moment before."""

import asyncio
import os
import random
import threading
import uuid

import asyncpg
import psycopg
import pytest
from psycopg_pool import ConnectionPool
from sqlalchemy import create_engine, select, text
from sqlalchemy.ext.asyncio import create_async_engine

import pg_safeguard
import pg_safeguard.asyncpg as sg_asyncpg
import pg_safeguard.psycopg as sg_psycopg
from pg_safeguard.sqlalchemy import install

from conftest import ROWS_PER_TENANT, TENANTS

# What each driver needs behind PgBouncer 1.18 in transaction mode (it does not track prepared
# statements; 1.21+ can, with max_prepared_statements): no named prepared statements that outlive
# a transaction.
PSYCOPG_ARGS = {"prepare_threshold": None}
ASYNCPG_ARGS = {"statement_cache_size": 0}


@pytest.fixture(scope="module")
def bouncer():
    port = os.environ.get("SAFEGUARD_PGBOUNCER_PORT")
    if not port:
        pytest.fail("SAFEGUARD_PGBOUNCER_PORT is not set: run these tests with scripts/python-test.sh")
    return {"host": "127.0.0.1", "port": int(port), "database": os.environ["SAFEGUARD_PY_DB"]}


def _psycopg_dsn(bouncer, database=None, user="sg_py_app"):
    return f"host={bouncer['host']} port={bouncer['port']} dbname={database or bouncer['database']} user={user}"


def _audit_entries(request_prefix):
    """request id -> (tenant, actor) of the audit entries, read past PgBouncer as the superuser."""
    with psycopg.connect(f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} "
                         f"dbname={os.environ['SAFEGUARD_PY_DB']}") as conn:
        rows = conn.execute("SELECT request_id, tenant_id, actor_id, (SELECT c.tenant_id FROM charts c "
                            "WHERE c.id::text = e.record_id ->> 'id') FROM safeguard.audit_log e "
                            "WHERE request_id LIKE %s", (request_prefix + "%",)).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_psycopg_pool_through_pgbouncer(bouncer):
    expected, failures = {}, []
    with ConnectionPool(_psycopg_dsn(bouncer), min_size=24, max_size=24, kwargs=PSYCOPG_ARGS) as pool:
        def worker(seed):
            rng = random.Random(seed)
            for n in range(250):
                tenant, actor = rng.choice(TENANTS), uuid.uuid4()
                if n % 10 == 0:  # forgets the context: sees nothing, writes nothing
                    with pool.connection() as conn:
                        if conn.execute("SELECT count(*) FROM visits").fetchone()[0] != 0:
                            failures.append(("leak", seed, n))
                        try:
                            conn.execute("INSERT INTO charts (tenant_id) VALUES (%s)", (tenant,))
                            failures.append(("write without context", seed, n))
                        except psycopg.errors.InsufficientPrivilege:
                            conn.rollback()
                    continue
                request_id = f"pgb-psycopg-{seed}-{n}"
                expected[request_id] = (tenant, actor)
                with pg_safeguard.request_context(tenant_id=tenant, actor_id=actor, request_id=request_id), \
                        sg_psycopg.connection(pool) as conn:
                    seen = [r[0] for r in conn.execute("SELECT tenant_id FROM visits").fetchall()]
                    conn.execute("INSERT INTO charts (tenant_id, history) VALUES (%s, %s::text::safeguard.encrypted_text)",
                                 (tenant, request_id))
                if len(seen) != ROWS_PER_TENANT or set(seen) != {tenant}:
                    failures.append((tenant, set(seen)))

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    logged = _audit_entries("pgb-psycopg-")
    assert {rid: (t, a, t) for rid, (t, a) in expected.items()} == logged


def test_asyncpg_pool_through_pgbouncer(bouncer):
    async def run():
        pool = await asyncpg.create_pool(host=bouncer["host"], port=bouncer["port"], user="sg_py_app",
                                         database=bouncer["database"], min_size=40, max_size=40, **ASYNCPG_ARGS)
        expected, failures = {}, []
        semaphore = asyncio.Semaphore(100)

        async def request(n):
            tenant, actor = random.choice(TENANTS), uuid.uuid4()
            async with semaphore:
                if n % 10 == 0:
                    async with pool.acquire() as conn:
                        if await conn.fetchval("SELECT count(*) FROM visits") != 0:
                            failures.append(("leak", n))
                        try:
                            await conn.execute("INSERT INTO charts (tenant_id) VALUES ($1)", tenant)
                            failures.append(("write without context", n))
                        except asyncpg.exceptions.InsufficientPrivilegeError:
                            pass
                    return
                request_id = f"pgb-asyncpg-{n}"
                expected[request_id] = (tenant, actor)
                with pg_safeguard.request_context(tenant_id=tenant, actor_id=actor, request_id=request_id):
                    async with sg_asyncpg.acquire(pool) as conn:
                        seen = [r[0] for r in await conn.fetch("SELECT tenant_id FROM visits")]
                        await conn.execute("INSERT INTO charts (tenant_id, scan) VALUES "
                                           "($1, $2::bytea::safeguard.encrypted_bytea)", tenant, request_id.encode())
            if len(seen) != ROWS_PER_TENANT or set(seen) != {tenant}:
                failures.append((n, tenant, set(seen)))

        await asyncio.gather(*(request(n) for n in range(2000)))
        await pool.close()
        return expected, failures

    expected, failures = asyncio.run(run())
    assert failures == []
    assert {rid: (t, a, t) for rid, (t, a) in expected.items()} == _audit_entries("pgb-asyncpg-")


def test_sqlalchemy_engines_through_pgbouncer(bouncer):
    sync = install(create_engine(f"postgresql+psycopg://sg_py_app@{bouncer['host']}:{bouncer['port']}/{bouncer['database']}",
                                 connect_args=PSYCOPG_ARGS, pool_size=10, max_overflow=0))
    try:
        for n in range(300):
            tenant = TENANTS[n % len(TENANTS)]
            with pg_safeguard.request_context(tenant_id=tenant), sync.connect() as conn:
                assert set(conn.execute(text("SELECT tenant_id FROM visits")).scalars()) == {tenant}
    finally:
        sync.dispose()

    async def run_async():
        # SQLAlchemy's asyncpg dialect prepares every statement: no cache, and names unique
        # across clients (two clients may prepare on one server connection).
        engine = install(create_async_engine(
            f"postgresql+asyncpg://sg_py_app@{bouncer['host']}:{bouncer['port']}/{bouncer['database']}"
            "?prepared_statement_cache_size=0",
            connect_args={**ASYNCPG_ARGS, "prepared_statement_name_func": lambda: f"__sg_{uuid.uuid4()}__"},
            pool_size=20, max_overflow=0))
        failures = []

        async def request(n):
            tenant = random.choice(TENANTS)
            with pg_safeguard.request_context(tenant_id=tenant):
                async with engine.connect() as conn:
                    seen = set((await conn.execute(text("SELECT tenant_id FROM visits"))).scalars())
            if seen != {tenant}:
                failures.append((n, tenant, seen))

        await asyncio.gather(*(request(n) for n in range(1000)))
        await engine.dispose()
        return failures

    assert asyncio.run(run_async()) == []


def test_forgotten_context_on_a_server_connection_that_served_another_tenant(bouncer):
    single = bouncer["database"] + "_single"  # one server connection: every client shares it
    with psycopg.connect(_psycopg_dsn(bouncer, single), **PSYCOPG_ARGS) as first, \
            psycopg.connect(_psycopg_dsn(bouncer, single), **PSYCOPG_ARGS) as second:
        with pg_safeguard.request_context(tenant_id=TENANTS[7]), sg_psycopg.transaction(first):
            served = first.execute("SELECT pg_backend_pid(), count(*) FROM visits").fetchone()
        assert served[1] == ROWS_PER_TENANT
        # The ways a client could try to make the tenant outlive its transaction are refused.
        for attempt in ("SET safeguard.tenant_id = '%s'" % TENANTS[7],
                        "SELECT set_config('safeguard.tenant_id', '%s', false)" % TENANTS[7]):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                first.execute(attempt)
            first.rollback()
        # The next client on the same server connection, without a context.
        second.autocommit = True
        backend, visible = second.execute("SELECT pg_backend_pid(), count(*) FROM visits").fetchone()
        assert backend == served[0] and visible == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            second.execute("INSERT INTO visits (tenant_id, note) VALUES (%s, 'after another tenant')", (TENANTS[7],))

    async def run():
        first = await asyncpg.connect(host=bouncer["host"], port=bouncer["port"], user="sg_py_app",
                                      database=single, **ASYNCPG_ARGS)
        second = await asyncpg.connect(host=bouncer["host"], port=bouncer["port"], user="sg_py_app",
                                       database=single, **ASYNCPG_ARGS)
        try:
            with pg_safeguard.request_context(tenant_id=TENANTS[8]):
                async with sg_asyncpg.transaction(first):
                    served = await first.fetchrow("SELECT pg_backend_pid(), count(*) FROM visits")
            later = await second.fetchrow("SELECT pg_backend_pid(), count(*) FROM visits")
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await second.execute("INSERT INTO visits (tenant_id, note) VALUES ($1, 'x')", TENANTS[8])
            return tuple(served), tuple(later)
        finally:
            await first.close()
            await second.close()

    served, later = asyncio.run(run())
    assert served[1] == ROWS_PER_TENANT and later == (served[0], 0)


def test_asyncpg_statement_cache_breaks_behind_pgbouncer_1_18(bouncer):
    """Why ASYNCPG_ARGS: with asyncpg's default statement cache, a statement prepared on one
    server connection is executed on another (docs/poolers.md)."""
    async def run():
        pool = await asyncpg.create_pool(host=bouncer["host"], port=bouncer["port"], user="sg_py_app",
                                         database=bouncer["database"], min_size=10, max_size=10)
        errors = []

        async def request(n):
            try:
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT count(*) FROM visits WHERE note <> $1", str(n))
            except asyncpg.exceptions.InvalidSQLStatementNameError as error:
                errors.append(error)

        await asyncio.gather(*(request(n) for n in range(500)))
        await pool.close()
        return errors

    assert asyncio.run(run()), "asyncpg's statement cache worked through PgBouncer 1.18: update docs/poolers.md"
