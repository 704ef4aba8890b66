-- safeguard.lint() on a schema modelled on a real multi-tenant clinic application, with the
-- flaws the reviews keep finding planted on purpose; then every remediation is run, and nothing
-- but what was accepted (lint_ignore) may remain at ERROR or WARN.
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = warning;
CREATE SCHEMA clinic_app;
SET search_path = clinic_app, public;

CREATE TABLE organizations (id uuid PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
-- Clean: isolated, audited, indexed.
CREATE TABLE organization_memberships (
    id uuid PRIMARY KEY, organization_id uuid NOT NULL REFERENCES organizations, user_id uuid NOT NULL,
    role text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
SELECT safeguard.isolate('organization_memberships', 'organization_id');
SELECT safeguard.enable_audit('organization_memberships');
-- Not isolated; tenant column nullable and unindexed; timestamp without time zone; FK unindexed.
CREATE TABLE providers (
    id uuid PRIMARY KEY, organization_id uuid REFERENCES organizations, full_name text NOT NULL, npi_number text,
    created_at timestamp DEFAULT now());
-- Row-level security enabled, no policy.
CREATE TABLE staff (id uuid PRIMARY KEY, organization_id uuid NOT NULL, full_name text NOT NULL);
CREATE INDEX ON staff (organization_id);
ALTER TABLE staff ENABLE ROW LEVEL SECURITY;
-- Isolated (the session's first call into the extension is a helper with a SET clause: the DDL
-- hook must keep working after it), then its policy dropped by hand; PHI tagged but in plain
-- text; a PHI-looking column untagged.
CREATE TABLE patients (
    id uuid PRIMARY KEY, organization_id uuid NOT NULL, full_name text NOT NULL, date_of_birth date,
    medical_history text);
SELECT safeguard.isolate('patients', 'organization_id');
SELECT safeguard.enable_audit('patients');
SELECT safeguard.classify('patients', '{medical_history}', 'phi');
DROP POLICY sg_tenant ON patients;
-- A policy, but row-level security never enabled.
CREATE TABLE proxies (id uuid PRIMARY KEY, organization_id uuid NOT NULL, full_name text NOT NULL);
CREATE INDEX ON proxies (organization_id);
CREATE POLICY proxies_tenant ON proxies USING (organization_id = (SELECT safeguard.current_tenant()));
-- No tenant column of its own; two foreign keys without indexes.
CREATE TABLE patient_proxy_assignments (
    id uuid PRIMARY KEY, patient_id uuid NOT NULL REFERENCES patients, proxy_id uuid NOT NULL REFERENCES proxies,
    relationship text);
-- Soft-delete column without a partial index for live rows.
CREATE TABLE care_team_assignments (
    id uuid PRIMARY KEY, organization_id uuid NOT NULL, patient_id uuid NOT NULL, provider_id uuid NOT NULL,
    role text NOT NULL, removed_at timestamptz);
SELECT safeguard.isolate('care_team_assignments', 'organization_id');
SELECT safeguard.enable_audit('care_team_assignments');
-- Timestamps set by the application's clock.
CREATE TABLE appointments (
    id uuid PRIMARY KEY, organization_id uuid NOT NULL, starts_at timestamptz NOT NULL, ends_at timestamptz NOT NULL,
    created_at timestamptz, updated_at timestamptz);
SELECT safeguard.isolate('appointments', 'organization_id');
SELECT safeguard.enable_audit('appointments');
-- Hand-written row security, not forced, calling current_setting() per row.
CREATE TABLE documents (id uuid PRIMARY KEY, organization_id uuid NOT NULL, title text NOT NULL);
CREATE INDEX ON documents (organization_id);
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY documents_tenant ON documents
    USING (organization_id = current_setting('app.current_org')::uuid);
SELECT safeguard.enable_audit('documents');
-- Clean tables of the other kinds.
CREATE TABLE message_threads (id uuid PRIMARY KEY, organization_id uuid NOT NULL, subject text);
CREATE TABLE messages (id uuid PRIMARY KEY, organization_id uuid NOT NULL,
                       thread_id uuid NOT NULL REFERENCES message_threads, body text);
CREATE INDEX ON messages (thread_id);
CREATE TABLE calls (id uuid PRIMARY KEY, organization_id uuid NOT NULL, started_at timestamptz NOT NULL);
CREATE TABLE tasks (id uuid PRIMARY KEY, organization_id uuid NOT NULL, title text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE contact_methods (id uuid PRIMARY KEY, organization_id uuid NOT NULL, kind text NOT NULL, phone text);
CREATE TABLE billing_transactions (id uuid PRIMARY KEY, organization_id uuid NOT NULL, amount_cents bigint NOT NULL);
CREATE TABLE subscription_overrides (id uuid PRIMARY KEY, organization_id uuid NOT NULL, plan text NOT NULL);
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['message_threads', 'messages', 'calls', 'tasks', 'contact_methods',
                             'billing_transactions', 'subscription_overrides'] LOOP
        PERFORM safeguard.isolate('clinic_app.' || t, 'organization_id');
        PERFORM safeguard.enable_audit('clinic_app.' || t);
    END LOOP;
END $$;
SELECT safeguard.classify('contact_methods', '{phone}', 'pii');
CREATE TABLE consent_documents (id uuid PRIMARY KEY, version text NOT NULL, body text NOT NULL);
-- No primary key.
CREATE TABLE user_sessions (user_id uuid NOT NULL, token_hash bytea NOT NULL, expires_at timestamptz NOT NULL);
-- A SECURITY DEFINER function without a pinned search_path.
CREATE FUNCTION clinic_app.count_patients() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT count(*) FROM clinic_app.patients $$;
-- A view over an isolated table that checks row security as its owner.
CREATE VIEW clinic_app.appointment_calendar AS SELECT id, organization_id, starts_at, ends_at FROM appointments;

-- The review.
SELECT level, rule, object FROM safeguard.lint('clinic_app');
SELECT * FROM safeguard.lint_summary('clinic_app');
-- What one finding looks like in full.
SELECT detail, remediation FROM safeguard.lint('clinic_app')
 WHERE rule IN ('tenant_table_not_isolated', 'isolation_policy_altered', 'phi_unencrypted') ORDER BY object;

-- Accepting findings: a reason is required; only granted roles may; the view lists them.
SELECT safeguard.lint_ignore('no_primary_key', 'clinic_app.user_sessions', '');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.lint_ignore('no_primary_key', 'clinic_app.user_sessions',
                             'Sessions are looked up by token hash only; rows are never updated.');
CREATE ROLE sg_lint_app NOSUPERUSER;
SET ROLE sg_lint_app;
SELECT safeguard.lint_ignore('phi_column_untagged', 'clinic_app.patients.date_of_birth', 'no');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS visible_findings FROM safeguard.lint('clinic_app');
RESET ROLE;
DROP ROLE sg_lint_app;
SELECT rule, object, reason FROM safeguard.lint_ignored;
SELECT count(*) AS user_sessions_findings FROM safeguard.lint('clinic_app') WHERE object = 'clinic_app.user_sessions';
-- classify() checks its arguments.
SELECT safeguard.classify('patients', '{full_name}', 'secret');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.classify('patients', '{no_such_column}', 'phi');
\echo :LAST_ERROR_SQLSTATE

-- The fix: a hand-written policy is rewritten as documented (lint gives no single statement for
-- it); every other finding is fixed by running its remediation, until none is left to run.
ALTER POLICY documents_tenant ON documents
    USING (organization_id = (SELECT current_setting('app.current_org')::uuid));
SELECT safeguard.create_key() > 0 AS global_key_for_phi_columns;
SET client_min_messages = notice;
DO $$
DECLARE
    finding record;
    pass int := 0;
    ran int;
BEGIN
    LOOP
        pass := pass + 1;
        ran := 0;
        FOR finding IN SELECT * FROM safeguard.lint('clinic_app') WHERE remediation IS NOT NULL LOOP
            EXECUTE finding.remediation;
            ran := ran + 1;
        END LOOP;
        RAISE NOTICE 'pass %: % remediations run', pass, ran;
        EXIT WHEN ran = 0 OR pass = 5;
    END LOOP;
END $$;
SET client_min_messages = warning;
SELECT level, rule, object, remediation IS NULL AS no_single_statement FROM safeguard.lint('clinic_app');
SELECT * FROM safeguard.lint_summary('clinic_app');
-- The data survived the fixes: PHI columns are encrypted now and the view reads as the invoker.
SELECT format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = 'patients'::regclass AND attname = 'medical_history';
SELECT reloptions FROM pg_class WHERE oid = 'appointment_calendar'::regclass;

-- Focused checks: a clean schema has no finding; the audit-log rules see a disabled guard.
CREATE SCHEMA clean_app;
CREATE TABLE clean_app.notes (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, body text,
                              created_at timestamptz NOT NULL DEFAULT now());
SELECT safeguard.isolate('clean_app.notes');
SELECT safeguard.enable_audit('clean_app.notes');
SELECT count(*) AS clean_schema_findings FROM safeguard.lint('clean_app');
SET safeguard.tenant_column = 'account_id';
CREATE TABLE clean_app.accounts_data (id bigint PRIMARY KEY, account_id uuid NOT NULL);
SELECT level, rule, object FROM safeguard.lint('clean_app');
RESET safeguard.tenant_column;
DROP TABLE clean_app.accounts_data;
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
SELECT level, rule, object, remediation FROM safeguard.lint() WHERE rule = 'audit_log_guard_disabled';
ALTER TABLE safeguard.audit_log ENABLE ALWAYS TRIGGER sg_audit_guard;
SELECT count(*) AS guard_findings FROM safeguard.lint() WHERE rule = 'audit_log_guard_disabled';

-- Audit entries left unsealed for more than a day (one written out of band, back-dated).
INSERT INTO safeguard.audit_log (occurred_at, db_user, txid, table_schema, table_name, operation)
VALUES (now() - interval '2 days', current_user, txid_current(), 'clean_app', 'notes', 'READ');
SELECT level, rule, object, remediation FROM safeguard.lint() WHERE rule = 'audit_unsealed';
SELECT safeguard.audit_seal() > 0 AS sealed;
SELECT count(*) AS unsealed_findings FROM safeguard.lint() WHERE rule = 'audit_unsealed';

DROP SCHEMA clinic_app, clean_app CASCADE;
DELETE FROM safeguard.lint_ignores;
