-- What works on Citus as on one server, before anything Citus-specific: the extension created on
-- the coordinator reaches every worker, ULID defaults of a distributed table, and a local table
-- on the coordinator isolated and audited exactly as on a single server.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION pg_safeguard;
RESET client_min_messages;
SELECT success, result FROM run_command_on_workers(
    $$SELECT extversion FROM pg_extension WHERE extname = 'pg_safeguard'$$) ORDER BY nodeport;

-- ULID defaults are evaluated on the coordinator: time-ordered UUIDv7 on every shard.
CREATE TABLE visits (tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT safeguard.ulid(), note text,
                     PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('visits', 'tenant_id');
INSERT INTO visits (tenant_id, note)
SELECT ('00000000-0000-4000-8000-00000000000' || (n % 3))::uuid, 'visit ' || n FROM generate_series(1, 30) n;
SELECT count(*) AS visits, count(DISTINCT id) AS distinct_ids,
       bool_and(substring(id::text, 15, 1) = '7') AS all_version_7
  FROM visits;
SELECT bool_and(a.id < b.id) AS ordered_as_written
  FROM visits a JOIN visits b ON b.tenant_id = a.tenant_id AND b.note = 'visit ' || (substring(a.note, 7)::int + 3);

-- A local table on the coordinator: isolation and audit as on one server.
CREATE TABLE notes (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text);
SELECT safeguard.isolate('notes') IS NOT NULL AS isolated;
SELECT safeguard.enable_audit('notes') IS NOT NULL AS audited;
CREATE ROLE clinic_app;
GRANT USAGE ON SCHEMA safeguard TO clinic_app;
GRANT SELECT, INSERT ON notes TO clinic_app;
SET ROLE clinic_app;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-00000000000a') IS NOT NULL AS context_set;
INSERT INTO notes VALUES (1, '00000000-0000-4000-8000-00000000000a', 'mine');
COMMIT;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-00000000000a') IS NOT NULL AS context_set;
INSERT INTO notes VALUES (2, '00000000-0000-4000-8000-00000000000b', 'not mine');
ROLLBACK;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-00000000000a') IS NOT NULL AS context_set;
SELECT id, body FROM notes;
COMMIT;
SELECT count(*) AS without_context FROM notes;
RESET ROLE;
SELECT operation, tenant_id, record_id FROM safeguard.audit_log WHERE table_name = 'notes';
-- Tables are distributed and safeguard.citus_setup() was not run yet: lint() says so.
SELECT level, rule, object, remediation FROM safeguard.lint() WHERE rule = 'citus_not_set_up';
