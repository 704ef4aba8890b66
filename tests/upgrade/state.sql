-- A realistic database built with pg_safeguard 0.1.0 (only functions 0.1.0 has), for the upgrade
-- test (scripts/upgrade-test.sh): isolated tables (direct, via, partitioned), audited tables
-- with a sealed chain, encrypted values under several tenant keys, data rules, lint ignores and
-- classification, and safeguard.ulid keys (0.1.0 could not isolate through a ulid key: its
-- helpers could not see the type's operators).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_up_app') THEN
        CREATE ROLE sg_up_app NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_up_support') THEN
        CREATE ROLE sg_up_support NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$;

CREATE TABLE clinics (id uuid PRIMARY KEY, name text NOT NULL, patient_count int NOT NULL DEFAULT 0);
INSERT INTO clinics VALUES
    ('0000000a-0000-4000-8000-000000000001', 'Riverside', 0),
    ('0000000b-0000-4000-8000-000000000002', 'Lakeview', 0),
    ('0000000c-0000-4000-8000-000000000003', 'Hillcrest', 0);
CREATE TABLE patients (
    id              uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    clinic_id       uuid NOT NULL REFERENCES clinics (id),
    full_name       text NOT NULL,
    npi             text,
    status          text NOT NULL DEFAULT 'active',
    history         safeguard.encrypted_text,
    created_at      timestamptz,
    updated_at      timestamptz,
    deleted_at      timestamptz
);
CREATE INDEX ON patients (clinic_id);
CREATE TABLE contacts (
    id         uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    patient_id uuid NOT NULL REFERENCES patients (id),
    phone      text NOT NULL
);
CREATE INDEX ON contacts (patient_id);
CREATE TABLE visits (
    clinic_id  uuid NOT NULL,
    id         safeguard.ulid NOT NULL DEFAULT safeguard.gen_ulid(),
    patient_id uuid NOT NULL,
    visited_on date NOT NULL,
    note       text
) PARTITION BY RANGE (visited_on);
CREATE TABLE visits_2026 PARTITION OF visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX ON visits (id);

SELECT safeguard.isolate('patients', 'clinic_id', 'sg_up_support');
SELECT safeguard.isolate_via('contacts', 'patient_id', 'patients');
SELECT safeguard.isolate('visits', 'clinic_id');
SELECT safeguard.enable_audit('patients', exclude_columns => '{history}');
SELECT safeguard.enable_audit('contacts');
SELECT safeguard.enable_audit('visits');
SELECT safeguard.require_unique('patients', '{clinic_id, npi}', 'npi IS NOT NULL') IS NOT NULL;
SELECT safeguard.require_values('patients', 'status', '{active, archived}') IS NOT NULL;
SELECT safeguard.maintain_timestamps('patients') IS NOT NULL;
SELECT safeguard.enable_soft_delete('patients') IS NOT NULL;
SELECT safeguard.maintain_count('clinics', 'patient_count', 'patients', 'clinic_id', 'deleted_at IS NULL') IS NOT NULL;
SELECT safeguard.classify('patients', '{history}', 'phi');
SELECT safeguard.lint_ignore('phi_column_untagged', 'public.contacts.phone', 'Upgrade fixture: accepted in clear.');
GRANT SELECT, INSERT, UPDATE, DELETE ON patients, contacts, visits TO sg_up_app, sg_up_support;
GRANT SELECT ON clinics TO sg_up_app, sg_up_support;
GRANT UPDATE (patient_count) ON clinics TO sg_up_app, sg_up_support;
GRANT EXECUTE ON FUNCTION safeguard.decrypt(safeguard.encrypted_text) TO sg_up_support;

-- Each clinic's patients, with histories under that clinic's own key, written as the app.
SELECT count(safeguard.create_key(id)) AS clinic_keys FROM clinics;
SET ROLE sg_up_app;
DO $$
DECLARE
    clinic record;
BEGIN
    FOR clinic IN SELECT id, name FROM clinics ORDER BY name LOOP
        PERFORM safeguard.set_context(clinic.id, '00000000-0000-4000-8000-0000000000aa', request_id => 'seed-' || clinic.name);
        INSERT INTO patients (clinic_id, full_name, npi, history)
        SELECT clinic.id, clinic.name || ' patient ' || n, CASE WHEN n % 2 = 0 THEN '12345678' || lpad(n::text, 2, '0') END,
               'History ' || n || ' of ' || clinic.name
          FROM generate_series(1, 5) n;
        INSERT INTO contacts (patient_id, phone) SELECT id, '+1555000' || right(full_name, 1) FROM patients;
        INSERT INTO visits (clinic_id, patient_id, visited_on, note) SELECT clinic_id, id, DATE '2026-11-01' + (right(full_name, 1))::int, 'checkup' FROM patients;
        UPDATE patients SET status = 'archived' WHERE full_name LIKE '% 5';
        UPDATE patients SET deleted_at = now() WHERE full_name LIKE '% 4';
    END LOOP;
END $$;
RESET ROLE;
SELECT safeguard.audit_seal() > 0 AS sealed;
-- A few entries written after the seal stay unsealed: the upgrade must keep both kinds.
SET ROLE sg_up_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001', request_id => 'after-seal');
UPDATE visits SET note = 'follow-up' WHERE visited_on = '2026-11-02';
COMMIT;
RESET ROLE;
