-- Audit trail: what is captured, what is not, and who cannot change the log.
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = notice;
SET application_name = 'audit-test';

CREATE ROLE sg_aud_owner NOSUPERUSER NOBYPASSRLS;
CREATE ROLE sg_aud_app NOSUPERUSER NOBYPASSRLS;
GRANT CREATE ON SCHEMA public TO sg_aud_owner;

SET ROLE sg_aud_owner;
CREATE TABLE charts (
    id        uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    tenant_id uuid NOT NULL,
    diagnosis text,
    ssn       text,
    weight    numeric,
    codes     text[],
    extra     jsonb,
    seen_at   timestamptz
);
CREATE TABLE lookups (code text, label text);   -- no primary key, not isolated
CREATE VIEW chart_view AS SELECT id FROM charts;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON charts, lookups TO sg_aud_app;
SELECT safeguard.isolate('charts');

-- Bad calls, each with its SQLSTATE.
SELECT safeguard.enable_audit('charts', '{no_such_column}');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.enable_audit('chart_view');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT safeguard.enable_audit('safeguard.audit_log');
\echo :LAST_ERROR_SQLSTATE
SET ROLE sg_aud_app;
SELECT safeguard.enable_audit('charts');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

SET ROLE sg_aud_owner;
SELECT safeguard.enable_audit('charts', exclude_columns => '{ssn}');
SELECT safeguard.enable_audit('charts', exclude_columns => '{ssn}');   -- idempotent
SELECT safeguard.enable_audit('lookups');                              -- NOTICE: no primary key
RESET ROLE;
SELECT table_name, exclude_columns, log_unchanged, trigger_present, trigger_enabled_always
  FROM safeguard.audited_tables ORDER BY table_name::text;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'charts'::regclass ORDER BY tgname;

-- Changes by the application role, in a request context.
SET ROLE sg_aud_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001', '0000000a-0000-4000-8000-0000000000a1',
                             '0000000a-0000-4000-8000-0000000000f1', 'req-1');
INSERT INTO charts (id, tenant_id, diagnosis, ssn, weight, codes, extra, seen_at)
VALUES ('01a200d4-0000-7000-8000-000000000001', '0000000a-0000-4000-8000-000000000001', 'J45.909',
        '123-45-6789', 71.50, '{J45,R06}', '{"allergies": ["penicillin"]}', '2026-01-02 03:04:05+00');
UPDATE charts SET diagnosis = 'J45.40', ssn = '987-65-4321' WHERE id = '01a200d4-0000-7000-8000-000000000001';
UPDATE charts SET ssn = '000-00-0000';              -- only an excluded column: not logged
UPDATE charts SET weight = weight, codes = codes;   -- nothing changed: not logged
SAVEPOINT s;
UPDATE charts SET diagnosis = 'rolled back';
ROLLBACK TO s;
DELETE FROM charts;
SELECT txid_current() AS txid \gset
COMMIT;
-- A rolled-back transaction leaves no entry.
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO charts (tenant_id, diagnosis) VALUES ('0000000a-0000-4000-8000-000000000001', 'never');
ROLLBACK;
RESET ROLE;

SELECT operation, tenant_id, actor_id, impersonator_id, request_id, db_user, application_name,
       client_addr IS NULL AS local_socket, txid = :txid AS same_txid, table_schema, table_name,
       record_id, old_data, new_data, changed_columns
  FROM safeguard.audit_log WHERE table_name = 'charts' ORDER BY id;
-- Excluded columns never appear.
SELECT count(*) AS entries_mentioning_ssn FROM safeguard.audit_log
 WHERE old_data ? 'ssn' OR new_data ? 'ssn' OR 'ssn' = ANY (changed_columns);

-- log_unchanged: updates that change nothing (or only excluded columns) are logged too.
SET ROLE sg_aud_owner;
SELECT safeguard.enable_audit('charts', '{ssn}', log_unchanged => true);
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
INSERT INTO charts (id, tenant_id, diagnosis) VALUES ('01a200d4-0000-7000-8000-000000000002', '0000000a-0000-4000-8000-000000000001', 'Z00.00');
UPDATE charts SET diagnosis = diagnosis;
COMMIT;
RESET ROLE;
SELECT operation, old_data, new_data, changed_columns FROM safeguard.audit_log
 WHERE record_id = '{"id": "01a200d4-0000-7000-8000-000000000002"}' ORDER BY id;

-- A table without a primary key: the record is its whole row; no context: tenant is NULL.
SET ROLE sg_aud_app;
INSERT INTO lookups VALUES ('A', 'Alpha');
UPDATE lookups SET label = 'Alef';
TRUNCATE lookups;
RESET ROLE;
SELECT operation, tenant_id, record_id, old_data, new_data, changed_columns
  FROM safeguard.audit_log WHERE table_name = 'lookups' ORDER BY id;

