-- The master key from a command (safeguard.master_key_command) instead of a file: hex and
-- base64 output, the data directory placeholder, and what a failing, garbage-printing, too
-- talkative or hanging command gives (a clear error, nothing of its output in the message or the
-- log: scripts/key-leak-test.sh searches the server log for the key afterwards); rotation with
-- the previous key from a command; who may see or use it. Commands run in the data directory:
-- the cluster's own master key is ../master.key there, and scripts/regress.sh writes its base64
-- form to ../test-keys/master.b64.
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = notice;
CREATE ROLE sg_kc_app NOSUPERUSER NOBYPASSRLS;
CREATE TABLE kc_notes (id int PRIMARY KEY, note safeguard.encrypted_text);
INSERT INTO kc_notes VALUES (1, 'written under the cluster''s master key file');
CREATE FUNCTION kc_reconnect_after_reload() RETURNS void LANGUAGE sql AS $$
    SELECT pg_reload_conf(); SELECT pg_sleep(1);
$$;

-- Both a file and a command: refused, which one holds the key would be a guess.
ALTER SYSTEM SET safeguard.master_key_command = 'cat ../master.key';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT safeguard.decrypt(note) FROM kc_notes;
\echo :LAST_ERROR_SQLSTATE
-- The command alone, printing hex: the values written under the file decrypt.
ALTER SYSTEM SET safeguard.master_key_file = '';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT safeguard.decrypt(note) FROM kc_notes;
INSERT INTO kc_notes VALUES (2, 'written under the key the command printed');
-- Printing base64, and with the data directory placeholder (quoted for the shell).
ALTER SYSTEM SET safeguard.master_key_command = 'cat %d/../test-keys/master.b64';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT id, safeguard.decrypt(note) FROM kc_notes ORDER BY id;
-- An unknown placeholder is refused when the setting is written.
ALTER SYSTEM SET safeguard.master_key_command = 'cat %k';
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET safeguard.master_key_command = 'cat ../master.key %';
\echo :LAST_ERROR_SQLSTATE
-- A failing command that printed the key on both outputs: 38000, its exit status and how much it
-- wrote to standard error, never what.
ALTER SYSTEM SET safeguard.master_key_command = 'cat ../master.key; cat ../test-keys/master.b64 >&2; exit 3';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT safeguard.decrypt(note) FROM kc_notes WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
-- Garbage, and the key followed by more than a key command prints: F0000.
ALTER SYSTEM SET safeguard.master_key_command = 'echo this is not a key';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT safeguard.decrypt(note) FROM kc_notes WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET safeguard.master_key_command = 'cat ../master.key; seq 1 2000';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT safeguard.decrypt(note) FROM kc_notes WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
-- A slow command is waited for; one that outlives the timeout is killed (with what it started).
ALTER SYSTEM SET safeguard.master_key_command = 'sleep 1; cat ../master.key';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT safeguard.decrypt(note) FROM kc_notes WHERE id = 1;
ALTER SYSTEM SET safeguard.master_key_command_timeout = '1s';
ALTER SYSTEM SET safeguard.master_key_command = 'sleep 60 & sleep 60; cat ../master.key';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT clock_timestamp() AS started \gset
SELECT safeguard.decrypt(note) FROM kc_notes WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT clock_timestamp() - :'started'::timestamptz < interval '30 seconds' AS killed_at_the_timeout;
ALTER SYSTEM RESET safeguard.master_key_command_timeout;
-- Rotation: the server moves to another master key (a file), and the keys are re-wrapped from
-- the previous one, printed by a command; run again, nothing left to do.
ALTER SYSTEM RESET safeguard.master_key_command;
ALTER SYSTEM SET safeguard.master_key_file = '../test-keys/other-master';
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT safeguard.decrypt(note) FROM kc_notes WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.rewrap_keys_from_command('cat ../test-keys/master.b64') > 0 AS rewrapped;
SELECT safeguard.rewrap_keys_from_command('cat ../test-keys/master.b64') AS rewrapped_again;
SELECT id, safeguard.decrypt(note) FROM kc_notes ORDER BY id;
SELECT safeguard.rewrap_keys_from_command('exit 1');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.rewrap_keys_from_command('cat %x');
\echo :LAST_ERROR_SQLSTATE
-- Only superusers run it, see the settings or set them.
GRANT EXECUTE ON FUNCTION safeguard.rewrap_keys_from_command(text) TO sg_kc_app;
SET ROLE sg_kc_app;
SELECT safeguard.rewrap_keys_from_command('cat ../master.key');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY sqlstate
SHOW safeguard.master_key_command;
SET safeguard.master_key_command = 'cat /dev/null';
\set VERBOSITY default
RESET ROLE;
-- And back to the cluster's own master key file.
ALTER SYSTEM RESET safeguard.master_key_file;
SELECT kc_reconnect_after_reload();
\c
\set SHOW_CONTEXT never
SELECT safeguard.rewrap_keys('../test-keys/other-master') > 0 AS rewrapped_back;
SELECT id, safeguard.decrypt(note) FROM kc_notes ORDER BY id;
DROP TABLE kc_notes;
DROP FUNCTION kc_reconnect_after_reload();
REVOKE EXECUTE ON FUNCTION safeguard.rewrap_keys_from_command(text) FROM sg_kc_app;
DROP ROLE sg_kc_app;
