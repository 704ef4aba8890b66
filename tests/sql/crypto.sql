-- Encrypted columns: round trips, keys, tenants, tampering, rotation, shredding, blind indexes,
-- who may decrypt, and what a missing or malformed master key file gives.
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = notice;

CREATE ROLE sg_enc_owner NOSUPERUSER NOBYPASSRLS;
CREATE ROLE sg_enc_app NOSUPERUSER NOBYPASSRLS;
CREATE ROLE sg_enc_reader NOSUPERUSER NOBYPASSRLS;
GRANT CREATE ON SCHEMA public TO sg_enc_owner;

SET ROLE sg_enc_owner;
CREATE TABLE clients (
    id              int PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    organization_id int NOT NULL DEFAULT 1,
    medical_history safeguard.encrypted_text,
    scan            safeguard.encrypted_bytea,
    contacts        safeguard.encrypted_jsonb,
    mrn_bidx        bytea,
    UNIQUE (organization_id, mrn_bidx)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON clients TO sg_enc_app, sg_enc_reader;
SELECT safeguard.isolate('clients');
RESET ROLE;

-- No key yet: writing fails closed, with the call that fixes it in the hint.
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
INSERT INTO clients (id, tenant_id, medical_history) VALUES (1, safeguard.current_tenant(), 'asthma');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
INSERT INTO clients (id, tenant_id, medical_history) VALUES (1, gen_random_uuid(), 'asthma');
\echo :LAST_ERROR_SQLSTATE

-- Keys: administrators only; create_key is idempotent; the view never shows key material.
SET ROLE sg_enc_app;
SELECT safeguard.create_key();
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM safeguard.keys;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM safeguard.key_store;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT safeguard.create_key() AS global_key \gset
SELECT safeguard.create_key() = :global_key AS idempotent;
SELECT safeguard.create_key('00000000-0000-4000-8000-00000000000a') AS key_a \gset
SELECT safeguard.create_key('00000000-0000-4000-8000-00000000000b') AS key_b \gset
SELECT tenant_id, status FROM safeguard.keys ORDER BY id;
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'safeguard' AND table_name = 'keys' ORDER BY ordinal_position;
SELECT length(wrapped_key) AS wrapped_length FROM safeguard.key_store WHERE id = :key_a;

-- Writing as the application: literals, typed parameters, untyped text; all three types.
SET ROLE sg_enc_app;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
INSERT INTO clients (id, tenant_id, medical_history, scan, contacts, mrn_bidx)
VALUES (1, safeguard.current_tenant(), 'Allergic to penicillin', '\x00ff10', '{"name": "Ann", "phone": "555"}',
        safeguard.blind_index('MRN-001', 'mrn'));
PREPARE typed(int, text, bytea, jsonb, varchar) AS
    INSERT INTO clients (id, tenant_id, medical_history, scan, contacts, mrn_bidx)
    VALUES ($1, safeguard.current_tenant(), $2, $3, $4, safeguard.blind_index($5, 'mrn'));
EXECUTE typed(2, 'Type 2 diabetes', '\xdeadbeef', '[1, {"a": null}]', 'MRN-002');
PREPARE untyped AS INSERT INTO clients (id, tenant_id, medical_history) VALUES ($1, safeguard.current_tenant(), $2);
EXECUTE untyped(3, 'Hypertension');
PREPARE varchar_param(int, varchar) AS INSERT INTO clients (id, tenant_id, medical_history) VALUES ($1, safeguard.current_tenant(), $2);
EXECUTE varchar_param(4, 'Migraine');
-- What is stored and shown is the envelope, never the plaintext.
SELECT id, medical_history::text LIKE 'sgenc:%' AS envelope, medical_history::text LIKE '%Allerg%' AS shows_plaintext,
       safeguard.key_id(medical_history) = :key_a AS under_tenant_key
  FROM clients ORDER BY id;
COMMIT;
-- The application role has no decrypt grant.
SELECT safeguard.decrypt(medical_history) FROM clients WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- grant_decrypt(): the three decrypt() functions in one call (on a Citus coordinator, on every
-- node); idempotent; NULL refused.
SELECT safeguard.grant_decrypt('sg_enc_reader');
SELECT safeguard.grant_decrypt('sg_enc_reader');
SELECT safeguard.grant_decrypt(NULL);
SELECT has_function_privilege('sg_enc_reader', 'safeguard.decrypt(safeguard.encrypted_bytea)', 'EXECUTE') AS reader_may_decrypt,
       has_function_privilege('sg_enc_app', 'safeguard.decrypt(safeguard.encrypted_bytea)', 'EXECUTE') AS app_may_decrypt;
-- The Citus helpers say what they need on a single server.
SELECT * FROM safeguard.citus_setup();
SELECT * FROM safeguard.cluster_audit_verify();
SET ROLE sg_enc_reader;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
SELECT id, safeguard.decrypt(medical_history) AS history, safeguard.decrypt(scan) AS scan,
       safeguard.decrypt(contacts) AS contacts
  FROM clients ORDER BY id;
-- Blind index: equality lookups and uniqueness on an encrypted value.
SELECT id FROM clients WHERE mrn_bidx = safeguard.blind_index('MRN-002', 'mrn');
SELECT safeguard.blind_index('MRN-002', 'mrn') = safeguard.blind_index('MRN-002', 'mrn') AS deterministic,
       safeguard.blind_index('MRN-002', 'mrn') <> safeguard.blind_index('MRN-002', 'email') AS per_purpose,
       length(safeguard.blind_index('MRN-002', 'mrn')) AS bytes;
SAVEPOINT s;
INSERT INTO clients (id, tenant_id, mrn_bidx) VALUES (5, safeguard.current_tenant(), safeguard.blind_index('MRN-001', 'mrn'));
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
SELECT safeguard.blind_index('MRN-002', '');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO SAVEPOINT s;
SELECT safeguard.blind_index('MRN-002', 'mrn') AS bidx_a \gset
COMMIT;
-- Another tenant: same MRN, another blind index; A's values do not decrypt in B's context.
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000b');
SELECT safeguard.blind_index('MRN-002', 'mrn') <> :'bidx_a'::bytea AS per_tenant;
INSERT INTO clients (id, tenant_id, medical_history) VALUES (10, safeguard.current_tenant(), 'tenant B note');
SELECT id, safeguard.decrypt(medical_history) FROM clients ORDER BY id;
COMMIT;
RESET ROLE;

-- Cross-tenant copy (done by a superuser, below RLS): A's envelope in B's row does not decrypt as B.
UPDATE clients SET medical_history = (SELECT medical_history FROM clients WHERE id = 1) WHERE id = 10;
SET ROLE sg_enc_reader;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000b');
SELECT safeguard.decrypt(medical_history) FROM clients WHERE id = 10;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- No tenant in context: the reader sees no rows (RLS); a superuser sees the row, but its value
-- does not decrypt without its tenant in context.
SELECT safeguard.decrypt(medical_history) FROM clients WHERE id = 1;
RESET ROLE;
SELECT safeguard.decrypt(medical_history) FROM clients WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE

-- Envelope text is taken as it is (restores and replicas never encrypt twice), through the
-- type's input and through the text cast; a damaged envelope is refused, not encrypted.
CREATE TEMP TABLE copies (h safeguard.encrypted_text);
INSERT INTO copies SELECT medical_history::text FROM clients WHERE id = 1;
INSERT INTO copies VALUES ((SELECT medical_history::text FROM clients WHERE id = 1));
SELECT count(*) FILTER (WHERE c.h::text = o.medical_history::text) AS byte_identical
  FROM copies c, clients o WHERE o.id = 1;
SELECT 'sgenc:AAAA'::safeguard.encrypted_text;
SELECT 'sgenc:AQAAAAE***'::safeguard.encrypted_text;
SELECT 'sgenc:' || encode('\x0200000001000000000000000000000000000000000000000000000000000000000000'::bytea, 'base64')
  AS v2 \gset
SELECT :'v2'::safeguard.encrypted_text;
SELECT 'sgenc:' || encode('\x0100000000000000000000000000000000000000000000000000000000000000000000'::bytea, 'base64')
  AS nokey \gset
SELECT :'nokey'::safeguard.encrypted_bytea;
-- Invalid plain input: the error does not quote it.
SELECT '{"secret diagnosis": '::safeguard.encrypted_jsonb;
SELECT '\xZZ secret'::safeguard.encrypted_bytea;

-- An envelope moved between the types (through its text form) is refused by decrypt() when its
-- plaintext is not of the type: bytes that are not valid text (22021), text that is not JSON (22P02).
SELECT safeguard.decrypt(safeguard.encrypted_text_in(safeguard.encrypted_bytea_in('\xff00fe')::text::cstring));
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.decrypt(safeguard.encrypted_jsonb_in(safeguard.encrypted_text_in('not json')::text::cstring));
\echo :LAST_ERROR_SQLSTATE

-- Tampering: any changed byte gives an integrity error (XX001), never garbage.
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
SELECT medical_history::text AS good FROM clients WHERE id = 1 \gset
SELECT safeguard.decrypt(safeguard.encrypted_text_in(
           (left(:'good', 30) || CASE substr(:'good', 31, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(:'good', 32))::cstring));
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Random envelopes (well-formed header, random rest) never crash the server: each one is
-- refused with a clear SQLSTATE.
DO $$
DECLARE
    outcomes text[] := '{}';
    state text;
BEGIN
    PERFORM safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
    FOR i IN 1..500 LOOP
        BEGIN
            PERFORM safeguard.decrypt(safeguard.encrypted_text_in(('sgenc:' || encode(
                CASE WHEN i % 2 = 0 THEN '\x01'::bytea || int4send((SELECT id FROM safeguard.key_store
                                                                      WHERE tenant_id = safeguard.current_tenant()
                                                                        AND status = 'active'))
                     ELSE ''::bytea END
                || decode(substr(md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), 1, 2 * (i % 60)), 'hex'),
                'base64'))::cstring));
            outcomes := outcomes || 'decrypted'::text;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
            outcomes := outcomes || state;
        END;
    END LOOP;
    RAISE NOTICE 'outcomes: %', (SELECT string_agg(o || ' x' || n, ', ' ORDER BY o)
                                   FROM (SELECT o, count(*) n FROM unnest(outcomes) o GROUP BY o) s);
END $$;

-- Rotation: new values use the new key, old ones still decrypt; reencrypt moves them over.
SELECT safeguard.rotate_key('00000000-0000-4000-8000-00000000000a') AS key_a2 \gset
SELECT status FROM safeguard.keys WHERE id = :key_a;
SET ROLE sg_enc_reader;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
INSERT INTO clients (id, tenant_id, medical_history) VALUES (6, safeguard.current_tenant(), 'after rotation');
SELECT id, safeguard.key_id(medical_history) = :key_a2 AS new_key, safeguard.decrypt(medical_history)
  FROM clients ORDER BY id;
COMMIT;
RESET ROLE;
UPDATE clients SET medical_history = NULL WHERE id = 10;
SELECT safeguard.reencrypt('clients', 'medical_history', 2) AS rewritten;
SELECT safeguard.reencrypt('clients', 'medical_history') AS rewritten_again;
SELECT safeguard.reencrypt('clients', 'contacts') AS rewritten_jsonb;
SELECT safeguard.key_id(medical_history) AS key, count(*) FROM clients
 WHERE medical_history IS NOT NULL GROUP BY 1 ORDER BY 1;
SELECT safeguard.reencrypt('clients', 'medical_history', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.reencrypt('clients', 'no_such_column');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.reencrypt('clients', 'mrn_bidx');
\echo :LAST_ERROR_SQLSTATE
SET ROLE sg_enc_app;
SELECT safeguard.reencrypt('clients', 'medical_history');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A decrypted view for reporting roles: security_invoker, so the grant and RLS still apply.
SET ROLE sg_enc_owner;
SELECT safeguard.create_decrypted_view('clients');
SELECT safeguard.create_decrypted_view('clients');
SELECT reloptions FROM pg_class WHERE oid = 'clients_decrypted'::regclass;
GRANT SELECT ON clients_decrypted TO sg_enc_app, sg_enc_reader;
CREATE TABLE "Odd ""Name""; DROP TABLE clients; --" (id int, "sec ret" safeguard.encrypted_text);
SELECT safeguard.create_decrypted_view('"Odd ""Name""; DROP TABLE clients; --"', 'odd view');
RESET ROLE;
-- (pg_get_viewdef's own spelling differs between majors: its parts are checked)
SELECT pg_get_viewdef('"odd view"'::regclass) LIKE '%safeguard.decrypt(%"sec ret") AS "sec ret"%' AS decrypts_the_quoted_column,
       pg_get_viewdef('"odd view"'::regclass) LIKE '%FROM "Odd ""Name""; DROP TABLE clients; --"%' AS reads_the_quoted_table;
SET ROLE sg_enc_reader;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
SELECT id, medical_history, contacts FROM clients_decrypted ORDER BY id;
COMMIT;
RESET ROLE;
SET ROLE sg_enc_app;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
SELECT id, medical_history FROM clients_decrypted ORDER BY id;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;

-- The audit trail records ciphertext, never plaintext.
SET ROLE sg_enc_owner;
SELECT safeguard.enable_audit('clients');
RESET ROLE;
SET ROLE sg_enc_app;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
INSERT INTO clients (id, tenant_id, medical_history) VALUES (7, safeguard.current_tenant(), 'audited secret');
UPDATE clients SET medical_history = 'changed secret' WHERE id = 7;
COMMIT;
RESET ROLE;
SELECT operation, coalesce(new_data, '{}') ->> 'medical_history' LIKE 'sgenc:%' AS new_is_envelope,
       coalesce(old_data, '{}') ->> 'medical_history' LIKE 'sgenc:%' AS old_is_envelope,
       (coalesce(old_data::text, '') || coalesce(new_data::text, '')) LIKE '%secret%' AS shows_plaintext
  FROM safeguard.audit_log WHERE table_name = 'clients' ORDER BY id;

-- Destroying keys: crypto-shredding.
SELECT safeguard.destroy_key(:key_b);
SELECT safeguard.destroy_key(:key_b);
SELECT status, destroyed_at IS NOT NULL AS dated FROM safeguard.keys WHERE id = :key_b;
SELECT wrapped_key IS NULL AS material_gone FROM safeguard.key_store WHERE id = :key_b;
SELECT safeguard.destroy_key(999999);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.shred_tenant(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.shred_tenant('00000000-0000-4000-8000-00000000000a') AS keys_destroyed;
SELECT safeguard.shred_tenant('00000000-0000-4000-8000-00000000000a') AS keys_destroyed_again;
SELECT tenant_id, status FROM safeguard.keys ORDER BY id;
SET ROLE sg_enc_reader;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
SELECT safeguard.decrypt(medical_history) FROM clients WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT safeguard.set_context(tenant_id => '00000000-0000-4000-8000-00000000000a');
INSERT INTO clients (id, tenant_id, medical_history) VALUES (8, safeguard.current_tenant(), 'after shredding');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
-- reencrypt leaves what it cannot read, and says how much.
SELECT safeguard.create_key('00000000-0000-4000-8000-00000000000a') > :key_a2 AS new_key_after_shredding;
SELECT safeguard.reencrypt('clients', 'medical_history') AS rewritten_after_shredding;

-- The master key file: missing, readable by others, malformed, or a placeholder gives a clear
-- error at first use. Relative paths are read from the data directory: scripts/regress.sh puts
-- the malformed keys (mode 0600) in ../test-keys; COPY writes a file others can read.
CREATE TABLE global_notes (note safeguard.encrypted_text);
INSERT INTO global_notes VALUES ('written without a tenant: the global key');
SELECT current_setting('data_directory') || '/sg_test_open.key' AS open_key \gset
COPY (SELECT repeat('ab', 32)) TO :'open_key';
ALTER SYSTEM SET safeguard.master_key_file = 'sg_test_missing.key';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
\c
SET search_path = public;
\set SHOW_CONTEXT never
SELECT safeguard.rotate_key();
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET safeguard.master_key_file = 'sg_test_open.key';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT safeguard.create_key('00000000-0000-4000-8000-0000000000cc');
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET safeguard.master_key_file = '../test-keys/not-a-key';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT safeguard.create_key('00000000-0000-4000-8000-0000000000cc');
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET safeguard.master_key_file = '../test-keys/all-zero';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT safeguard.create_key('00000000-0000-4000-8000-0000000000cc');
\echo :LAST_ERROR_SQLSTATE
-- Another valid master key: the existing data keys do not unwrap under it.
ALTER SYSTEM SET safeguard.master_key_file = '../test-keys/other-master';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT safeguard.rotate_key('00000000-0000-4000-8000-00000000000a') AS other_master_key \gset
SELECT safeguard.decrypt(note) FROM global_notes;
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET safeguard.master_key_file = '';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT safeguard.create_key('00000000-0000-4000-8000-0000000000cc');
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM RESET safeguard.master_key_file;
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT safeguard.create_key('00000000-0000-4000-8000-0000000000cc') > 0 AS works_again;
-- Master-key rotation: point the server at a new master key, re-wrap every data key from the
-- previous file, and the values decrypt as before; running it again changes nothing.
SELECT setting AS first_master FROM pg_settings WHERE name = 'safeguard.master_key_file' \gset
ALTER SYSTEM SET safeguard.master_key_file = '../test-keys/other-master';
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT safeguard.decrypt(note) FROM global_notes;
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.rewrap_keys(:'first_master') > 0 AS rewrapped;
SELECT safeguard.rewrap_keys(:'first_master') AS rewrapped_again;
SELECT safeguard.decrypt(note) FROM global_notes;
SELECT safeguard.rewrap_keys('../test-keys/not-a-key');
\echo :LAST_ERROR_SQLSTATE
SET ROLE sg_enc_app;
SELECT safeguard.rewrap_keys(:'first_master');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- And back to the cluster's own master key.
ALTER SYSTEM RESET safeguard.master_key_file;
SELECT pg_reload_conf();
SELECT pg_sleep(1);
SELECT safeguard.rewrap_keys('../test-keys/other-master') > 0 AS rewrapped_back;
SELECT safeguard.decrypt(note) FROM global_notes;
SELECT safeguard.decrypt(note) FROM global_notes;
SELECT safeguard.destroy_key(:other_master_key);
-- Only superusers see where the key file is.
SET ROLE sg_enc_app;
\set VERBOSITY sqlstate
SHOW safeguard.master_key_file;
\set VERBOSITY default
RESET ROLE;

DROP TABLE global_notes, clients, "Odd ""Name""; DROP TABLE clients; --" CASCADE;
SELECT safeguard.revoke_decrypt('sg_enc_reader');
SELECT has_function_privilege('sg_enc_reader', 'safeguard.decrypt(safeguard.encrypted_text)', 'EXECUTE') AS reader_may_decrypt;
REVOKE CREATE ON SCHEMA public FROM sg_enc_owner;
DROP ROLE sg_enc_owner, sg_enc_app, sg_enc_reader;
