-- The database of the node-postgres smoke test (scripts/node-test.sh runs this as the superuser).
SET client_min_messages = warning;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_node_app') THEN
        CREATE ROLE sg_node_app LOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$;
CREATE EXTENSION pg_safeguard;
CREATE TABLE notes (
    id        uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    tenant_id uuid NOT NULL,
    body      safeguard.encrypted_text
);
SELECT safeguard.isolate('notes'), safeguard.enable_audit('notes');
SELECT safeguard.create_key('0000000a-0000-4000-8000-00000000000a'), safeguard.create_key('0000000b-0000-4000-8000-00000000000b');
GRANT SELECT, INSERT ON notes TO sg_node_app;
