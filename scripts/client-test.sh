#!/usr/bin/env bash
# Client-side isolation test (tests/pool): a real driver and a real connection pool against the
# installed extension in the running throwaway cluster. Creates its own database and roles.
source "$(dirname "$0")/common.sh"
say "client test: concurrent requests over a connection pool (tests/pool)"
fresh_database safeguard_pool
"${PSQL[@]}" -q -d safeguard_pool >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_pool_app') THEN
        CREATE ROLE sg_pool_app LOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$;
CREATE EXTENSION pg_safeguard;
CREATE TABLE visits (
    id        uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    tenant_id uuid NOT NULL,
    payload   text NOT NULL
);
INSERT INTO visits (tenant_id, payload)
SELECT ('0000000a-0000-4000-8000-' || lpad(to_hex(t), 12, '0'))::uuid, 'visit ' || n
  FROM generate_series(1, 50) t, generate_series(1, 40) n;
SELECT safeguard.isolate('visits');
GRANT SELECT ON visits TO sg_pool_app;
-- Encrypted columns written through bound parameters (tests/pool/src/encryption.rs).
CREATE TABLE charts (
    id        int PRIMARY KEY,
    tenant_id uuid NOT NULL,
    history   safeguard.encrypted_text,
    scan      safeguard.encrypted_bytea,
    extra     safeguard.encrypted_jsonb
);
SELECT safeguard.isolate('charts');
SELECT safeguard.create_key('0000000a-0000-4000-8000-000000000001');
GRANT SELECT, INSERT ON charts TO sg_pool_app;
GRANT EXECUTE ON FUNCTION safeguard.decrypt(safeguard.encrypted_text), safeguard.decrypt(safeguard.encrypted_bytea),
    safeguard.decrypt(safeguard.encrypted_jsonb) TO sg_pool_app;
-- safeguard.ulid compared through bound parameters under the default search_path
-- (tests/pool/src/ulid_params.rs).
CREATE TABLE tickets (id safeguard.ulid PRIMARY KEY, n int NOT NULL);
INSERT INTO tickets SELECT safeguard.gen_ulid(), n FROM generate_series(1, 20) n;
GRANT SELECT ON tickets TO sg_pool_app;
SQL
cd "$ROOT/tests/pool"
cargo build --release --quiet --target-dir "$ROOT/target/pool-test"
PGDATABASE=safeguard_pool POOL_TEST_USER=sg_pool_app "$ROOT/target/pool-test/release/pg_safeguard_pool_test"
