#!/usr/bin/env bash
# The audit trigger against no trigger and against a conventional PL/pgSQL audit trigger.
#
# Four copies of one table (id bigserial PRIMARY KEY, tenant_id uuid, name text, note text,
# counter int), 100,000 rows each: `plain` (no trigger), `rust` (safeguard.enable_audit),
# `plpgsql` (benches/baselines/audit_plpgsql.sql, same log rows into a copy of the log table) and
# `minimal` (benches/baselines/audit_minimal.sql: the issue's calibration trigger, to_jsonb(OLD)
# and to_jsonb(NEW) into an unindexed table, to compare this set-up with the issue's).
# pgbench, one client, simple protocol, single-row INSERT and single-row UPDATE (counter + 1 of a
# random row), 15 rounds of 1 s, variants interleaved; ratios of throughput within each round,
# medians. Then COPY of 100,000 rows into each table, 5 rounds, medians.
source "$(dirname "$0")/../scripts/common.sh"
DB=safeguard_bench
PGBENCH="$PG_BINDIR/pgbench"
SECONDS_PER_RUN=${BENCH_SECONDS:-1}
ROUNDS=${BENCH_ROUNDS:-15}
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
# BENCH_AUDIT_MODES: which set-ups run (both unless told).
MODES=${BENCH_AUDIT_MODES:-default cpu-bound}

# db_of VARIANT: the database a variant's table lives in (one unless a mode says otherwise).
db_of() { echo "$DB"; }

# pgbench_rounds RESULTS ROUNDS SCRIPT_PREFIX "VARIANTS" PGBENCH_OPTION...: single-row INSERT and
# UPDATE scripts ($work/SCRIPT_PREFIX{insert,update}.VARIANT.sql), variants interleaved within
# each round; appends "op variant round tps" lines to RESULTS.
pgbench_rounds() {
    local results=$1 rounds=$2 prefix=$3 variants=$4 round op variant out
    shift 4
    for round in $(seq 1 "$rounds"); do
        for op in insert update; do
            for variant in $variants; do
                out=$("$PGBENCH" "$@" -f "$work/$prefix$op.$variant.sql" "$(db_of "$variant")" 2>&1) \
                    || { echo "$out" >&2; die "pgbench failed for $op/$variant"; }
                echo "$op $variant $round $(awk '/^tps = / {print $3; exit}' <<<"$out")" >> "$results"
            done
        done
    done
}

# copy_rounds RESULTS ROUNDS FILE TABLE_PREFIX COLUMNS "VARIANTS" [truncate]: COPY of FILE into
# each variant's table, interleaved, optionally after a TRUNCATE; appends "copy variant round ms".
copy_rounds() {
    local results=$1 rounds=$2 file=$3 prefix=$4 columns=$5 variants=$6 truncate=${7:-} round variant ms
    for round in $(seq 1 "$rounds"); do
        for variant in $variants; do
            ms=$("${PSQL[@]}" -q -d "$(db_of "$variant")" -At \
                ${truncate:+-c "TRUNCATE $prefix$variant"} -c "\\timing on" \
                -c "\\copy $prefix$variant ($columns) FROM '$file'" 2>&1 \
                | awk '/^Time: / {print $2; exit}')
            echo "copy $variant $round $ms" >> "$results"
        done
    done
}

if [[ " $MODES " == *" default "* ]]; then
say "audit, default settings"
"${PSQL[@]}" -q -d "$DB" >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_aud_plain, bench_aud_rust, bench_aud_plpgsql, bench_aud_minimal,
    bench_plpgsql_log, bench_minimal_log CASCADE;
