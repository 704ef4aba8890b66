#!/usr/bin/env bash
# Data rules against plain tables.
#
# COPY: 1,000,000 rows (id, npi, phone, email) from a server-side file into a table with CHECK
#   constraints using safeguard.is_valid_npi/e164/email vs the same table without them; fresh
#   table per load, 5 rounds alternating which goes first, medians; time ratio.
# maintain_count: pgbench, 8 clients, each inserting single rows into the children of its own
#   parent (8 parents), into a table with maintain_count vs the same table without; 5 rounds of
#   5 s interleaved, throughput ratio within each round, median.
source "$(dirname "$0")/../scripts/common.sh"
DB=safeguard_bench
PGBENCH="$PG_BINDIR/pgbench"
ROUNDS=${BENCH_ROUNDS:-5}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

data_dir=$("${PSQL[@]}" -At -d "$DB" -c "SHOW data_directory")
"${PSQL[@]}" -q -d "$DB" >/dev/null <<SQL
SET client_min_messages = warning;
COPY (SELECT n, '1234567893', '+1415555' || lpad((n % 10000)::text, 4, '0'),
             'patient' || n || '@clinic.example' FROM generate_series(1, 1000000) n)
  TO '$data_dir/bench_rules.copy';
CREATE TEMP TABLE IF NOT EXISTS t (x int);
SQL

copy_ms() {
    "${PSQL[@]}" -q -d "$DB" -At >/dev/null -c "DROP TABLE IF EXISTS bench_rules_copy" -c "$1"
    "${PSQL[@]}" -q -d "$DB" -At -c '\timing on' -c "COPY bench_rules_copy FROM '$data_dir/bench_rules.copy'" 2>&1 \
        | awk '/^Time: / {print $2; exit}'
}
PLAIN="CREATE TABLE bench_rules_copy (id int, npi text, phone text, email text)"
CHECKED="CREATE TABLE bench_rules_copy (id int, npi text CHECK (safeguard.is_valid_npi(npi)),
    phone text CHECK (safeguard.is_valid_e164(phone)), email text CHECK (safeguard.is_valid_email(email)))"
: > "$work/copy"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        echo "plain $round $(copy_ms "$PLAIN")" >> "$work/copy"
        echo "checked $round $(copy_ms "$CHECKED")" >> "$work/copy"
    else
        echo "checked $round $(copy_ms "$CHECKED")" >> "$work/copy"
        echo "plain $round $(copy_ms "$PLAIN")" >> "$work/copy"
    fi
done
"${PSQL[@]}" -q -d "$DB" -c "DROP TABLE bench_rules_copy" -c "SELECT pg_catalog.pg_stat_reset()" >/dev/null
rm -f "$data_dir/bench_rules.copy" 2>/dev/null || as_run_user rm -f "$data_dir/bench_rules.copy"

"${PSQL[@]}" -q -d "$DB" >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_members_plain, bench_members_counted, bench_orgs_plain, bench_orgs_counted CASCADE;
CREATE TABLE bench_orgs_plain (id int PRIMARY KEY, member_count int NOT NULL DEFAULT 0);
CREATE TABLE bench_orgs_counted (id int PRIMARY KEY, member_count int NOT NULL DEFAULT 0);
INSERT INTO bench_orgs_plain SELECT n FROM generate_series(1, 8) n;
INSERT INTO bench_orgs_counted SELECT n FROM generate_series(1, 8) n;
CREATE TABLE bench_members_plain (id bigserial PRIMARY KEY, organization_id int NOT NULL REFERENCES bench_orgs_plain,
                                  deleted_at timestamptz);
CREATE TABLE bench_members_counted (id bigserial PRIMARY KEY, organization_id int NOT NULL REFERENCES bench_orgs_counted,
                                    deleted_at timestamptz);
SELECT safeguard.maintain_count('bench_orgs_counted', 'member_count', 'bench_members_counted', 'organization_id',
                                'deleted_at IS NULL');
SQL
for variant in plain counted; do
    printf 'INSERT INTO bench_members_%s (organization_id) VALUES (:client_id %% 8 + 1);\n' "$variant" > "$work/$variant.sql"
done
: > "$work/count"
for round in $(seq 1 "$ROUNDS"); do
    for variant in plain counted; do
        out=$("$PGBENCH" -n -M prepared -c 8 -j 2 -T "$SECONDS_PER_RUN" -f "$work/$variant.sql" "$DB" 2>&1) \
            || { echo "$out" >&2; die "pgbench failed for $variant"; }
        echo "$variant $round $(awk '/^tps = / {print $3; exit}' <<<"$out")" >> "$work/count"
    done
done
exact=$("${PSQL[@]}" -At -d "$DB" -c "SELECT bool_and(o.member_count = (SELECT count(*) FROM bench_members_counted m
                                                  WHERE m.organization_id = o.id)) FROM bench_orgs_counted o")

"${PSQL[@]}" -q -d "$DB" -c "CREATE TEMP TABLE c (variant text, round int, ms float8)" \
    -c "\\copy c FROM '$work/copy' WITH (DELIMITER ' ')" \
    -c "CREATE TEMP TABLE k (variant text, round int, tps float8)" \
    -c "\\copy k FROM '$work/count' WITH (DELIMITER ' ')" -f - <<SQL
\pset footer off
\echo 'Absolute figures (medians):'
SELECT 'copy 1M rows' AS figure, variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric) AS ms_or_tps
  FROM c GROUP BY variant
UNION ALL
SELECT 'insert, 8 clients, tps', variant, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY tps)::numeric)
  FROM k GROUP BY variant ORDER BY 1, 2;
\echo 'Ratios (paired within each round, medians):'
SELECT 'COPY 1M rows with NPI, E.164 and e-mail CHECKs, time vs none' AS figure,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x.ms / p.ms)::numeric, 3) AS ratio, '<= 1.05' AS target
  FROM c x JOIN c p ON p.round = x.round AND p.variant = 'plain' WHERE x.variant = 'checked'
UNION ALL
SELECT 'maintain_count insert throughput vs no counter (counters exact: $exact)',
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x.tps / p.tps)::numeric, 3), '>= 0.7'
  FROM k x JOIN k p ON p.round = x.round AND p.variant = 'plain' WHERE x.variant = 'counted';
SQL
