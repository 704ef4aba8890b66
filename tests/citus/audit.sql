-- Audit on distributed tables: enable_audit() before or after create_distributed_table; the
-- entries are written on the workers that hold the shards, in the same transaction as the
-- change, name the distributed table and carry the context; a record's history and a tenant's
-- activity are read from the coordinator; each node keeps an append-only log with its own hash
-- chain, sealed and verified from the coordinator, and an edit on a worker is reported.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_safeguard;
RESET client_min_messages;
CREATE TABLE prescriptions (tenant_id uuid NOT NULL, id int NOT NULL, drug text, dose text, PRIMARY KEY (tenant_id, id));
CREATE TABLE allergies (tenant_id uuid NOT NULL, id int NOT NULL, substance text, PRIMARY KEY (tenant_id, id));
-- Audited after distributing it.
SELECT create_distributed_table('prescriptions', 'tenant_id');
SELECT safeguard.isolate('prescriptions') IS NOT NULL AS isolated;
SELECT safeguard.enable_audit('prescriptions');
-- Audited before: Citus distributes a table with triggers only when told to.
SELECT safeguard.isolate('allergies') IS NOT NULL AS isolated;
SELECT safeguard.enable_audit('allergies');
SELECT create_distributed_table('allergies', 'tenant_id', colocate_with => 'prescriptions');
SET citus.enable_unsafe_triggers = on;
SELECT create_distributed_table('allergies', 'tenant_id', colocate_with => 'prescriptions');
RESET citus.enable_unsafe_triggers;
SELECT table_name, trigger_present, trigger_enabled_always
  FROM safeguard.audited_tables WHERE table_name IN ('prescriptions'::regclass, 'allergies'::regclass) ORDER BY 1;
-- The triggers on every shard, enabled ALWAYS: INSERT, UPDATE and DELETE; TRUNCATE too where the
-- table was audited before it was distributed (a TRUNCATE is logged on the coordinator, below).
SELECT DISTINCT result AS audit_triggers_per_shard FROM run_command_on_shards('prescriptions',
    $$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'sg\_audit\_%%' AND tgenabled = 'A'$$);
SELECT DISTINCT result AS audit_triggers_per_shard FROM run_command_on_shards('allergies',
    $$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'sg\_audit\_%%' AND tgenabled = 'A'$$);
-- A reference table (a copy on every node, the coordinator's included): each change is logged
-- once, by the coordinator's copy.
CREATE TABLE drug_catalog (code text PRIMARY KEY, name text);
SELECT create_reference_table('drug_catalog');
SELECT safeguard.enable_audit('drug_catalog');
BEGIN;
SELECT safeguard.set_context(NULL, '00000000-0000-4000-8000-0000000000a9', NULL, 'req-catalog') IS NOT NULL AS context_set;
INSERT INTO drug_catalog VALUES ('J01CA04', 'amoxicillin'), ('M01AE01', 'ibuprofen');
UPDATE drug_catalog SET name = 'Amoxicillin' WHERE code = 'J01CA04';
DELETE FROM drug_catalog WHERE code = 'M01AE01';
COMMIT;
TRUNCATE drug_catalog;
SELECT operation, table_name, actor_id, request_id, record_id, new_data->>'name' AS name
  FROM safeguard.cluster_audit_log(tbl => 'drug_catalog') ORDER BY id;
SELECT sum(result::int) AS reference_entries_on_workers FROM run_command_on_workers(
    $$SELECT count(*) FROM safeguard.audit_log WHERE table_name = 'drug_catalog'$$);

CREATE ROLE pharmacist LOGIN;  -- Citus connects to the workers as the current user
GRANT USAGE ON SCHEMA safeguard TO pharmacist;
GRANT SELECT, INSERT, UPDATE, DELETE ON prescriptions, allergies TO pharmacist;
SET ROLE pharmacist;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000a1',
                             NULL, 'req-rx-1') IS NOT NULL AS context_set;
INSERT INTO prescriptions VALUES ('00000000-0000-4000-8000-0000000000c1', 1, 'amoxicillin', '500 mg'),
                                 ('00000000-0000-4000-8000-0000000000c1', 2, 'ibuprofen', '200 mg');
UPDATE prescriptions SET dose = '250 mg' WHERE id = 1;
DELETE FROM prescriptions WHERE id = 2;
INSERT INTO allergies VALUES ('00000000-0000-4000-8000-0000000000c1', 1, 'penicillin');
COMMIT;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c2', '00000000-0000-4000-8000-0000000000a2',
                             NULL, 'req-rx-2') IS NOT NULL AS context_set;
