-- Tamper evidence: the hash chain finds a modified, a deleted and an inserted entry.
\set SHOW_CONTEXT never
SET search_path = public;
CREATE TABLE visits (id int PRIMARY KEY, note text);
SELECT safeguard.enable_audit('visits');
INSERT INTO visits SELECT n, 'visit ' || n FROM generate_series(1, 200) n;
UPDATE visits SET note = note || ' (seen)' WHERE id <= 20;
DELETE FROM visits WHERE id > 190;
-- Entries whose text needs every rule of the canonical encoding: quotes, backslashes, commas and
-- non-ASCII in the context and the data, an array of names that needs quoting, and (written
-- out of band by the owner, before the seal) an inet and a time before 1970.
CREATE TABLE "odd, table" (id int PRIMARY KEY, "a ""quoted"", col" text, "ü" jsonb);
SELECT safeguard.enable_audit('"odd, table"');
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001', NULL, '0000000b-0000-4000-8000-000000000002',
                             E'req \\ it''s, "ünï" ✓') IS NOT NULL AS context_set;
SET LOCAL application_name = E'app\\name''s';
INSERT INTO "odd, table" VALUES (1, E'back\\slash, ''quote''', '{"k": "ü\u00e9\n", "n": 1.50}');
UPDATE "odd, table" SET "a ""quoted"", col" = NULL, "ü" = '[]' WHERE id = 1;
COMMIT;
INSERT INTO safeguard.audit_log (occurred_at, db_user, client_addr, txid, table_schema, table_name, operation, record_id)
VALUES ('1969-12-31 23:59:59.5+00', current_user, '10.1.2.3/24', txid_current(), 'public', 'odd, table', 'INSERT', '{"id": 2}'),
       ('2026-11-30 12:00:00.000001+00', current_user, '::1', txid_current(), 'public', 'odd, table', 'DELETE', '{"id": 3}');
-- And entries that record the token that set their context (0.2.0): both columns, or one.
INSERT INTO safeguard.audit_log (db_user, txid, table_schema, table_name, operation, record_id, token_id, token_subject)
VALUES (current_user, txid_current(), 'public', 'odd, table', 'UPDATE', '{"id": 4}', E'jti \\ it''s, "ünï" ✓', 'sub|1'),
       (current_user, txid_current(), 'public', 'odd, table', 'UPDATE', '{"id": 5}', NULL, 'only a subject');

-- (Entries of earlier test files in this database are sealed too.)
SELECT safeguard.audit_seal() >= 241 AS sealed;
SELECT safeguard.audit_seal() AS sealed_again;
-- The blocks, recomputed here in SQL from the documented format (sql/audit_chain.sql): every
-- listed entry's hash is sha256 of the reference encoding (_audit_canonical, 0.1.0's), each
-- listed key is its entry's, the blocks tile the key range, and each link is
-- sha256(previous || tag || last_seq || after || through || latest_at || entries).
DO $$
DECLARE
    link bytea := decode(repeat('00', 32), 'hex');
    block record;
    entry safeguard.audit_log;
    listed bytea;
    through_txid bigint;
    through_id uuid;
    seq bigint := 0;
    compared bigint := 0;
    differing bigint := 0;
    bad_links bigint := 0;
    gaps bigint := 0;
