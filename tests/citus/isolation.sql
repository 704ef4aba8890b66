-- isolate() on distributed tables: before and after create_distributed_table, the policy is one
-- Citus accepts and propagates to every shard; with the context on every node, each tenant sees
-- and writes only its own rows, and nothing without a context.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_safeguard;
RESET client_min_messages;
CREATE TABLE clinics (tenant_id uuid NOT NULL, id int NOT NULL, name text, PRIMARY KEY (tenant_id, id));
CREATE TABLE charts (tenant_id uuid NOT NULL, id int NOT NULL, clinic_id int, body text, PRIMARY KEY (tenant_id, id));
-- Isolated first, distributed after; and distributed first, isolated after.
SELECT safeguard.isolate('clinics') IS NOT NULL AS isolated;
SELECT create_distributed_table('clinics', 'tenant_id');
SELECT create_distributed_table('charts', 'tenant_id', colocate_with => 'clinics');
SELECT safeguard.isolate('charts') IS NOT NULL AS isolated;
SELECT table_name, mode, rls_enabled, rls_forced, policy_present, policy_unchanged
  FROM safeguard.isolated_tables WHERE table_name IN ('clinics'::regclass, 'charts'::regclass) ORDER BY 1;
-- The policy on every shard.
SELECT DISTINCT result FROM run_command_on_shards('charts',
    $$SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = '%s'::regclass AND polname = 'sg_tenant'$$);
INSERT INTO clinics SELECT ('00000000-0000-4000-8000-00000000000' || (n % 3))::uuid, n, 'clinic ' || n
  FROM generate_series(1, 30) n;
INSERT INTO charts SELECT tenant_id, id, id, 'chart ' || id FROM clinics;
CREATE ROLE clinic_staff LOGIN;  -- Citus connects to the workers as the current user
GRANT USAGE ON SCHEMA safeguard TO clinic_staff;
GRANT SELECT, INSERT, UPDATE, DELETE ON clinics, charts TO clinic_staff;
SET ROLE clinic_staff;
SELECT count(*) AS without_context FROM charts;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000002') IS NOT NULL AS context_set;
SELECT count(*) AS own, count(DISTINCT tenant_id) AS tenants FROM charts;
SELECT count(*) AS joined FROM clinics c JOIN charts h ON h.tenant_id = c.tenant_id AND h.clinic_id = c.id;
UPDATE charts SET body = body || ' (read)' WHERE id < 10;
DELETE FROM charts WHERE id = 29;
SELECT count(*) AS after_writes, count(*) FILTER (WHERE body LIKE '%(read)') AS updated FROM charts;
COMMIT;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000002') IS NOT NULL AS context_set;
INSERT INTO charts VALUES ('00000000-0000-4000-8000-000000000001', 100, 1, 'not mine');
ROLLBACK;
RESET ROLE;
-- What the writes did, seen by the superuser (who is not subject to row security): the UPDATE of
-- ids below 10 and the DELETE touched tenant 2's rows only (ids 2, 5, 8 and 29).
SELECT count(*) AS all_rows, string_agg(id::text, ',' ORDER BY id) FILTER (WHERE body LIKE '%(read)') AS updated,
       count(*) FILTER (WHERE id = 29) AS deleted_left
  FROM charts;

