"""Plain driver pools: psycopg_pool and asyncpg, with the helpers of pg_safeguard.psycopg and
pg_safeguard.asyncpg; a request that forgets the context gets nothing, even on a connection that
served another tenant a moment before."""

import asyncio
import random
import threading

import asyncpg
import psycopg
import pytest
from psycopg_pool import ConnectionPool

import pg_safeguard
import pg_safeguard.asyncpg as sg_asyncpg
import pg_safeguard.psycopg as sg_psycopg

from conftest import ROWS_PER_TENANT, TENANTS


def test_psycopg_pool(app_dsn):
    failures = []
    with ConnectionPool(app_dsn, min_size=3, max_size=3) as pool:
        def worker(seed):
            rng = random.Random(seed)
            for n in range(200):
                tenant = rng.choice(TENANTS)
                if n % 10 == 0:  # forgets the context: must see nothing
                    with pool.connection() as conn:
                        if conn.execute("SELECT count(*) FROM visits").fetchone()[0] != 0:
                            failures.append(("leak", tenant))
                    continue
                with pg_safeguard.request_context(tenant_id=tenant), sg_psycopg.connection(pool) as conn:
                    seen = [r[0] for r in conn.execute("SELECT tenant_id FROM visits").fetchall()]
                if len(seen) != ROWS_PER_TENANT or set(seen) != {tenant}:
                    failures.append((tenant, set(seen)))

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


def test_psycopg_write_without_context_is_refused(app_dsn):
    with psycopg.connect(app_dsn) as conn, sg_psycopg.transaction(conn):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO visits (tenant_id, note) VALUES (%s, 'forged')", (TENANTS[0],))


def test_asyncpg_pool(app_dsn):
    params = dict(part.split("=", 1) for part in app_dsn.split())

    async def run():
        pool = await asyncpg.create_pool(host=params["host"], port=int(params["port"]), user=params["user"],
                                         database=params["dbname"], min_size=4, max_size=4)
        failures = []
        semaphore = asyncio.Semaphore(40)

        async def request(n):
            tenant = random.choice(TENANTS)
            async with semaphore:
                if n % 10 == 0:
                    async with pool.acquire() as conn:
                        if await conn.fetchval("SELECT count(*) FROM visits") != 0:
                            failures.append(("leak", n))
                    return
                with pg_safeguard.request_context(tenant_id=tenant, request_id=f"pool-{n}"):
                    async with sg_asyncpg.acquire(pool) as conn:
                        seen = [r[0] for r in await conn.fetch("SELECT tenant_id FROM visits")]
            if len(seen) != ROWS_PER_TENANT or set(seen) != {tenant}:
                failures.append((n, tenant, set(seen)))

        await asyncio.gather(*(request(n) for n in range(2000)))
        await pool.close()
        return failures

    assert asyncio.run(run()) == []