BEGIN
    FOR block IN SELECT * FROM safeguard.audit_chain_blocks ORDER BY last_seq LOOP
        IF through_txid IS NOT NULL AND (block.after_txid, block.after_id) <> (through_txid, through_id) THEN
            gaps := gaps + 1;
        END IF;
        FOR n IN 0 .. octet_length(block.hashes) / 56 - 1 LOOP
            listed := substring(block.hashes FROM n * 56 + 1 FOR 56);
            SELECT * INTO entry FROM safeguard.audit_log l
             WHERE l.id = encode(substring(listed FROM 9 FOR 16), 'hex')::uuid;
            compared := compared + 1;
            IF int8send(entry.txid) <> substring(listed FROM 1 FOR 8)
               OR sha256(safeguard._audit_canonical(entry)) <> substring(listed FROM 25 FOR 32)
               OR (entry.txid, entry.id) <= (block.after_txid, block.after_id)
               OR (entry.txid, entry.id) > (block.through_txid, block.through_id) THEN
                differing := differing + 1;
            END IF;
        END LOOP;
        seq := seq + octet_length(block.hashes) / 56;
        link := sha256(link || convert_to('pg_safeguard audit block v1', 'UTF8') || '\x00'::bytea
                       || int8send(block.last_seq) || int8send(block.after_txid) || uuid_send(block.after_id)
                       || int8send(block.through_txid) || uuid_send(block.through_id)
                       || int8send((extract(epoch FROM block.latest_at - '2000-01-01 00:00:00+00') * 1000000)::bigint)
                       || block.hashes);
        IF link <> block.link OR block.last_seq <> seq THEN
            bad_links := bad_links + 1;
        END IF;
        through_txid := block.through_txid;
        through_id := block.through_id;
    END LOOP;
    RAISE NOTICE 'entries compared: % (every entry sealed: %), differing from the reference encoding: %, links differing: %, gaps: %',
        compared > 245, compared = (SELECT count(*) FROM safeguard.audit_log), differing, bad_links, gaps;
END $$;
SELECT ok, rows_checked = (SELECT sum(octet_length(hashes) / 56) FROM safeguard.audit_chain_blocks) AS all_checked,
       first_bad_id, detail LIKE '% sealed entries verified' AS detail
  FROM safeguard.audit_verify();
SELECT entries >= 241 AS entries, first_seq, last_seq = entries AS contiguous, octet_length(last_link) AS link_bytes
  FROM safeguard.audit_seals;

-- The entries of a transaction still running are left for the next seal.
BEGIN;
INSERT INTO visits VALUES (1000, 'in progress');
SELECT safeguard.audit_seal() AS sealed_while_running;
COMMIT;
SELECT safeguard.audit_seal() AS sealed_after_commit;

-- Whoever disables the guard to edit the log is found out by audit_verify().
SELECT id AS target FROM safeguard.audit_log ORDER BY id OFFSET 100 LIMIT 1 \gset
BEGIN;
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_log SET new_data = '{"note": "forged"}' WHERE id = :'target';
SELECT ok, first_bad_id = :'target' AS found, detail FROM safeguard.audit_verify();
ROLLBACK;
BEGIN;
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
DELETE FROM safeguard.audit_log WHERE id = :'target';
SELECT ok, first_bad_id = :'target' AS found, detail FROM safeguard.audit_verify();
ROLLBACK;
-- Inserting needs no trigger to be disabled, only the owner's rights: backdated, undated and
-- future-dated entries are all found.
BEGIN;
INSERT INTO safeguard.audit_log (id, db_user, table_schema, table_name, operation, txid)
VALUES ('00000000-0000-7000-8000-000000000001', 'x', 'public', 'visits', 'DELETE', 3);
SELECT ok, first_bad_id = '00000000-0000-7000-8000-000000000001' AS found, detail FROM safeguard.audit_verify();
ROLLBACK;
BEGIN;
INSERT INTO safeguard.audit_log (id, db_user, table_schema, table_name, operation)
VALUES ('00000000-0000-7000-8000-000000000002', 'x', 'public', 'visits', 'DELETE');
SELECT ok, first_bad_id = '00000000-0000-7000-8000-000000000002' AS found, detail FROM safeguard.audit_verify();
ROLLBACK;
BEGIN;
INSERT INTO safeguard.audit_log (id, db_user, table_schema, table_name, operation, txid)
VALUES ('00000000-0000-7000-8000-000000000003', 'x', 'public', 'visits', 'DELETE', 9000000000000);
SELECT ok, first_bad_id = '00000000-0000-7000-8000-000000000003' AS found, detail FROM safeguard.audit_verify();
ROLLBACK;
-- The chain itself is append-only too.
UPDATE safeguard.audit_chain SET link = '\x00';
\echo :LAST_ERROR_SQLSTATE
UPDATE safeguard.audit_chain_blocks SET link = '\x00';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM safeguard.audit_eras;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM safeguard.audit_seals;
\echo :LAST_ERROR_SQLSTATE
SELECT ok, first_bad_id FROM safeguard.audit_verify();

