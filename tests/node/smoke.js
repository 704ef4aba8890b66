// node-postgres against pg_safeguard: the context set in a transaction, an insert with a ULID
// default and an encrypted column through bound parameters, reads of the tenant's rows only,
// nothing without a context. Run by scripts/node-test.sh, directly and through PgBouncer in
// transaction mode (node-postgres sends unnamed statements: nothing to configure there).
'use strict';
const assert = require('node:assert/strict');
const { Pool } = require('pg');

const TENANT_A = '0000000a-0000-4000-8000-00000000000a';
const TENANT_B = '0000000b-0000-4000-8000-00000000000b';
const ACTOR = '00000000-0000-4000-8000-0000000000ac';
const [label, host, port] = process.argv.slice(2);

// What an application's data layer does per request: one transaction that starts with the context.
async function inTenant(pool, context, work) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT safeguard.set_context($1, $2, NULL, $3)', [context.tenant, context.actor, context.requestId]);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

async function main() {
  const pool = new Pool({ host, port: Number(port), database: process.env.SAFEGUARD_NODE_DB, user: 'sg_node_app', max: 3 });
  const run = `${label}-${process.pid}`;
  const written = {};
  for (const tenant of [TENANT_A, TENANT_B]) {
    written[tenant] = await inTenant(pool, { tenant, actor: ACTOR, requestId: `${run}-${tenant}` }, async (client) => {
      const { rows } = await client.query(
        'INSERT INTO notes (tenant_id, body) VALUES ($1, $2::text::safeguard.encrypted_text) RETURNING id, body::text AS stored',
        [tenant, `note for ${tenant}: it's private`]);
      return rows[0];
    });
    // The ULID default is a valid UUIDv7; the body is stored as an envelope, never in clear.
    assert.match(written[tenant].id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(written[tenant].stored.startsWith('sgenc:') && !written[tenant].stored.includes('private'));
  }
  // Many concurrent requests on a small pool: each sees its tenant's rows only.
  await Promise.all(Array.from({ length: 200 }, async (_, n) => {
    const tenant = n % 2 ? TENANT_A : TENANT_B;
    const rows = await inTenant(pool, { tenant, actor: ACTOR, requestId: `${run}-read-${n}` },
      async (client) => (await client.query('SELECT id, tenant_id FROM notes')).rows);
    assert.ok(rows.length >= 1, 'no rows of its own');
    assert.deepEqual([...new Set(rows.map((r) => r.tenant_id))], [tenant]);
    assert.ok(rows.some((r) => r.id === written[tenant].id));
  }));
  // No context: no rows, no writes (42501), even on a connection that just served a tenant.
  assert.equal((await pool.query('SELECT count(*)::int AS n FROM notes')).rows[0].n, 0);
  await assert.rejects(pool.query('INSERT INTO notes (tenant_id) VALUES ($1)', [TENANT_A]),
    (error) => error.code === '42501');
  await pool.end();

  // The audit log names the actor and the request (read past the app role, as the superuser).
  const admin = new Pool({ host: process.env.PGHOST, port: Number(process.env.PGPORT), database: process.env.SAFEGUARD_NODE_DB, max: 1 });
  const { rows } = await admin.query(
    "SELECT tenant_id, actor_id, request_id FROM safeguard.audit_log WHERE table_name = 'notes' AND request_id LIKE $1 ORDER BY request_id",
    [`${run}-%`]);
  await admin.end();
  assert.deepEqual(rows, [TENANT_A, TENANT_B].map((t) => ({ tenant_id: t, actor_id: ACTOR, request_id: `${run}-${t}` })));
  console.log(`node-postgres (${label}): context, ULID default, encrypted insert, tenant reads, fail-closed, audit: ok`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