DROP FUNCTION IF EXISTS bench_plpgsql_audit();
DROP FUNCTION IF EXISTS bench_minimal_audit();
SQL
"${PSQL[@]}" -q -d "$DB" -f "$ROOT/benches/baselines/audit_plpgsql.sql" >/dev/null
"${PSQL[@]}" -q -d "$DB" -f "$ROOT/benches/baselines/audit_minimal.sql" >/dev/null
"${PSQL[@]}" -q -d "$DB" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE bench_aud_plain (id bigserial PRIMARY KEY, tenant_id uuid, name text, note text, counter int NOT NULL DEFAULT 0);
CREATE TABLE bench_aud_rust (LIKE bench_aud_plain INCLUDING ALL);
CREATE TABLE bench_aud_plpgsql (LIKE bench_aud_plain INCLUDING ALL);
CREATE TABLE bench_aud_minimal (LIKE bench_aud_plain INCLUDING ALL);
ALTER TABLE bench_aud_rust ALTER id SET DEFAULT nextval('bench_aud_plain_id_seq');
ALTER TABLE bench_aud_plpgsql ALTER id SET DEFAULT nextval('bench_aud_plain_id_seq');
ALTER TABLE bench_aud_minimal ALTER id SET DEFAULT nextval('bench_aud_plain_id_seq');
INSERT INTO bench_aud_plain (tenant_id, name, note)
SELECT '00000000-0000-4000-8000-000000000001', 'patient ' || n, repeat('x', 100) FROM generate_series(1, 100000) n;
INSERT INTO bench_aud_rust SELECT * FROM bench_aud_plain;
INSERT INTO bench_aud_plpgsql SELECT * FROM bench_aud_plain;
INSERT INTO bench_aud_minimal SELECT * FROM bench_aud_plain;
SELECT safeguard.enable_audit('bench_aud_rust');
CREATE TRIGGER bench_audit AFTER INSERT OR UPDATE OR DELETE ON bench_aud_plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench_plpgsql_audit('id');
CREATE TRIGGER bench_audit AFTER INSERT OR UPDATE OR DELETE ON bench_aud_minimal
    FOR EACH ROW EXECUTE FUNCTION bench_minimal_audit();
VACUUM ANALYZE bench_aud_plain;
VACUUM ANALYZE bench_aud_rust;
VACUUM ANALYZE bench_aud_plpgsql;
VACUUM ANALYZE bench_aud_minimal;
SQL

for variant in plain rust plpgsql minimal; do
    printf "INSERT INTO bench_aud_%s (tenant_id, name, note) VALUES ('00000000-0000-4000-8000-000000000001', 'new patient', 'note');\n" \
        "$variant" > "$work/insert.$variant.sql"
    printf '\\set id random(1, 100000)\nUPDATE bench_aud_%s SET counter = counter + 1 WHERE id = :id;\n' \
        "$variant" > "$work/update.$variant.sql"
done

pgbench_rounds "$work/results" "$ROUNDS" "" "plain rust plpgsql minimal" -n -M simple -c 1 -T "$SECONDS_PER_RUN"

# COPY: 100,000 rows from a file the server reads.
"${PSQL[@]}" -q -d "$DB" -c "COPY (SELECT '00000000-0000-4000-8000-000000000001'::uuid, 'copied ' || n, repeat('y', 100), 0 FROM generate_series(1, 100000) n) TO STDOUT" > "$work/copy.tsv"
chmod 644 "$work/copy.tsv"
copy_rounds "$work/copy_results" 5 "$work/copy.tsv" bench_aud_ "tenant_id, name, note, counter" "plain rust plpgsql minimal"

"${PSQL[@]}" -q -d "$DB" -c "CREATE TEMP TABLE r (op text, variant text, round int, tps float8)" \
    -c "\\copy r FROM '$work/results' WITH (DELIMITER ' ')" \
    -c "CREATE TEMP TABLE c (op text, variant text, round int, ms float8)" \
    -c "\\copy c FROM '$work/copy_results' WITH (DELIMITER ' ')" -f - <<'SQL'
\pset footer off
\echo 'Absolute figures (medians):'
SELECT op, variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY tps)::numeric) AS tps
  FROM r GROUP BY op, variant ORDER BY op, array_position(ARRAY['plain', 'rust', 'plpgsql', 'minimal'], variant);
SELECT op, variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric) AS copy_100k_ms
  FROM c GROUP BY op, variant ORDER BY array_position(ARRAY['plain', 'rust', 'plpgsql', 'minimal'], variant);
