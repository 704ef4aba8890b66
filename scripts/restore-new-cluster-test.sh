#!/usr/bin/env bash
# An audit log restored into ANOTHER cluster (a fresh initdb, as when a database moves to a new
# server with pg_dump): that cluster numbers its transactions from the start again, far below the
# restored seals' horizons. The chain must still verify, the entries unsealed at dump time must be
# sealed by the next seal, the new cluster's entries must be sealed after them (its transaction
# numbers are offset above every restored one: safeguard.audit_eras), and an entry written around
# the triggers with the new cluster's bare transaction number must still be reported.
#
# The source is this major's throwaway cluster (pushed a few thousand transactions ahead of a
# fresh one); the target a second throwaway cluster of the same installation, on its own port
# and socket, removed at the end.
source "$(dirname "$0")/common.sh"
say "dump and restore into a new cluster: the audit chain goes on"
SRC=safeguard_era_src
TARGET_DIR=$STATE_DIR-restore-target
TARGET_PORT=$((PG_PORT + 200))
TARGET_SOCKET=$TARGET_DIR/run
dump="$ROOT/target/safeguard_era_src.dump"

target_ctl() { as_run_user "$PG_BINDIR/pg_ctl" -D "$TARGET_DIR/data" "$@"; }
cleanup() {
    target_ctl -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$TARGET_DIR"
}
trap cleanup EXIT
cleanup

fresh_database "$SRC"
"${PSQL[@]}" -q -d "$SRC" >/dev/null <<'SQL'
CREATE EXTENSION pg_safeguard;
CREATE TABLE visits (id int PRIMARY KEY, note text);
SELECT safeguard.enable_audit('visits');
INSERT INTO visits SELECT n, 'sealed ' || n FROM generate_series(1, 100) n;
-- Move this cluster's transaction numbers well ahead of a freshly made cluster's.
DO $$ BEGIN FOR i IN 1..3000 LOOP PERFORM pg_catalog.txid_current(); COMMIT; END LOOP; END $$;
SELECT safeguard.audit_seal();
INSERT INTO visits SELECT n, 'unsealed at dump time ' || n FROM generate_series(101, 150) n;
SQL
"$PG_BINDIR/pg_dump" --format=custom --file="$dump" "$SRC"

make_run_user_dir "$TARGET_DIR"
as_run_user "$PG_BINDIR/initdb" -D "$TARGET_DIR/data" --username="$RUN_USER" --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >/dev/null
make_run_user_dir "$TARGET_SOCKET"
target_ctl -l "$TARGET_DIR/server.log" -w -t 60 \
    -o "-p $TARGET_PORT -k $TARGET_SOCKET -c listen_addresses=''" start >/dev/null \
    || { tail -20 "$TARGET_DIR/server.log" >&2; die "the target cluster did not start"; }
TPSQL=("$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 -h "$TARGET_SOCKET" -p "$TARGET_PORT" -U "$RUN_USER")
"${TPSQL[@]}" -q -d postgres -c "CREATE DATABASE restored"
"$PG_BINDIR/pg_restore" --exit-on-error -h "$TARGET_SOCKET" -p "$TARGET_PORT" -U "$RUN_USER" \
    --dbname=restored "$dump"

report=$("${TPSQL[@]}" -q -At -d restored <<'SQL'
SELECT 'behind', pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())
                 < (SELECT max(horizon) FROM safeguard.audit_seals);
SELECT 'restored', ok, rows_checked FROM safeguard.audit_verify();
BEGIN;
INSERT INTO visits VALUES (1000, 'written in the new cluster');
UPDATE visits SET note = 'changed in the new cluster' WHERE id = 1;
COMMIT;
SELECT 'offset', count(*), max(txid_offset) > 0 FROM safeguard.audit_eras;
SELECT 'ordered', min(l.txid) > (SELECT max(o.txid) FROM safeguard.audit_log o WHERE o.id <> ALL (
           SELECT n.id FROM safeguard.audit_log n WHERE n.new_data->>'note' LIKE '%new cluster'))
  FROM safeguard.audit_log l WHERE l.new_data->>'note' LIKE '%new cluster';
SELECT 'sealed', safeguard.audit_seal();
SELECT 'verified', ok, rows_checked FROM safeguard.audit_verify();
SELECT 'unsealed', count(*) FROM safeguard.audit_log
 WHERE txid >= (SELECT max(horizon) FROM safeguard.audit_seals);
BEGIN;
INSERT INTO safeguard.audit_log (db_user, table_schema, table_name, operation, txid)
VALUES (current_user, 'public', 'visits', 'DELETE', pg_catalog.txid_current() - 1);
SELECT 'forged', ok, detail LIKE '%inserted out of band' FROM safeguard.audit_verify();
ROLLBACK;
SQL
)
echo "$report"
expect() { grep -qx "$1" <<<"$report" || die "restored into a new cluster: expected '$1'"; }
expect "behind|t"
expect "restored|t|100"
expect "offset|2|t"
expect "ordered|t"
expect "sealed|52"
expect "verified|t|152"
expect "unsealed|0"
expect "forged|f|t"
echo "restored into a new cluster: the chain verifies, the dump's unsealed entries and the new cluster's are sealed after the restored ones, a forgery with the new cluster's bare transaction number is found"
