-- Time-ordered IDs against gen_random_uuid(), PostgreSQL's own generator.
--
-- generation: count(f()) over 1,000,000 rows, 11 repetitions, the three queries interleaved in
--   rotating order. The rows come from generate_series in the select list (a ProjectSet node that
--   yields one value per call), not in FROM (which first materialises every row in a tuplestore):
--   the row loop then costs about 0.05 µs a row instead of 0.11 µs, so the whole-query ratio shows
--   the generators rather than the loop. "loop" is the same query without a function call: its
--   time is the row loop both generators share, and the net figure subtracts it.
-- insert: 500,000 rows by INSERT ... SELECT into a fresh table with a btree primary key filled by
--   the column default, one transaction per table, 5 repetitions alternating which goes first;
--   then the primary-key index size.
-- work_mem is raised so the generate_series row source stays in memory (no temp-file noise) and
-- JIT is off so compilation time does not vary between runs; both apply to both sides.
SET work_mem = '256MB';
SET jit = off;
\pset footer off

CREATE TEMP TABLE timings (bench text, variant text, rep int, ms float8, bytes bigint);

CREATE FUNCTION pg_temp.elapsed_ms(query text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    EXECUTE query;
    RETURN 1000 * extract(epoch FROM clock_timestamp() - started);
END $$;

DO $$
DECLARE
    variants text[] := ARRAY['loop', 'gen_random_uuid', 'ulid'];
    queries text[] := ARRAY[
        'SELECT count(*) FROM (SELECT generate_series(1, 1000000)) AS g',
        'SELECT count(gen_random_uuid()) FROM (SELECT generate_series(1, 1000000)) AS g',
        'SELECT count(safeguard.ulid()) FROM (SELECT generate_series(1, 1000000)) AS g'];
    i int;
BEGIN
    PERFORM pg_temp.elapsed_ms(q) FROM unnest(queries) q;  -- warm-up
    FOR rep IN 1..11 LOOP
        FOR k IN 0..2 LOOP
            i := (rep + k) % 3 + 1;
            INSERT INTO timings VALUES ('generation', variants[i], rep, pg_temp.elapsed_ms(queries[i]));
        END LOOP;
    END LOOP;
END $$;

DO $$
DECLARE
    defaults text[] := ARRAY['gen_random_uuid()', 'safeguard.ulid()'];
    variants text[] := ARRAY['gen_random_uuid', 'ulid'];
    i int;
    ms float8;
BEGIN
    FOR rep IN 1..5 LOOP
        FOR k IN 0..1 LOOP
            i := (rep + k) % 2 + 1;
            EXECUTE format('CREATE TABLE bench_insert (id uuid PRIMARY KEY DEFAULT %s, n int)', defaults[i]);
            COMMIT;
            ms := pg_temp.elapsed_ms('INSERT INTO bench_insert (n) SELECT g FROM generate_series(1, 500000) g');
            COMMIT;
            INSERT INTO timings VALUES ('insert', variants[i], rep, ms, pg_relation_size('bench_insert_pkey'));
            DROP TABLE bench_insert;
            COMMIT;
        END LOOP;
    END LOOP;
END $$;

CREATE TEMP VIEW medians AS
SELECT bench, variant, count(*) AS reps,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY bytes) AS bytes
  FROM timings GROUP BY bench, variant;

\echo 'Absolute figures (medians):'
SELECT bench, variant, reps, round(ms::numeric, 1) AS median_ms,
       round((1000 * ms / CASE bench WHEN 'generation' THEN 1000000 ELSE 500000 END)::numeric, 3) AS us_per_row,
       round((bytes / 1048576)::numeric, 2) AS pk_index_mib
  FROM medians ORDER BY bench, variant;

\echo 'Ratios (baseline gen_random_uuid() / safeguard.ulid(); higher is faster; sizes ulid / uuid):'
WITH m AS (SELECT bench || ':' || variant AS k, ms, bytes FROM medians),
     v AS (SELECT (SELECT ms FROM m WHERE k = 'generation:loop') AS loop_ms,
                  (SELECT ms FROM m WHERE k = 'generation:gen_random_uuid') AS gen_uuid,
                  (SELECT ms FROM m WHERE k = 'generation:ulid') AS gen_ulid,
                  (SELECT ms FROM m WHERE k = 'insert:gen_random_uuid') AS ins_uuid,
                  (SELECT ms FROM m WHERE k = 'insert:ulid') AS ins_ulid,
                  (SELECT bytes FROM m WHERE k = 'insert:gen_random_uuid') AS size_uuid,
                  (SELECT bytes FROM m WHERE k = 'insert:ulid') AS size_ulid)
SELECT figure, round(ratio::numeric, 3) AS ratio, target,
       CASE WHEN (target LIKE '>=%' AND ratio >= substr(target, 4)::float8)
              OR (target LIKE '<=%' AND ratio <= substr(target, 4)::float8)
            THEN 'met' ELSE 'NOT met' END AS status
  FROM v, LATERAL (VALUES
        ('generation, per value net of the row loop', (gen_uuid - loop_ms) / (gen_ulid - loop_ms), '>= 7'),
        ('generation, whole query',                  gen_uuid / gen_ulid,                          '>= 7'),
        ('insert 500k rows, btree primary key',      ins_uuid / ins_ulid,                          '>= 2.5'),
        ('primary-key index size',                   size_ulid / size_uuid,                        '<= 0.8')
     ) AS r (figure, ratio, target);
