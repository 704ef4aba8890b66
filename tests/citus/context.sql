-- The request context on every node: set_context() on the coordinator reaches the workers of the
-- same distributed transaction, sealed with the master key, so that row security on the shards
-- sees the tenant; nothing else can write it there.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_safeguard;
RESET client_min_messages;
CREATE TABLE patients (tenant_id uuid NOT NULL, id int NOT NULL, name text, PRIMARY KEY (tenant_id, id));
CREATE TABLE encounters (tenant_id uuid NOT NULL, id int NOT NULL, patient_id int, note text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('patients', 'tenant_id');
SELECT create_distributed_table('encounters', 'tenant_id', colocate_with => 'patients');
INSERT INTO patients SELECT ('00000000-0000-4000-8000-00000000000' || (n % 4))::uuid, n, 'patient ' || n
  FROM generate_series(1, 40) n;
INSERT INTO encounters SELECT tenant_id, id, id, 'visit of ' || name FROM patients;
-- The policy form Citus accepts on distributed tables (no sub-select).
DO $$ DECLARE t text; BEGIN
  FOREACH t IN ARRAY ARRAY['patients', 'encounters'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY sg_tenant ON %I USING (tenant_id = safeguard.current_tenant())', t);
  END LOOP;
END $$;
CREATE ROLE clinic_user LOGIN;  -- Citus connects to the workers as the current user
GRANT USAGE ON SCHEMA safeguard TO clinic_user;
GRANT SELECT, INSERT, UPDATE ON patients, encounters TO clinic_user;
SET ROLE clinic_user;

-- Router, multi-shard, co-located join, INSERT and INSERT ... SELECT, all for tenant 1.
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-0000000000a1',
                             NULL, 'req-citus') IS NOT NULL AS context_set;
SELECT count(*) AS router FROM patients WHERE tenant_id = '00000000-0000-4000-8000-000000000001';
SELECT count(*) AS all_shards, count(DISTINCT tenant_id) AS tenants FROM patients;
SELECT count(*) AS joined FROM patients p JOIN encounters v ON v.tenant_id = p.tenant_id AND v.patient_id = p.id;
SELECT DISTINCT (SELECT safeguard.current_tenant()) = tenant_id AS own_tenant FROM patients;
-- Read on the workers, row by row (Citus pushes these calls down to the shards): the whole
-- context arrived.
SELECT DISTINCT safeguard.current_tenant() = tenant_id AS tenant_on_workers, safeguard.current_actor() AS actor,
       safeguard.current_impersonator() AS impersonator, safeguard.current_request_id() AS request
  FROM patients;
INSERT INTO patients VALUES ('00000000-0000-4000-8000-000000000001', 100, 'new');
INSERT INTO encounters SELECT tenant_id, id + 1000, patient_id, 'copied' FROM encounters WHERE id < 20;
UPDATE patients SET name = name || ' (seen)' WHERE id < 10;
SELECT count(*) AS after_writes, count(*) FILTER (WHERE name LIKE '%(seen)') AS updated FROM patients;
SELECT count(*) AS encounters_after_insert_select FROM encounters;
COMMIT;
-- Another tenant's row is refused on its shard. (COPY into a table with row security is refused
-- by PostgreSQL itself, on one server as on Citus, for every role but the table's owner.)
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000001') IS NOT NULL AS context_set;
INSERT INTO patients VALUES ('00000000-0000-4000-8000-000000000002', 200, 'not mine');
ROLLBACK;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000001') IS NOT NULL AS context_set;
COPY patients FROM STDIN;
00000000-0000-4000-8000-000000000002	201	not mine either
\.
ROLLBACK;
-- Without a context: nothing (fails closed), on every shard.
SELECT count(*) AS without_context FROM patients;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000002') IS NOT NULL AS context_set;
SELECT count(*) AS tenant_2 FROM patients;
COMMIT;
SELECT count(*) AS after_commit FROM patients;

-- Only set_context() writes it: a value of one's own, or a sealed one changed, is refused.
BEGIN;
SET LOCAL safeguard.context_proof = 'not a proof';
ROLLBACK;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000003') IS NOT NULL AS context_set;
SELECT overlay(current_setting('safeguard.context_proof') PLACING
               CASE substring(current_setting('safeguard.context_proof'), 5, 1) WHEN '0' THEN '1' ELSE '0' END
               FROM 5 FOR 1) AS forged \gset
ROLLBACK;
BEGIN;
SET LOCAL safeguard.context_proof = :'forged';
ROLLBACK;
SET safeguard.context_proof = DEFAULT;
RESET ROLE;
-- The same on a worker, where Citus's connections arrive: a value not sealed by set_context()
-- is refused there too, once the library is loaded (here by a call first).
SELECT success, result FROM run_command_on_workers(format(
    $$SELECT safeguard.current_tenant() IS NULL, set_config('safeguard.context_proof', %L, true)$$, :'forged'))
 ORDER BY nodeport;
-- Before the library is loaded in a worker's session, a value is only a placeholder; it is
-- checked when the library loads (the first call), and dropped: no context.
\c clinic - :node_socket :worker1_port
BEGIN;
SELECT set_config('safeguard.context_proof', :'forged', true) IS NOT NULL AS placeholder_set;
SELECT safeguard.current_tenant() AS tenant_after_load, current_setting('safeguard.context_proof') = '' AS dropped;
COMMIT;
\c clinic - :node_socket :coordinator_port

-- Pooled requests: one application connection, and Citus's cached connections to the workers
-- behind it, serve 300 transactions for random tenants, one in five without a context. No
-- transaction sees another tenant's row; those without a context see none; each sees all of its
-- tenant's rows.
\set SHOW_CONTEXT never
SET ROLE clinic_user;
CREATE TEMP TABLE pooled (request int, tenant uuid, seen bigint, foreign_rows bigint);
SELECT setseed(0.42) IS NOT NULL AS seeded;
-- (The 300 generated transactions are neither echoed nor their results printed.)
\set ECHO none
\o /dev/null
SELECT format($request$BEGIN; %s
    INSERT INTO pooled SELECT %s, safeguard.current_tenant(), count(*),
           count(*) FILTER (WHERE tenant_id IS DISTINCT FROM safeguard.current_tenant()) FROM patients;
    COMMIT;$request$,
    CASE WHEN r < 0.2 THEN ''
         ELSE format('SELECT safeguard.set_context(%L);', '00000000-0000-4000-8000-00000000000' || floor(r * 4)::int) END,
    n)
  FROM (SELECT n, random() AS r FROM generate_series(1, 300) n) requests \gexec
\o
\set ECHO all
RESET ROLE;
SELECT count(*) AS requests, count(DISTINCT tenant) AS tenants, sum(foreign_rows) AS foreign_rows_seen,
       count(*) FILTER (WHERE tenant IS NULL AND seen > 0) AS rows_seen_without_context,
       bool_and(p.seen = t.rows) FILTER (WHERE tenant IS NOT NULL) AS each_saw_all_its_rows
  FROM pooled p LEFT JOIN (SELECT tenant_id, count(*) AS rows FROM patients GROUP BY 1) t ON t.tenant_id = p.tenant;

-- The adopted application setting (safeguard.tenant_setting, set on every node): an application
-- that writes it with SET LOCAL reaches the workers once Citus propagates SET LOCAL
-- (citus.propagate_set_commands = 'local'); otherwise the workers see no tenant, and nothing.
-- (Set on each node in a session that has loaded the library, so that ALTER SYSTEM knows it.)
\c clinic - :node_socket :worker1_port
SELECT safeguard.current_tenant() IS NULL AS library_loaded;
ALTER SYSTEM SET safeguard.tenant_setting = 'app.current_tenant_id';
\c clinic - :node_socket :worker2_port
SELECT safeguard.current_tenant() IS NULL AS library_loaded;
ALTER SYSTEM SET safeguard.tenant_setting = 'app.current_tenant_id';
\c clinic - :node_socket :coordinator_port
SELECT safeguard.current_tenant() IS NULL AS library_loaded;
ALTER SYSTEM SET safeguard.tenant_setting = 'app.current_tenant_id';
SELECT DISTINCT result AS reloaded FROM run_command_on_all_nodes('SELECT pg_reload_conf()');
SELECT pg_sleep(0.5);
\c clinic - :node_socket :coordinator_port
\set SHOW_CONTEXT never
SET ROLE clinic_user;
BEGIN;
SET LOCAL citus.propagate_set_commands = 'local';
SET LOCAL app.current_tenant_id = '00000000-0000-4000-8000-000000000002';
SELECT count(*) AS own_rows, count(DISTINCT tenant_id) AS tenants,
       bool_and(tenant_id = '00000000-0000-4000-8000-000000000002') AS only_tenant_2 FROM patients;
COMMIT;
BEGIN;
SET LOCAL app.current_tenant_id = '00000000-0000-4000-8000-000000000002';
SELECT count(*) AS rows_without_propagation FROM patients;
COMMIT;
-- set_context() writes the adopted setting and passes the context on, as before.
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000003') IS NOT NULL AS context_set;
SELECT count(DISTINCT tenant_id) AS tenants, bool_and(tenant_id = '00000000-0000-4000-8000-000000000003') AS only_tenant_3
  FROM patients;
SELECT current_setting('app.current_tenant_id') AS adopted_setting_on_coordinator;
COMMIT;
RESET ROLE;
\c clinic - :node_socket :worker1_port
SELECT safeguard.current_tenant() IS NULL AS library_loaded;
ALTER SYSTEM RESET safeguard.tenant_setting;
\c clinic - :node_socket :worker2_port
SELECT safeguard.current_tenant() IS NULL AS library_loaded;
ALTER SYSTEM RESET safeguard.tenant_setting;
\c clinic - :node_socket :coordinator_port
SELECT safeguard.current_tenant() IS NULL AS library_loaded;
ALTER SYSTEM RESET safeguard.tenant_setting;
SELECT DISTINCT result AS reloaded FROM run_command_on_all_nodes('SELECT pg_reload_conf()');
SELECT pg_sleep(0.5);
\c clinic - :node_socket :coordinator_port
