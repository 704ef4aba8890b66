-- Tenant isolation, tested the way an attacker would try it: as the application role, as the
-- table owner, as an admin, as a superuser, with hostile identifiers.
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = warning;

CREATE ROLE sg_owner NOSUPERUSER NOBYPASSRLS;          -- runs the migrations, owns the tables
CREATE ROLE sg_app NOSUPERUSER NOBYPASSRLS;            -- what the application connects as
CREATE ROLE sg_admins NOSUPERUSER NOBYPASSRLS;         -- support staff who may see every tenant
CREATE ROLE sg_support NOSUPERUSER NOBYPASSRLS IN ROLE sg_admins;
GRANT CREATE ON SCHEMA public TO sg_owner;

SET ROLE sg_owner;
CREATE TABLE patients (
    id        uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    tenant_id uuid NOT NULL,
    name      text NOT NULL
);
CREATE TABLE contact_methods (
    id         uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    patient_id uuid NOT NULL REFERENCES patients (id),
    phone      text NOT NULL
);
CREATE TABLE notes (id serial PRIMARY KEY, tenant_id text, body text);
CREATE VIEW patient_names AS SELECT name FROM patients;
INSERT INTO patients (tenant_id, name) VALUES
    ('0000000a-0000-4000-8000-000000000001', 'Alice (tenant A)'),
    ('0000000a-0000-4000-8000-000000000001', 'Amos (tenant A)'),
    ('0000000b-0000-4000-8000-000000000002', 'Bea (tenant B)');
INSERT INTO contact_methods (patient_id, phone) SELECT id, left(name, 4) || '-phone' FROM patients;
GRANT SELECT, INSERT, UPDATE, DELETE ON patients, contact_methods TO sg_app, sg_support;
RESET ROLE;

-- Only the owner may isolate (42501).
SET ROLE sg_app;
SELECT safeguard.isolate('patients');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Bad arguments, each with its SQLSTATE.
SET ROLE sg_owner;
SELECT safeguard.isolate('patients', 'organization_id');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.isolate('notes');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.isolate('patient_names');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.isolate('patients', 'tenant_id', 'no_such_role');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.isolate('no_such_table');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.isolate_via('contact_methods', 'patient_id', 'patients');
\echo :LAST_ERROR_SQLSTATE
-- Nothing was changed by the failed calls.
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'patients'::regclass;

-- Isolate: ENABLE + FORCE, one policy for all commands, an index on the tenant column.
SELECT safeguard.isolate('patients', 'tenant_id', 'sg_admins');
SELECT safeguard.isolate_via('contact_methods', 'patient_id', 'patients');
SELECT safeguard.isolate_via('contact_methods', 'phone', 'patients');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.isolate_via('contact_methods', 'patient_id', 'patients', 'no_column');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
\d patients
\d contact_methods
SELECT table_name, mode, tenant_column, parent, fk_column, admin_role, rls_enabled, rls_forced,
       policy_present, policy_unchanged, key_indexed
  FROM safeguard.isolated_tables ORDER BY table_name::text;

-- The application role, no context: no rows, no writes.
SELECT id AS bea_id FROM patients WHERE name LIKE 'Bea%' \gset
SET ROLE sg_app;
SELECT count(*) AS patients_without_context FROM patients;
SELECT count(*) AS contacts_without_context FROM contact_methods;
INSERT INTO patients (tenant_id, name) VALUES ('0000000a-0000-4000-8000-000000000001', 'Eve');
\echo :LAST_ERROR_SQLSTATE
WITH changed AS (UPDATE patients SET name = 'changed' RETURNING 1) SELECT count(*) AS updated FROM changed;
WITH gone AS (DELETE FROM patients RETURNING 1) SELECT count(*) AS deleted FROM gone;

-- Tenant A: only A's rows; nothing can be written into, or moved to, tenant B.
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
SELECT name FROM patients ORDER BY name;
SELECT phone FROM contact_methods ORDER BY phone;
SELECT count(*) AS b_rows_by_explicit_filter FROM patients WHERE tenant_id = '0000000b-0000-4000-8000-000000000002';
SAVEPOINT s;
INSERT INTO patients (tenant_id, name) VALUES ('0000000b-0000-4000-8000-000000000002', 'Mallory');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
UPDATE patients SET tenant_id = '0000000b-0000-4000-8000-000000000002' WHERE name LIKE 'Alice%';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
WITH changed AS (UPDATE patients SET name = 'hijacked' WHERE name LIKE 'Bea%' RETURNING 1)
SELECT count(*) AS b_updated FROM changed;
WITH gone AS (DELETE FROM patients WHERE name LIKE 'Bea%' RETURNING 1) SELECT count(*) AS b_deleted FROM gone;
-- A contact for tenant B's patient cannot be created, nor can a contact be moved there.
INSERT INTO contact_methods (patient_id, phone) VALUES (:'bea_id', 'planted');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
UPDATE contact_methods SET patient_id = :'bea_id';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
INSERT INTO patients (tenant_id, name) VALUES ('0000000a-0000-4000-8000-000000000001', 'Ada (tenant A)');
COMMIT;

