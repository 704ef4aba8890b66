-- The database of the Python tests (scripts/python-test.sh runs this as the cluster's superuser).
SET client_min_messages = warning;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_py_owner') THEN
        CREATE ROLE sg_py_owner LOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_py_app') THEN
        CREATE ROLE sg_py_app LOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_py_reader') THEN
        CREATE ROLE sg_py_reader LOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$;
CREATE EXTENSION pg_safeguard;
GRANT CREATE ON SCHEMA public TO sg_py_owner;
SELECT count(safeguard.create_key(('0000000a-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid))
  FROM generate_series(1, 20) n;
GRANT EXECUTE ON FUNCTION safeguard.decrypt(safeguard.encrypted_text), safeguard.decrypt(safeguard.encrypted_bytea),
    safeguard.decrypt(safeguard.encrypted_jsonb) TO sg_py_reader;

SET ROLE sg_py_owner;
CREATE TABLE visits (
    id        uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    tenant_id uuid NOT NULL,
    note      text NOT NULL
);
CREATE TABLE charts (
    id        safeguard.ulid PRIMARY KEY DEFAULT safeguard.gen_ulid(),
    tenant_id uuid NOT NULL,
    history   safeguard.encrypted_text,
    scan      safeguard.encrypted_bytea,
    extra     safeguard.encrypted_jsonb
);
SELECT safeguard.isolate('visits'), safeguard.isolate('charts');
SELECT safeguard.enable_audit('visits'), safeguard.enable_audit('charts');
GRANT SELECT, INSERT, UPDATE, DELETE ON visits, charts TO sg_py_app, sg_py_reader;
RESET ROLE;
-- Five visits per tenant, written in each tenant's context.
DO $$
DECLARE
    n int;
BEGIN
    FOR n IN 1..20 LOOP
        PERFORM safeguard.set_context(('0000000a-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid);
        INSERT INTO visits (tenant_id, note)
        SELECT safeguard.current_tenant(), 'visit ' || v FROM generate_series(1, 5) v;
    END LOOP;
END $$;
