-- Time-ordered IDs: what a user sees, including every documented error and its SQLSTATE.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET search_path = public, safeguard;
\set VERBOSITY default

-- ulid(): a uuid with version 7 and the RFC 9562 variant, strictly increasing within a backend.
SELECT bool_and(substr(id::text, 15, 1) = '7') AS version_7,
       bool_and(substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')) AS rfc_variant,
       count(DISTINCT id) AS distinct_ids
  FROM (SELECT safeguard.ulid() AS id FROM generate_series(1, 10000)) s;
SELECT bool_and(id > prev) AS strictly_increasing
  FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev
          FROM (SELECT n, safeguard.ulid() AS id FROM generate_series(1, 50000) n) g) w
 WHERE prev IS NOT NULL;
SELECT safeguard.ulid_time(safeguard.ulid())
       BETWEEN clock_timestamp() - interval '1 second' AND clock_timestamp() AS carries_now;

-- As a column default, used by an ordinary (non-owner, non-superuser) role.
CREATE ROLE sg_ids_app NOSUPERUSER NOINHERIT;
CREATE TABLE ids_visits (id uuid PRIMARY KEY DEFAULT safeguard.ulid(), note text);
GRANT INSERT, SELECT ON ids_visits TO sg_ids_app;
SET ROLE sg_ids_app;
INSERT INTO ids_visits (note) SELECT 'visit ' || n FROM generate_series(1, 100) n;
SELECT count(*) AS rows, bool_and(substr(id::text, 15, 1) = '7') AS all_v7 FROM ids_visits;
SELECT safeguard.gen_ulid() IS NOT NULL AS app_can_generate;
RESET ROLE;

-- ulid_at(): a random ID at a given time; sub-millisecond precision is dropped.
SELECT safeguard.ulid_time(safeguard.ulid_at('2026-01-01 12:34:56.789999+00')) AS at_time,
       safeguard.ulid_at('2026-01-01 12:34:56.789+00') <> safeguard.ulid_at('2026-01-01 12:34:56.789+00') AS random;

-- ulid_min()/ulid_max(): every 128-bit value of that millisecond lies between them.
SELECT safeguard.ulid_min('2016-07-30 23:54:10.259+00') AS min,
       safeguard.ulid_max('2016-07-30 23:54:10.259+00') AS max;
SELECT safeguard.ulid_min('1970-01-01 00:00:00+00') AS first_possible,
       safeguard.ulid_max('10889-08-02 05:31:50.655+00') AS last_possible;
SELECT bool_and(id BETWEEN safeguard.ulid_min(ts) AND safeguard.ulid_max(ts)) AS within_bounds
  FROM (SELECT ts, safeguard.ulid_at(ts) AS id
          FROM (SELECT now() - n * interval '1 hour 1.5 ms' AS ts FROM generate_series(1, 1000) n) t) s;

-- Range scans on a time-ordered primary key.
CREATE TABLE ids_events (id uuid PRIMARY KEY, happened_at timestamptz NOT NULL);
INSERT INTO ids_events
SELECT safeguard.ulid_at(ts), ts
  FROM generate_series(timestamptz '2025-12-01', timestamptz '2026-02-28', interval '1 hour') ts;
ANALYZE ids_events;
SELECT count(*) AS january_by_id,
       (SELECT count(*) FROM ids_events
         WHERE happened_at >= '2026-01-01' AND happened_at < '2026-02-01') AS january_by_time
  FROM ids_events
 WHERE id >= safeguard.ulid_min('2026-01-01') AND id < safeguard.ulid_min('2026-02-01');
EXPLAIN (COSTS OFF)
SELECT * FROM ids_events
 WHERE id >= safeguard.ulid_min('2026-01-01') AND id < safeguard.ulid_min('2026-01-02');

-- ulid_encode()/ulid_decode(): the canonical ULID text, case-insensitive, any 128-bit value.
SELECT safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FAV') AS spec_example,
       safeguard.ulid_decode('01arz3ndektsv4rrffq69g5fav') AS lower_case,
       safeguard.ulid_time(safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FAV')) AS spec_time;
SELECT safeguard.ulid_encode('01563e3a-b5d3-d676-4c61-efb99302bd5b') AS encoded,
       safeguard.ulid_encode('00000000-0000-0000-0000-000000000000') AS zero,
       safeguard.ulid_encode('ffffffff-ffff-ffff-ffff-ffffffffffff') AS max;
SELECT bool_and(safeguard.ulid_decode(safeguard.ulid_encode(u)) = u) AS any_uuid_round_trips,
       bool_and((safeguard.ulid_encode(u) < safeguard.ulid_encode(v)) = (u < v)) AS text_order_is_uuid_order
  FROM (SELECT gen_random_uuid() AS u, gen_random_uuid() AS v FROM generate_series(1, 5000)) s;

-- NULL in, NULL out.
SELECT safeguard.ulid_at(NULL) IS NULL AS at, safeguard.ulid_min(NULL) IS NULL AS min,
       safeguard.ulid_max(NULL) IS NULL AS max, safeguard.ulid_time(NULL) IS NULL AS time,
       safeguard.ulid_encode(NULL) IS NULL AS encode, safeguard.ulid_decode(NULL) IS NULL AS decode,
       NULL::safeguard.ulid IS NULL AS type_input;

-- Malformed text: 22P02, naming the type and the problem, never echoing the input.
SELECT safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FA');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FAVX');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_decode('');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FAU');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_decode('01ARZ3NDEK-SV4RRFFQ69G5FAV');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5Fé');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_decode('81ARZ3NDEKTSV4RRFFQ69G5FAV');
\echo :LAST_ERROR_SQLSTATE
SELECT 'SSN-123-45-6789-JANE-DOE-X'::safeguard.ulid;
\echo :LAST_ERROR_SQLSTATE
SELECT 'ZZZZZZZZZZZZZZZZZZZZZZZZZZ'::safeguard.ulid;
\echo :LAST_ERROR_SQLSTATE

-- Timestamps outside 48-bit Unix milliseconds: 22008.
SELECT safeguard.ulid_min('1969-12-31 23:59:59.999+00');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_max('10889-08-02 05:31:50.656+00');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_at('infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.ulid_at('-infinity');
\echo :LAST_ERROR_SQLSTATE

-- Volatility, strictness and parallel safety as documented.
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proisstrict AS strict,
       p.proparallel AS parallel
  FROM pg_proc p
 WHERE p.pronamespace = 'safeguard'::regnamespace
   AND p.proname IN ('ulid', 'ulid_at', 'ulid_min', 'ulid_max', 'ulid_time', 'ulid_encode',
                     'ulid_decode', 'gen_ulid')
 ORDER BY 1::text;

DROP TABLE ids_visits, ids_events;
DROP ROLE sg_ids_app;
