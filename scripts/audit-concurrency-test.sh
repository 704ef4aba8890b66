#!/usr/bin/env bash
# Audit under concurrency and a crash: several pgbench clients insert, update and delete audited
# rows, a tenth of their transactions roll back, and the server is stopped with
# `pg_ctl stop -m immediate` while they run. After the restart, the log must hold exactly one
# entry per committed row change (counted by a ledger the same transactions write) and none for
# rolled-back or crashed ones, and the sealed hash chain must verify.
source "$(dirname "$0")/common.sh"
DB=safeguard_concurrency
say "audit under concurrency and an immediate shutdown"
fresh_database "$DB"
"${PSQL[@]}" -q -d "$DB" >/dev/null <<'SQL'
CREATE EXTENSION pg_safeguard;
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);
-- Ground truth: the same transactions record each row change they make here, unaudited.
CREATE TABLE ledger (operation text NOT NULL, id int NOT NULL);
INSERT INTO accounts SELECT n, 0 FROM generate_series(1, 1000) n;
SELECT safeguard.enable_audit('accounts');
SQL
script=$(mktemp)
trap 'rm -f "$script"' EXIT
cat > "$script" <<'PGBENCH'
\set id random(1, 2000)
\set roll random(1, 10)
BEGIN;
WITH changed AS (UPDATE accounts SET balance = balance + 1 WHERE id = :id RETURNING id)
INSERT INTO ledger SELECT 'UPDATE', id FROM changed;
WITH added AS (INSERT INTO accounts VALUES (:id + 1, 0) ON CONFLICT DO NOTHING RETURNING id)
INSERT INTO ledger SELECT 'INSERT', id FROM added;
WITH removed AS (DELETE FROM accounts WHERE id = :id + 2 AND :roll > 5 RETURNING id)
INSERT INTO ledger SELECT 'DELETE', id FROM removed;
\if :roll = 1
ROLLBACK;
\else
COMMIT;
\endif
PGBENCH
chmod 644 "$script"

# Phase 1: a clean run, sealed and verified while the clients write.
"$PG_BINDIR/pgbench" -n -c 4 -j 2 -T 3 --max-tries=100 -f "$script" "$DB" >/dev/null 2>&1 &
bench=$!
for _ in 1 2 3; do
    sleep 0.8
    "${PSQL[@]}" -q -At -d "$DB" -c "SELECT safeguard.audit_seal()" >/dev/null
done
wait "$bench" || die "pgbench failed in the clean run"

# Phase 2: an immediate shutdown while four clients write.
"$PG_BINDIR/pgbench" -n -c 4 -j 2 -T 30 --max-tries=100 -f "$script" "$DB" >/dev/null 2>&1 &
bench=$!
sleep 2
as_run_user "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m immediate -w stop >/dev/null
wait "$bench" || true   # its connections were cut
"$ROOT/scripts/cluster.sh" start

"${PSQL[@]}" -At -d "$DB" <<'SQL' > "$ROOT/target/audit-concurrency.out"
SELECT safeguard.audit_seal() > 0;
WITH logged AS (
         SELECT operation, (record_id ->> 'id')::int AS id, count(*) AS n
           FROM safeguard.audit_log WHERE table_name = 'accounts' GROUP BY 1, 2),
     done AS (SELECT operation, id, count(*) AS n FROM ledger GROUP BY 1, 2)
SELECT format('%s changes committed, %s entries, %s mismatches',
              (SELECT sum(n) FROM done), (SELECT sum(n) FROM logged),
              (SELECT count(*) FROM logged FULL JOIN done USING (operation, id)
                WHERE logged.n IS DISTINCT FROM done.n));
SELECT format('verify: %s %s', ok, detail) FROM safeguard.audit_verify();
SQL
cat "$ROOT/target/audit-concurrency.out"
grep -q ' 0 mismatches$' "$ROOT/target/audit-concurrency.out" || die "audit entries do not match the committed changes"
grep -q '^verify: t ' "$ROOT/target/audit-concurrency.out" || die "audit_verify() failed after the crash"
