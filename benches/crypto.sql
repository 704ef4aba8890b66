-- Encrypted columns against pgcrypto and against plain text columns.
--
-- values: 200,000 distinct 200-byte texts in a table, read by every variant.
-- pair: encrypt then decrypt each value, count(...) over the table, 7 repetitions with the
--   variants interleaved in rotating order: safeguard (cast to encrypted_text, then decrypt()),
--   pgcrypto's raw encrypt()/decrypt() with 'aes' (AES-CBC, no authentication) under a bytea
--   key, and "loop", the same scan without any function, whose time the net figures subtract.
--   pgcrypto's pgp_sym_encrypt()/pgp_sym_decrypt() is measured on the first 1,000 values only
--   (3 repetitions): it spends about 0.25 ms per value on key stretching.
-- insert: 100,000 rows (id int, v text | safeguard.encrypted_text) by INSERT ... SELECT into a
--   fresh table, one transaction per table, 5 repetitions alternating which goes first.
-- scan: a full scan of those 100,000 rows returning the column, as a client reads it: COPY of
--   the plain column vs COPY of safeguard.decrypt(column), both to /dev/null (output functions
--   included, no network), 7 repetitions interleaved. Also in-server only: sum(length(...)).
-- No tenant is set: values use the global key. JIT is off on both sides.
SET jit = off;
SET work_mem = '256MB';
SET client_min_messages = warning;
\pset footer off
-- pgcrypto is a contrib module some PostgreSQL builds lack (the 18 build of make test, say): its
-- comparisons are then skipped and left empty below.
SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto') AS have_pgcrypto \gset
\if :have_pgcrypto
CREATE EXTENSION IF NOT EXISTS pgcrypto;
\else
\echo 'pgcrypto is not available on this server: the comparisons with it are skipped.'
\endif
SELECT safeguard.create_key() > 0 AS global_key_ready;

