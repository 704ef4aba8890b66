#!/usr/bin/env bash
# pg_upgrade from PostgreSQL OLD to NEW (usage: pg-upgrade-test.sh OLD NEW) with pg_safeguard
# installed in both: the upgrade fixture (tests/upgrade/state.sql: safeguard.ulid columns,
# envelopes under several tenant keys, the audit log and its chain, registries, policies,
# triggers) and the demo database are built in a cluster of OLD, the cluster is upgraded, and in
# NEW the fixture prints the same report (tests/upgrade/check.sql: every row, the verified chain,
# decrypting envelopes, isolation), then keeps working (tests/upgrade/after.sql); the demo's lint
# summary and audit verification are unchanged. Both clusters are throwaway, under
# target/pg-upgrade, with their own ports.
source "$(dirname "$0")/common.sh"
old=${1:?usage: pg-upgrade-test.sh OLD NEW}
new=${2:?usage: pg-upgrade-test.sh OLD NEW}
say "pg_upgrade: PostgreSQL $old -> $new with pg_safeguard"
work=$(dirname "$STATE_DIR")/pg-upgrade
old_bin=$(pg_bindir "$old")
new_bin=$(pg_bindir "$new")
old_port=$((PG_PORT + 20))
new_port=$((PG_PORT + 21))
sockets=$work/run
rm -rf "$work"
make_run_user_dir "$work"
make_run_user_dir "$sockets"
key_file=$work/master.key
make_master_key "$key_file"
for side in old new; do
    bin=$([ $side = old ] && echo "$old_bin" || echo "$new_bin")
    # Data checksums on both sides: PostgreSQL 18 initdb enables them by default, older ones do not.
    as_run_user "$bin/initdb" -D "$work/$side" --username="$RUN_USER" --auth=trust --encoding=UTF8 --data-checksums \
        --locale=C.UTF-8 >/dev/null
    printf "safeguard.master_key_file = '%s'\nlisten_addresses = ''\nunix_socket_directories = '%s'\n" \
        "$key_file" "$sockets" | as_run_user tee -a "$work/$side/postgresql.conf" >/dev/null
done
pg_ctl_of() { as_run_user "$1/pg_ctl" -D "$2" -l "$2.log" -w -t 60 -o "-p $3" "${@:4}" >/dev/null; }
cleanup() {
    as_run_user "$old_bin/pg_ctl" -D "$work/old" -m fast stop >/dev/null 2>&1 || true
    as_run_user "$new_bin/pg_ctl" -D "$work/new" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The databases, in OLD.
pg_ctl_of "$old_bin" "$work/old" "$old_port" start
psql_old=("$old_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockets" -p "$old_port")
"${psql_old[@]}" -d postgres -c "CREATE DATABASE fixture" -c "CREATE DATABASE demo"
"${psql_old[@]}" -d fixture -c "CREATE EXTENSION pg_safeguard" -f "$ROOT/tests/upgrade/state.sql" >/dev/null
"${psql_old[@]}" -d demo -c "CREATE EXTENSION pg_safeguard" -f "$ROOT/examples/clinic.sql" >/dev/null
demo_report='SELECT level, findings FROM safeguard.lint_summary(); SELECT ok, rows_checked FROM safeguard.audit_verify();
             SELECT count(*) FROM safeguard.audit_log; SELECT count(*) FROM appointments a JOIN appointments b ON a.id = b.id;'
before=$("${psql_old[@]}" -d fixture -f "$ROOT/tests/upgrade/check.sql")
demo_before=$("${psql_old[@]}" -At -d demo -c "$demo_report")
# PostgreSQL 15.20 (Debian 12's) stores a column option pg_attver on every column of every
# table, which the newest 18 build to be had here (18.6) does not know: pg_upgrade fails
# restoring the first table, with or without pg_safeguard (docs/upgrading.md). The option is not
# pg_safeguard's; it is removed from the old cluster's catalog before the upgrade.
for db in postgres template1 fixture demo; do
    "${psql_old[@]}" -d "$db" -c "UPDATE pg_catalog.pg_attribute
        SET attoptions = nullif(array(SELECT o FROM unnest(attoptions) o WHERE o NOT LIKE 'pg\_attver=%'), '{}')
        WHERE attoptions::text LIKE '%pg\_attver=%'" >/dev/null
done
pg_ctl_of "$old_bin" "$work/old" "$old_port" stop

# The upgrade (pg_upgrade writes its logs into the new cluster's directory).
(cd "$work" && as_run_user "$new_bin/pg_upgrade" --old-bindir="$old_bin" --new-bindir="$new_bin" \
    --old-datadir="$work/old" --new-datadir="$work/new" --old-port="$old_port" --new-port="$new_port" \
    --socketdir="$sockets" --username="$RUN_USER") > "$work/pg_upgrade.out" 2>&1 \
    || { tail -30 "$work/pg_upgrade.out" >&2; die "pg_upgrade failed (log above, more in $work/new)"; }
echo "pg_upgrade: $(grep -c '^Checking\|ok$' "$work/pg_upgrade.out") checks passed, cluster upgraded to $new"

# The same databases, in NEW.
pg_ctl_of "$new_bin" "$work/new" "$new_port" start
psql_new=("$new_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockets" -p "$new_port")
after=$("${psql_new[@]}" -d fixture -f "$ROOT/tests/upgrade/check.sql")
if [ "$before" != "$after" ]; then
    diff <(echo "$before") <(echo "$after") >&2 || true
    die "the fixture differs after pg_upgrade (< $old, > $new)"
fi
grep -q '^verify|t|' <<<"$after" || die "audit_verify() fails after pg_upgrade"
"${psql_new[@]}" -d fixture -f "$ROOT/tests/upgrade/after.sql" >/dev/null
demo_after=$("${psql_new[@]}" -At -d demo -c "$demo_report")
if [ "$demo_before" != "$demo_after" ]; then
    diff <(echo "$demo_before") <(echo "$demo_after") >&2 || true
    die "the demo database differs after pg_upgrade (< $old, > $new)"
fi
echo "pg_upgrade: every row, the verified audit chain, decrypting envelopes, isolation, ulid keys and lint as before; isolation, audit and encryption keep working in $new"
