#!/usr/bin/env bash
# The audit hash chain: audit_seal() and audit_verify() over 1,000,000 entries (Rust, in blocks),
# against 0.1.0's PL/pgSQL loops, one link per entry (benches/baselines/audit_chain_plpgsql.py
# prints them from the kept 0.1.0 install script, writing into copies of the chain tables), on
# the same entries.
#
# Per round: the extension created afresh in its own database (the log is append-only: a new
# chain needs a new log), 1,000,000 audited single-column-change rows written by one INSERT ...
# SELECT, then timed (psql \timing, server-side work only): audit_seal(), audit_verify(), the
# PL/pgSQL seal into the copy, the PL/pgSQL verify of it. Rounds: BENCH_CHAIN_ROUNDS (3);
# entries: BENCH_CHAIN_ENTRIES (1,000,000). Medians. Two modes (BENCH_CHAIN_MODES): the
# throwaway cluster's default settings, then CPU-bound (benches/cpu_bound.sh).
source "$(dirname "$0")/../scripts/common.sh"
DB=safeguard_bench_chain
ROUNDS=${BENCH_CHAIN_ROUNDS:-3}
MODES=${BENCH_CHAIN_MODES:-default cpu-bound}
ENTRIES=${BENCH_CHAIN_ENTRIES:-1000000}

# ms TEXT: the milliseconds of the last "Time: N ms" line psql printed.
ms() { grep -o 'Time: [0-9.]* ms' <<<"$1" | tail -1 | awk '{print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# rounds LABEL: the rounds, then the medians under LABEL.
rounds() {
    local label=$1 round out both
    local -a seal=() verify=() plseal=() plverify=()
    for round in $(seq "$ROUNDS"); do
        fresh_database "$DB"
        "${PSQL[@]}" -q -d "$DB" -v entries="$ENTRIES" -f - >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION pg_safeguard;
CREATE TABLE chained (id bigserial PRIMARY KEY, tenant_id uuid, a text, b int, c timestamptz);
SELECT safeguard.enable_audit('chained');
SELECT safeguard.set_context('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-0000000000a1', NULL, 'bench');
INSERT INTO chained (tenant_id, a, b, c)
SELECT '00000000-0000-4000-8000-000000000001', 'hello ' || n, n, now() FROM generate_series(1, :entries) n;
SQL
        python3 "$ROOT/benches/baselines/audit_chain_plpgsql.py" | "${PSQL[@]}" -q -d "$DB" -f - >/dev/null
        "${PSQL[@]}" -q -d "$DB" -c "VACUUM ANALYZE safeguard.audit_log" >/dev/null
        out=$("${PSQL[@]}" -d "$DB" -c '\timing on' -c 'SELECT safeguard.audit_seal()')
        seal+=("$(ms "$out")")
        out=$("${PSQL[@]}" -d "$DB" -c '\timing on' -c 'SELECT ok, rows_checked FROM safeguard.audit_verify()')
        grep -q " t  *| *$ENTRIES" <<<"$out" || { echo "$out"; die "audit_verify() did not verify $ENTRIES entries"; }
        verify+=("$(ms "$out")")
        out=$("${PSQL[@]}" -d "$DB" -c '\timing on' -c 'SELECT bench_plpgsql_seal()')
        plseal+=("$(ms "$out")")
        out=$("${PSQL[@]}" -d "$DB" -c '\timing on' -c 'SELECT ok, rows_checked FROM bench_plpgsql_verify()')
        plverify+=("$(ms "$out")")
        # Both sealed every entry (that the blocks list each entry's hash of the same encoding
        # is checked by the golden test, tests/sql/audit_chain.sql).
        both=$("${PSQL[@]}" -At -d "$DB" -c "SELECT (SELECT sum(octet_length(hashes) / 56) FROM safeguard.audit_chain_blocks)::text || ' ' || (SELECT count(*) FROM bench_chain)")
        [ "$both" = "$ENTRIES $ENTRIES" ] || die "the two chains do not both hold $ENTRIES entries: $both"
        echo "$label, round $round: seal ${seal[-1]} ms (PL/pgSQL ${plseal[-1]} ms), verify ${verify[-1]} ms (PL/pgSQL ${plverify[-1]} ms)"
    done
    "${PSQL[@]}" -q -c "DROP DATABASE IF EXISTS $DB" >/dev/null
    local s v ps pv
    s=$(printf '%s\n' "${seal[@]}" | median); v=$(printf '%s\n' "${verify[@]}" | median)
    ps=$(printf '%s\n' "${plseal[@]}" | median); pv=$(printf '%s\n' "${plverify[@]}" | median)
    awk -v n="$ENTRIES" -v label="$label" -v s="$s" -v v="$v" -v ps="$ps" -v pv="$pv" 'BEGIN {
        printf "%-48s %12s %12s %10s\n", "audit chain, " n " entries, " label, "pg_safeguard", "PL/pgSQL", "speed-up"
        printf "%-48s %10.2f s %10.2f s %9.1fx\n", "audit_seal()", s / 1000, ps / 1000, ps / s
        printf "%-48s %10.2f s %10.2f s %9.1fx\n", "audit_verify()", v / 1000, pv / 1000, pv / v
    }'
}

[[ " $MODES " == *" default "* ]] && rounds "default settings"
if [[ " $MODES " == *" cpu-bound "* ]]; then
    source "$ROOT/benches/cpu_bound.sh"
    trap leave_cpu_bound EXIT
    enter_cpu_bound
    rounds "CPU-bound"
fi