\echo 'Ratios, paired within each round, medians:'
WITH paired AS (
    SELECT p.op, s.tps / p.tps AS vs_plain, s.tps / g.tps AS vs_plpgsql, m.tps / p.tps AS minimal_vs_plain
      FROM r p JOIN r s ON (s.op, s.round, s.variant) = (p.op, p.round, 'rust')
               JOIN r g ON (g.op, g.round, g.variant) = (p.op, p.round, 'plpgsql')
               JOIN r m ON (m.op, m.round, m.variant) = (p.op, p.round, 'minimal')
     WHERE p.variant = 'plain')
SELECT op,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_plain)::numeric, 3) AS audited_vs_plain,
       CASE op WHEN 'insert' THEN '>= 0.75' ELSE '>= 0.70' END AS target,
       CASE WHEN percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_plain) >= CASE op WHEN 'insert' THEN 0.75 ELSE 0.70 END
            THEN 'met' ELSE 'NOT met' END AS status,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_plpgsql)::numeric, 3) AS rust_vs_plpgsql,
       '>= 1.5' AS target_,
       CASE WHEN percentile_cont(0.5) WITHIN GROUP (ORDER BY vs_plpgsql) >= 1.5 THEN 'met' ELSE 'NOT met' END AS status_,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY minimal_vs_plain)::numeric, 3) AS calibration_minimal_vs_plain
  FROM paired GROUP BY op ORDER BY op;
WITH paired AS (
    SELECT s.ms / p.ms AS rust_vs_plain, g.ms / p.ms AS plpgsql_vs_plain, m.ms / p.ms AS minimal_vs_plain
      FROM c p JOIN c s ON (s.round, s.variant) = (p.round, 'rust')
               JOIN c g ON (g.round, g.variant) = (p.round, 'plpgsql')
               JOIN c m ON (m.round, m.variant) = (p.round, 'minimal')
     WHERE p.variant = 'plain')
SELECT 'copy 100k rows' AS op,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY rust_vs_plain)::numeric, 3) AS audited_time_vs_plain,
       '<= 2' AS target,
       CASE WHEN percentile_cont(0.5) WITHIN GROUP (ORDER BY rust_vs_plain) <= 2 THEN 'met' ELSE 'NOT met' END AS status,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY plpgsql_vs_plain)::numeric, 3) AS plpgsql_time_vs_plain,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY minimal_vs_plain)::numeric, 3) AS calibration_minimal_time_vs_plain
  FROM paired;
SQL


fi
# ---------------------------------------------------------------------------------------------
# CPU-bound mode (the set-up of the audit-speed issue): fsync and synchronous_commit off and
# shared_buffers = 512MB, so that commit flushes do not hide the trigger's own cost, as on a busy
# server with group commit. Tables (id bigserial PRIMARY KEY, tenant_id uuid, a text, b int,
# c timestamptz), 10,000 rows each; pgbench -M prepared, 2 clients, 2 threads, 8 s per run
# (BENCH_CPU_SECONDS), 3 rounds (BENCH_CPU_ROUNDS), variants interleaved; ratios within a round,
# medians. COPY of 100,000 rows (text format) into each table after a TRUNCATE.
[[ " $MODES " == *" cpu-bound "* ]] || exit 0
say "audit, CPU-bound (fsync = off, synchronous_commit = off, shared_buffers = 512MB)"
CPU_SECONDS=${BENCH_CPU_SECONDS:-8}
CPU_ROUNDS=${BENCH_CPU_ROUNDS:-3}
source "$ROOT/benches/cpu_bound.sh"
trap 'leave_cpu_bound; rm -rf "$work"' EXIT
enter_cpu_bound

