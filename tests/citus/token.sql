-- The verified request context on a Citus cluster: a role required to use tokens gets its
-- context on the workers from the token verified on the coordinator; a sealed context without a
-- verified token (set by another role with set_context() and seen by this one) is refused on the
-- workers, and one whose token has expired too: a sealed value is worth the token it came from.
\set SHOW_CONTEXT never
\set ECHO none
\i :tokens
\set ECHO all
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_safeguard;
RESET client_min_messages;
-- The registry of required roles is a reference table after the set-up (idempotent).
SELECT * FROM safeguard.citus_setup();
-- Tokens are verified on the coordinator only (with a leeway of 60 s; the workers keep 30 s).
LOAD 'pg_safeguard';
ALTER SYSTEM SET safeguard.jwt_keys_file = :'jwks_file';
ALTER SYSTEM SET safeguard.jwt_issuer = 'https://id.portal.test/';
ALTER SYSTEM SET safeguard.jwt_audience = 'portal';
ALTER SYSTEM SET safeguard.jwt_leeway = '60s';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);

CREATE TABLE referrals (tenant_id uuid NOT NULL, id int NOT NULL, reason text, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('referrals', 'tenant_id');
SELECT safeguard.isolate('referrals') IS NOT NULL AS isolated;
INSERT INTO referrals VALUES ('00000000-0000-4000-8000-0000000000c1', 1, 'cardiology'),
                             ('00000000-0000-4000-8000-0000000000c1', 2, 'dermatology'),
                             ('00000000-0000-4000-8000-0000000000c2', 1, 'oncology');
CREATE ROLE portal_app LOGIN;
CREATE ROLE support_tool LOGIN;
GRANT USAGE ON SCHEMA safeguard TO portal_app, support_tool;
GRANT SELECT ON referrals TO portal_app, support_tool;
SELECT safeguard.require_verified_context('portal_app');
-- Every node knows the requirement.
SELECT DISTINCT result AS required_on_every_node FROM run_command_on_all_nodes(
    $$SELECT string_agg(role_name::text, ',') FROM safeguard.verified_context_roles$$);

-- The required role with its token: its tenant's rows on every shard, router and multi-shard.
SET ROLE portal_app;
BEGIN;
SELECT safeguard.set_context_from_token(:'token_c1');
SELECT id, reason FROM referrals ORDER BY id;
SELECT reason FROM referrals WHERE tenant_id = '00000000-0000-4000-8000-0000000000c1' AND id = 2;
COMMIT;
RESET ROLE;
-- Its writes are logged on the workers with the token's id and subject, from the sealed context.
SELECT safeguard.enable_audit('referrals');
GRANT INSERT ON referrals TO portal_app;
SET ROLE portal_app;
BEGIN;
SELECT safeguard.set_context_from_token(:'token_c1', 'req-portal');
INSERT INTO referrals VALUES ('00000000-0000-4000-8000-0000000000c1', 3, 'neurology');
COMMIT;
RESET ROLE;
SELECT operation, table_name, tenant_id, request_id, token_id, token_subject
  FROM safeguard.cluster_audit_log(tbl => 'referrals');
SELECT sum(result::int) AS entries_on_workers FROM run_command_on_workers(
    $$SELECT count(*) FROM safeguard.audit_log WHERE token_id = 'login-c1'$$);
SET ROLE portal_app;
-- set_context() is refused to it.
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c2');
RESET ROLE;

-- Another role, not required, sets tenant c2 with set_context(); the sealed value it sends the
-- workers is visible (here simply read back).
SET ROLE support_tool;
BEGIN;
SELECT safeguard.set_context('00000000-0000-4000-8000-0000000000c2') IS NOT NULL AS context_set;
SELECT count(*) AS c2_rows FROM referrals;
SELECT current_setting('safeguard.context_proof') AS seen_proof \gset
COMMIT;
RESET ROLE;
-- The required role replays it: the workers refuse it (no verified token behind it).
SET ROLE portal_app;
BEGIN;
SET LOCAL citus.propagate_set_commands = 'local';
SET LOCAL safeguard.context_proof = :'seen_proof';
SELECT count(*) FROM referrals;
ROLLBACK;
-- A token that expired 45 s ago passes the coordinator's 60 s leeway, but its sealed context
-- is refused by the workers' 30 s.
BEGIN;
SELECT safeguard.set_context_from_token(:'token_expired_on_workers') IS NOT NULL AS accepted_here;
SELECT count(*) FROM referrals;
ROLLBACK;
RESET ROLE;
-- The role that is not required still uses the replayed value (it could call set_context()).
SET ROLE support_tool;
BEGIN;
SET LOCAL citus.propagate_set_commands = 'local';
SET LOCAL safeguard.context_proof = :'seen_proof';
SELECT count(*) AS c2_rows FROM referrals;
ROLLBACK;
RESET ROLE;

-- Lifting the requirement reaches every node.
SELECT safeguard.require_verified_context('portal_app', false);
SELECT DISTINCT result AS required_on_every_node FROM run_command_on_all_nodes(
    $$SELECT count(*) FROM safeguard.verified_context_roles$$);
ALTER SYSTEM RESET safeguard.jwt_keys_file;
ALTER SYSTEM RESET safeguard.jwt_issuer;
ALTER SYSTEM RESET safeguard.jwt_audience;
ALTER SYSTEM RESET safeguard.jwt_leeway;
SELECT pg_reload_conf();
