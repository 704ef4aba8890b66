#!/usr/bin/env bash
# maintain_count on a logical replication subscriber. The publisher replicates the parents (with
# their counters) and the children; the subscriber has the same counter set up. Its counters must
# equal the publisher's after the initial table sync and after streamed changes: the workers of a
# subscriber run as session_replication_role = replica, where the counter's triggers (enabled like
# foreign-key triggers) do not fire, so nothing is counted twice and no commit of the apply worker
# is refused (the apply worker fires row triggers only, never statement triggers).
#
# Needs wal_level = logical: the test sets it, restarts the throwaway cluster, and puts the
# default back (and restarts again) when it ends, so that benchmarks keep default settings.
source "$(dirname "$0")/common.sh"
PUB=safeguard_repl_pub
SUB=safeguard_repl_sub
say "maintain_count on a logical replication subscriber"

restart() { "$ROOT/scripts/cluster.sh" stop; "$ROOT/scripts/cluster.sh" start; }
cleanup() {
    "${PSQL[@]}" -q -d "$SUB" -c "DROP SUBSCRIPTION IF EXISTS safeguard_repl" >/dev/null 2>&1
    "${PSQL[@]}" -q -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'safeguard_repl'" >/dev/null 2>&1
    "${PSQL[@]}" -q -c "ALTER SYSTEM RESET wal_level" >/dev/null
    restart
}
"${PSQL[@]}" -q -c "ALTER SYSTEM SET wal_level = logical" >/dev/null
restart
trap cleanup EXIT

schema="
CREATE EXTENSION pg_safeguard;
CREATE TABLE organizations (id int PRIMARY KEY, member_count int NOT NULL DEFAULT 0);
CREATE TABLE members (id int PRIMARY KEY, organization_id int NOT NULL REFERENCES organizations, deleted_at timestamptz);
SELECT safeguard.maintain_count('organizations', 'member_count', 'members', 'organization_id', 'deleted_at IS NULL');"
fresh_database "$PUB" "$SUB"
for db in "$PUB" "$SUB"; do
    "${PSQL[@]}" -q -d "$db" -c "$schema" >/dev/null
done
"${PSQL[@]}" -q -d "$PUB" >/dev/null <<'SQL'
INSERT INTO organizations SELECT n FROM generate_series(1, 4) n;
INSERT INTO members SELECT n, n % 4 + 1 FROM generate_series(1, 100) n;
CREATE PUBLICATION safeguard_repl FOR TABLE organizations, members;
SELECT pg_create_logical_replication_slot('safeguard_repl', 'pgoutput');
SQL
# Publisher and subscriber share this cluster: the slot is made above, not by CREATE SUBSCRIPTION.
"${PSQL[@]}" -q -d "$SUB" -c "CREATE SUBSCRIPTION safeguard_repl
    CONNECTION 'host=$SOCKET_DIR port=$PG_PORT dbname=$PUB user=$RUN_USER'
    PUBLICATION safeguard_repl WITH (create_slot = false, slot_name = 'safeguard_repl')" >/dev/null

counters() { "${PSQL[@]}" -At -d "$1" -c "SELECT string_agg(id || ':' || member_count, ' ' ORDER BY id) FROM organizations"; }
wait_until_equal() {
    local want
    want=$(counters "$PUB")
    for _ in $(seq 1 120); do
        [ "$(counters "$SUB")" = "$want" ] && [ "$("${PSQL[@]}" -At -d "$SUB" -c "SELECT count(*) FROM members")" = \
            "$("${PSQL[@]}" -At -d "$PUB" -c "SELECT count(*) FROM members")" ] && return 0
        sleep 0.5
    done
    echo "publisher:  $want" >&2
    echo "subscriber: $(counters "$SUB")" >&2
    grep -E 'ERROR' "$SERVER_LOG" | tail -5 >&2
    die "$1"
}
wait_until_equal "after the initial table sync the subscriber's counters differ from the publisher's"
echo "initial sync: counters $(counters "$SUB") on both sides"
changes() {
    "${PSQL[@]}" -q -d "$PUB" >/dev/null <<SQL
INSERT INTO members SELECT n, n % 4 + 1 FROM generate_series($1, $1 + 59) n;
UPDATE members SET deleted_at = now() WHERE id % 10 = 0 AND deleted_at IS NULL;
UPDATE members SET organization_id = 1 WHERE id BETWEEN $1 AND $1 + 7;
DELETE FROM members WHERE id % 7 = 0;
SQL
}
exact() {
    "${PSQL[@]}" -At -d "$SUB" -c "SELECT bool_and(o.member_count = (SELECT count(*) FROM members m
                                     WHERE m.organization_id = o.id AND m.deleted_at IS NULL)) FROM organizations o"
}
changes 101
wait_until_equal "after streamed changes the subscriber's counters differ from the publisher's"
[ "$(exact)" = t ] || die "the subscriber's counters are not the true counts"
echo "streamed changes: counters $(counters "$SUB") on both sides, equal to count(*)"
# A subscriber whose DBA made the counter's triggers fire ALWAYS: the apply worker now fires the
# row triggers (never the statement trigger); their deltas are dropped at its commit instead of
# refusing it, and the counters still come from the publisher.
"${PSQL[@]}" -q -d "$SUB" -c "DO \$\$
DECLARE t name;
BEGIN
    FOR t IN SELECT tgname FROM pg_trigger WHERE tgrelid = 'members'::regclass AND tgname LIKE 'sg_count%' LOOP
        EXECUTE format('ALTER TABLE members ENABLE ALWAYS TRIGGER %I', t);
    END LOOP;
END \$\$"
changes 201
wait_until_equal "with ALWAYS triggers on the subscriber its counters differ from the publisher's (or its apply worker failed)"
[ "$(exact)" = t ] || die "the subscriber's counters are not the true counts"
echo "with the triggers ALWAYS on the subscriber: counters $(counters "$SUB") on both sides, no apply error"
