#!/usr/bin/env bash
# pg_safeguard in shared_preload_libraries (the recommended set-up, docs/install.md): every
# safeguard.* setting is known from a connection's first statement (SHOW works), lint no longer
# reports library_not_preloaded, and the hook that keeps row values out of sg_ rule violations
# works in a session that has not called into the extension at all. The golden tests run without
# preloading (tests/sql/fresh_session.sql covers that path); this test sets it, restarts the
# throwaway cluster, and puts the default back (and restarts again) when it ends.
# Then the master key from safeguard.master_key_command instead of the file: the postmaster runs
# the command once at start and every backend uses its key (the demo and the dump/restore round
# trip run with it); a command that fails at start is a WARNING, and an error at first use.
source "$(dirname "$0")/common.sh"
DB=safeguard_preload
say "shared_preload_libraries = 'pg_safeguard'"

restart() { "$ROOT/scripts/cluster.sh" stop; "$ROOT/scripts/cluster.sh" start; }
cleanup() {
    "${PSQL[@]}" -q -c "ALTER SYSTEM RESET shared_preload_libraries" -c "ALTER SYSTEM RESET safeguard.master_key_file" \
        -c "ALTER SYSTEM RESET safeguard.master_key_command" >/dev/null
    restart
}
"${PSQL[@]}" -q -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_safeguard'" >/dev/null
restart
trap cleanup EXIT

fresh_database "$DB"
"${PSQL[@]}" -q -d "$DB" >/dev/null <<'SQL'
CREATE EXTENSION pg_safeguard;
CREATE TABLE providers (id int PRIMARY KEY, npi text NOT NULL);
SELECT safeguard.require_unique('providers', ARRAY['npi']);
INSERT INTO providers VALUES (1, '1234567893');
SQL

# Each check in a new connection whose first statement it is.
first_statement() { "$PG_BINDIR/psql" -X -At -d "$DB" -c "$1" 2>&1; }
settings=$(first_statement "SELECT string_agg(name, ' ' ORDER BY name) FROM pg_settings WHERE name LIKE 'safeguard.%'")
for setting in audit_retention isolation_ddl_hook tenant_column tenant_setting actor_setting \
               tenant_id actor_id impersonator_id request_id master_key_file; do
    grep -qw "safeguard.$setting" <<<"$settings" || die "safeguard.$setting is not known in a new connection: $settings"
    out=$(first_statement "SHOW safeguard.$setting") || die "SHOW safeguard.$setting failed in a new connection: $out"
done
echo "preloaded: SHOW works for every setting from a connection's first statement ($(wc -w <<<"$settings") settings)"

[ "$(first_statement "SELECT safeguard._preloaded()")" = t ] || die "_preloaded() is not true"
findings=$(first_statement "SELECT count(*) FROM safeguard.lint() WHERE rule = 'library_not_preloaded'")
[ "$findings" = 0 ] || die "lint still reports library_not_preloaded"
echo "preloaded: lint no longer reports library_not_preloaded"

violation=$("$PG_BINDIR/psql" -X -d "$DB" -c "INSERT INTO providers VALUES (2, '1234567893')" 2>&1 || true)
grep -q "sg_unique_providers_npi" <<<"$violation" || die "the violation does not name the rule: $violation"
if grep -q "1234567893" <<<"$violation"; then
    die "a violation in a session's first statement shows the row's value: $violation"
fi
echo "preloaded: a rule violation as a session's first statement names the rule, not the value"

# The master key from a command, run once by the postmaster. The command notes each run.
runs="$STATE_DIR/key-command-runs"
as_run_user sh -c ': > "$1"' sh "$runs"
log_lines_before=$(wc -l < "$SERVER_LOG")
"${PSQL[@]}" -q -c "ALTER SYSTEM SET safeguard.master_key_file = ''" \
    -c "ALTER SYSTEM SET safeguard.master_key_command = 'echo run >> $runs; cat $MASTER_KEY_FILE'" >/dev/null
restart
tail -n +"$((log_lines_before + 1))" "$SERVER_LOG" | grep -q "master key was obtained from safeguard.master_key_command at server start" \
    || die "the postmaster did not log that it obtained the master key from the command"
"$ROOT/scripts/demo.sh" >/dev/null
"$ROOT/scripts/dump-test.sh"
# Three more sessions decrypt the demo's medical histories with the key the postmaster holds.
decrypt_one_tenant() {
    "$PG_BINDIR/psql" -X -At -v ON_ERROR_STOP=1 -d safeguard_demo 2>&1 <<'SQL'
BEGIN;
SELECT safeguard.set_context((SELECT organization_id FROM patients WHERE medical_history IS NOT NULL LIMIT 1)) IS NULL;
SELECT count(safeguard.decrypt(medical_history)) FROM patients WHERE organization_id = safeguard.current_tenant();
COMMIT;
SQL
}
for _ in 1 2 3; do
    out=$(decrypt_one_tenant) || die "decrypting with the key obtained at server start failed: $out"
    grep -qx '[1-9][0-9]*' <<<"$out" || die "no value decrypted with the key obtained at server start: $out"
done
[ "$(wc -l < "$runs")" = 1 ] || die "the key command ran $(wc -l < "$runs") times, not once at server start"
echo "preloaded: the master key command ran once, at server start; the demo and a dump/restore round trip used its key"

# A command that fails at start: the server starts with a WARNING (nothing the command printed in
# the log: scripts/key-leak-test.sh searches it), and a statement that needs a key fails.
log_lines_before=$(wc -l < "$SERVER_LOG")
"${PSQL[@]}" -q -c "ALTER SYSTEM SET safeguard.master_key_command = 'cat $MASTER_KEY_FILE; cat $MASTER_KEY_FILE >&2; exit 7'" >/dev/null
restart
tail -n +"$((log_lines_before + 1))" "$SERVER_LOG" | grep -q "WARNING:  safeguard.master_key_command failed" \
    || die "a failing key command at start gave no WARNING in the log"
failed=$(decrypt_one_tenant || true)
grep -q "exited with status 7" <<<"$failed" || die "a failing key command gave no clear error at first use: $failed"
echo "preloaded: a key command failing at start is a WARNING, the server starts, and first use says why"
