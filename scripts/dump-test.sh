#!/usr/bin/env bash
# pg_dump/restore round trip of the demo database: the extension's registries and audit log
# (config tables), the policies, forced row security and the ulid column survive, isolation
# still holds, the audit hash chain still verifies, and encrypted values come back as the same
# envelopes, byte for byte, that still decrypt.
source "$(dirname "$0")/common.sh"
say "dump and restore: safeguard_demo -> safeguard_restore"
dump="$ROOT/target/safeguard_demo.dump"
"$PG_BINDIR/pg_dump" --format=custom --file="$dump" safeguard_demo
fresh_database safeguard_restore
"$PG_BINDIR/pg_restore" --exit-on-error --dbname=safeguard_restore "$dump"

state() {
    "${PSQL[@]}" -At -d "$1" <<'SQL'
SELECT string_agg(format('%s %s %s %s %s %s %s', table_name, mode, rls_enabled, rls_forced,
                         policy_present, policy_unchanged, key_indexed), E'\n' ORDER BY table_name::text)
  FROM safeguard.isolated_tables;
SELECT count(*) FROM safeguard.tenant_registry;
-- Tenant-scoped foreign keys (scope_foreign_key) and the tables' policies, as defined (printed
-- under one search_path: the demo database's own is not part of the dump).
SET search_path = public;
SELECT string_agg(format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid)), E'\n' ORDER BY conrelid::regclass::text, conname)
  FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace;
SELECT string_agg(format('%s %s %s %s', polrelid::regclass, polname, polpermissive, pg_get_expr(polqual, polrelid)), E'\n' ORDER BY polrelid::regclass::text, polname)
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = 'public'::regnamespace;
-- safeguard.ulid compared with its operators, the safeguard schema not on the search_path.
SELECT count(*) FROM appointments a JOIN appointments b ON a.id = b.id
 WHERE a.id >= (SELECT id FROM appointments ORDER BY id LIMIT 1) AND a.id <> '00000000000000000000000000';
RESET search_path;
SELECT count(*) FROM safeguard.audit_log;
SELECT format('%s %s %s', ok, rows_checked, detail) FROM safeguard.audit_verify();
SELECT string_agg(id::text, ',' ORDER BY id) FROM appointments;
SET ROLE clinic_app;
SELECT count(*) FROM patients;
BEGIN;
SELECT safeguard.set_context((SELECT id FROM organizations WHERE name = 'Riverside Family Practice'));
SELECT count(*) FROM patients;
SELECT count(*) FROM patient_contacts;
COMMIT;
RESET ROLE;
-- Encrypted values: the same envelopes byte for byte, still decrypting with the same keys.
SELECT md5(string_agg(medical_history::text, ',' ORDER BY id)) FROM patients;
SELECT string_agg(format('%s %s', id, status), ',' ORDER BY id) FROM safeguard.keys;
SET ROLE clinic_support;
BEGIN;
SELECT safeguard.set_context((SELECT id FROM organizations WHERE name = 'Lakeview Physical Therapy'));
SELECT string_agg(medical_history, ' | ' ORDER BY full_name) FROM patients_decrypted
 WHERE organization_id = safeguard.current_tenant();
COMMIT;
SQL
}
before=$(state safeguard_demo)
after=$(state safeguard_restore)
if [ "$before" != "$after" ]; then
    diff <(echo "$before") <(echo "$after") >&2 || true
    die "the restored database differs from the original"
fi
echo "restored: $(grep -c " direct \| via " <<<"$after") isolated tables as before, isolation holds"
grep -q "History of Patient 1 of Lakeview" <<<"$after" || die "the restored encrypted values do not decrypt"
echo "restored: encrypted medical histories identical and decrypting"

# An audited partitioned table: its row trigger (copied onto each partition by PostgreSQL) and the
# TRUNCATE trigger of each partition come back from the dump, once each, and still log.
say "dump and restore: an audited partitioned table"
fresh_database safeguard_parted safeguard_parted_restore
"${PSQL[@]}" -q -d safeguard_parted >/dev/null <<'SQL'
CREATE EXTENSION pg_safeguard;
CREATE TABLE visits (id int, at date, note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE visits_2026 PARTITION OF visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT safeguard.enable_audit('visits');
CREATE TABLE visits_2027 PARTITION OF visits FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE TABLE visits_2028 (id int NOT NULL, at date NOT NULL, note text, PRIMARY KEY (id, at));
ALTER TABLE visits ATTACH PARTITION visits_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
INSERT INTO visits VALUES (1, '2026-03-01', 'first'), (2, '2027-03-01', 'second'), (3, '2028-03-01', 'third');
SQL
parted_dump="$ROOT/target/safeguard_parted.dump"
"$PG_BINDIR/pg_dump" --format=custom --file="$parted_dump" safeguard_parted
"$PG_BINDIR/pg_restore" --exit-on-error --dbname=safeguard_parted_restore "$parted_dump"
parted_state() {
    "${PSQL[@]}" -At -d "$1" <<'SQL'
SELECT format('%s %s %s', table_name, trigger_present, trigger_enabled_always) FROM safeguard.audited_tables;
SELECT string_agg(format('%s.%s=%s', tgrelid::regclass, tgname, tgenabled), ' ' ORDER BY tgrelid::regclass::text, tgname)
  FROM pg_trigger WHERE tgname LIKE 'sg_audit%';
SELECT count(*) FROM safeguard.audit_log;
SQL
}
before=$(parted_state safeguard_parted)
after=$(parted_state safeguard_parted_restore)
[ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") >&2; die "the restored partitioned table's audit differs"; }
logged=$("${PSQL[@]}" -At -d safeguard_parted_restore \
    -c "INSERT INTO visits_2027 VALUES (3, '2027-04-01', 'after restore')" \
    -c "SELECT count(*) FROM safeguard.audit_log WHERE table_name = 'visits_2027' AND record_id ->> 'id' = '3'" | tail -1)
[ "$logged" = 1 ] || die "a write into a restored partition was not logged"
echo "restored: $(head -1 <<<"$after"); a write into a restored partition is logged"
