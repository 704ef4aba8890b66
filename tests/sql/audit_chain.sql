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

-- (Entries of earlier test files in this database are sealed too.)
SELECT safeguard.audit_seal() >= 241 AS sealed;
SELECT safeguard.audit_seal() AS sealed_again;
-- The links the Rust sealer wrote are those of the reference encoding (_audit_canonical, the
-- 0.1.0 PL/pgSQL chain), link by link.
DO $$
DECLARE
    link bytea := decode(repeat('00', 32), 'hex');
    chained record;
    compared bigint := 0;
    differing bigint := 0;
BEGIN
    FOR chained IN SELECT c.link AS stored, l AS entry FROM safeguard.audit_chain c
                     JOIN safeguard.audit_log l ON l.id = c.log_id ORDER BY c.seq LOOP
        link := sha256(link || safeguard._audit_canonical(chained.entry));
        compared := compared + 1;
        IF link <> chained.stored THEN
            differing := differing + 1;
        END IF;
    END LOOP;
    RAISE NOTICE 'links compared: % (all sealed: %), differing from the reference encoding: %',
        compared > 245, compared = (SELECT count(*) FROM safeguard.audit_chain), differing;
END $$;
SELECT ok, rows_checked = (SELECT count(*) FROM safeguard.audit_chain) AS all_checked, first_bad_id,
       detail LIKE '% sealed entries verified' AS detail
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
DELETE FROM safeguard.audit_seals;
\echo :LAST_ERROR_SQLSTATE
SELECT ok, first_bad_id FROM safeguard.audit_verify();

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
DROP TABLE visits;
