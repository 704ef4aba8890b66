#!/usr/bin/env bash
# The verified request context (set_context_from_token) against set_context().
#
# Targets (issue 17): a token this backend verified before costs at most 1.2x the latency of
# set_context() as a statement; a first verification of an Ed25519 token stays under 100 us.
#   statement  pgbench, one client, simple protocol, 1 s runs, 15 rounds interleaved, medians:
#              "SELECT safeguard.set_context('<uuid>')" against
#              "SELECT safeguard.set_context_from_token('<the same EdDSA token>')" (cached after
#              its first call), as the application role.
#   per call   in one statement, per call (medians of 5): set_context(); a cached token; and
#              distinct tokens each verified once (EdDSA, ES256, RS256: signature, claims, the
#              context written), 2,000 per algorithm.
# Tokens are made by PyJWT (benches/token/make_tokens.py); the token settings are set for the
# benchmark and reset after it.
source "$(dirname "$0")/../scripts/common.sh"
DB=safeguard_bench
PGBENCH="$PG_BINDIR/pgbench"
SECONDS_PER_RUN=${BENCH_SECONDS:-1}
ROUNDS=${BENCH_ROUNDS:-15}
FRESH=${BENCH_FRESH_TOKENS:-2000}
work=$(mktemp -d)
chmod 755 "$work"
reset_settings() {
    "${PSQL[@]}" -q -c "LOAD 'pg_safeguard'" -c "ALTER SYSTEM RESET safeguard.jwt_keys_file" \
        -c "ALTER SYSTEM RESET safeguard.jwt_issuer" -c "ALTER SYSTEM RESET safeguard.jwt_audience" \
        -c "SELECT pg_reload_conf()" >/dev/null
    rm -rf "$work"
}
trap reset_settings EXIT

venv=$("$ROOT/scripts/token-venv.sh")
"$venv/bin/python" "$ROOT/benches/token/make_tokens.py" "$work" "$FRESH"
"${PSQL[@]}" -q -c "LOAD 'pg_safeguard'" -c "ALTER SYSTEM SET safeguard.jwt_keys_file = '$work/jwks.json'" \
    -c "ALTER SYSTEM SET safeguard.jwt_issuer = 'https://id.bench.test/'" \
    -c "ALTER SYSTEM SET safeguard.jwt_audience = 'bench-api'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5

"${PSQL[@]}" -q -d "$DB" >/dev/null <<SQL
SET client_min_messages = warning;
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_bench_app') THEN
        CREATE ROLE sg_bench_app LOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
END \$\$;
GRANT USAGE ON SCHEMA safeguard TO sg_bench_app;
DROP TABLE IF EXISTS bench_tokens;
CREATE TABLE bench_tokens (alg text, kind text, token text);
\copy bench_tokens FROM '$work/tokens.csv' WITH (FORMAT csv)
GRANT SELECT ON bench_tokens TO sg_bench_app;
SQL

cached=$("${PSQL[@]}" -At -d "$DB" -c "SELECT token FROM bench_tokens WHERE alg = 'EdDSA' AND kind = 'cached'")
echo "SELECT safeguard.set_context('00000000-0000-4000-8000-000000000007');" > "$work/set_context.sql"
echo "SELECT safeguard.set_context_from_token('$cached');" > "$work/from_token.sql"
results=$work/statements.csv
for round in $(seq "$ROUNDS"); do
    for variant in set_context from_token; do
        latency=$("$PGBENCH" -n -M simple -c 1 -T "$SECONDS_PER_RUN" -U sg_bench_app -f "$work/$variant.sql" "$DB" 2>/dev/null |
            sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
        echo "$round,$variant,$latency" >> "$results"
    done
done
"${PSQL[@]}" -q -d "$DB" <<SQL
\pset footer off
CREATE TEMP TABLE statements (round int, variant text, ms float8);
\copy statements FROM '$results' WITH (FORMAT csv)
\echo 'As a statement (pgbench latency, medians of $ROUNDS rounds of ${SECONDS_PER_RUN} s):'
WITH per_round AS (
    SELECT round, max(ms) FILTER (WHERE variant = 'set_context') AS set_context,
                  max(ms) FILTER (WHERE variant = 'from_token') AS from_token
      FROM statements GROUP BY round)
SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY set_context)::numeric, 1) AS set_context_us,
       round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY from_token)::numeric, 1) AS cached_token_us,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY from_token / set_context)::numeric, 3) AS ratio,
       CASE WHEN percentile_cont(0.5) WITHIN GROUP (ORDER BY from_token / set_context) <= 1.2
            THEN 'met' ELSE 'NOT met' END AS "<= 1.2"
  FROM per_round;
SQL

"${PSQL[@]}" -q -d "$DB" -U sg_bench_app <<'SQL'
\pset footer off
CREATE TEMP TABLE calls (what text, rep int, us float8);
CREATE FUNCTION pg_temp.per_call_us(query text, calls int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE started timestamptz := clock_timestamp();
BEGIN
    EXECUTE query;
    RETURN 1e6 * extract(epoch FROM clock_timestamp() - started) / calls;
END $$;
DO $$
DECLARE
    fresh int := (SELECT count(*) FROM bench_tokens WHERE alg = 'EdDSA' AND kind = 'fresh');
    alg text;
BEGIN
    FOR rep IN 1..5 LOOP
        INSERT INTO calls VALUES ('set_context()', rep, pg_temp.per_call_us(
            $q$SELECT count(safeguard.set_context('00000000-0000-4000-8000-000000000007')) FROM generate_series(1, 20000)$q$, 20000));
        INSERT INTO calls VALUES ('cached EdDSA token', rep, pg_temp.per_call_us(
            $q$SELECT count(safeguard.set_context_from_token(t.token)) FROM bench_tokens t, generate_series(1, 20000)
                WHERE t.alg = 'EdDSA' AND t.kind = 'cached'$q$, 20000));
        FOREACH alg IN ARRAY ARRAY['EdDSA', 'ES256', 'RS256'] LOOP
            -- The cache keeps 1,024 tokens and is emptied when full: with 2,000 distinct tokens
            -- per algorithm, every call here verifies its token, in every round.
            INSERT INTO calls VALUES ('first verification, ' || alg, rep, pg_temp.per_call_us(
                format($q$SELECT count(safeguard.set_context_from_token(token)) FROM bench_tokens WHERE alg = %L AND kind = 'fresh'$q$, alg), fresh));
        END LOOP;
    END LOOP;
END $$;
\echo 'Per call, in one statement (medians of 5):'
SELECT what, round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric, 2) AS us_per_call,
       CASE WHEN what = 'first verification, EdDSA'
            THEN CASE WHEN percentile_cont(0.5) WITHIN GROUP (ORDER BY us) < 100 THEN 'met (< 100 us)' ELSE 'NOT met (< 100 us)' END
       END AS target
  FROM calls GROUP BY what
 ORDER BY array_position(ARRAY['set_context()', 'cached EdDSA token', 'first verification, EdDSA',
                             'first verification, ES256', 'first verification, RS256'], what);
SQL