-- A seal of more entries than a block holds (16,384) writes several blocks, each continuing the
-- last; whoever alters, removes or forges a block, or an entry inside one, is found out too.
CREATE TABLE bulk (id int PRIMARY KEY);
SELECT safeguard.enable_audit('bulk');
INSERT INTO bulk SELECT generate_series(1, 40000);
SELECT count(*) AS blocks_before FROM safeguard.audit_chain_blocks \gset
SELECT safeguard.audit_seal() AS sealed_in_blocks;
SELECT count(*) - :blocks_before AS new_blocks FROM safeguard.audit_chain_blocks;
SELECT ok, detail LIKE '% sealed entries verified' AS verified FROM safeguard.audit_verify();
SELECT l.id AS middle FROM safeguard.audit_log l WHERE l.table_name = 'bulk' AND l.record_id = '{"id": 20000}' \gset
BEGIN;
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_log SET new_data = '{"id": -1}' WHERE id = :'middle';
SELECT ok, first_bad_id = :'middle' AS found, detail FROM safeguard.audit_verify();
ROLLBACK;
BEGIN;
ALTER TABLE safeguard.audit_chain_blocks DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_chain_blocks SET hashes = substring(hashes FROM 57)
 WHERE last_seq = (SELECT max(last_seq) FROM safeguard.audit_chain_blocks);
SELECT ok, first_bad_id, detail FROM safeguard.audit_verify();
ROLLBACK;
BEGIN;
ALTER TABLE safeguard.audit_chain_blocks DISABLE TRIGGER sg_audit_guard;
DELETE FROM safeguard.audit_chain_blocks
 WHERE last_seq = (SELECT last_seq FROM safeguard.audit_chain_blocks ORDER BY last_seq DESC OFFSET 1 LIMIT 1);
SELECT ok, first_bad_id, detail FROM safeguard.audit_verify();
ROLLBACK;
-- An entry deleted with a block's link replaced: the link no longer follows from the block.
BEGIN;
ALTER TABLE safeguard.audit_chain_blocks DISABLE TRIGGER sg_audit_guard;
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
DELETE FROM safeguard.audit_log WHERE id = :'middle';
UPDATE safeguard.audit_chain_blocks SET link = sha256(link)
 WHERE last_seq = (SELECT last_seq FROM safeguard.audit_chain_blocks ORDER BY last_seq DESC OFFSET 1 LIMIT 1);
SELECT ok, first_bad_id, detail FROM safeguard.audit_verify();
ROLLBACK;
SELECT ok FROM safeguard.audit_verify();

-- Retention: nothing younger than safeguard.audit_retention (6 years by default) can be purged.
SHOW safeguard.audit_retention;
SELECT safeguard.audit_purge('1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.audit_purge(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.audit_purge('7 years') AS purged_nothing_that_old;
-- With the retention lowered (superuser only), purging stops at the first entry that is too
-- young, and purged entries leave a chain that still verifies and keeps growing.
SET safeguard.audit_retention = '0';
SELECT safeguard.audit_purge('1 hour') AS purged_nothing_an_hour_old;
SELECT count(*) AS entries_before FROM safeguard.audit_log \gset
SELECT safeguard.audit_purge('0') = :entries_before AS purged_all_sealed;
SELECT count(*) AS entries_left FROM safeguard.audit_log;
SELECT entries = :entries_before AS recorded, through_seq = entries AS through FROM safeguard.audit_purges;
SELECT ok, rows_checked, detail FROM safeguard.audit_verify();
INSERT INTO visits VALUES (2000, 'after the purge');
SELECT safeguard.audit_seal() AS sealed_after_purge;
SELECT ok, rows_checked, detail FROM safeguard.audit_verify();
RESET safeguard.audit_retention;
-- The purge's own delete permission cannot be borrowed: the guard still stops everyone else.
DELETE FROM safeguard.audit_log;
\echo :LAST_ERROR_SQLSTATE

-- Sealing, verifying and purging read every tenant's entries: not for application roles by default.
CREATE ROLE sg_chain_app;
SET ROLE sg_chain_app;
SELECT safeguard.audit_seal();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM safeguard.audit_verify();
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.audit_purge('10 years');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard._audit_purge_through(1, '\x00', '10 years');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE sg_chain_app;
DROP TABLE visits, bulk;
