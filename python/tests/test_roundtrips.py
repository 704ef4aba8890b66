"""What the context costs on the wire: the psycopg and asyncpg helpers send it with BEGIN (no
round trip of its own); SQLAlchemy, which opens transactions through the driver, pays one. Counted
by a proxy that reads the protocol (roundtrips.py). Also: hostile request ids arrive intact."""

import asyncio
import contextlib
import os

import asyncpg
import psycopg
import pytest
from sqlalchemy import create_engine, text

import pg_safeguard
import pg_safeguard.asyncpg as sg_asyncpg
import pg_safeguard.psycopg as sg_psycopg
from pg_safeguard.sqlalchemy import install

from conftest import ROWS_PER_TENANT, TENANTS
from roundtrips import RoundTripCounter

QUERY = "SELECT count(*), current_setting('safeguard.request_id', true) FROM visits"
HOSTILE_IDS = ["it's", "back\\slash\\'", "'); SELECT 1; --", "$$dollar$$", "ünïcødé ✓", "E'x'", " "]


@pytest.fixture()
def proxy():
    with RoundTripCounter() as counter:
        yield counter


def _proxied(port: int, user: str = "sg_py_app") -> str:
    return f"host=127.0.0.1 port={port} dbname={os.environ['SAFEGUARD_PY_DB']} user={user}"


def test_psycopg_context_costs_no_round_trip(proxy):
    with psycopg.connect(_proxied(proxy.port)) as conn:
        def cost(with_context: bool):
            before = proxy.round_trips
            if with_context:
                with pg_safeguard.request_context(tenant_id=TENANTS[3], request_id="rt"), sg_psycopg.transaction(conn):
                    row = conn.execute(QUERY, prepare=False).fetchone()
            else:
                with conn.transaction():
                    row = conn.execute(QUERY, prepare=False).fetchone()
            return proxy.round_trips - before, row

        for _ in range(8):  # past psycopg's prepare threshold (for the helper's own statements)
            plain, plain_row = cost(False)
            with_context, row = cost(True)
            assert plain_row == (0, "")
            assert row == (ROWS_PER_TENANT, "rt")
            assert (plain, with_context) == (3, 3)  # BEGIN (+ context), the query, COMMIT
        assert conn.autocommit is False  # what the connection had before


def test_asyncpg_context_costs_no_round_trip(proxy):
    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=proxy.port, user="sg_py_app",
                                     database=os.environ["SAFEGUARD_PY_DB"])
        try:
            for _ in range(5):
                before = proxy.round_trips
                async with conn.transaction():
                    assert tuple(await conn.fetchrow(QUERY)) == (0, "")
                plain = proxy.round_trips - before
                before = proxy.round_trips
                with pg_safeguard.request_context(tenant_id=TENANTS[4], request_id="rt"):
                    async with sg_asyncpg.transaction(conn):
                        assert tuple(await conn.fetchrow(QUERY)) == (ROWS_PER_TENANT, "rt")
                assert (plain, proxy.round_trips - before) == (3, 3)
        finally:
            await conn.close()

    asyncio.run(run())


def test_sqlalchemy_pays_one_round_trip(proxy):
    """SQLAlchemy begins transactions through the driver: set_context follows BEGIN."""
    engine = create_engine(f"postgresql+psycopg://sg_py_app@127.0.0.1:{proxy.port}/{os.environ['SAFEGUARD_PY_DB']}",
                           pool_size=1, max_overflow=0)
    install(engine)
    try:
        with engine.connect() as conn:  # connect outside the count
            conn.execute(text("SELECT 1"))
            conn.commit()
        costs = []
        for with_context in (False, True, False, True):
            before = proxy.round_trips
            with pg_safeguard.request_context(tenant_id=TENANTS[5]) if with_context else contextlib.nullcontext():
                with engine.begin() as conn:
                    conn.execute(text(QUERY)).one()
            costs.append(proxy.round_trips - before)
        assert costs[1] == costs[0] + 1 and costs[3] == costs[2] + 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("request_id", HOSTILE_IDS)
def test_hostile_request_ids_arrive_intact(app_dsn, request_id):
    with psycopg.connect(app_dsn) as conn:
        with pg_safeguard.request_context(tenant_id=TENANTS[0], request_id=request_id), sg_psycopg.transaction(conn):
            assert conn.execute(QUERY).fetchone() == (ROWS_PER_TENANT, request_id)
        # off: the old, non-standard string syntax must not change what the literal means
        conn.execute("SET standard_conforming_strings = off")
        conn.commit()
        with pg_safeguard.request_context(tenant_id=TENANTS[0], request_id=request_id), sg_psycopg.transaction(conn):
            assert conn.execute(QUERY).fetchone() == (ROWS_PER_TENANT, request_id)
    params = dict(part.split("=", 1) for part in app_dsn.split())

    async def run():
        conn = await asyncpg.connect(host=params["host"], port=int(params["port"]), user=params["user"],
                                     database=params["dbname"])
        try:
            for setting in ("on", "off"):
                await conn.execute(f"SET standard_conforming_strings = {setting}")
                with pg_safeguard.request_context(tenant_id=TENANTS[0], request_id=request_id):
                    async with sg_asyncpg.transaction(conn):
                        assert tuple(await conn.fetchrow(QUERY)) == (ROWS_PER_TENANT, request_id)
        finally:
            await conn.close()

    asyncio.run(run())


def test_nul_in_request_id_is_refused_before_sending():
    with pg_safeguard.request_context(request_id="a\x00b"):
        with pytest.raises(ValueError):
            sg_asyncpg.begin_statement()


def test_rollback_on_error_and_connection_reusable(app_dsn):
    with psycopg.connect(app_dsn) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            with pg_safeguard.request_context(tenant_id=TENANTS[0]), sg_psycopg.transaction(conn):
                conn.execute("SELECT 1/0")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.autocommit is False
        # savepoints inside the helper's transaction
        with pg_safeguard.request_context(tenant_id=TENANTS[0]), sg_psycopg.transaction(conn):
            with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
                conn.execute("SELECT 1/0")
            assert conn.execute("SELECT count(*) FROM visits").fetchone()[0] == ROWS_PER_TENANT
        # the context is gone with the transaction
        with conn.transaction():
            assert conn.execute(QUERY).fetchone() == (0, "")
