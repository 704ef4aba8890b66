-- A guided tour of pg_safeguard in the demo database (make run). It grows with each capability.
\pset footer off

\echo
\echo '== 1. Time-ordered IDs =============================================================='
\echo 'safeguard.ulid() returns a uuid that is both a ULID and a valid UUIDv7: the first 48 bits'
\echo 'are the time in milliseconds, so new rows land at the right edge of the primary-key index.'
SELECT safeguard.ulid() AS id, safeguard.ulid() AS next_id;

\echo 'Every ID carries its creation time, and has a 26-character ULID text form:'
SELECT id, safeguard.ulid_time(id) AS created, safeguard.ulid_encode(id) AS ulid_text
  FROM organizations ORDER BY id;

\echo 'The text form decodes back to the same 128 bits (any ULID library''s text works):'
SELECT safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FAV') AS from_spec_example,
       safeguard.ulid_time(safeguard.ulid_decode('01ARZ3NDEKTSV4RRFFQ69G5FAV')) AS its_time;

\echo 'IDs of a time range, by index range scan on the primary key (no created_at index needed):'
SELECT count(*) AS january_appointments
  FROM appointments
 WHERE id >= safeguard.ulid_min('2026-01-01 00:00+00')::safeguard.ulid
   AND id <  safeguard.ulid_min('2026-02-01 00:00+00')::safeguard.ulid;

\echo 'The 16-byte type safeguard.ulid shows the ULID text and casts to uuid and timestamptz:'
SELECT id, id::uuid AS as_uuid, id::timestamptz AS created, pg_column_size(id) AS bytes
  FROM appointments ORDER BY id LIMIT 3;