CREATE TEMP TABLE timings (bench text, variant text, rep int, ms float8);
CREATE FUNCTION pg_temp.elapsed_ms(query text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    EXECUTE query;
    RETURN 1000 * extract(epoch FROM clock_timestamp() - started);
END $$;

DROP TABLE IF EXISTS bench_crypto_src, bench_crypto_plain, bench_crypto_enc;
CREATE TABLE bench_crypto_src AS
SELECT g AS id, rpad(md5(g::text), 200, md5((g + 1)::text)) AS v FROM generate_series(1, 200000) g;
VACUUM ANALYZE bench_crypto_src;

DO $$
DECLARE
    variants text[] := ARRAY['loop', 'safeguard', 'pgcrypto_raw'];
    queries text[] := ARRAY[
        'SELECT count(v) FROM bench_crypto_src',
        'SELECT count(safeguard.decrypt(v::safeguard.encrypted_text)) FROM bench_crypto_src',
        $q$SELECT count(decrypt(encrypt(convert_to(v, 'UTF8'), '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea, 'aes'),
                                '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea, 'aes'))
             FROM bench_crypto_src$q$];
    have_pgcrypto boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto');
    n int := CASE WHEN have_pgcrypto THEN 3 ELSE 2 END;
    i int;
BEGIN
    PERFORM pg_temp.elapsed_ms(queries[j]) FROM generate_series(1, n) j;  -- warm-up
    FOR rep IN 1..7 LOOP
        FOR k IN 0..n - 1 LOOP
            i := (rep + k) % n + 1;
            INSERT INTO timings VALUES ('pair', variants[i], rep, pg_temp.elapsed_ms(queries[i]));
        END LOOP;
    END LOOP;
    FOR rep IN 1..3 LOOP
        EXIT WHEN NOT have_pgcrypto;
        INSERT INTO timings VALUES ('pair_pgp', 'pgcrypto_pgp', rep, pg_temp.elapsed_ms(
            $q$SELECT count(pgp_sym_decrypt(pgp_sym_encrypt(v, 'bench passphrase'), 'bench passphrase'))
                 FROM (SELECT v FROM bench_crypto_src ORDER BY id LIMIT 1000) s$q$));
        INSERT INTO timings VALUES ('pair_pgp', 'safeguard', rep, pg_temp.elapsed_ms(
            $q$SELECT count(safeguard.decrypt(v::safeguard.encrypted_text))
                 FROM (SELECT v FROM bench_crypto_src ORDER BY id LIMIT 1000) s$q$));
    END LOOP;
END $$;

DO $$
DECLARE
    types text[] := ARRAY['text', 'safeguard.encrypted_text'];
    variants text[] := ARRAY['plain', 'safeguard'];
    i int;
    ms float8;
BEGIN
    FOR rep IN 1..5 LOOP
        FOR k IN 0..1 LOOP
            i := (rep + k) % 2 + 1;
            EXECUTE format('CREATE TABLE bench_crypto_insert (id int, v %s)', types[i]);
            CHECKPOINT;
            COMMIT;
            ms := pg_temp.elapsed_ms('INSERT INTO bench_crypto_insert SELECT id, v FROM bench_crypto_src WHERE id <= 100000');
            COMMIT;
            INSERT INTO timings VALUES ('insert', variants[i], rep, ms);
            DROP TABLE bench_crypto_insert;
            COMMIT;
        END LOOP;
    END LOOP;
END $$;

CREATE TABLE bench_crypto_plain AS SELECT id, v FROM bench_crypto_src WHERE id <= 100000;
CREATE TABLE bench_crypto_enc (id int, v safeguard.encrypted_text);
INSERT INTO bench_crypto_enc SELECT id, v FROM bench_crypto_plain;
VACUUM ANALYZE bench_crypto_plain;
VACUUM ANALYZE bench_crypto_enc;

DO $$
DECLARE
    variants text[] := ARRAY['plain', 'safeguard'];
    copies text[] := ARRAY[
        $q$COPY (SELECT v FROM bench_crypto_plain) TO '/dev/null'$q$,
        $q$COPY (SELECT safeguard.decrypt(v) FROM bench_crypto_enc) TO '/dev/null'$q$];
    sums text[] := ARRAY[
        'SELECT sum(length(v)) FROM bench_crypto_plain',
        'SELECT sum(length(safeguard.decrypt(v))) FROM bench_crypto_enc'];
    i int;
BEGIN
    PERFORM pg_temp.elapsed_ms(q) FROM unnest(copies || sums) q;  -- warm-up
    FOR rep IN 1..7 LOOP
        FOR k IN 0..1 LOOP
            i := (rep + k) % 2 + 1;
            INSERT INTO timings VALUES ('scan_copy', variants[i], rep, pg_temp.elapsed_ms(copies[i]));
            INSERT INTO timings VALUES ('scan_sum', variants[i], rep, pg_temp.elapsed_ms(sums[i]));
        END LOOP;
    END LOOP;
END $$;

CREATE TEMP VIEW medians AS
SELECT bench, variant, count(*) AS reps, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms
  FROM timings GROUP BY bench, variant;

\echo 'Absolute figures (medians):'
SELECT bench, variant, reps, round(ms::numeric, 1) AS median_ms
  FROM medians ORDER BY bench, variant;

\echo 'Per value pair (encrypt + decrypt of 200 bytes), net of the shared scan:'
WITH m AS (SELECT bench || ':' || variant AS k, ms FROM medians),
     v AS (SELECT (SELECT ms FROM m WHERE k = 'pair:safeguard') AS sg,
                  (SELECT ms FROM m WHERE k = 'pair:pgcrypto_raw') AS raw,
                  (SELECT ms FROM m WHERE k = 'pair:loop') AS loop,
                  (SELECT ms FROM m WHERE k = 'pair_pgp:pgcrypto_pgp') AS pgp,
                  (SELECT ms FROM m WHERE k = 'pair_pgp:safeguard') AS sg_small)
SELECT round((1000 * (sg - loop) / 200000)::numeric, 3) AS safeguard_us,
       round((1000 * (raw - loop) / 200000)::numeric, 3) AS pgcrypto_raw_us,
       round((1000 * pgp / 1000)::numeric, 1) AS pgcrypto_pgp_us,
       round((pgp / 1000 / ((sg - loop) / 200000))::numeric, 0) AS pgp_time_over_safeguard,
       '>= 100' AS target_pgp,
       round(((sg - loop) / (raw - loop))::numeric, 2) AS safeguard_time_over_raw_aes,
       '<= 1.2' AS target_raw
  FROM v;

\echo 'Insert 100,000 rows and read them back (time, encrypted / plain):'
WITH m AS (SELECT bench || ':' || variant AS k, ms FROM medians)
SELECT 'insert 100k' AS figure,
       round(((SELECT ms FROM m WHERE k = 'insert:safeguard') / (SELECT ms FROM m WHERE k = 'insert:plain'))::numeric, 2) AS ratio,
       '<= 1.3' AS target
UNION ALL
SELECT 'full scan, column to output (COPY)',
       round(((SELECT ms FROM m WHERE k = 'scan_copy:safeguard') / (SELECT ms FROM m WHERE k = 'scan_copy:plain'))::numeric, 2),
       '<= 1.5'
UNION ALL
SELECT 'full scan, in-server sum(length(...))',
       round(((SELECT ms FROM m WHERE k = 'scan_sum:safeguard') / (SELECT ms FROM m WHERE k = 'scan_sum:plain'))::numeric, 2),
       '(stricter reading)';

DROP TABLE bench_crypto_src, bench_crypto_plain, bench_crypto_enc;
