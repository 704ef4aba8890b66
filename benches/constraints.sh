#!/usr/bin/env bash
# Data rules against plain tables.
#
# COPY: 1,000,000 provider rows (id primary key, organization, name, NPI, phone, e-mail, address,
#   city, state, created_at) from a server-side file into a table with CHECK constraints using
#   safeguard.is_valid_npi/e164/email vs the same table without them; fresh table per load,
#   a checkpoint before each, 7 rounds alternating which goes first, medians; time ratio. Also the validators alone: a
#   count(*) over 1,000,000 values with and without each validator, to give nanoseconds per call.
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
COPY (SELECT n, '0000000a-0000-4000-8000-' || lpad(to_hex(n % 50), 12, '0'), 'Provider ' || n,
             '1234567893', '+1415555' || lpad((n % 10000)::text, 4, '0'), 'provider' || n || '@clinic.example',
             n || ' Main Street', 'Springfield', 'CA', '2026-01-01 00:00+00'
        FROM generate_series(1, 1000000) n)
  TO '$data_dir/bench_rules.copy';
CREATE TEMP TABLE IF NOT EXISTS t (x int);
SQL

# Each load starts from a fresh table right after a checkpoint, so that no load pays for the
# checkpoint another one's WAL triggered.
copy_ms() {
    "${PSQL[@]}" -q -d "$DB" -At >/dev/null -c "DROP TABLE IF EXISTS bench_rules_copy" -c "$1" -c "CHECKPOINT"
    "${PSQL[@]}" -q -d "$DB" -At -c '\timing on' -c "COPY bench_rules_copy FROM '$data_dir/bench_rules.copy'" 2>&1 \
        | awk '/^Time: / {print $2; exit}'
}
COLUMNS="id bigint PRIMARY KEY, organization_id uuid NOT NULL, full_name text NOT NULL"
PLAIN="CREATE TABLE bench_rules_copy ($COLUMNS, npi text, phone text, email text,
    address text, city text, state text, created_at timestamptz)"
# Calibration: the same three CHECKs with a built-in comparison (what any CHECK costs in COPY:
# the row is deformed and the expressions run per row, where an unchecked COPY does neither).
BUILTIN="CREATE TABLE bench_rules_copy ($COLUMNS, npi text CHECK (npi <> ''), phone text CHECK (phone <> ''),
    email text CHECK (email <> ''), address text, city text, state text, created_at timestamptz)"
CHECKED="CREATE TABLE bench_rules_copy ($COLUMNS, npi text CHECK (safeguard.is_valid_npi(npi)),
    phone text CHECK (safeguard.is_valid_e164(phone)), email text CHECK (safeguard.is_valid_email(email)),
    address text, city text, state text, created_at timestamptz)"
: > "$work/copy"
for round in $(seq 1 "${COPY_ROUNDS:-7}"); do
    variants=(plain builtin checked)
    [ $((round % 2)) = 0 ] && variants=(checked builtin plain)
    for variant in "${variants[@]}"; do
        case $variant in
            plain) ddl=$PLAIN ;;
            builtin) ddl=$BUILTIN ;;
            checked) ddl=$CHECKED ;;
        esac
        echo "$variant $round $(copy_ms "$ddl")" >> "$work/copy"
    done
done
"${PSQL[@]}" -q -d "$DB" -c "DROP TABLE bench_rules_copy" >/dev/null
# The validators alone, per call: interleaved count(*) over 1,000,000 in-memory values.
"${PSQL[@]}" -q -d "$DB" -At > "$work/calls" <<'SQL'
SET jit = off;
CREATE TEMP TABLE v AS SELECT '1234567893'::text AS npi, '+14155550101'::text AS phone,
       'provider' || n || '@clinic.example' AS email FROM generate_series(1, 1000000) n;
VACUUM v;
CREATE TEMP TABLE calls (variant text, ms float8);
CREATE FUNCTION pg_temp.ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t timestamptz := clock_timestamp();
BEGIN EXECUTE q; RETURN 1000 * extract(epoch FROM clock_timestamp() - t); END $$;
DO $$
BEGIN
    FOR r IN 1..7 LOOP
        INSERT INTO calls VALUES ('none', pg_temp.ms('SELECT count(*) FROM v WHERE npi IS NOT NULL'));
        INSERT INTO calls VALUES ('is_valid_npi', pg_temp.ms('SELECT count(*) FROM v WHERE safeguard.is_valid_npi(npi)'));
        INSERT INTO calls VALUES ('is_valid_e164', pg_temp.ms('SELECT count(*) FROM v WHERE safeguard.is_valid_e164(phone)'));
        INSERT INTO calls VALUES ('is_valid_email', pg_temp.ms('SELECT count(*) FROM v WHERE safeguard.is_valid_email(email)'));
    END LOOP;
END $$;
SELECT variant, round(((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)
                        - (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM calls WHERE variant = 'none'))
                       * 1000000 / 1000000)::numeric) AS ns_per_call
  FROM calls WHERE variant <> 'none' GROUP BY variant ORDER BY variant;
SQL
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

echo "Validators alone, net nanoseconds per call (median of 7):"
sed 's/|/: /' "$work/calls"
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
SELECT 'calibration: the same three CHECKs built in (col <> empty), time vs none',
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x.ms / p.ms)::numeric, 3), '(none)'
  FROM c x JOIN c p ON p.round = x.round AND p.variant = 'plain' WHERE x.variant = 'builtin'
UNION ALL
SELECT 'the validator CHECKs vs those built-in CHECKs, time',
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x.ms / p.ms)::numeric, 3), '(none)'
  FROM c x JOIN c p ON p.round = x.round AND p.variant = 'builtin' WHERE x.variant = 'checked'
UNION ALL
SELECT 'maintain_count insert throughput vs no counter (counters exact: $exact)',
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x.tps / p.tps)::numeric, 3), '>= 0.7'
  FROM k x JOIN k p ON p.round = x.round AND p.variant = 'plain' WHERE x.variant = 'counted';
SQL
