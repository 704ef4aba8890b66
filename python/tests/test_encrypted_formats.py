"""Encrypted columns through bound parameters in both wire formats: plaintext written as text or
binary parameters, envelopes read and written back in text and in binary (the types'
send/receive functions), decrypted by a granted role."""

import asyncio

import asyncpg
import psycopg

import pg_safeguard
import pg_safeguard.asyncpg as sg_asyncpg
import pg_safeguard.psycopg as sg_psycopg

from conftest import TENANTS

TENANT = TENANTS[9]
HISTORY, SCAN = "asthma since 2019 — it's \\ quoted", b"\x00\x01\xffscan"


def test_psycopg_text_and_binary_parameters(app_dsn, reader_dsn):
    with psycopg.connect(app_dsn) as conn, pg_safeguard.request_context(tenant_id=TENANT):
        with sg_psycopg.transaction(conn):
            ids = [conn.execute(  # %s: text format, %b: binary format
                f"INSERT INTO charts (tenant_id, history, scan) VALUES (%s, {p}::text::safeguard.encrypted_text, "
                f"{p}::bytea::safeguard.encrypted_bytea) RETURNING id::text", (TENANT, HISTORY, SCAN)).fetchone()[0]
                   for p in ("%s", "%b")]
            # The envelope as text, written back into another row: the same ciphertext.
            envelope = conn.execute("SELECT history::text FROM charts WHERE id = %s::safeguard.ulid", (ids[0],)).fetchone()[0]
            copy = conn.execute("INSERT INTO charts (tenant_id, history) VALUES (%s, %s::safeguard.encrypted_text) "
                                "RETURNING id::text", (TENANT, envelope)).fetchone()[0]
    with psycopg.connect(reader_dsn) as conn, pg_safeguard.request_context(tenant_id=TENANT), sg_psycopg.transaction(conn):
        for binary in (False, True):
            cursor = conn.cursor(binary=binary)
            rows = cursor.execute("SELECT safeguard.decrypt(history), safeguard.decrypt(scan) FROM charts "
                                  "WHERE id::text = ANY(%s) ORDER BY id", (ids,)).fetchall()
            assert rows == [(HISTORY, SCAN)] * 2
            assert cursor.execute("SELECT safeguard.decrypt(history) FROM charts WHERE id::text = %s",
                                  (copy,)).fetchone()[0] == HISTORY


def test_asyncpg_envelope_in_binary(app_dsn, reader_dsn):
    params = dict(part.split("=", 1) for part in app_dsn.split())

    async def run():
        conn = await asyncpg.connect(host=params["host"], port=int(params["port"]), user="sg_py_app", database=params["dbname"])
        # The envelope's binary form, passed through untouched (send/receive of the type).
        await conn.set_type_codec("encrypted_text", schema="safeguard", format="binary",
                                  encoder=lambda raw: raw, decoder=lambda raw: raw)
        try:
            with pg_safeguard.request_context(tenant_id=TENANT):
                async with sg_asyncpg.transaction(conn):
                    first = await conn.fetchval("INSERT INTO charts (tenant_id, history) VALUES "
                                                "($1, $2::text::safeguard.encrypted_text) RETURNING id::text", TENANT, HISTORY)
                    envelope = await conn.fetchval("SELECT history FROM charts WHERE id::text = $1", first)
                    second = await conn.fetchval("INSERT INTO charts (tenant_id, history) VALUES ($1, $2) "
                                                 "RETURNING id::text", TENANT, envelope)
                    again = await conn.fetchval("SELECT history FROM charts WHERE id::text = $1", second)
        finally:
            await conn.close()
        reader = await asyncpg.connect(host=params["host"], port=int(params["port"]), user="sg_py_reader",
                                       database=params["dbname"])
        try:
            with pg_safeguard.request_context(tenant_id=TENANT):
                async with sg_asyncpg.transaction(reader):
                    plain = await reader.fetch("SELECT safeguard.decrypt(history) FROM charts WHERE id::text = ANY($1)",
                                               [first, second])
        finally:
            await reader.close()
        return envelope, again, [r[0] for r in plain]

    envelope, again, plain = asyncio.run(run())
    assert isinstance(envelope, bytes) and envelope == again and HISTORY.encode() not in envelope
    assert plain == [HISTORY, HISTORY]