-- The context ends with the transaction: the next one on this connection sees nothing.
BEGIN;
SELECT count(*) AS next_transaction FROM patients;
COMMIT;

-- Tenant B, as the owner (FORCE binds the owner too).
RESET ROLE;
SET ROLE sg_owner;
SELECT count(*) AS owner_without_context FROM patients;
BEGIN;
SELECT safeguard.set_context('0000000b-0000-4000-8000-000000000002');
SELECT name FROM patients ORDER BY name;
UPDATE patients SET tenant_id = '0000000a-0000-4000-8000-000000000001';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- The owner can change row security (that is what owning means), which lint reports.
RESET ROLE;

-- Members of the admin role see every tenant without a context; the bypass is membership.
SET ROLE sg_support;
SELECT count(*) AS admin_sees FROM patients;
SELECT count(*) AS admin_sees_contacts FROM contact_methods;
RESET ROLE;

-- Superusers bypass row-level security in PostgreSQL, even when forced: the application must
-- not connect as one (lint reports it).
SELECT count(*) AS superuser_sees FROM patients;

-- The policy is evaluated once per query (InitPlan) and the tenant index is used.
INSERT INTO patients (tenant_id, name)
SELECT ('0000000a-0000-4000-8000-' || lpad(to_hex(n % 50), 12, '0'))::uuid, 'bulk ' || n
  FROM generate_series(1, 5000) n;
