-- A guided tour of pg_safeguard in the demo database (make run). It grows with each capability.
\pset footer off

\echo
\echo '== 1. Time-ordered IDs =============================================================='
\echo 'safeguard.ulid() returns a uuid that is both a ULID and a valid UUIDv7: the first 48 bits'
\echo 'are the time in milliseconds, so new rows land at the right edge of the primary-key index.'
SELECT safeguard.ulid() AS id, safeguard.ulid() AS next_id;

\echo 'Every ID carries its creation time, and has a 26-character ULID text form:'
SELECT id, safeguard.ulid_time(id) AS created, safeguard.ulid_encode(id) AS ulid_text
  FROM organizations ORDER BY id;

\echo 'The text form decodes back to the same 128 bits (any ULID library''s text works):'
SELECT safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FAV') AS from_spec_example,
       safeguard.ulid_time(safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FAV')) AS its_time;

\echo 'IDs of a time range, by index range scan on the primary key (no created_at index needed):'
SELECT count(*) AS january_appointments
  FROM appointments
 WHERE id >= safeguard.ulid_min('2026-01-01 00:00+00')::safeguard.ulid
   AND id <  safeguard.ulid_min('2026-02-01 00:00+00')::safeguard.ulid;

\echo 'The 16-byte type safeguard.ulid shows the ULID text and casts to uuid and timestamptz:'
SELECT id, id::uuid AS as_uuid, id::timestamptz AS created, pg_column_size(id) AS bytes
  FROM appointments ORDER BY id LIMIT 3;

\echo
\echo '== 2. Tenant isolation =============================================================='
\echo 'providers, patients, appointments are isolated by organization_id; patient_contacts through'
\echo 'their patient. Row security is enabled and forced, so the table owner is bound too:'
SELECT table_name, mode, tenant_column, parent, rls_enabled, rls_forced, policy_unchanged, key_indexed
  FROM safeguard.isolated_tables ORDER BY table_name::text;

\echo 'As the application role, without a context, nothing is visible (fail closed):'
SET ROLE clinic_app;
SELECT count(*) AS patients_visible FROM patients;

\echo 'With a tenant set for the transaction, only that clinic''s rows:'
BEGIN;
SELECT safeguard.set_context((SELECT id FROM organizations WHERE name = 'Riverside Family Practice'));
SELECT full_name FROM patients ORDER BY full_name LIMIT 3;
SELECT count(*) AS contacts_visible FROM patient_contacts;
\echo 'Writing a row for another clinic fails (SQLSTATE 42501):'
DO $$
BEGIN
    INSERT INTO patients (organization_id, full_name)
    SELECT id, 'Planted patient' FROM organizations WHERE name = 'Lakeview Physical Therapy';
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'refused: % (SQLSTATE %)', SQLERRM, SQLSTATE;
END $$;
COMMIT;

\echo 'The context ended with the transaction: a pooled connection cannot pass it on.'
SELECT count(*) AS patients_visible_after_commit FROM patients;
RESET ROLE;

\echo
\echo '== 3. Audit trail =================================================================='
\echo 'patients and appointments are audited by Rust triggers; a change made in a request context:'
SELECT table_name, exclude_columns, trigger_present, trigger_enabled_always FROM safeguard.audited_tables
 ORDER BY table_name::text;
SET ROLE clinic_app;
BEGIN;
SELECT safeguard.set_context(
    tenant_id  => (SELECT id FROM organizations WHERE name = 'Riverside Family Practice'),
    actor_id   => '0000000a-0000-4000-8000-0000000000a1',
    request_id => 'tour-request-1');
UPDATE patients SET date_of_birth = date '1950-02-03', notes = 'private note'
 WHERE full_name = 'Patient 1 of Riverside Family Practice';
\echo 'Its history: who, on whose request, which columns, old and new values (never the excluded notes):'
SELECT operation, actor_id, request_id, db_user, changed_columns, old_data, new_data
  FROM safeguard.audit_history('patients',
         (SELECT jsonb_build_object('id', id) FROM patients WHERE full_name = 'Patient 1 of Riverside Family Practice'))
 LIMIT 1;
COMMIT;
RESET ROLE;
\echo 'The log is append-only, for its owner and superusers too (SQLSTATE 42501):'
DO $$
BEGIN
    DELETE FROM safeguard.audit_log;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'refused: % (SQLSTATE %)', SQLERRM, SQLSTATE;
END $$;
\echo 'Sealing extends a SHA-256 hash chain over the log; verifying recomputes it (run both from a scheduler):'
SELECT safeguard.audit_seal() AS entries_sealed;
SELECT * FROM safeguard.audit_verify();

\echo
\echo '== 4. Encrypted columns ============================================================='
\echo 'patients.medical_history is a safeguard.encrypted_text: the application writes plain text,'
\echo 'the table holds an AES-256-GCM envelope under the clinic''s own key:'
SET ROLE clinic_app;
BEGIN;
SELECT safeguard.set_context((SELECT id FROM organizations WHERE name = 'Riverside Family Practice'));
UPDATE patients SET medical_history = 'Allergic to penicillin'
 WHERE full_name = 'Patient 2 of Riverside Family Practice';
SELECT full_name, left(medical_history::text, 40) || '...' AS stored
  FROM patients WHERE full_name = 'Patient 2 of Riverside Family Practice';
\echo 'The application role holds no decrypt grant; neither it nor a stolen dump can read the history:'
DO $$
BEGIN
    PERFORM safeguard.decrypt(medical_history) FROM patients LIMIT 1;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'refused: % (SQLSTATE %)', SQLERRM, SQLSTATE;
END $$;
COMMIT;
RESET ROLE;
\echo 'clinic_support (granted decrypt) reads it through the decrypted view, one clinic at a time:'
SET ROLE clinic_support;
BEGIN;
SELECT safeguard.set_context((SELECT id FROM organizations WHERE name = 'Riverside Family Practice'));
SELECT full_name, medical_history FROM patients_decrypted
 WHERE full_name = 'Patient 2 of Riverside Family Practice';
COMMIT;
RESET ROLE;
\echo 'Keys: one per clinic, wrapped under the master key; the view shows no key material:'
SELECT k.id, o.name AS clinic, k.status FROM safeguard.keys k LEFT JOIN organizations o ON o.id = k.tenant_id ORDER BY k.id;

\echo
\echo '== 5. Data rules ===================================================================='
\echo 'One call per rule; each returns the DDL it ran and is recorded with what undoes it:'
SELECT tbl, name, kind FROM safeguard.rule_registry ORDER BY tbl::text, name;
\echo 'A provider cannot be double-booked (SQLSTATE 23P01; the message names the rule, not the values):'
SET ROLE clinic_app;
BEGIN;
SELECT safeguard.set_context((SELECT id FROM organizations WHERE name = 'Riverside Family Practice'));
DO $$
BEGIN
    INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at)
    SELECT a.organization_id, a.patient_id, a.provider_id, a.starts_at + interval '15 minutes', a.ends_at
      FROM appointments a ORDER BY a.starts_at LIMIT 1;
EXCEPTION WHEN exclusion_violation THEN
    RAISE NOTICE 'refused: % (SQLSTATE %)', SQLERRM, SQLSTATE;
END $$;
\echo 'An invalid NPI is refused by safeguard.is_valid_npi() (SQLSTATE 23514):'
DO $$
BEGIN
    UPDATE providers SET npi_number = '1234567890';
EXCEPTION WHEN check_violation THEN
    RAISE NOTICE 'refused: % (SQLSTATE %)', SQLERRM, SQLSTATE;
END $$;
COMMIT;
RESET ROLE;

\echo
\echo '== 6. The review, automated ========================================================='
\echo 'safeguard.lint() checks the whole database the way a reviewer would; the clinic is clean:'
SELECT * FROM safeguard.lint_summary();
\echo 'What was accepted on purpose, and why:'
SELECT rule, object, reason FROM safeguard.lint_ignored;
\echo 'A new tenant table without isolation is the first thing it reports, with the fix:'
BEGIN;
CREATE TABLE invoices (id uuid PRIMARY KEY DEFAULT safeguard.ulid(), organization_id uuid NOT NULL, total_cents bigint);
SELECT level, rule, object, remediation FROM safeguard.lint() WHERE object LIKE '%invoices%';
ROLLBACK;
