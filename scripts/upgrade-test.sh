#!/usr/bin/env bash
# ALTER EXTENSION pg_safeguard UPDATE from every kept release (sql/pg_safeguard--X.Y.Z.sql) to
# the current version, with the current library installed:
#  1. the catalog of an updated extension equals a fresh install's: pg_dump --binary-upgrade
#     --schema-only lists every member object of the extension (functions with their bodies,
#     types, operators, casts, tables, views, policies, triggers, grants, comments); only object
#     OIDs may differ, and those lines are left out;
#  2. a database built with the old release (tests/upgrade/state.sql) is served by the new
#     library after a server restart, before the update; the update keeps every row, the audit
#     chain verifies, every envelope decrypts, isolation holds (tests/upgrade/check.sql prints
#     the same report before and after);
#  3. the same report after a pg_dump/pg_restore of the updated database; then isolation, audit
#     and lint keep working in both (tests/upgrade/after.sql);
#  4. the way back, where a downgrade script exists (pg_safeguard--CURRENT--X.Y.Z.sql): a fresh
#     install taken back equals a fresh install of the old release, and the updated database
#     taken back prints the old report again (and goes forward once more).
source "$(dirname "$0")/common.sh"
current=$(awk -F'"' '/^version *=/ { print $2; exit }' "$ROOT/Cargo.toml")
mapfile -t releases < <(cd "$ROOT/sql" && ls pg_safeguard--*.sql | grep -v -- '--.*--' \
                          | sed 's/^pg_safeguard--//; s/\.sql$//' | sort -V)