-- Bulk statements: one entry per row.
SET ROLE sg_aud_owner;
BEGIN;
SELECT safeguard.set_context('0000000b-0000-4000-8000-000000000002');
INSERT INTO charts (tenant_id, diagnosis)
SELECT '0000000b-0000-4000-8000-000000000002', 'bulk ' || n FROM generate_series(1, 1000) n;
UPDATE charts SET weight = 1;
COMMIT;
RESET ROLE;
SELECT operation, count(*) FROM safeguard.audit_log WHERE tenant_id = '0000000b-0000-4000-8000-000000000002'
 GROUP BY operation ORDER BY operation;

-- Reads of the log are tenant-scoped.
SET ROLE sg_aud_app;
SELECT count(*) AS without_context FROM safeguard.audit_log;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
SELECT DISTINCT tenant_id FROM safeguard.audit_log;
-- One record's history, newest first.
SELECT operation, changed_columns FROM safeguard.audit_history('charts', '{"id": "01a200d4-0000-7000-8000-000000000001"}');
-- Access logging: a READ entry, with its purpose.
SELECT safeguard.audit_read('charts', '{"id": "01a200d4-0000-7000-8000-000000000002"}', 'treatment');
SELECT operation, db_user, record_id, new_data FROM safeguard.audit_log WHERE operation = 'READ';
COMMIT;
RESET ROLE;
-- Admins read every tenant's entries through role membership; only the log's owner decides.
CREATE ROLE sg_aud_auditors;
CREATE ROLE sg_aud_auditor IN ROLE sg_aud_auditors;
SET ROLE sg_aud_owner;
SELECT safeguard.set_audit_admin('sg_aud_auditors');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT safeguard.set_audit_admin('no_such_role');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.set_audit_admin('sg_aud_auditors');
SELECT safeguard.set_audit_admin('sg_aud_auditors');
SET ROLE sg_aud_auditor;
SELECT count(DISTINCT tenant_id) AS tenants_seen_by_auditor FROM safeguard.audit_log;
RESET ROLE;
SELECT safeguard.set_audit_admin(NULL);
SET ROLE sg_aud_auditor;
SELECT count(*) AS seen_after_revoking FROM safeguard.audit_log;
RESET ROLE;
DROP ROLE sg_aud_auditor, sg_aud_auditors;
-- Only a role that may read the table can record a read of it (42501).
CREATE ROLE sg_aud_stranger;
SET ROLE sg_aud_stranger;
SELECT safeguard.audit_read('charts', '{"id": "x"}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE sg_aud_stranger;

-- Append-only. The application role holds no write privilege on the log at all ...
SET ROLE sg_aud_app;
INSERT INTO safeguard.audit_log (db_user, table_schema, table_name, operation) VALUES ('x', 'x', 'x', 'READ');
\echo :LAST_ERROR_SQLSTATE
UPDATE safeguard.audit_log SET request_id = 'forged';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM safeguard.audit_log;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- ... and the guard stops the owner and superusers too, also in replica mode.
UPDATE safeguard.audit_log SET request_id = 'forged';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM safeguard.audit_log;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE safeguard.audit_log;
\echo :LAST_ERROR_SQLSTATE
SET session_replication_role = replica;
DELETE FROM safeguard.audit_log;
\echo :LAST_ERROR_SQLSTATE
RESET session_replication_role;
-- Only a deliberate act of a superuser, visible in the catalog, lifts it.
BEGIN;
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_log SET request_id = 'edited' WHERE operation = 'READ';
ROLLBACK;
SELECT count(*) AS forged_entries FROM safeguard.audit_log WHERE request_id IN ('forged', 'edited');

-- A hand-made trigger with arguments the function does not understand is refused (22023).
CREATE TABLE handmade (id int PRIMARY KEY);
CREATE TRIGGER bad AFTER INSERT ON handmade FOR EACH ROW EXECUTE FUNCTION safeguard._audit_row('x');
INSERT INTO handmade VALUES (1);
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER bad ON handmade;
CREATE TRIGGER bad AFTER INSERT ON handmade FOR EACH STATEMENT
    EXECUTE FUNCTION safeguard._audit_statement('', 'false', '0');
INSERT INTO handmade VALUES (1);
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER bad ON handmade;
CREATE TRIGGER bad BEFORE INSERT ON handmade FOR EACH ROW
    EXECUTE FUNCTION safeguard._audit_row('', 'false', '0');
INSERT INTO handmade VALUES (1);
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER bad ON handmade;
CREATE TRIGGER bad AFTER INSERT ON handmade FOR EACH STATEMENT
    EXECUTE FUNCTION safeguard._audit_row('', 'false', '0');
INSERT INTO handmade VALUES (1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_left_by_misused_triggers FROM handmade;
DROP TABLE handmade;

-- Partitioned tables: every change is logged, whether it is routed through the partitioned table
-- or aimed at a partition, also in partitions created or attached later; a partition alone is
-- refused (0A000) with a hint naming the table to audit.
CREATE TABLE parted (id int, at date, note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE parted_2026 PARTITION OF parted FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT safeguard.enable_audit('parted_2026');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.enable_audit('parted');
SELECT safeguard.enable_audit('parted');
CREATE TABLE parted_2027 PARTITION OF parted FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE TABLE parted_2028 (id int NOT NULL, at date NOT NULL, note text, PRIMARY KEY (id, at));
ALTER TABLE parted ATTACH PARTITION parted_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
-- Other ALTER TABLEs of the tree add nothing (what a restore does after making the triggers).
ALTER TABLE parted_2026 ENABLE ALWAYS TRIGGER sg_audit_truncate;
SELECT table_name, trigger_present, trigger_enabled_always FROM safeguard.audited_tables WHERE table_name = 'parted'::regclass;
SELECT tgrelid::regclass AS on_table, tgname, tgenabled FROM pg_trigger
 WHERE tgname LIKE 'sg_audit%' AND tgrelid IN (SELECT relid FROM pg_partition_tree('parted')) ORDER BY 1, 2;
INSERT INTO parted VALUES (1, '2026-03-01', 'routed'), (2, '2027-03-01', 'routed');
INSERT INTO parted_2026 VALUES (3, '2026-04-01', 'direct');
INSERT INTO parted_2028 VALUES (4, '2028-04-01', 'attached later');
UPDATE parted SET note = 'changed' WHERE id = 1;
UPDATE parted_2026 SET note = 'changed directly' WHERE id = 3;
-- A change of the partition key moves the row: PostgreSQL deletes it from one partition and
-- inserts it into the other, and the log says so.
UPDATE parted SET at = '2027-05-01' WHERE id = 3;
DELETE FROM parted_2027 WHERE id = 2;
TRUNCATE parted_2028;
SELECT table_name, operation, record_id, old_data, new_data, changed_columns
  FROM safeguard.audit_log WHERE table_name LIKE 'parted%' ORDER BY id;
SELECT operation, table_name, record_id FROM safeguard.audit_history('parted', '{"id": 1, "at": "2026-03-01"}');
-- TRUNCATE of the partitioned table truncates every partition: one entry per table.
TRUNCATE parted;
SELECT table_name FROM safeguard.audit_log WHERE operation = 'TRUNCATE' AND table_name LIKE 'parted%' ORDER BY id;
-- A copy of the row trigger disabled on one partition shows in audited_tables.
ALTER TABLE parted_2027 DISABLE TRIGGER sg_audit_row;
SELECT trigger_present, trigger_enabled_always FROM safeguard.audited_tables WHERE table_name = 'parted'::regclass;
ALTER TABLE parted_2027 ENABLE ALWAYS TRIGGER sg_audit_row;
SELECT safeguard.disable_audit('parted');
SELECT count(*) AS audit_triggers_left FROM pg_trigger
 WHERE tgname LIKE 'sg_audit%' AND tgrelid IN (SELECT relid FROM pg_partition_tree('parted'));
INSERT INTO parted VALUES (5, '2026-06-01', 'not audited');
SELECT count(*) AS entries_after_disable FROM safeguard.audit_log WHERE table_name LIKE 'parted%' AND record_id ->> 'id' = '5';
DROP TABLE parted;

-- The log as a DBA may extend it. Entries are written straight into the log's heap and indexes
-- while only indexes are added (a partial and an expression index here: both maintained, an
-- index scan finds what a sequential scan finds); what only the executor honours (an insert
-- trigger forwarding the log, a CHECK constraint) sends the writes through SQL, and it holds.
CREATE TABLE log_probe (id int PRIMARY KEY, a text);
SELECT safeguard.enable_audit('log_probe');
CREATE INDEX sg_test_deletes ON safeguard.audit_log (occurred_at) WHERE operation = 'DELETE';
CREATE INDEX sg_test_probe_a ON safeguard.audit_log ((new_data ->> 'a'));
INSERT INTO log_probe SELECT n, 'a' || n FROM generate_series(1, 50) n;
UPDATE log_probe SET a = 'a1' WHERE id <= 5;
DELETE FROM log_probe WHERE id > 40;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS deletes_by_index FROM safeguard.audit_log
 WHERE operation = 'DELETE' AND occurred_at > '-infinity' AND table_name = 'log_probe';
SELECT count(*) AS a1_by_index FROM safeguard.audit_log WHERE new_data ->> 'a' = 'a1';
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT count(*) FILTER (WHERE operation = 'DELETE') AS deletes, count(*) FILTER (WHERE new_data ->> 'a' = 'a1') AS a1
  FROM safeguard.audit_log WHERE table_name = 'log_probe';
DROP INDEX safeguard.sg_test_deletes, safeguard.sg_test_probe_a;
-- An error inside the direct write (a DBA's unique index refusing the second entry of a
-- statement) aborts the statement cleanly, in a subtransaction too: no entry of it stays, and
-- the next statement writes again.
CREATE UNIQUE INDEX sg_test_one_per_op ON safeguard.audit_log (table_name, operation)
    WHERE table_name = 'log_probe' AND (record_id ->> 'id')::int >= 200;
BEGIN;
SAVEPOINT before_copy;
\set VERBOSITY terse
INSERT INTO log_probe VALUES (200, 'x'), (201, 'y');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
ROLLBACK TO before_copy;
DROP INDEX safeguard.sg_test_one_per_op;
INSERT INTO log_probe VALUES (200, 'x'), (201, 'y');
COMMIT;
SELECT count(*) AS entries_for_200_and_201 FROM safeguard.audit_log
 WHERE table_name = 'log_probe' AND record_id ->> 'id' IN ('200', '201');
CREATE TABLE log_forwarded (operation text, table_name name);
CREATE FUNCTION forward_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_forwarded VALUES (NEW.operation, NEW.table_name);
    RETURN NULL;
END $$;
CREATE TRIGGER forward AFTER INSERT ON safeguard.audit_log FOR EACH ROW EXECUTE FUNCTION forward_log();
ALTER TABLE safeguard.audit_log ADD CONSTRAINT sg_test_no_forbidden CHECK (request_id IS DISTINCT FROM 'forbidden');
INSERT INTO log_probe VALUES (100, 'forwarded');
UPDATE log_probe SET a = 'forwarded too' WHERE id = 100;
DELETE FROM log_probe WHERE id = 100;
SELECT operation, table_name FROM log_forwarded;
BEGIN;
SELECT safeguard.set_context(NULL, NULL, NULL, 'forbidden');
\set VERBOSITY terse
UPDATE log_probe SET a = 'refused' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
ROLLBACK;
DROP TRIGGER forward ON safeguard.audit_log;
ALTER TABLE safeguard.audit_log DROP CONSTRAINT sg_test_no_forbidden;
DROP FUNCTION forward_log();
DROP TABLE log_forwarded;
UPDATE log_probe SET a = 'direct again' WHERE id = 1;
SELECT operation, new_data FROM safeguard.audit_log WHERE table_name = 'log_probe' ORDER BY id DESC LIMIT 1;
SELECT safeguard.disable_audit('log_probe');
DROP TABLE log_probe;

-- Hostile identifiers are quoted.
CREATE TABLE "Odd ""Table""; DROP TABLE charts; --" (id int PRIMARY KEY, "Weird ""Col""" text);
SELECT safeguard.enable_audit('"Odd ""Table""; DROP TABLE charts; --"', '{"Weird \"Col\""}');
INSERT INTO "Odd ""Table""; DROP TABLE charts; --" VALUES (1, 'x');
UPDATE "Odd ""Table""; DROP TABLE charts; --" SET id = 2;
SELECT operation, table_name, record_id, old_data, new_data, changed_columns
  FROM safeguard.audit_log WHERE table_name LIKE 'Odd%' ORDER BY id;
SELECT to_regclass('charts') IS NOT NULL AS charts_intact;

-- disable_audit: triggers gone, later changes not logged, entries kept; idempotent.
SET ROLE sg_aud_owner;
SELECT safeguard.disable_audit('charts');
SELECT safeguard.disable_audit('charts');
SELECT safeguard.disable_audit('lookups');
RESET ROLE;
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'charts'::regclass AND tgname LIKE 'sg\_audit%';
SELECT count(*) AS entries_before FROM safeguard.audit_log WHERE table_name = 'charts' \gset
DELETE FROM charts;
SELECT count(*) - :entries_before AS new_entries FROM safeguard.audit_log WHERE table_name = 'charts';
SELECT table_name FROM safeguard.audited_tables ORDER BY 1::text;

DROP TABLE charts, lookups, "Odd ""Table""; DROP TABLE charts; --" CASCADE;
SELECT count(*) AS registry_rows_left FROM safeguard.audit_registry;
REVOKE CREATE ON SCHEMA public FROM sg_aud_owner;
DROP ROLE sg_aud_owner, sg_aud_app;
