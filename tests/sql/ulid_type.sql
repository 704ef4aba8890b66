-- Type safeguard.ulid: 16 bytes, ULID text, uuid's order, indexes, casts, binary I/O.
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET search_path = public, safeguard;

SELECT typlen, typbyval, typalign, typstorage, typcategory
  FROM pg_type WHERE oid = 'safeguard.ulid'::regtype;

SELECT '01ARZ3NDEKTSV4RRFFQ69G5FAV'::safeguard.ulid AS text_in,
       '01arz3ndektsv4rrffq69g5fav'::safeguard.ulid AS lower_case_in,
       pg_column_size('01ARZ3NDEKTSV4RRFFQ69G5FAV'::safeguard.ulid) AS bytes;

-- Casts: uuid <-> ulid keep the 128 bits; ulid -> timestamptz; text <-> ulid.
SELECT '01ARZ3NDEKTSV4RRFFQ69G5FAV'::safeguard.ulid::uuid AS to_uuid,
       '01563e3a-b5d3-d676-4c61-efb99302bd5b'::uuid::safeguard.ulid AS from_uuid,
       '01ARZ3NDEKTSV4RRFFQ69G5FAV'::safeguard.ulid::timestamptz AS to_timestamptz,
       '01ARZ3NDEKTSV4RRFFQ69G5FAV'::safeguard.ulid::text AS to_text,
       '01arz3ndektsv4rrffq69g5fav'::text::safeguard.ulid AS from_text;
SELECT castsource::regtype, casttarget::regtype, castmethod, castcontext
  FROM pg_cast
 WHERE castsource = 'safeguard.ulid'::regtype OR casttarget = 'safeguard.ulid'::regtype
 ORDER BY 1::text, 2::text;

-- gen_ulid(): a new ID as type ulid.
SELECT pg_typeof(safeguard.gen_ulid()) AS type, length(safeguard.gen_ulid()::text) AS text_length,
       safeguard.gen_ulid() < safeguard.gen_ulid() AS increasing;

-- The order equals the uuid byte order and the text order.
SELECT bool_and((a < b) = (a::uuid < b::uuid)) AS lt, bool_and((a <= b) = (a::uuid <= b::uuid)) AS le,
       bool_and((a > b) = (a::uuid > b::uuid)) AS gt, bool_and((a >= b) = (a::uuid >= b::uuid)) AS ge,
       bool_and((a = b) = (a::uuid = b::uuid)) AS eq, bool_and((a <> b) = (a::uuid <> b::uuid)) AS ne,
       bool_and(sign(ulid_cmp(a, b)) = sign(uuid_cmp(a::uuid, b::uuid))) AS cmp,
       bool_and((a < b) = (a::text < b::text COLLATE "C")) AS text_order
  FROM (SELECT gen_random_uuid()::safeguard.ulid AS a, gen_random_uuid()::safeguard.ulid AS b
          FROM generate_series(1, 5000)
        UNION ALL SELECT x, x FROM (SELECT gen_random_uuid()::safeguard.ulid AS x) one) s;

-- Btree (with deduplication) and hash indexes, sorts, merge and hash joins.
CREATE TABLE ulid_items (id safeguard.ulid PRIMARY KEY DEFAULT safeguard.gen_ulid(), n int);
INSERT INTO ulid_items (n) SELECT n FROM generate_series(1, 20000) n;
CREATE INDEX ulid_items_hash ON ulid_items USING hash (id);
ANALYZE ulid_items;
SELECT bool_and(id > prev) AS pk_order_is_insert_order
  FROM (SELECT id, lag(id) OVER (ORDER BY n) AS prev FROM ulid_items) s WHERE prev IS NOT NULL;
SELECT (SELECT array_agg(n ORDER BY id) FROM ulid_items) = (SELECT array_agg(n ORDER BY n) FROM ulid_items)
       AS sort_matches_time;
SELECT indexrelid::regclass AS index, am.amname, opc.opcname, i.indisunique
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_am am ON am.oid = c.relam
  JOIN pg_opclass opc ON opc.oid = i.indclass[0]
 WHERE i.indrelid = 'ulid_items'::regclass ORDER BY 1::text;
SELECT amprocnum, amproc::regproc AS support_function
  FROM pg_amproc
 WHERE amprocfamily = (SELECT opcfamily FROM pg_opclass
                        WHERE opcname = 'ulid_ops' AND opcnamespace = 'safeguard'::regnamespace)
 ORDER BY 1;
CREATE EXTENSION pageinspect;
SELECT allequalimage AS btree_deduplication FROM bt_metap('ulid_items_pkey');
DROP EXTENSION pageinspect;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT n FROM ulid_items WHERE id = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
EXPLAIN (COSTS OFF) SELECT n FROM ulid_items
 WHERE id >= ulid_min('2026-01-01')::safeguard.ulid AND id < ulid_min('2026-02-01')::safeguard.ulid;
-- Joins of two tables (PostgreSQL 18 removes a self-join on a unique key altogether).
CREATE TABLE ulid_pairs AS SELECT id FROM ulid_items;
ANALYZE ulid_pairs;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SET enable_seqscan = on;
SET enable_hashjoin = off;
SET enable_nestloop = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM ulid_items a JOIN ulid_pairs b USING (id);
SELECT count(*) AS merge_join_rows FROM ulid_items a JOIN ulid_pairs b USING (id);
SET enable_hashjoin = on;
SET enable_mergejoin = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM ulid_items a JOIN ulid_pairs b USING (id);
SELECT count(*) AS hash_join_rows FROM ulid_items a JOIN ulid_pairs b USING (id);
RESET ALL;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET search_path = public, safeguard;

-- Binary send/recv: 16 big-endian bytes, identical to uuid's; COPY BINARY round-trips.
SELECT safeguard.ulid_send('01ARZ3NDEKTSV4RRFFQ69G5FAV') AS send,
       safeguard.ulid_send('01ARZ3NDEKTSV4RRFFQ69G5FAV') = uuid_send('01563e3a-b5d3-d676-4c61-efb99302bd5b') AS same_as_uuid;
-- The file goes into this cluster's own data directory: clusters of other majors or users never
-- share it.
SELECT current_setting('data_directory') || '/pg_safeguard_regress_ulid.bin' AS ulid_file \gset
COPY (SELECT id, n FROM ulid_items) TO :'ulid_file' (FORMAT binary);
CREATE TABLE ulid_items_copy (LIKE ulid_items);
COPY ulid_items_copy FROM :'ulid_file' (FORMAT binary);
SELECT count(*) AS copied, bool_and(c.id = i.id) AS identical
  FROM ulid_items_copy c JOIN ulid_items i USING (n);

-- Bad input: 22P02, naming the type, never echoing the value.
SELECT 'not-a-ulid'::safeguard.ulid;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO ulid_items (id, n) VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAL', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT 'UUUUUUUUUUUUUUUUUUUUUUUUUU'::text::safeguard.ulid;
\echo :LAST_ERROR_SQLSTATE
SELECT NULL::safeguard.ulid::uuid IS NULL AS null_cast, NULL::text::safeguard.ulid IS NULL AS null_text;

DROP TABLE ulid_items, ulid_items_copy, ulid_pairs;
