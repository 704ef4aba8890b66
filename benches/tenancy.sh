#!/usr/bin/env bash
# Tenant isolation against the same query with an explicit tenant filter and no RLS.
#
# 1,000,000 rows, 1,000 tenants of 1,000 rows. Two queries, each as a pgbench script run by one
# client (latency, not throughput) for 1 s, 15 rounds with the variants interleaved (slow drifts of a shared machine hit all variants alike); medians.
#   point: one row by primary key          range: 100 rows of one tenant by (tenant_id, seq)
# Variants:
#   plain     bench_plain, WHERE tenant_id = $t AND ..., no RLS (the baseline)
#   one_msg   bench_isolated, "SELECT safeguard.set_context($t) \; SELECT ..." sent as ONE
#             simple-query message: one round trip, one implicit transaction
#   separate  bench_isolated, BEGIN; SELECT safeguard.set_context($t); SELECT ...; COMMIT:
#             four round trips, what a driver does by default
#   plain_tx  bench_plain, BEGIN; SELECT ...; COMMIT: the same SELECT inside a transaction block
# "policy alone" compares pgbench's per-statement latency of the SELECT in `separate` with the
# SELECT in `plain_tx` (both inside a transaction block): the policy itself, without the context
# call. Last, set_context() and set_config() are timed per call in a loop of 200,000 calls.
# All variants use the simple query protocol (-M simple) and the same unprivileged role.
source "$(dirname "$0")/../scripts/common.sh"
DB=safeguard_bench
PGBENCH="$PG_BINDIR/pgbench"
SECONDS_PER_RUN=${BENCH_SECONDS:-1}
ROUNDS=${BENCH_ROUNDS:-15}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"${PSQL[@]}" -q -d "$DB" >/dev/null <<'SQL'
SET client_min_messages = warning;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_bench_app') THEN
        CREATE ROLE sg_bench_app LOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END $$;
DROP TABLE IF EXISTS bench_plain, bench_isolated;
-- Tenant n is the uuid 00000000-0000-4000-8000-<n in 12 decimal digits>: the scripts build it
-- with a cast, as a constant the planner folds (a SQL function would be re-parsed per query).
CREATE OR REPLACE FUNCTION bench_tenant(n int) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE TABLE bench_plain (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, seq int NOT NULL, payload text NOT NULL);
INSERT INTO bench_plain
SELECT t::bigint * 1000 + s, bench_tenant(t), s, md5((t * 1000 + s)::text)
  FROM generate_series(1, 1000) t, generate_series(1, 1000) s;
CREATE INDEX ON bench_plain (tenant_id, seq);
CREATE TABLE bench_isolated (LIKE bench_plain INCLUDING ALL);
INSERT INTO bench_isolated SELECT * FROM bench_plain;
SELECT safeguard.isolate('bench_isolated');
GRANT SELECT ON bench_plain, bench_isolated TO sg_bench_app;
VACUUM ANALYZE bench_plain;
VACUUM ANALYZE bench_isolated;
SQL

header='\set t random(1, 1000)
\set id :t * 1000 + random(1, 1000)
\set s random(1, 901)'
tenant="('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid"
point_plain="SELECT payload FROM bench_plain WHERE tenant_id = $tenant AND id = :id;"
point_isolated="SELECT payload FROM bench_isolated WHERE id = :id;"
range_plain="SELECT payload FROM bench_plain WHERE tenant_id = $tenant AND seq BETWEEN :s AND :s + 99;"
range_isolated="SELECT payload FROM bench_isolated WHERE seq BETWEEN :s AND :s + 99;"
for query in point range; do
    plain_var="${query}_plain"; isolated_var="${query}_isolated"
    printf '%s\n%s\n' "$header" "${!plain_var}" > "$work/$query.plain.sql"
    printf '%s\nSELECT safeguard.set_context(%s) \\; %s\n' "$header" "$tenant" "${!isolated_var}" > "$work/$query.one_msg.sql"
    printf '%s\nBEGIN;\nSELECT safeguard.set_context(%s);\n%s\nCOMMIT;\n' "$header" "$tenant" "${!isolated_var}" > "$work/$query.separate.sql"
    printf '%s\nBEGIN;\n%s\nCOMMIT;\n' "$header" "${!plain_var}" > "$work/$query.plain_tx.sql"
done

echo "Plans under isolation (the tenant filter is an InitPlan, evaluated once per query; it is an index condition where an index leads with the tenant column):"
"${PSQL[@]}" -d "$DB" -U sg_bench_app <<'SQL'
BEGIN;
SELECT safeguard.set_context(bench_tenant(7)) \gset
EXPLAIN (COSTS OFF) SELECT payload FROM bench_isolated WHERE id = 7042;
EXPLAIN (COSTS OFF) SELECT payload FROM bench_isolated WHERE seq BETWEEN 100 AND 199;
COMMIT;
SQL