INSERT INTO prescriptions VALUES ('00000000-0000-4000-8000-0000000000c2', 1, 'metformin', '850 mg');
COMMIT;
-- A change rolled back leaves no entry on any node.
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c2') IS NOT NULL AS context_set;
UPDATE prescriptions SET dose = '1000 mg';
ROLLBACK;
-- A record's history, read from the coordinator with the tenant's context: it names the
-- distributed table and carries the context of the change.
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c1') IS NOT NULL AS context_set;
SELECT operation, table_schema, table_name, tenant_id, actor_id, request_id, db_user, old_data->>'dose' AS old_dose,
       new_data->>'dose' AS new_dose, changed_columns
  FROM safeguard.audit_history('prescriptions', '{"tenant_id": "00000000-0000-4000-8000-0000000000c1", "id": 1}');
-- The tenant's activity on every node: its own entries only.
SELECT table_name, operation, count(*) FROM safeguard.cluster_audit_log() GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS other_tenants_entries FROM safeguard.cluster_audit_log()
 WHERE tenant_id IS DISTINCT FROM '00000000-0000-4000-8000-0000000000c1';
-- Another tenant's record: nothing.
SELECT count(*) AS other_tenants_history
  FROM safeguard.audit_history('prescriptions', '{"tenant_id": "00000000-0000-4000-8000-0000000000c2", "id": 1}');
COMMIT;
-- Without a context, nothing.
SELECT count(*) AS without_context FROM safeguard.cluster_audit_log();
SELECT safeguard.cluster_audit_verify();  -- for the owner and superusers, like audit_verify()
RESET ROLE;
-- COPY into a distributed table is logged on the workers too, with the context. (As the table's
-- owner: PostgreSQL refuses COPY FROM into a table with row security to other roles.)
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c2', '00000000-0000-4000-8000-0000000000a2',
                             NULL, 'req-copy') IS NOT NULL AS context_set;
COPY prescriptions (tenant_id, id, drug, dose) FROM STDIN;
00000000-0000-4000-8000-0000000000c2	2	insulin	10 IU
00000000-0000-4000-8000-0000000000c2	3	aspirin	100 mg
\.
COMMIT;
SELECT operation, tenant_id, actor_id, count(*) FROM safeguard.cluster_audit_log() WHERE request_id = 'req-copy'
 GROUP BY 1, 2, 3;
-- The superuser sees every tenant's entries (here filtered by tenant and time); none names a shard.
SELECT tenant_id, table_name, operation, count(*)
  FROM safeguard.cluster_audit_log(tbl => 'prescriptions') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT count(*) AS c2_today FROM safeguard.cluster_audit_log(tenant_id => '00000000-0000-4000-8000-0000000000c2',
                                                           since => now() - interval '1 hour');
SELECT count(*) AS entries_naming_a_shard FROM safeguard.cluster_audit_log() WHERE table_name ~ '_[0-9]+$';
-- The entries are on the workers that hold the shards; the coordinator holds none of them.
SELECT count(*) AS on_coordinator FROM safeguard.audit_log WHERE table_name IN ('prescriptions', 'allergies');
SELECT sum(result::int) AS on_workers FROM run_command_on_workers(
    $$SELECT count(*) FROM safeguard.audit_log WHERE table_name IN ('prescriptions', 'allergies')$$);
-- Append-only on the workers too.
SELECT DISTINCT success, result FROM run_command_on_workers($$DELETE FROM safeguard.audit_log$$);
-- Each node's chain, sealed and verified from the coordinator.
SELECT count(*) AS nodes, bool_and(sealed >= 0) AS sealed FROM safeguard.cluster_audit_seal();
SELECT count(*) AS nodes, bool_and(ok) AS all_verified FROM safeguard.cluster_audit_verify();
-- An entry edited on a worker by its superuser, with the guard switched off, is reported for
-- that node; once the edit is undone, every node verifies again.
\c clinic - :node_socket :worker1_port
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_log SET request_id = 'forged' WHERE request_id = 'req-rx-1';
ALTER TABLE safeguard.audit_log ENABLE ALWAYS TRIGGER sg_audit_guard;
\c clinic - :node_socket :worker2_port
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_log SET request_id = 'forged' WHERE request_id = 'req-rx-1';
ALTER TABLE safeguard.audit_log ENABLE ALWAYS TRIGGER sg_audit_guard;
\c clinic - :node_socket :coordinator_port
\set SHOW_CONTEXT never
SELECT count(*) AS nodes, count(*) FILTER (WHERE NOT ok) AS nodes_reporting_an_edit,
       bool_and(ok OR detail LIKE '%modified%') AS reported_as_modified
  FROM safeguard.cluster_audit_verify();
