-- What must be the same before an upgrade, after it, and after a dump/restore of the upgraded
-- database (scripts/upgrade-test.sh). Prints one deterministic report.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
\set QUIET on
SET client_min_messages = warning;
SET search_path = public;
-- Every row of every table, the extension's own included.
SELECT 'rows', (SELECT count(*) FROM clinics), (SELECT count(*) FROM patients), (SELECT count(*) FROM contacts),
       (SELECT count(*) FROM visits), (SELECT count(*) FROM safeguard.audit_log), (SELECT count(*) FROM safeguard.audit_chain),
       (SELECT count(*) FROM safeguard.key_store), (SELECT count(*) FROM safeguard.tenant_registry),
       (SELECT count(*) FROM safeguard.audit_registry), (SELECT count(*) FROM safeguard.audit_seals),
       (SELECT count(*) FROM safeguard.rule_registry),
       (SELECT count(*) FROM safeguard.lint_ignores), (SELECT count(*) FROM safeguard.data_classification);
-- The audit log and chain, byte for byte, and the verification of the chain.
SELECT 'audit', md5(string_agg(format('%s %s %s %s %s %s %s', l.id, l.operation, l.table_name, l.request_id, l.old_data, l.new_data, l.changed_columns), ',' ORDER BY l.id))
  FROM safeguard.audit_log l;
SELECT 'chain', md5(string_agg(format('%s %s %s', c.seq, c.log_id, encode(c.link, 'hex')), ',' ORDER BY c.seq)) FROM safeguard.audit_chain c;
SELECT 'verify', ok, rows_checked FROM safeguard.audit_verify();
SELECT 'keys', md5(string_agg(format('%s %s', k.id, k.status), ',' ORDER BY k.id)) FROM safeguard.keys k;
SELECT 'envelopes', md5(string_agg(history::text, ',' ORDER BY id)) FROM patients;
-- (safeguard on the search_path: 0.1.0 kept the ulid operators there.)
SET search_path = public, safeguard;
SELECT 'ids', md5(string_agg(id::text, ',' ORDER BY id)),
       count(*) FILTER (WHERE id < (SELECT v.id FROM visits v ORDER BY v.id DESC LIMIT 1)) FROM visits;
SET search_path = public;
SELECT 'counters', string_agg(format('%s=%s', name, patient_count), ' ' ORDER BY name) FROM clinics;
-- Isolation and decryption as the application and support roles.
SET ROLE sg_up_app;
SELECT 'no context', (SELECT count(*) FROM patients), (SELECT count(*) FROM contacts), (SELECT count(*) FROM visits);
BEGIN;
SELECT 'context' || safeguard.set_context('0000000b-0000-4000-8000-000000000002');
SELECT 'tenant B', (SELECT count(*) FROM patients), (SELECT count(*) FROM contacts), (SELECT count(*) FROM visits),
       (SELECT count(*) FROM patients WHERE clinic_id <> safeguard.current_tenant());
COMMIT;
RESET ROLE;
SET ROLE sg_up_support;
BEGIN;
SELECT 'context' || safeguard.set_context('0000000c-0000-4000-8000-000000000003');
SELECT 'decrypted', string_agg(safeguard.decrypt(history), ' | ' ORDER BY full_name) FROM patients
 WHERE clinic_id = safeguard.current_tenant();
COMMIT;
RESET ROLE;
SELECT 'registry', string_agg(format('%s %s %s', table_name, mode, policy_unchanged), ', ' ORDER BY table_name::text)
  FROM safeguard.isolated_tables;
SELECT 'audited', string_agg(format('%s %s %s', table_name, trigger_present, trigger_enabled_always), ', ' ORDER BY table_name::text)
  FROM safeguard.audited_tables;
SELECT 'rules', string_agg(format('%s %s', tbl, name), ', ' ORDER BY tbl::text, name) FROM safeguard.rule_registry;
