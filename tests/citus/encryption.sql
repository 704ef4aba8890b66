-- Encrypted columns on distributed tables: after safeguard.citus_setup() the key table is a
-- reference table, so every node encrypts and decrypts with the same keys, kept identical
-- through create, rotate, destroy, shred and rewrap; decryption runs on the workers with the
-- context set on the coordinator; grants and the decrypted view work from the coordinator.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_safeguard;
RESET client_min_messages;
-- A key created before the set-up, and a role allowed to decrypt before it: both reach the workers.
SELECT safeguard.create_key('00000000-0000-4000-8000-0000000000e1') > 0 AS key_a;
CREATE ROLE records_clerk LOGIN;  -- Citus connects to the workers as the current user
CREATE ROLE nurse LOGIN;
GRANT EXECUTE ON FUNCTION safeguard.decrypt(safeguard.encrypted_text) TO records_clerk;
SELECT * FROM safeguard.citus_setup();
-- Idempotent.
SELECT * FROM safeguard.citus_setup();
SELECT safeguard.create_key('00000000-0000-4000-8000-0000000000e2') > 0 AS key_b;
-- The same keys on every node, wrapped material included.
SELECT count(DISTINCT result) AS distinct_key_tables, count(*) AS nodes
  FROM run_command_on_all_nodes($$SELECT md5(string_agg(concat_ws('/', id, tenant_id, status, encode(wrapped_key, 'hex')), ',' ORDER BY id)) FROM safeguard.key_store$$);
-- Keys are managed on the coordinator only.
\c clinic - :node_socket :worker1_port
SELECT safeguard.create_key('00000000-0000-4000-8000-0000000000e3');
SELECT safeguard.citus_setup();
\c clinic - :node_socket :coordinator_port
\set SHOW_CONTEXT never