CPU_VARIANTS="plain rust plpgsql minimal unindexed"
# A database of its own: logs as empty for pg_safeguard as for the baselines.
DB=safeguard_bench_cpu
# A diagnostic, not a candidate: `unindexed` is pg_safeguard in a second database whose log has
# none of its four indexes (primary key, record, tenant and time), to show what the log's
# indexes cost on their own.
DB_UNINDEXED=safeguard_bench_cpu_unindexed
db_of() { if [ "$1" = unindexed ]; then echo "$DB_UNINDEXED"; else echo "$DB"; fi; }
fresh_database "$DB_UNINDEXED"
"${PSQL[@]}" -q -d "$DB_UNINDEXED" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION pg_safeguard;
ALTER TABLE safeguard.audit_log DROP CONSTRAINT audit_log_pkey;
DROP INDEX safeguard.audit_log_record_idx, safeguard.audit_log_tenant_time_idx, safeguard.audit_log_time_idx;
CREATE TABLE cpu_aud_unindexed (id bigserial PRIMARY KEY, tenant_id uuid, a text, b int, c timestamptz);
INSERT INTO cpu_aud_unindexed (tenant_id, a, b, c)
SELECT gen_random_uuid(), 'row ' || n, n, now() FROM generate_series(1, 10000) n;
SELECT safeguard.enable_audit('cpu_aud_unindexed');
VACUUM ANALYZE cpu_aud_unindexed;
SQL
fresh_database "$DB"
"${PSQL[@]}" -q -d "$DB" -c "CREATE EXTENSION pg_safeguard"
"${PSQL[@]}" -q -d "$DB" -f "$ROOT/benches/baselines/audit_plpgsql.sql" >/dev/null
"${PSQL[@]}" -q -d "$DB" -f "$ROOT/benches/baselines/audit_minimal.sql" >/dev/null
"${PSQL[@]}" -q -d "$DB" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE cpu_aud_plain (id bigserial PRIMARY KEY, tenant_id uuid, a text, b int, c timestamptz);
CREATE TABLE cpu_aud_rust (LIKE cpu_aud_plain INCLUDING ALL);
CREATE TABLE cpu_aud_plpgsql (LIKE cpu_aud_plain INCLUDING ALL);
CREATE TABLE cpu_aud_minimal (LIKE cpu_aud_plain INCLUDING ALL);
INSERT INTO cpu_aud_plain (tenant_id, a, b, c)
SELECT gen_random_uuid(), 'row ' || n, n, now() FROM generate_series(1, 10000) n;
INSERT INTO cpu_aud_rust SELECT * FROM cpu_aud_plain;
INSERT INTO cpu_aud_plpgsql SELECT * FROM cpu_aud_plain;
INSERT INTO cpu_aud_minimal SELECT * FROM cpu_aud_plain;
SELECT safeguard.enable_audit('cpu_aud_rust');
CREATE TRIGGER bench_audit AFTER INSERT OR UPDATE OR DELETE ON cpu_aud_plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench_plpgsql_audit('id');
CREATE TRIGGER bench_audit AFTER INSERT OR UPDATE OR DELETE ON cpu_aud_minimal
    FOR EACH ROW EXECUTE FUNCTION bench_minimal_audit();
VACUUM ANALYZE cpu_aud_plain;
VACUUM ANALYZE cpu_aud_rust;
VACUUM ANALYZE cpu_aud_plpgsql;
VACUUM ANALYZE cpu_aud_minimal;
-- The sequences follow the copied rows, so that new ids never collide.
SELECT setval(pg_get_serial_sequence('cpu_aud_' || v, 'id'), 10000)
  FROM unnest(ARRAY['rust', 'plpgsql', 'minimal']) v;
SQL

for variant in $CPU_VARIANTS; do
    printf "INSERT INTO cpu_aud_%s (tenant_id, a, b, c) VALUES (gen_random_uuid(), 'hello', 1, now());\n" \
        "$variant" > "$work/cpu_insert.$variant.sql"
    printf '\\set k random(1, 10000)\nUPDATE cpu_aud_%s SET b = b + 1, a = md5(random()::text) WHERE id = :k;\n' \
        "$variant" > "$work/cpu_update.$variant.sql"
done
pgbench_rounds "$work/cpu_results" "$CPU_ROUNDS" cpu_ "$CPU_VARIANTS" -n -M prepared -c 2 -j 2 -T "$CPU_SECONDS"
"${PSQL[@]}" -q -d "$DB" -c "COPY (SELECT gen_random_uuid(), 'copied ' || n, n, now() FROM generate_series(1, 100000) n) TO STDOUT" > "$work/cpu_copy.tsv"
chmod 644 "$work/cpu_copy.tsv"
copy_rounds "$work/cpu_copy_results" "$CPU_ROUNDS" "$work/cpu_copy.tsv" cpu_aud_ "tenant_id, a, b, c" "$CPU_VARIANTS" truncate