# run QUERY VARIANT ROUND: appends "query variant round tps select_ms" to results.
run() {
    local out
    out=$("$PGBENCH" -n -M simple -c 1 -T "$SECONDS_PER_RUN" -r -U sg_bench_app -f "$work/$1.$2.sql" "$DB" 2>&1) \
        || { echo "$out" >&2; die "pgbench failed for $1/$2"; }
    local tps select_ms
    tps=$(awk '/^tps = / {print $3; exit}' <<<"$out")
    # Per-statement latency of the data query (the line with "FROM bench_").
    select_ms=$(awk '/FROM bench_/ && $1 ~ /^[0-9.]+$/ {print $1; exit}' <<<"$out")
    echo "$1 $2 $3 $tps $select_ms" >> "$work/results"
}
for round in $(seq 1 "$ROUNDS"); do
    for query in point range; do
        for variant in plain one_msg separate plain_tx; do
            run "$query" "$variant" "$round"
        done
    done
done

"${PSQL[@]}" -q -d "$DB" -c "CREATE TEMP TABLE r (query text, variant text, round int, tps float8, select_ms float8)" \
    -c "\\copy r FROM '$work/results' WITH (DELIMITER ' ')" -f - <<'SQL'
\pset footer off
CREATE TEMP VIEW m AS
SELECT query, variant, count(*) AS rounds,
       1000 / percentile_cont(0.5) WITHIN GROUP (ORDER BY tps) AS ms_per_request,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY select_ms) AS select_ms
  FROM r GROUP BY query, variant;
\echo 'Absolute figures (medians; one client; a request is the whole pgbench transaction):'
SELECT query, variant, rounds, round(ms_per_request::numeric, 4) AS ms_per_request,
       round(select_ms::numeric, 4) AS select_statement_ms
  FROM m ORDER BY query, array_position(ARRAY['plain', 'one_msg', 'separate', 'plain_tx'], variant);
\echo 'Ratios against the plain query with an explicit tenant filter, paired within each round, medians (lower is better):'
WITH paired AS (
    SELECT p.query,
           (1 / o.tps) / (1 / p.tps) AS same_message,
           (1 / s.tps) / (1 / p.tps) AS own_round_trips,
           s.select_ms / t.select_ms AS policy_alone
      FROM r p JOIN r o ON (o.query, o.round, o.variant) = (p.query, p.round, 'one_msg')
               JOIN r s ON (s.query, s.round, s.variant) = (p.query, p.round, 'separate')
               JOIN r t ON (t.query, t.round, t.variant) = (p.query, p.round, 'plain_tx')
     WHERE p.variant = 'plain')
SELECT query,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY policy_alone)::numeric, 3) AS policy_alone,
       CASE WHEN percentile_cont(0.5) WITHIN GROUP (ORDER BY policy_alone) <= 1.10 THEN 'met' ELSE 'NOT met' END
           AS "<= 1.10",
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY same_message)::numeric, 3) AS with_context_same_message,
       CASE WHEN percentile_cont(0.5) WITHIN GROUP (ORDER BY same_message) <= 1.10 THEN 'met' ELSE 'NOT met' END
           AS "<= 1.10 ",
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY own_round_trips)::numeric, 3) AS with_context_own_round_trips
  FROM paired GROUP BY query ORDER BY query;
SQL

"${PSQL[@]}" -q -d "$DB" <<'SQL'
\pset footer off
CREATE TEMP TABLE calls (fn text, rep int, us float8);
CREATE FUNCTION pg_temp.per_call_us(query text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE started timestamptz := clock_timestamp();
BEGIN
    EXECUTE query;
    RETURN 1e6 * extract(epoch FROM clock_timestamp() - started) / 200000;
END $$;
DO $$
BEGIN
    FOR rep IN 1..5 LOOP
        INSERT INTO calls VALUES ('set_config', rep, pg_temp.per_call_us(
            $q$SELECT count(set_config('bench.tenant', ('00000000-0000-4000-8000-' || lpad((g % 1000)::text, 12, '0')), true)) FROM generate_series(1, 200000) g$q$));
        INSERT INTO calls VALUES ('safeguard.set_context', rep, pg_temp.per_call_us(
            $q$SELECT count(safeguard.set_context(('00000000-0000-4000-8000-' || lpad((g % 1000)::text, 12, '0'))::uuid)) FROM generate_series(1, 200000) g$q$));
    END LOOP;
END $$;
\echo 'Setting the context, per call in a loop (medians of 5; a new tenant each call):'
SELECT fn AS function, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric, 3) AS us_per_call
  FROM calls GROUP BY fn ORDER BY fn DESC;
SQL
