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

for round in $(seq 1 "$ROUNDS"); do
    for op in insert update; do
        for variant in plain rust plpgsql minimal; do
            out=$("$PGBENCH" -n -M simple -c 1 -T "$SECONDS_PER_RUN" -f "$work/$op.$variant.sql" "$DB" 2>&1) \
                || { echo "$out" >&2; die "pgbench failed for $op/$variant"; }
            echo "$op $variant $round $(awk '/^tps = / {print $3; exit}' <<<"$out")" >> "$work/results"
        done
    done
done

# COPY: 100,000 rows from a file the server reads.
"${PSQL[@]}" -q -d "$DB" -c "COPY (SELECT '00000000-0000-4000-8000-000000000001'::uuid, 'copied ' || n, repeat('y', 100), 0 FROM generate_series(1, 100000) n) TO STDOUT" > "$work/copy.tsv"
chmod 644 "$work/copy.tsv"
for round in 1 2 3 4 5; do
    for variant in plain rust plpgsql minimal; do
        ms=$("${PSQL[@]}" -q -d "$DB" -At -c "\\timing on" \
            -c "\\copy bench_aud_$variant (tenant_id, name, note, counter) FROM '$work/copy.tsv'" 2>&1 \
            | awk '/^Time: / {print $2; exit}')
        echo "copy $variant $round $ms" >> "$work/copy_results"
    done
done

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