"${PSQL[@]}" -q -d "$DB" -c "CREATE TEMP TABLE r (op text, variant text, round int, tps float8)" \
    -c "\\copy r FROM '$work/cpu_results' WITH (DELIMITER ' ')" \
    -c "CREATE TEMP TABLE c (op text, variant text, round int, ms float8)" \
    -c "\\copy c FROM '$work/cpu_copy_results' WITH (DELIMITER ' ')" -f - <<'SQL'
\pset footer off
\echo 'CPU-bound, absolute figures (medians):'
SELECT op, variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY tps)::numeric) AS tps
  FROM r GROUP BY op, variant ORDER BY op, array_position(ARRAY['plain', 'rust', 'plpgsql', 'minimal', 'unindexed'], variant);
SELECT op, variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric) AS copy_100k_ms
  FROM c GROUP BY op, variant ORDER BY array_position(ARRAY['plain', 'rust', 'plpgsql', 'minimal', 'unindexed'], variant);
\echo 'CPU-bound, ratios paired within each round, medians (targets: pg_safeguard >= the minimal trigger, >= 1.3x the same-output PL/pgSQL trigger):'
WITH paired AS (
    SELECT p.op, s.tps / p.tps AS rust_vs_plain, m.tps / p.tps AS minimal_vs_plain,
           g.tps / p.tps AS plpgsql_vs_plain, s.tps / m.tps AS rust_vs_minimal, s.tps / g.tps AS rust_vs_plpgsql,
           u.tps / m.tps AS unindexed_vs_minimal
      FROM r p JOIN r s ON (s.op, s.round, s.variant) = (p.op, p.round, 'rust')
               JOIN r g ON (g.op, g.round, g.variant) = (p.op, p.round, 'plpgsql')
               JOIN r m ON (m.op, m.round, m.variant) = (p.op, p.round, 'minimal')
               JOIN r u ON (u.op, u.round, u.variant) = (p.op, p.round, 'unindexed')
     WHERE p.variant = 'plain'),
copy_paired AS (
    -- For COPY, time: a speed-up is the baseline's time over pg_safeguard's.
    SELECT 'copy 100k' AS op, s.ms / p.ms AS rust_vs_plain, m.ms / p.ms AS minimal_vs_plain,
           g.ms / p.ms AS plpgsql_vs_plain, m.ms / s.ms AS rust_vs_minimal, g.ms / s.ms AS rust_vs_plpgsql,
           m.ms / u.ms AS unindexed_vs_minimal
      FROM c p JOIN c s ON (s.round, s.variant) = (p.round, 'rust')
               JOIN c g ON (g.round, g.variant) = (p.round, 'plpgsql')
               JOIN c m ON (m.round, m.variant) = (p.round, 'minimal')
               JOIN c u ON (u.round, u.variant) = (p.round, 'unindexed')
     WHERE p.variant = 'plain'),
medians AS (
    SELECT op,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY rust_vs_plain) AS rust_vs_plain,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY minimal_vs_plain) AS minimal_vs_plain,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY plpgsql_vs_plain) AS plpgsql_vs_plain,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY rust_vs_minimal) AS rust_vs_minimal,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY rust_vs_plpgsql) AS rust_vs_plpgsql,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY unindexed_vs_minimal) AS unindexed_vs_minimal
      FROM (SELECT * FROM paired UNION ALL SELECT * FROM copy_paired) x GROUP BY op)
SELECT op,
       round(rust_vs_plain::numeric, 3) AS "pg_safeguard vs untracked",
       round(minimal_vs_plain::numeric, 3) AS "minimal vs untracked",
       round(plpgsql_vs_plain::numeric, 3) AS "plpgsql vs untracked",
       round(rust_vs_minimal::numeric, 3) AS "speed vs minimal",
       CASE WHEN rust_vs_minimal >= 1 THEN 'met' ELSE 'NOT met' END AS ">= 1",
       round(rust_vs_plpgsql::numeric, 3) AS "speed vs plpgsql",
       CASE WHEN rust_vs_plpgsql >= 1.3 THEN 'met' ELSE 'NOT met' END AS ">= 1.3",
       round(unindexed_vs_minimal::numeric, 3) AS "diagnostic: log without indexes, speed vs minimal"
  FROM medians ORDER BY op;
SQL