CREATE TABLE clinical_notes (tenant_id uuid NOT NULL, id int NOT NULL, body safeguard.encrypted_text,
                    meta safeguard.encrypted_jsonb, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('clinical_notes', 'tenant_id');
SELECT safeguard.isolate('clinical_notes') IS NOT NULL AS isolated;
GRANT USAGE ON SCHEMA safeguard TO records_clerk, nurse;
GRANT SELECT, INSERT, UPDATE, DELETE ON clinical_notes TO records_clerk, nurse;
SELECT safeguard.grant_decrypt('nurse');
SELECT safeguard.grant_decrypt('nurse');  -- idempotent
CREATE ROLE "night nurse; --" LOGIN;
SELECT safeguard.grant_decrypt('"night nurse; --"');
SELECT safeguard.grant_decrypt(NULL);
SELECT safeguard.grant_decrypt('nobody_by_that_name');
-- A worker that cannot take the grant (the role exists on the coordinator only) is reported,
-- 58000, and the coordinator's grant is rolled back with the statement.
SET citus.enable_ddl_propagation = off;
CREATE ROLE coordinator_only;
RESET citus.enable_ddl_propagation;
\set VERBOSITY terse
SELECT safeguard.grant_decrypt('coordinator_only');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT has_function_privilege('coordinator_only', 'safeguard.decrypt(safeguard.encrypted_text)', 'EXECUTE') AS granted_here;
-- The grants are on every node.
SELECT DISTINCT result AS nurse_may_decrypt_everywhere FROM run_command_on_all_nodes(
    $$SELECT has_function_privilege('nurse', 'safeguard.decrypt(safeguard.encrypted_text)', 'EXECUTE')
         AND has_function_privilege('nurse', 'safeguard.decrypt(safeguard.encrypted_jsonb)', 'EXECUTE')$$);
SELECT DISTINCT result AS night_nurse_may_decrypt_everywhere FROM run_command_on_all_nodes(
    $$SELECT has_function_privilege('night nurse; --', 'safeguard.decrypt(safeguard.encrypted_bytea)', 'EXECUTE')$$);
SELECT DISTINCT result AS clerk_may_decrypt_text_everywhere FROM run_command_on_all_nodes(
    $$SELECT has_function_privilege('records_clerk', 'safeguard.decrypt(safeguard.encrypted_text)', 'EXECUTE')
         AND NOT has_function_privilege('records_clerk', 'safeguard.decrypt(safeguard.encrypted_jsonb)', 'EXECUTE')$$);
SELECT safeguard.create_decrypted_view('clinical_notes')::text AS view;
SELECT id AS a_key FROM safeguard.keys WHERE tenant_id = '00000000-0000-4000-8000-0000000000e1' AND status = 'active' \gset
GRANT SELECT ON clinical_notes_decrypted TO nurse;

SET ROLE nurse;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
-- A literal, and bound parameters of a prepared INSERT and UPDATE (text and jsonb).
INSERT INTO clinical_notes VALUES ('00000000-0000-4000-8000-0000000000e1', 1, 'allergic to penicillin', '{"ward": 3}');
PREPARE add_note(uuid, int, text, jsonb) AS INSERT INTO clinical_notes VALUES ($1, $2, $3, $4);
EXECUTE add_note('00000000-0000-4000-8000-0000000000e1', 2, 'second note', '{"ward": 4}');
EXECUTE add_note('00000000-0000-4000-8000-0000000000e1', 3, 'third note', NULL);
PREPARE set_body(text, int) AS UPDATE clinical_notes SET body = $1 WHERE id = $2;
EXECUTE set_body('corrected second note', 2);
PREPARE set_meta(jsonb) AS UPDATE clinical_notes SET meta = $1 WHERE meta IS NULL;
EXECUTE set_meta('{"ward": 5}');
-- Decrypted on the workers (router and multi-shard), with the coordinator's context.
SELECT id, safeguard.decrypt(body) AS body, safeguard.decrypt(meta) AS meta FROM clinical_notes ORDER BY id;
SELECT safeguard.decrypt(body) AS router FROM clinical_notes WHERE tenant_id = '00000000-0000-4000-8000-0000000000e1' AND id = 1;
SELECT id, body, meta FROM clinical_notes_decrypted ORDER BY id;
-- Stored under tenant A's key, never as plain text, on the shard.
SELECT DISTINCT safeguard.key_id(body) = :a_key AS under_a_key,
       bool_and(body::text NOT LIKE '%note%' AND body::text LIKE 'sgenc:%') AS ciphertext
  FROM clinical_notes GROUP BY 1;
COMMIT;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e2') IS NOT NULL AS context_set;
EXECUTE add_note('00000000-0000-4000-8000-0000000000e2', 1, 'tenant b note', NULL);
SELECT id, safeguard.decrypt(body) AS body FROM clinical_notes ORDER BY id;
COMMIT;
RESET ROLE;
-- The superuser sees both tenants' rows; tenant B's value does not decrypt as tenant A.
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
SELECT safeguard.decrypt(body) FROM clinical_notes WHERE tenant_id = '00000000-0000-4000-8000-0000000000e2';
ROLLBACK;
-- The clerk was granted decrypt() for text only (before the set-up): text decrypts, jsonb not.
SET ROLE records_clerk;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
SELECT safeguard.decrypt(body) AS text_granted FROM clinical_notes WHERE id = 1;
ROLLBACK;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
SELECT safeguard.decrypt(meta) AS jsonb_not_granted FROM clinical_notes WHERE id = 1;
ROLLBACK;
RESET ROLE;
SELECT safeguard.revoke_decrypt('nurse');
SELECT DISTINCT result AS nurse_may_decrypt_anywhere FROM run_command_on_all_nodes(
    $$SELECT has_function_privilege('nurse', 'safeguard.decrypt(safeguard.encrypted_text)', 'EXECUTE')$$);
SELECT safeguard.grant_decrypt('nurse');

-- Rotation on the coordinator: new values under the new key on every shard, old ones still read.
SELECT safeguard.rotate_key('00000000-0000-4000-8000-0000000000e1') AS new_a_key \gset
SELECT :new_a_key > :a_key AS rotated;
SET ROLE nurse;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
EXECUTE add_note('00000000-0000-4000-8000-0000000000e1', 4, 'after rotation', NULL);
SELECT id, safeguard.decrypt(body) AS body,
       safeguard.key_id(body) = :new_a_key AS under_new_key
  FROM clinical_notes ORDER BY id;
COMMIT;
RESET ROLE;
-- Blind indexes on a distributed table: the same value gives the same index whether it is
-- computed on the coordinator (a router INSERT's parameter) or on a worker (a multi-shard
-- query, pushed down), and another tenant's search finds nothing.
CREATE TABLE members (tenant_id uuid NOT NULL, id int NOT NULL, mrn safeguard.encrypted_text, mrn_bidx bytea,
                      PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('members', 'tenant_id', colocate_with => 'clinical_notes');
SELECT safeguard.isolate('members') IS NOT NULL AS isolated;
CREATE INDEX ON members (tenant_id, mrn_bidx);
GRANT SELECT, INSERT ON members TO nurse;
SET ROLE nurse;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
PREPARE add_member(int, text) AS
    INSERT INTO members VALUES ('00000000-0000-4000-8000-0000000000e1', $1, $2, safeguard.blind_index($2, 'mrn'));
EXECUTE add_member(1, 'MRN-001');
EXECUTE add_member(2, 'MRN-002');
EXECUTE add_member(3, 'MRN-001');
DEALLOCATE add_member;
SELECT id, safeguard.decrypt(mrn) AS mrn FROM members WHERE mrn_bidx = safeguard.blind_index('MRN-001', 'mrn') ORDER BY id;
SELECT id FROM members WHERE tenant_id = '00000000-0000-4000-8000-0000000000e1'
                         AND mrn_bidx = safeguard.blind_index('MRN-002', 'mrn');
-- Recomputed on the workers from the decrypted value: equal for every row.
SELECT count(*) AS rows, count(*) FILTER (WHERE mrn_bidx = safeguard.blind_index(safeguard.decrypt(mrn), 'mrn')) AS equal
  FROM members;
COMMIT;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e2') IS NOT NULL AS context_set;
SELECT count(*) AS found_by_another_tenant FROM members WHERE mrn_bidx = safeguard.blind_index('MRN-001', 'mrn');
COMMIT;
RESET ROLE;
-- reencrypt() from the coordinator: each shard is re-encrypted on the node that holds it (as a
-- superuser: row security would hide the other tenants' rows); tenant A's values under its old
-- key move to its new key; run again, nothing left to do.
SELECT safeguard.reencrypt('clinical_notes', 'meta') AS rewritten;
SELECT safeguard.reencrypt('clinical_notes', 'meta') AS rewritten_again;
SELECT safeguard.key_id(meta) = :new_a_key AS under_new_a_key, count(*)
  FROM clinical_notes WHERE tenant_id = '00000000-0000-4000-8000-0000000000e1' AND meta IS NOT NULL GROUP BY 1;
SELECT safeguard.reencrypt('clinical_notes', 'no_such_column');
CREATE TABLE shared_notes (id int PRIMARY KEY, note safeguard.encrypted_text);
SELECT create_reference_table('shared_notes');
SELECT safeguard.reencrypt('shared_notes', 'note');
-- A master-key rotation: every node switches to the next master key, the coordinator re-wraps
-- the keys once, and every node decrypts again.
SELECT bool_and(success) AS switched FROM run_command_on_all_nodes(format('ALTER SYSTEM SET safeguard.master_key_file = %L', :'next_master_key'));
SELECT DISTINCT result AS reloaded FROM run_command_on_all_nodes('SELECT pg_reload_conf()');
SELECT pg_sleep(0.5);
\c clinic - :node_socket :coordinator_port
\set SHOW_CONTEXT never
SELECT safeguard.rewrap_keys(:'master_key') AS rewrapped;
SELECT safeguard.rewrap_keys(:'master_key') AS rewrapped_again;
SELECT count(DISTINCT result) AS distinct_key_tables
  FROM run_command_on_all_nodes($$SELECT md5(string_agg(concat_ws('/', id, tenant_id, status, encode(wrapped_key, 'hex')), ',' ORDER BY id)) FROM safeguard.key_store$$);
SET ROLE nurse;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
SELECT id, safeguard.decrypt(body) AS body, safeguard.decrypt(meta) AS meta FROM clinical_notes ORDER BY id;
COMMIT;
RESET ROLE;

-- Destroying tenant A's first key on the coordinator: its values stop decrypting on the workers,
-- also in the worker backends that had the key cached (this session's connections).
SELECT safeguard.destroy_key(:a_key);
SET ROLE nurse;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
SELECT safeguard.decrypt(body) AS body FROM clinical_notes WHERE id = 1;
ROLLBACK;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e1') IS NOT NULL AS context_set;
SELECT safeguard.decrypt(body) AS body FROM clinical_notes WHERE id = 4;
COMMIT;
RESET ROLE;
-- Crypto-shredding tenant B on the coordinator: gone on every node.
SELECT safeguard.shred_tenant('00000000-0000-4000-8000-0000000000e2') AS shredded;
SELECT DISTINCT result AS b_keys_left FROM run_command_on_all_nodes(
    $$SELECT count(*) FROM safeguard.key_store WHERE tenant_id = '00000000-0000-4000-8000-0000000000e2' AND wrapped_key IS NOT NULL$$);
SET ROLE nurse;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000e2') IS NOT NULL AS context_set;
SELECT safeguard.decrypt(body) AS body FROM clinical_notes;
ROLLBACK;
RESET ROLE;
-- The master key as it was, for the tests after this one.
SELECT bool_and(success) AS switched_back FROM run_command_on_all_nodes(format('ALTER SYSTEM SET safeguard.master_key_file = %L', :'master_key'));
SELECT DISTINCT result AS reloaded FROM run_command_on_all_nodes('SELECT pg_reload_conf()');
SELECT pg_sleep(0.5);
\c clinic - :node_socket :coordinator_port
SELECT safeguard.rewrap_keys(:'next_master_key') AS rewrapped_back;
