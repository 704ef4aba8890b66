-- A small multi-tenant clinic schema for the demo database (make run). Each capability of
-- pg_safeguard that lands adds its safeguard here: so far, time-ordered IDs generated in the database.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE providers (
    id              uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    full_name       text NOT NULL,
    npi_number      text
);
CREATE INDEX ON providers (organization_id);

CREATE TABLE patients (
    id              uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    full_name       text NOT NULL,
    date_of_birth   date
);
CREATE INDEX ON patients (organization_id);

-- The ID column can also be the 16-byte safeguard.ulid type, shown as ULID text.
CREATE TABLE appointments (
    id              safeguard.ulid PRIMARY KEY DEFAULT safeguard.gen_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    patient_id      uuid NOT NULL REFERENCES patients (id),
    provider_id     uuid NOT NULL REFERENCES providers (id),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL
);
CREATE INDEX ON appointments (organization_id);
CREATE INDEX ON appointments (patient_id);
CREATE INDEX ON appointments (provider_id);

INSERT INTO organizations (name) VALUES ('Riverside Family Practice'), ('Lakeview Physical Therapy');

INSERT INTO providers (organization_id, full_name, npi_number)
SELECT o.id, p.full_name, p.npi
  FROM organizations o
  JOIN (VALUES ('Riverside Family Practice', 'Dr. Ana Lima', '1234567893'),
               ('Lakeview Physical Therapy', 'Sam Okafor, DPT', '1245319599')) AS p (org, full_name, npi)
    ON p.org = o.name;

INSERT INTO patients (organization_id, full_name, date_of_birth)
SELECT o.id, 'Patient ' || n || ' of ' || o.name, date '1950-01-01' + n * 400
  FROM organizations o, generate_series(1, 5) AS n;

-- Backfilled history: IDs minted for past times with safeguard.ulid_at(), so they sort by time.
INSERT INTO appointments (id, organization_id, patient_id, provider_id, starts_at, ends_at)
SELECT safeguard.ulid_at(s.starts_at)::safeguard.ulid, p.organization_id, p.id, pr.id,
       s.starts_at, s.starts_at + interval '45 minutes'
  FROM (SELECT *, row_number() OVER (PARTITION BY organization_id ORDER BY full_name) AS slot FROM patients) p
  JOIN providers pr ON pr.organization_id = p.organization_id
 CROSS JOIN LATERAL (SELECT timestamptz '2026-01-05 08:00+00' + (n * interval '1 week') + (p.slot * interval '1 hour')
                            AS starts_at
                       FROM generate_series(0, 3) AS n) AS s;

-- Contact details reach their tenant through the patient.
CREATE TABLE patient_contacts (
    id          uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    patient_id  uuid NOT NULL REFERENCES patients (id),
    kind        text NOT NULL,
    value       text NOT NULL
);
INSERT INTO patient_contacts (patient_id, kind, value)
SELECT id, 'phone', '+1555' || lpad((row_number() OVER ())::text, 7, '0') FROM patients;

-- Tenant isolation: every tenant-scoped table, one call each; contacts through their patient.
-- clinic_app is what the application connects as (neither owner nor superuser);
-- members of clinic_support see every clinic.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'clinic_app') THEN
        CREATE ROLE clinic_app NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'clinic_support') THEN
        CREATE ROLE clinic_support NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$;
GRANT SELECT ON organizations TO clinic_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON providers, patients, appointments, patient_contacts TO clinic_app;
DO $$
BEGIN
    PERFORM safeguard.isolate('providers', 'organization_id', 'clinic_support');
    PERFORM safeguard.isolate('patients', 'organization_id', 'clinic_support');
    PERFORM safeguard.isolate('appointments', 'organization_id', 'clinic_support');
    PERFORM safeguard.isolate_via('patient_contacts', 'patient_id', 'patients');
END $$;
-- Foreign keys between isolated tables carry the tenant column on both sides: PostgreSQL checks
-- them without row-level security, so a plain key would let one clinic attach appointments to
-- another clinic's patients (and learn which patient ids exist there).
SELECT safeguard.scope_foreign_key('appointments', 'appointments_patient_id_fkey') IS NOT NULL AS patient_key_scoped;
SELECT safeguard.scope_foreign_key('appointments', 'appointments_provider_id_fkey') IS NOT NULL AS provider_key_scoped;

-- Audit trail: every change to patients and appointments, except the free-text notes column
-- nobody needs in an audit log.
ALTER TABLE patients ADD COLUMN notes text;
DO $$
BEGIN
    PERFORM safeguard.enable_audit('patients', exclude_columns => '{notes}');
    PERFORM safeguard.enable_audit('appointments');
END $$;

-- Encrypted columns: each clinic's medical histories under that clinic's own data key (the
-- master key stays in the file named by safeguard.master_key_file). The application writes
-- plain text as before; only clinic_support may decrypt, through a view made for reporting.
ALTER TABLE patients ADD COLUMN medical_history safeguard.encrypted_text;
SELECT count(safeguard.create_key(id)) AS clinic_keys FROM organizations;
DO $$
DECLARE
    clinic record;
BEGIN
    FOR clinic IN SELECT id FROM organizations LOOP
        PERFORM safeguard.set_context(tenant_id => clinic.id);
        UPDATE patients SET medical_history = 'History of ' || full_name || ': seasonal asthma'
         WHERE organization_id = clinic.id;
    END LOOP;
END $$;
GRANT SELECT ON organizations, patients TO clinic_support;
GRANT EXECUTE ON FUNCTION safeguard.decrypt(safeguard.encrypted_text) TO clinic_support;
SELECT safeguard.create_decrypted_view('patients') AS decrypted_view;
GRANT SELECT ON patients_decrypted TO clinic_app, clinic_support;

-- Data rules: NPI valid and unique per clinic, appointments that end after they start and never
-- overlap for one provider, timestamps from the database's clock.
ALTER TABLE providers ADD CONSTRAINT npi_valid CHECK (safeguard.is_valid_npi(npi_number));
SELECT safeguard.require_unique('providers', '{organization_id, npi_number}', 'npi_number IS NOT NULL') IS NOT NULL AS npi_unique;
SELECT safeguard.require_order('appointments', 'starts_at', 'ends_at') IS NOT NULL AS appointments_ordered;
SELECT safeguard.forbid_overlap('appointments', 'starts_at', 'ends_at', '{provider_id}') IS NOT NULL AS no_double_booking;
ALTER TABLE patients ADD COLUMN created_at timestamptz, ADD COLUMN updated_at timestamptz;
SELECT safeguard.maintain_timestamps('patients') IS NOT NULL AS patient_timestamps;

-- The review's last findings, fixed or accepted: every tenant table audited, PHI tagged (the
-- medical history is already encrypted), and the date of birth accepted in clear, with the reason.
DO $$
BEGIN
    PERFORM safeguard.enable_audit('providers');
    PERFORM safeguard.enable_audit('patient_contacts');
END $$;
SELECT safeguard.classify('patients', '{medical_history}', 'phi');
SELECT safeguard.lint_ignore('phi_column_untagged', 'public.patients.date_of_birth',
    'Demo: kept in clear so the tour can show an audited change; production schemas encrypt it.');
SELECT safeguard.lint_ignore('library_not_preloaded', 'shared_preload_libraries',
    'Demo: the throwaway cluster runs without it so the tests see a fresh session''s first call; production servers preload pg_safeguard (docs/install.md).');