[ ${#releases[@]} -gt 0 ] || die "no kept release script in sql/"
PSQL_Q=("$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1)

# The extension's member objects as pg_dump --binary-upgrade prints them, without OIDs and
# without the slots of dropped columns: going back to 0.1.0 drops the audit log's token columns,
# whose places PostgreSQL keeps in the table (pg_dump --binary-upgrade recreates them as dummy
# columns, dropped again, in a form that differs between majors); they hold nothing and no
# query sees them.
members() {
    "$PG_BINDIR/pg_dump" --schema-only --binary-upgrade --no-owner -d "$1" \
        | grep -v -e 'binary_upgrade_set_next_' -e 'binary_upgrade_create_empty_extension' \
                  -e 'relfrozenxid' -e "^WHERE oid = '[0-9]*';$" \
                  -e '^\\restrict' -e '^\\unrestrict' -e '^--' -e '^$' \
        | perl -0pe 's/,\n\s*"\.+pg\.dropped\.\d+\.+" INTEGER \/\* dummy \*\///g;
                    s/UPDATE pg_catalog\.pg_attribute\n[^;]*pg\.dropped[^;]*;\n//g;
                    s/ALTER TABLE ONLY [^\n]* DROP COLUMN "\.+pg\.dropped\.\d+\.+";\n//g'
}

# same_catalog VERSION HOW...: a fresh install of VERSION, and one made by the statements HOW
# (CREATE EXTENSION ..., ALTER EXTENSION ... UPDATE ...), must list the same member objects.
same_catalog() {
    local version=$1 diff_file="$ROOT/target/upgrade-catalog.diff" step
    shift
    fresh_database safeguard_up_fresh safeguard_up_updated
    "${PSQL_Q[@]}" -d safeguard_up_fresh -c "CREATE EXTENSION pg_safeguard VERSION '$version'"
    for step in "$@"; do "${PSQL_Q[@]}" -d safeguard_up_updated -c "$step"; done
    if ! diff <(members safeguard_up_fresh) <(members safeguard_up_updated) > "$diff_file"; then
        cat "$diff_file" >&2
        die "the catalog after: $* differs from a fresh $version install (< fresh, > the other way)"
    fi
}

for from in "${releases[@]}"; do
    [ "$from" != "$current" ] || continue
    say "upgrade: pg_safeguard $from -> $current"

    same_catalog "$current" "CREATE EXTENSION pg_safeguard VERSION '$from'" "ALTER EXTENSION pg_safeguard UPDATE"
    echo "catalog: $(members safeguard_up_fresh | grep -c 'ALTER EXTENSION pg_safeguard ADD') member objects, identical after the update from $from"

    fresh_database safeguard_up_data safeguard_up_restored
    "${PSQL_Q[@]}" -d safeguard_up_data -c "CREATE EXTENSION pg_safeguard VERSION '$from'"
    "${PSQL_Q[@]}" -d safeguard_up_data -f "$ROOT/tests/upgrade/state.sql" >/dev/null
    # A server restart with the new library, the database still at the old version.
    "$ROOT/scripts/cluster.sh" stop && "$ROOT/scripts/cluster.sh" start
    before=$("${PSQL_Q[@]}" -d safeguard_up_data -f "$ROOT/tests/upgrade/check.sql")
    "${PSQL_Q[@]}" -d safeguard_up_data -c "ALTER EXTENSION pg_safeguard UPDATE"
    version=$("${PSQL_Q[@]}" -At -d safeguard_up_data -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_safeguard'")
    [ "$version" = "$current" ] || die "ALTER EXTENSION UPDATE left version $version"
    after=$("${PSQL_Q[@]}" -d safeguard_up_data -f "$ROOT/tests/upgrade/check.sql")
    if [ "$before" != "$after" ]; then
        diff <(echo "$before") <(echo "$after") >&2 || true
        die "the database differs after ALTER EXTENSION UPDATE from $from (< before, > after)"
    fi
    grep -q '^verify|t|' <<<"$after" || die "audit_verify() fails after the update: $(grep '^verify' <<<"$after")"
    echo "data: served by the new library at $from, then every row, the audit chain (verified), envelopes (decrypting) and isolation unchanged by the update"

    dump="$ROOT/target/safeguard_up_data.dump"
    "$PG_BINDIR/pg_dump" --format=custom --file="$dump" safeguard_up_data
    "$PG_BINDIR/pg_restore" --exit-on-error --dbname=safeguard_up_restored "$dump"
    restored=$("${PSQL_Q[@]}" -d safeguard_up_restored -f "$ROOT/tests/upgrade/check.sql")
    if [ "$before" != "$restored" ]; then
        diff <(echo "$before") <(echo "$restored") >&2 || true
        die "the updated database differs after pg_dump/pg_restore (< before, > restored)"
    fi
    for db in safeguard_up_data safeguard_up_restored; do
        "${PSQL_Q[@]}" -d "$db" -f "$ROOT/tests/upgrade/after.sql" >/dev/null
    done
    echo "dump/restore: the updated database restores to the same report; isolation, audit and lint work in both"

    [ -f "$ROOT/sql/pg_safeguard--$current--$from.sql" ] || continue
    same_catalog "$from" "CREATE EXTENSION pg_safeguard" "ALTER EXTENSION pg_safeguard UPDATE TO '$from'"
    # The data database: a fresh one at the old release, updated, used by after.sql, taken back.
    fresh_database safeguard_up_data
    "${PSQL_Q[@]}" -d safeguard_up_data -c "CREATE EXTENSION pg_safeguard VERSION '$from'"
    "${PSQL_Q[@]}" -d safeguard_up_data -f "$ROOT/tests/upgrade/state.sql" >/dev/null
    before=$("${PSQL_Q[@]}" -d safeguard_up_data -f "$ROOT/tests/upgrade/check.sql")
    "${PSQL_Q[@]}" -d safeguard_up_data -c "ALTER EXTENSION pg_safeguard UPDATE" \
                   -c "ALTER EXTENSION pg_safeguard UPDATE TO '$from'"
    back=$("${PSQL_Q[@]}" -d safeguard_up_data -f "$ROOT/tests/upgrade/check.sql")
    if [ "$before" != "$back" ]; then
        diff <(echo "$before") <(echo "$back") >&2 || true
        die "the database differs after going to $current and back to $from (< before, > back)"
    fi
    "${PSQL_Q[@]}" -d safeguard_up_data -c "ALTER EXTENSION pg_safeguard UPDATE"
    # A rule only the current version makes (a tenant-scoped foreign key) can still be undone.
    fresh_database safeguard_up_rules
    undone=$("${PSQL_Q[@]}" -At -d safeguard_up_rules <<SQL
CREATE EXTENSION pg_safeguard;
CREATE TABLE parent (id int PRIMARY KEY, tenant_id uuid NOT NULL);
CREATE TABLE child (id int PRIMARY KEY, tenant_id uuid NOT NULL, parent_id int REFERENCES parent);
SELECT safeguard.isolate('parent') IS NULL, safeguard.isolate('child') IS NULL;
SELECT safeguard.scope_foreign_key('child', 'child_parent_id_fkey') IS NOT NULL;
ALTER EXTENSION pg_safeguard UPDATE TO '$from';
SELECT safeguard.drop_rule('child', 'child_parent_id_fkey') IS NOT NULL;
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'child_parent_id_fkey';
SQL
)
    grep -qx 'FOREIGN KEY (parent_id) REFERENCES parent(id)' <<<"$undone" \
        || die "after going back to $from, drop_rule() did not restore a scoped foreign key: $undone"
    # Entries sealed by the current version, taken back: chained again the old way, verifying;
    # and a tampered chain is not taken back at all.
    fresh_database safeguard_up_chain
    rechained=$("${PSQL_Q[@]}" -At -d safeguard_up_chain <<SQL
CREATE EXTENSION pg_safeguard VERSION '$from';
CREATE TABLE visits (id int PRIMARY KEY);
SELECT count(*) FROM (SELECT safeguard.enable_audit('visits')) e;
INSERT INTO visits SELECT generate_series(1, 10);
SELECT safeguard.audit_seal();
ALTER EXTENSION pg_safeguard UPDATE;
INSERT INTO visits SELECT generate_series(11, 30);
SELECT safeguard.audit_seal();
SELECT count(*) FROM safeguard.audit_chain_blocks;
ALTER EXTENSION pg_safeguard UPDATE TO '$from';
SELECT count(*) FROM safeguard.audit_chain;
SELECT ok, rows_checked FROM safeguard.audit_verify();
SQL
)
    [ "$(tr '\n' ' ' <<<"$rechained")" = "1 10 20 1 30 t|30 " ] \
        || die "going back to $from did not chain the blocks' entries again: $rechained"
    refused=$("${PSQL_Q[@]}" -At -d safeguard_up_chain 2>&1 <<SQL || true
ALTER EXTENSION pg_safeguard UPDATE;
INSERT INTO visits SELECT generate_series(31, 40);
SELECT safeguard.audit_seal();
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_log SET new_data = '{"id": -1}' WHERE record_id = '{"id": 35}';
ALTER EXTENSION pg_safeguard UPDATE TO '$from';
SQL
)
    grep -q "the audit chain does not verify" <<<"$refused" || die "going back to $from with a tampered chain was not refused: $refused"
    echo "downgrade: $current back to $from gives a fresh $from catalog and the same data; forward again works; $current's rules can still be undone; entries sealed in blocks are chained again the $from way (verifying), and a tampered chain is not taken back"
done
