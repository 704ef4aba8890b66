-- The side doors around row-level security, tried as an attacker would: the application role
-- (GRANTs only, owns nothing) in tenant A's context, against tables isolated by their tenant
-- column. Each door is shown open first (as 0.1.0 left it), then closed by what pg_safeguard
-- refuses, reports (lint) and repairs (the remediation), and the rest still works.
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = warning;

CREATE ROLE sg_sd_owner NOSUPERUSER NOBYPASSRLS;
CREATE ROLE sg_sd_app NOSUPERUSER NOBYPASSRLS;
GRANT CREATE ON SCHEMA public TO sg_sd_owner;

SET ROLE sg_sd_owner;
CREATE TABLE sd_patients (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    email           text UNIQUE,
    name            text NOT NULL
);
CREATE TABLE sd_appointments (
    id              uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    organization_id uuid NOT NULL,
    patient_id      uuid REFERENCES sd_patients (id) ON DELETE CASCADE,
    starts_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON sd_appointments (patient_id);
-- Notes are isolated through their appointment (isolate_via): that key is guarded by the policy.
CREATE TABLE sd_notes (
    id             serial PRIMARY KEY,
    appointment_id uuid NOT NULL REFERENCES sd_appointments (id) ON DELETE CASCADE,
    body           text
);
CREATE INDEX ON sd_notes (appointment_id);
-- One of the reviewed applications has exactly this policy on its audit table.
CREATE TABLE sd_audit_logs (id bigserial PRIMARY KEY, organization_id uuid NOT NULL, message text);
CREATE POLICY audit_logs_insert ON sd_audit_logs FOR INSERT WITH CHECK (true);
-- A partitioned child: its foreign key is scoped once, on the partitioned table.
CREATE TABLE sd_visits (
    organization_id uuid NOT NULL,
    patient_id      uuid NOT NULL REFERENCES sd_patients (id),
    visited_on      date NOT NULL
) PARTITION BY RANGE (visited_on);
CREATE TABLE sd_visits_2026 PARTITION OF sd_visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX ON sd_visits (patient_id);
INSERT INTO sd_patients VALUES
    ('0190a000-0000-7000-8000-00000000000a', '0000000a-0000-4000-8000-000000000001', 'ana@clinic-a.example', 'Ana'),
    ('0190b000-0000-7000-8000-00000000000b', '0000000b-0000-4000-8000-000000000002', 'victim@clinic-b.example', 'Bea');
INSERT INTO sd_appointments (id, organization_id, patient_id) VALUES
    ('0190b000-0000-7000-8000-0000000000b1', '0000000b-0000-4000-8000-000000000002', '0190b000-0000-7000-8000-00000000000b');
GRANT SELECT, INSERT, UPDATE, DELETE ON sd_patients, sd_appointments, sd_notes, sd_audit_logs, sd_visits, sd_visits_2026 TO sg_sd_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO sg_sd_app;

-- 1. A permissive policy beside sg_tenant. isolate() refuses to leave one in place (55000),
--    naming it and the statement that makes it restrictive; nothing is changed.
SELECT safeguard.isolate('sd_audit_logs', 'organization_id');
\echo :LAST_ERROR_SQLSTATE
SELECT relrowsecurity FROM pg_class WHERE oid = 'sd_audit_logs'::regclass;
DROP POLICY audit_logs_insert ON sd_audit_logs;
SELECT safeguard.isolate(t, 'organization_id')
  FROM unnest(ARRAY['sd_patients', 'sd_appointments', 'sd_audit_logs', 'sd_visits']) t;
SELECT safeguard.isolate_via('sd_notes', 'appointment_id', 'sd_appointments');
-- Added later, the policy is refused by the DDL hook...
CREATE POLICY audit_logs_insert ON sd_audit_logs FOR INSERT WITH CHECK (true);
\echo :LAST_ERROR_SQLSTATE
-- ...but with the hook off it goes in: the door is open, and both the view and lint say so.
SET safeguard.isolation_ddl_hook = off;
CREATE POLICY audit_logs_insert ON sd_audit_logs FOR INSERT WITH CHECK (true);
RESET safeguard.isolation_ddl_hook;
SELECT table_name, policy_unchanged, widened_by FROM safeguard.isolated_tables WHERE widened_by <> '{}';
SELECT level, rule, object, remediation FROM safeguard.lint() WHERE rule = 'isolation_widened';
RESET ROLE;
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_audit_logs (organization_id, message) VALUES ('0000000b-0000-4000-8000-000000000002', 'forged in B');
COMMIT;
RESET ROLE;
-- The remediation makes it restrictive: tenant B is refused again (42501), tenant A still writes.
SET ROLE sg_sd_owner;
DO $$ BEGIN EXECUTE (SELECT remediation FROM safeguard.lint() WHERE rule = 'isolation_widened'); END $$;
SELECT polname, polpermissive FROM pg_policy WHERE polrelid = 'sd_audit_logs'::regclass ORDER BY 1;
SELECT count(*) AS widened FROM safeguard.isolated_tables WHERE widened_by <> '{}';
RESET ROLE;
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_audit_logs (organization_id, message) VALUES ('0000000b-0000-4000-8000-000000000002', 'forged in B');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_audit_logs (organization_id, message) VALUES ('0000000a-0000-4000-8000-000000000001', 'own');
SELECT message FROM sd_audit_logs ORDER BY id;
COMMIT;
RESET ROLE;

-- 2. Foreign keys are checked without row-level security. Lint reports the two keys into
--    another isolated table; the key through which sd_notes is isolated is not reported.
SET ROLE sg_sd_owner;
SELECT level, rule, object, remediation FROM safeguard.lint() WHERE rule = 'foreign_key_not_tenant_scoped';
RESET ROLE;
-- Open: tenant A attaches an appointment to tenant B's patient, and tells an existing id (the
-- insert succeeds) from a missing one (23503).
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_appointments (organization_id, patient_id)
VALUES ('0000000a-0000-4000-8000-000000000001', '0190b000-0000-7000-8000-00000000000b');
COMMIT;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_appointments (organization_id, patient_id)
VALUES ('0000000a-0000-4000-8000-000000000001', '0190ffff-0000-7000-8000-00000000ffff');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- The via key was already closed: a note on tenant B's appointment is refused by the policy.
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_notes (appointment_id, body) VALUES ('0190b000-0000-7000-8000-0000000000b1', 'probe');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
-- Scoping the key checks the rows already there: the forged appointment fails it (23503).
SET ROLE sg_sd_owner;
SELECT safeguard.scope_foreign_key('sd_appointments', 'sd_appointments_patient_id_fkey');
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
DELETE FROM sd_appointments WHERE patient_id = '0190b000-0000-7000-8000-00000000000b';
COMMIT;
SELECT safeguard.scope_foreign_key('sd_appointments', 'sd_appointments_patient_id_fkey');
-- Idempotent: the second call changes nothing and returns the same DDL.
SELECT safeguard.scope_foreign_key('sd_appointments', 'sd_appointments_patient_id_fkey');
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'sd_appointments_patient_id_fkey';
SELECT safeguard.scope_foreign_key('sd_visits', 'sd_visits_patient_id_fkey');
SELECT conrelid::regclass, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid IN ('sd_visits'::regclass, 'sd_visits_2026'::regclass) AND contype = 'f' ORDER BY 1;
SELECT tbl, name, kind FROM safeguard.rule_registry WHERE tbl::text LIKE 'sd\_%' ORDER BY 1, 2;
-- Nothing left to report, and no foreign_key_without_index: the index on patient_id serves the
-- scoped key.
SELECT count(*) AS foreign_key_findings FROM safeguard.lint()
 WHERE rule IN ('foreign_key_not_tenant_scoped', 'foreign_key_without_index') AND object LIKE 'public.sd\_%';