-- isolate_all() and auto_isolate() on a schema whose tables are distributed before or after.
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (tenant_id uuid NOT NULL, id int NOT NULL, amount numeric, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('billing.invoices', 'tenant_id', colocate_with => 'clinics');
CREATE TABLE billing.payers (tenant_id uuid NOT NULL, id int NOT NULL, name text, PRIMARY KEY (tenant_id, id));
SELECT safeguard.isolate_all('tenant_id', 'billing')::text AS isolated;
SELECT create_distributed_table('billing.payers', 'tenant_id', colocate_with => 'clinics');
SELECT safeguard.auto_isolate('tenant_id', 'billing');
CREATE TABLE billing.payments (tenant_id uuid NOT NULL, id int NOT NULL, invoice_id int, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('billing.payments', 'tenant_id', colocate_with => 'clinics');
SELECT table_name, rls_enabled, rls_forced, policy_present, policy_unchanged
  FROM safeguard.isolated_tables WHERE table_name::text LIKE 'billing.%' ORDER BY 1;
SELECT DISTINCT result AS payments_policy_on_every_shard FROM run_command_on_shards('billing.payments',
    $$SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = '%s'::regclass AND polname = 'sg_tenant'$$);
INSERT INTO billing.invoices SELECT tenant_id, id, id * 10 FROM clinics;
INSERT INTO billing.payers SELECT tenant_id, id, 'payer ' || id FROM clinics;
INSERT INTO billing.payments SELECT tenant_id, id, id FROM clinics;
GRANT USAGE ON SCHEMA billing TO clinic_staff;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA billing TO clinic_staff;
SET ROLE clinic_staff;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000001') IS NOT NULL AS context_set;
SELECT count(*) AS invoices, count(DISTINCT i.tenant_id) AS tenants
  FROM billing.invoices i JOIN billing.payments p ON p.tenant_id = i.tenant_id AND p.invoice_id = i.id
  JOIN billing.payers y ON y.tenant_id = i.tenant_id AND y.id = i.id;
INSERT INTO billing.payments VALUES ('00000000-0000-4000-8000-000000000002', 500, 1);
ROLLBACK;
SELECT count(*) AS without_context FROM billing.payments;
RESET ROLE;
SELECT safeguard.auto_isolate_off('billing');

-- isolate_via() cannot work on Citus (its policy is a sub-select): refused, with the steps that
-- give the child table the tenant column instead.
CREATE TABLE chart_entries (id int NOT NULL, chart_id int NOT NULL, line text, PRIMARY KEY (id));
SELECT create_reference_table('chart_entries');
SELECT safeguard.isolate_via('chart_entries', 'chart_id', 'charts');
CREATE TABLE chart_notes (id int NOT NULL, chart_id int NOT NULL, line text);
SELECT safeguard.isolate_via('chart_notes', 'chart_id', 'charts');

-- A partitioned table distributed by its tenant column: isolated before distributing, with a
-- partition attached after; every partition's shards carry the policy, one tenant's rows only.
CREATE TABLE appointments (tenant_id uuid NOT NULL, id int NOT NULL, visited_on date NOT NULL, PRIMARY KEY (tenant_id, id, visited_on))
  PARTITION BY RANGE (visited_on);
CREATE TABLE appointments_2025 PARTITION OF appointments FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
SELECT safeguard.isolate('appointments') IS NOT NULL AS isolated;
SELECT create_distributed_table('appointments', 'tenant_id', colocate_with => 'clinics');
CREATE TABLE appointments_2026 PARTITION OF appointments FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT table_name, rls_enabled, rls_forced, policy_present, policy_unchanged
  FROM safeguard.isolated_tables WHERE table_name::text LIKE 'appointments%' ORDER BY 1;
SELECT DISTINCT result AS policy_on_every_partition_shard FROM run_command_on_shards('appointments_2026',
    $$SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = '%s'::regclass AND polname = 'sg_tenant'$$);
INSERT INTO appointments SELECT tenant_id, id, CASE WHEN id % 2 = 0 THEN date '2025-06-01' ELSE date '2026-06-01' END FROM clinics;
GRANT SELECT, INSERT ON appointments TO clinic_staff;
SET ROLE clinic_staff;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000001') IS NOT NULL AS context_set;
SELECT count(*) AS own_appointments, count(DISTINCT tenant_id) AS tenants FROM appointments;
INSERT INTO appointments VALUES ('00000000-0000-4000-8000-000000000002', 900, '2026-02-01');
ROLLBACK;
SELECT count(*) AS appointments_without_context FROM appointments;
RESET ROLE;