\c clinic - :node_socket :worker1_port
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_log SET request_id = 'req-rx-1' WHERE request_id = 'forged';
ALTER TABLE safeguard.audit_log ENABLE ALWAYS TRIGGER sg_audit_guard;
\c clinic - :node_socket :worker2_port
ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard;
UPDATE safeguard.audit_log SET request_id = 'req-rx-1' WHERE request_id = 'forged';
ALTER TABLE safeguard.audit_log ENABLE ALWAYS TRIGGER sg_audit_guard;
\c clinic - :node_socket :coordinator_port
\set SHOW_CONTEXT never
SELECT count(*) AS nodes, bool_and(ok) AS all_verified FROM safeguard.cluster_audit_verify();
-- On a single server or a worker, the cluster functions say where they run.
\c clinic - :node_socket :worker1_port
SELECT * FROM safeguard.cluster_audit_verify();
\c clinic - :node_socket :coordinator_port
-- A TRUNCATE runs on the coordinator: logged once there, whether the table was audited before
-- or after it was distributed (Citus copies the TRUNCATE trigger onto the shards only in the first
-- case; those copies stay silent).
TRUNCATE allergies;
TRUNCATE prescriptions;
SELECT table_name, count(*) AS truncates FROM safeguard.cluster_audit_log() WHERE operation = 'TRUNCATE'
 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS truncates_on_coordinator FROM safeguard.audit_log WHERE operation = 'TRUNCATE'
   AND table_name IN ('prescriptions', 'allergies');
-- disable_audit() on a distributed table removes the triggers from every shard (but the silent
-- TRUNCATE copies, which Citus does not drop).
SELECT safeguard.disable_audit('allergies');
SELECT DISTINCT result AS audit_triggers_per_shard FROM run_command_on_shards('allergies',
    $$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'sg\_audit\_%%'
                                      AND tgname NOT LIKE 'sg\_audit\_truncate\_%%'$$);
-- A partitioned distributed table, audited as a whole: partitions created or attached later are
-- distributed with the audit triggers (Citus refuses a partition with triggers unless
-- citus.enable_unsafe_triggers is on, which the extension turns on for that transaction alone);
-- entries name the partition that held the row, as on one server.
CREATE TABLE consults (tenant_id uuid NOT NULL, id int NOT NULL, seen_on date NOT NULL, note text,
                       PRIMARY KEY (tenant_id, id, seen_on)) PARTITION BY RANGE (seen_on);
CREATE TABLE consults_2026 PARTITION OF consults FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT create_distributed_table('consults', 'tenant_id', colocate_with => 'prescriptions');
SELECT safeguard.isolate('consults') IS NOT NULL AS isolated;
SELECT safeguard.enable_audit('consults');
CREATE TABLE consults_2027 PARTITION OF consults FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
SHOW citus.enable_unsafe_triggers;  -- only for the CREATE TABLE's transaction
CREATE TABLE consults_2028 (LIKE consults);
ALTER TABLE consults ATTACH PARTITION consults_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
SELECT table_name, trigger_present, trigger_enabled_always FROM safeguard.audited_tables WHERE table_name = 'consults'::regclass;
-- The row trigger on every shard of every partition (the TRUNCATE trigger is on the coordinator's
-- tables, whose copies log a TRUNCATE, below).
SELECT p AS partition, (SELECT DISTINCT result FROM run_command_on_shards(p,
    $$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND tgname LIKE 'sg\_audit\_row\_%%' AND tgenabled = 'A'$$))
       AS row_triggers_per_shard
  FROM unnest('{consults_2026,consults_2027,consults_2028}'::regclass[]) p;
GRANT SELECT, INSERT, UPDATE, DELETE ON consults TO pharmacist;
SET ROLE pharmacist;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000a1',
                             NULL, 'req-consult') IS NOT NULL AS context_set;
INSERT INTO consults VALUES ('00000000-0000-4000-8000-0000000000c1', 1, '2026-05-01', 'first'),
                            ('00000000-0000-4000-8000-0000000000c1', 2, '2027-05-01', 'second');
UPDATE consults SET note = 'first, revised' WHERE id = 1;
UPDATE consults SET seen_on = '2028-02-02' WHERE id = 1;  -- moves the row to another partition
DELETE FROM consults WHERE id = 2;
COMMIT;
RESET ROLE;
-- Straight into a partition (as its owner).
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000a1',
                             NULL, 'req-consult') IS NOT NULL AS context_set;
INSERT INTO consults_2027 VALUES ('00000000-0000-4000-8000-0000000000c1', 3, '2027-06-01', 'third');
COMMIT;
SELECT operation, table_name, tenant_id, actor_id, record_id->>'id' AS record, record_id->>'seen_on' AS seen_on,
       new_data->>'note' AS note
  FROM safeguard.cluster_audit_log(tbl => 'consults') WHERE request_id = 'req-consult' ORDER BY id;
-- A record's history searches the whole tree, from the coordinator, with the tenant's context.
SET ROLE pharmacist;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c1') IS NOT NULL AS context_set;
SELECT operation, table_name, old_data->>'note' AS old_note, new_data->>'note' AS new_note
  FROM safeguard.audit_history('consults', '{"tenant_id": "00000000-0000-4000-8000-0000000000c1", "id": 1, "seen_on": "2026-05-01"}');
COMMIT;
RESET ROLE;
-- TRUNCATE: logged once per table of the tree, by the coordinator.
TRUNCATE consults;
SELECT table_name, count(*) AS truncates FROM safeguard.cluster_audit_log(tbl => 'consults')
 WHERE operation = 'TRUNCATE' GROUP BY 1 ORDER BY 1;
