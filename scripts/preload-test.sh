#!/usr/bin/env bash
# pg_safeguard in shared_preload_libraries (the recommended set-up, docs/install.md): every
# safeguard.* setting is known from a connection's first statement (SHOW works), lint no longer
# reports library_not_preloaded, and the hook that keeps row values out of sg_ rule violations
# works in a session that has not called into the extension at all. The golden tests run without
# preloading (tests/sql/fresh_session.sql covers that path); this test sets it, restarts the
# throwaway cluster, and puts the default back (and restarts again) when it ends.
source "$(dirname "$0")/common.sh"
DB=safeguard_preload
say "shared_preload_libraries = 'pg_safeguard'"

restart() { "$ROOT/scripts/cluster.sh" stop; "$ROOT/scripts/cluster.sh" start; }
cleanup() {
    "${PSQL[@]}" -q -c "ALTER SYSTEM RESET shared_preload_libraries" >/dev/null
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