RESET ROLE;
-- Closed: another tenant's patient and a missing id get the same answer (23503).
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_appointments (organization_id, patient_id)
VALUES ('0000000a-0000-4000-8000-000000000001', '0190b000-0000-7000-8000-00000000000b');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_visits (organization_id, patient_id, visited_on)
VALUES ('0000000a-0000-4000-8000-000000000001', '0190b000-0000-7000-8000-00000000000b', '2026-11-30');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_visits_2026 (organization_id, patient_id, visited_on)
VALUES ('0000000a-0000-4000-8000-000000000001', '0190b000-0000-7000-8000-00000000000b', '2026-11-30');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Within the tenant everything works: appointments, visits, notes, and the cascade on delete.
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_appointments (id, organization_id, patient_id)
VALUES ('0190a000-0000-7000-8000-0000000000a1', '0000000a-0000-4000-8000-000000000001', '0190a000-0000-7000-8000-00000000000a');
INSERT INTO sd_notes (appointment_id, body) VALUES ('0190a000-0000-7000-8000-0000000000a1', 'fine');
INSERT INTO sd_visits (organization_id, patient_id, visited_on)
VALUES ('0000000a-0000-4000-8000-000000000001', '0190a000-0000-7000-8000-00000000000a', '2026-11-30');
SELECT count(*) AS appointments, (SELECT count(*) FROM sd_notes) AS notes FROM sd_appointments;
DELETE FROM sd_visits;
DELETE FROM sd_patients WHERE id = '0190a000-0000-7000-8000-00000000000a';
SELECT count(*) AS appointments_after_cascade, (SELECT count(*) FROM sd_notes) AS notes_after_cascade FROM sd_appointments;
ROLLBACK;
RESET ROLE;
-- drop_rule restores the key as it was; scoping it again brings the scoped key back.
SET ROLE sg_sd_owner;
SELECT safeguard.drop_rule('sd_appointments', 'sd_appointments_patient_id_fkey');
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'sd_appointments_patient_id_fkey';
SELECT safeguard.scope_foreign_key('sd_appointments', 'sd_appointments_patient_id_fkey');
-- Bad calls: no such key (42704), the via key (55000), not the owner (42501).
SELECT safeguard.scope_foreign_key('sd_appointments', 'no_such_fkey');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.scope_foreign_key('sd_notes', 'sd_notes_appointment_id_fkey');
\echo :LAST_ERROR_SQLSTATE
-- The runner of the new key takes exactly one ALTER TABLE statement (22023).
SELECT safeguard._alter_table_with_unforced_checks('SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard._alter_table_with_unforced_checks('ALTER TABLE sd_notes ADD COLUMN x int; SELECT 1');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE sg_sd_app;
SELECT safeguard.scope_foreign_key('sd_appointments', 'sd_appointments_patient_id_fkey');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard._alter_table_with_unforced_checks('ALTER TABLE sd_notes ADD COLUMN x int');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 3. A unique constraint without the tenant column is an oracle across tenants: tenant A learns
--    that clinic B has a patient with that address (23505, and PostgreSQL's DETAIL prints it).
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_patients (id, organization_id, email, name)
VALUES (safeguard.ulid(), '0000000a-0000-4000-8000-000000000001', 'victim@clinic-b.example', 'Probe');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
SET ROLE sg_sd_owner;
SELECT level, rule, object, remediation FROM safeguard.lint() WHERE rule = 'unique_without_tenant_column';
DO $$ BEGIN EXECUTE (SELECT remediation FROM safeguard.lint() WHERE rule = 'unique_without_tenant_column'); END $$;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'sd_patients_email_key';
SELECT count(*) AS unique_findings FROM safeguard.lint() WHERE rule = 'unique_without_tenant_column';
RESET ROLE;
-- Closed: the same address is free in tenant A, and still unique within it.
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_patients (id, organization_id, email, name)
VALUES (safeguard.ulid(), '0000000a-0000-4000-8000-000000000001', 'victim@clinic-b.example', 'Vic in A');
INSERT INTO sd_patients (id, organization_id, email, name)
VALUES (safeguard.ulid(), '0000000a-0000-4000-8000-000000000001', 'victim@clinic-b.example', 'Twice');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
-- A unique index (not a constraint) gets the index form of the remediation.
SET ROLE sg_sd_owner;
CREATE UNIQUE INDEX sd_patients_lower_name ON sd_patients (lower(name)) WHERE email IS NOT NULL;
SELECT remediation FROM safeguard.lint() WHERE rule = 'unique_without_tenant_column';
DROP INDEX sd_patients_lower_name;
RESET ROLE;

-- 4. A materialized view has no row-level security of its own: made and refreshed by a
--    superuser (a migration and a nightly job, say), it hands every tenant's rows to anyone who
--    may read it.
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO sd_appointments (organization_id, patient_id)
VALUES ('0000000a-0000-4000-8000-000000000001', '0190a000-0000-7000-8000-00000000000a');
COMMIT;
RESET ROLE;
CREATE MATERIALIZED VIEW sd_appointment_summary AS
    SELECT organization_id, count(*) AS appointments FROM sd_appointments GROUP BY organization_id WITH NO DATA;
GRANT SELECT ON sd_appointment_summary TO sg_sd_app;
REFRESH MATERIALIZED VIEW sd_appointment_summary;
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
SELECT organization_id, appointments FROM sd_appointment_summary ORDER BY 1;
COMMIT;
RESET ROLE;
-- (the view's query is printed by pg_get_viewdef, whose spelling differs between majors)
SELECT level, rule, object,
       remediation LIKE 'DROP MATERIALIZED VIEW public.sd_appointment_summary; CREATE VIEW public.sd_appointment_summary WITH (security_invoker = true) AS SELECT %count(*) AS appointments%FROM public.sd_appointments%GROUP BY %organization_id;' AS invoker_view_remediation
  FROM safeguard.lint() WHERE rule = 'materialized_view_over_isolated_table';
DO $$ BEGIN EXECUTE (SELECT remediation FROM safeguard.lint() WHERE rule = 'materialized_view_over_isolated_table'); END $$;
GRANT SELECT ON sd_appointment_summary TO sg_sd_app;
SELECT count(*) AS view_findings FROM safeguard.lint() WHERE object = 'public.sd_appointment_summary';
-- Closed: the security_invoker view shows tenant A its own rows only.
SET ROLE sg_sd_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
SELECT organization_id, appointments FROM sd_appointment_summary ORDER BY 1;
COMMIT;
RESET ROLE;

-- Hostile identifiers go through every new path quoted.
SET ROLE sg_sd_owner;
CREATE TABLE "sd Parent; DROP" (id uuid, "Org" uuid NOT NULL, PRIMARY KEY (id));
CREATE TABLE "sd Child" ("Org" uuid NOT NULL, "parent Id" uuid CONSTRAINT "fk; --" REFERENCES "sd Parent; DROP" (id) ON DELETE SET NULL);
CREATE INDEX ON "sd Child" ("parent Id");
SELECT safeguard.isolate('"sd Parent; DROP"', 'Org');
SELECT safeguard.isolate('"sd Child"', 'Org');
SELECT safeguard.scope_foreign_key('"sd Child"', 'fk; --');
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'fk; --';
DROP TABLE "sd Child", "sd Parent; DROP";
RESET ROLE;

-- Everything the test made goes; the registries forget it.
DROP VIEW sd_appointment_summary;
SET ROLE sg_sd_owner;
DROP TABLE sd_notes, sd_visits, sd_appointments, sd_audit_logs, sd_patients;
RESET ROLE;
SELECT count(*) AS left_behind FROM safeguard.tenant_registry WHERE tbl::text LIKE '%sd%';
SELECT count(*) AS rules_left FROM safeguard.rule_registry WHERE tbl::text LIKE '%sd%';
REVOKE CREATE ON SCHEMA public FROM sg_sd_owner;
DROP ROLE sg_sd_owner, sg_sd_app;