ANALYZE patients;
-- (PostgreSQL 17 prints the InitPlan's value as (InitPlan 1).col1 where 15 and 16 print $0: shown
-- here in the older spelling, so that one expected plan serves every major)
CREATE FUNCTION pg_temp.plan(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
        RETURN NEXT regexp_replace(regexp_replace(line, '\(InitPlan 1\)\.col1', '$0', 'g'),
                                   'InitPlan 1$', 'InitPlan 1 (returns $0)');
    END LOOP;
END $$;
SET ROLE sg_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
SELECT pg_temp.plan($q$SELECT name FROM patients WHERE name LIKE 'bulk 1%'$q$) AS "QUERY PLAN";
COMMIT;
RESET ROLE;

-- Idempotent: a second call changes nothing.
SELECT count(*) AS policies, (SELECT count(*) FROM pg_index WHERE indrelid = 'patients'::regclass) AS indexes
  FROM pg_policy WHERE polrelid = 'patients'::regclass;
SET ROLE sg_owner;
SELECT safeguard.isolate('patients', 'tenant_id', 'sg_admins');
RESET ROLE;
SELECT count(*) AS policies, (SELECT count(*) FROM pg_index WHERE indrelid = 'patients'::regclass) AS indexes
  FROM pg_policy WHERE polrelid = 'patients'::regclass;

-- An edited policy is noticed, and isolate() puts it back.
ALTER POLICY sg_tenant ON patients USING (true);
SELECT table_name, policy_unchanged FROM safeguard.isolated_tables WHERE table_name = 'patients'::regclass;
SET ROLE sg_owner;
SELECT safeguard.isolate('patients', 'tenant_id', 'sg_admins');
RESET ROLE;
SELECT table_name, policy_unchanged FROM safeguard.isolated_tables WHERE table_name = 'patients'::regclass;

-- The registry cannot be forged or erased by someone who does not own the table.
SET ROLE sg_app;
INSERT INTO safeguard.tenant_registry (tbl, mode, tenant_column, rls_was_enabled, rls_was_forced)
VALUES ('notes', 'direct', 'tenant_id', false, false);
\echo :LAST_ERROR_SQLSTATE
WITH gone AS (DELETE FROM safeguard.tenant_registry RETURNING 1) SELECT count(*) AS deleted FROM gone;
WITH changed AS (UPDATE safeguard.tenant_registry SET admin_role = 'sg_app' RETURNING 1)
SELECT count(*) AS updated FROM changed;
RESET ROLE;
SELECT count(*) AS registry_rows FROM safeguard.tenant_registry;

-- Partitioned tables: every partition, present and future, is isolated.
SET ROLE sg_owner;
CREATE TABLE appointments (
    tenant_id uuid NOT NULL,
    starts_at timestamptz NOT NULL,
    note      text
) PARTITION BY RANGE (starts_at);
CREATE TABLE appointments_2026_01 PARTITION OF appointments FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE appointments_2026_02 PARTITION OF appointments FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')
    PARTITION BY HASH (tenant_id);
CREATE TABLE appointments_2026_02_h0 PARTITION OF appointments_2026_02 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE appointments_2026_02_h1 PARTITION OF appointments_2026_02 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
INSERT INTO appointments VALUES
    ('0000000a-0000-4000-8000-000000000001', '2026-01-10', 'A january'),
    ('0000000b-0000-4000-8000-000000000002', '2026-01-11', 'B january'),
    ('0000000a-0000-4000-8000-000000000001', '2026-02-10', 'A february'),
    ('0000000b-0000-4000-8000-000000000002', '2026-02-11', 'B february');
GRANT SELECT, INSERT ON appointments, appointments_2026_01, appointments_2026_02,
                        appointments_2026_02_h0, appointments_2026_02_h1 TO sg_app;
SELECT safeguard.isolate('appointments');
-- A partition created or attached later is isolated by the DDL event trigger.
CREATE TABLE appointments_2026_03 PARTITION OF appointments FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
CREATE TABLE appointments_2026_04 (LIKE appointments);
INSERT INTO appointments_2026_04 VALUES ('0000000b-0000-4000-8000-000000000002', '2026-04-02', 'B april');
ALTER TABLE appointments ATTACH PARTITION appointments_2026_04 FOR VALUES FROM ('2026-04-01') TO ('2026-05-01');
GRANT SELECT ON appointments_2026_03, appointments_2026_04 TO sg_app;
-- A partition cannot be isolated or unisolated on its own.
SELECT safeguard.isolate('appointments_2026_01');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.unisolate('appointments_2026_01');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT table_name, mode, partition_of, rls_enabled, rls_forced, policy_present, policy_unchanged, key_indexed
  FROM safeguard.isolated_tables WHERE table_name::text LIKE 'appointments%' ORDER BY table_name::text;
SET ROLE sg_app;
SELECT count(*) AS through_parent FROM appointments;
SELECT count(*) AS partition_directly FROM appointments_2026_01;
SELECT count(*) AS subpartition_directly FROM appointments_2026_02_h0;
SELECT count(*) AS attached_directly FROM appointments_2026_04;
BEGIN;
SELECT safeguard.set_context('0000000b-0000-4000-8000-000000000002');
SELECT note FROM appointments ORDER BY starts_at;
SELECT note FROM appointments_2026_02_h1 UNION ALL SELECT note FROM appointments_2026_02_h0;
INSERT INTO appointments_2026_01 VALUES ('0000000a-0000-4000-8000-000000000001', '2026-01-20', 'into A');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;

-- isolate_all: every table of a schema that has the column.
CREATE SCHEMA clinic AUTHORIZATION sg_owner;
SET ROLE sg_owner;
CREATE TABLE clinic.providers (id int PRIMARY KEY, org_id uuid NOT NULL);
CREATE TABLE clinic.locations (id int PRIMARY KEY, org_id uuid NOT NULL);
CREATE TABLE clinic.visits (id int, org_id uuid NOT NULL, at date) PARTITION BY RANGE (at);
CREATE TABLE clinic.visits_2026 PARTITION OF clinic.visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE clinic.countries (code text PRIMARY KEY);
CREATE INDEX ON clinic.locations (org_id, id);
SELECT * FROM safeguard.isolate_all('org_id', 'clinic');
SELECT safeguard.isolate_all('org_id', 'no_such_schema');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT table_name, mode, partition_of, key_indexed FROM safeguard.isolated_tables
 WHERE table_name::text LIKE 'clinic.%' ORDER BY table_name::text;
-- The existing index leading with org_id was used; no second one was created.
SELECT indexrelid::regclass AS index FROM pg_index WHERE indrelid = 'clinic.locations'::regclass ORDER BY 1::text;

-- auto_isolate: tables created later, or that gain the column, are isolated; others are not.
CREATE SCHEMA intake AUTHORIZATION sg_owner;
SET ROLE sg_owner;
SELECT safeguard.auto_isolate('tenant_id', 'intake');
CREATE TABLE intake.forms (id int PRIMARY KEY, tenant_id uuid NOT NULL, answers jsonb);
CREATE TABLE intake.form_templates (id int PRIMARY KEY, title text);
ALTER TABLE intake.form_templates ADD COLUMN tenant_id uuid;
CREATE TABLE intake.lookups (code text PRIMARY KEY);
CREATE TABLE intake.copies AS SELECT * FROM intake.forms;
-- A tenant column of the wrong type cannot be created in an auto-isolated schema.
CREATE TABLE intake.bad (id int, tenant_id text);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.auto_isolate_off('intake');
CREATE TABLE intake.after_off (id int, tenant_id uuid);
SELECT safeguard.auto_isolate('tenant_id', 'no_such_schema');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE sg_app;
SELECT safeguard.auto_isolate('tenant_id', 'intake');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT table_name, mode, tenant_column FROM safeguard.isolated_tables
 WHERE table_name::text LIKE 'intake.%' ORDER BY table_name::text;

-- Hostile identifiers: quotes, spaces, capitals, semicolons are quoted, never executed.
CREATE SCHEMA "Sch""ema; DROP SCHEMA clinic CASCADE; --" AUTHORIZATION sg_owner;
SET ROLE sg_owner;
CREATE TABLE "Sch""ema; DROP SCHEMA clinic CASCADE; --"."Pa tients'); DROP TABLE patients; --" (
    id int PRIMARY KEY,
    "Tenant ""Id""; DROP TABLE notes" uuid NOT NULL
);
SELECT safeguard.isolate('"Sch""ema; DROP SCHEMA clinic CASCADE; --"."Pa tients''); DROP TABLE patients; --"',
                         'Tenant "Id"; DROP TABLE notes');
CREATE TABLE "Sch""ema; DROP SCHEMA clinic CASCADE; --"."Child ""Rows""" (
    id int PRIMARY KEY,
    "Parent "" Id" int NOT NULL
);
SELECT safeguard.isolate_via('"Sch""ema; DROP SCHEMA clinic CASCADE; --"."Child ""Rows"""', 'Parent " Id',
                             '"Sch""ema; DROP SCHEMA clinic CASCADE; --"."Pa tients''); DROP TABLE patients; --"');
RESET ROLE;
SELECT table_name, mode, tenant_column, fk_column, rls_forced, policy_unchanged, key_indexed
  FROM safeguard.isolated_tables WHERE table_name::text LIKE '"Sch%' ORDER BY table_name::text;
SELECT to_regclass('patients') IS NOT NULL AS patients_intact, to_regclass('notes') IS NOT NULL AS notes_intact,
       to_regnamespace('clinic') IS NOT NULL AS clinic_intact;

-- unisolate removes exactly what isolate created: dependants first (55000), then everything.
SET ROLE sg_owner;
SELECT safeguard.unisolate('patients');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE prior_rls (id int, tenant_id uuid);
CREATE INDEX prior_rls_tenant ON prior_rls (tenant_id);
ALTER TABLE prior_rls ENABLE ROW LEVEL SECURITY;
SELECT safeguard.isolate('prior_rls');
SELECT safeguard.unisolate('prior_rls');
SELECT relrowsecurity AS still_enabled_as_before, relforcerowsecurity AS forced,
       (SELECT count(*) FROM pg_policy WHERE polrelid = 'prior_rls'::regclass) AS policies,
       (SELECT count(*) FROM pg_index WHERE indrelid = 'prior_rls'::regclass) AS indexes_kept
  FROM pg_class WHERE oid = 'prior_rls'::regclass;
-- An index isolate created and someone dropped leaves the registry; unisolate still works.
CREATE TABLE dropped_index (id int, tenant_id uuid);
SELECT safeguard.isolate('dropped_index');
SELECT created_indexes FROM safeguard.tenant_registry WHERE tbl = 'dropped_index'::regclass;
DROP INDEX sg_dropped_index_tenant_id_idx;
SELECT created_indexes FROM safeguard.tenant_registry WHERE tbl = 'dropped_index'::regclass;
SELECT safeguard.unisolate('dropped_index');
DROP TABLE dropped_index;
SELECT safeguard.unisolate('contact_methods');
SELECT safeguard.unisolate('patients');
SELECT safeguard.unisolate('patients');
SELECT safeguard.unisolate('appointments');
RESET ROLE;
\d patients
SELECT c.oid::regclass AS still_isolated, c.relrowsecurity, c.relforcerowsecurity
  FROM pg_class c WHERE c.oid IN ('patients'::regclass, 'contact_methods'::regclass, 'appointments'::regclass,
                                  'appointments_2026_01'::regclass, 'appointments_2026_02_h0'::regclass)
   AND (c.relrowsecurity OR c.relforcerowsecurity);
SELECT count(*) AS appointment_registry_rows FROM safeguard.tenant_registry WHERE tbl::text LIKE 'appointments%';

-- Dropped tables leave the registry.
DROP SCHEMA clinic CASCADE;
DROP SCHEMA intake CASCADE;
DROP SCHEMA "Sch""ema; DROP SCHEMA clinic CASCADE; --" CASCADE;
SELECT count(*) AS registry_rows_left, (SELECT count(*) FROM safeguard.tenant_auto_isolation) AS auto_schemas_left
  FROM safeguard.tenant_registry;

DROP TABLE contact_methods, patients, notes, appointments, prior_rls CASCADE;
REVOKE CREATE ON SCHEMA public FROM sg_owner;
DROP ROLE sg_owner, sg_app, sg_support, sg_admins;
