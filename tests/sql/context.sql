-- Request context: transaction-local, pool-safe, readable by policies; every error with its SQLSTATE.
\set SHOW_CONTEXT never
SET search_path = public;

-- A fresh session has not loaded the extension's library yet, so PostgreSQL keeps a SET of
-- safeguard.tenant_id as a placeholder. The first call into the extension loads the library,
-- which discards that value with a WARNING: it never reaches current_tenant().
SET safeguard.tenant_id = '0000000a-0000-4000-8000-000000000001';
SELECT safeguard.current_tenant() AS placeholder_discarded;
SELECT current_setting('safeguard.tenant_id') AS raw_setting;

CREATE ROLE sg_ctx_app NOSUPERUSER NOBYPASSRLS;

-- Nothing set: NULL, never an error.
SELECT safeguard.current_tenant() AS tenant, safeguard.current_actor() AS actor,
       safeguard.current_impersonator() AS impersonator, safeguard.current_request_id() AS request;

-- Inside a transaction: visible until COMMIT.
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001', '0000000a-0000-4000-8000-0000000000a1',
                             '0000000a-0000-4000-8000-0000000000f1', 'req-42');
SELECT safeguard.current_tenant() AS tenant, safeguard.current_actor() AS actor,
       safeguard.current_impersonator() AS impersonator, safeguard.current_request_id() AS request;
COMMIT;
SELECT safeguard.current_tenant() AS after_commit, current_setting('safeguard.tenant_id') AS raw_setting;

-- ... and until ROLLBACK.
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
ROLLBACK;
SELECT safeguard.current_tenant() AS after_rollback;

-- Outside a transaction block it lasts for its own statement only ...
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
SELECT safeguard.current_tenant() AS next_statement;
-- ... or for the statements sent with it in one simple-query message (one implicit transaction).
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001') \; SELECT safeguard.current_tenant() AS same_message;

-- A second call replaces the whole context: NULL clears a field.
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001', '0000000a-0000-4000-8000-0000000000a1');
SELECT safeguard.set_context('0000000b-0000-4000-8000-000000000002');
SELECT safeguard.current_tenant() AS tenant, safeguard.current_actor() AS actor;
SELECT safeguard.set_context(NULL);
SELECT safeguard.current_tenant() AS cleared;
COMMIT;

-- Named arguments, as applications call it.
BEGIN;
SELECT safeguard.set_context(tenant_id => '0000000a-0000-4000-8000-000000000001', request_id => 'r-7');
SELECT safeguard.current_tenant() AS tenant, safeguard.current_actor() AS actor, safeguard.current_request_id() AS request;
COMMIT;

-- An ordinary role can set and read its context.
SET ROLE sg_ctx_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
SELECT safeguard.current_tenant() AS app_tenant;
COMMIT;
RESET ROLE;

-- A parallel worker sees its leader's context.
BEGIN;
-- (the setting is force_parallel_mode up to PostgreSQL 15, debug_parallel_query from 16)
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query'
                       ELSE 'force_parallel_mode' END, 'on', true) AS parallel_forced;
SET LOCAL parallel_setup_cost = 0;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
SELECT safeguard.current_tenant() AS in_worker;
COMMIT;

-- The context settings accept values only from set_context(): nothing can outlive a
-- transaction or become a default for every session (42501).
SET safeguard.tenant_id = '0000000a-0000-4000-8000-000000000001';
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL safeguard.tenant_id = '0000000a-0000-4000-8000-000000000001';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT set_config('safeguard.actor_id', '0000000a-0000-4000-8000-000000000001', false);
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('safeguard.request_id', 'req', true);
\echo :LAST_ERROR_SQLSTATE
ALTER ROLE sg_ctx_app SET safeguard.tenant_id = '0000000a-0000-4000-8000-000000000001';
\echo :LAST_ERROR_SQLSTATE
SET ROLE sg_ctx_app;
SET safeguard.impersonator_id = '0000000a-0000-4000-8000-000000000001';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Clearing is always allowed.
RESET safeguard.tenant_id;
SET safeguard.tenant_id = '';
SELECT safeguard.current_tenant() AS still_none;
-- The prefix is reserved: a typo is an error, not a silently ignored placeholder.
SET safeguard.tenant = '0000000a-0000-4000-8000-000000000001';
\echo :LAST_ERROR_SQLSTATE

-- Adoption without code changes: read the setting the application already writes.
SET safeguard.tenant_setting = 'app.current_tenant_id';
SET safeguard.actor_setting = 'app.current_user_id';
BEGIN;
SELECT set_config('app.current_tenant_id', '0000000B-0000-4000-8000-000000000002', true);
SELECT set_config('app.current_user_id', '{0000000b-0000-4000-8000-0000000000b2}', true);
SELECT safeguard.current_tenant() AS adopted_tenant, safeguard.current_actor() AS adopted_actor;
COMMIT;
-- After the transaction, PostgreSQL returns '' for the setting: that is NULL, not an error.
SELECT current_setting('app.current_tenant_id') AS raw, safeguard.current_tenant() AS tenant;
-- set_context() writes the adopted setting too, so both kinds of code agree.
BEGIN;
SELECT safeguard.set_context('0000000c-0000-4000-8000-000000000003');
SELECT current_setting('app.current_tenant_id') AS app_setting, safeguard.current_tenant() AS tenant;
COMMIT;
-- A value that is not a uuid: 22P02, naming the setting, not echoing the value.
BEGIN;
SELECT set_config('app.current_tenant_id', 'patient-jane-doe', true);
SELECT safeguard.current_tenant();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT set_config('app.current_user_id', '0000000b-0000-4000-8000-00000000000', true);
SELECT safeguard.current_actor();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- A session-level value of the adopted setting would stay on a pooled connection after COMMIT
-- and reach the next request: an error (42501) however it was written, until it is reset.
SET app.current_tenant_id = '0000000b-0000-4000-8000-000000000002';
SELECT safeguard.current_tenant();
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('app.current_tenant_id', '0000000b-0000-4000-8000-000000000002', false) IS NOT NULL AS set;
SELECT safeguard.current_tenant();
\echo :LAST_ERROR_SQLSTATE
-- A transaction-local value over it counts for its transaction, and so does set_context().
BEGIN;
SET LOCAL app.current_tenant_id = '0000000c-0000-4000-8000-000000000003';
SELECT safeguard.current_tenant() AS local_over_session;
COMMIT;
BEGIN;
SELECT safeguard.set_context('0000000d-0000-4000-8000-000000000004');
SELECT safeguard.current_tenant() AS set_context_over_session;
COMMIT;
SELECT safeguard.current_tenant();
\echo :LAST_ERROR_SQLSTATE
RESET app.current_tenant_id;
SELECT safeguard.current_tenant() AS after_reset;
-- A session-level SET inside a transaction (it would survive the COMMIT), even over SET LOCAL.
BEGIN;
SET LOCAL app.current_tenant_id = '0000000c-0000-4000-8000-000000000003';
SET app.current_tenant_id = '0000000b-0000-4000-8000-000000000002';
SELECT safeguard.current_tenant();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- A function's SET clause ends with the function.
CREATE FUNCTION pg_temp.tenant_of_function() RETURNS uuid LANGUAGE sql
    SET app.current_tenant_id = '0000000e-0000-4000-8000-000000000005'
    AS 'SELECT safeguard.current_tenant()';
SELECT pg_temp.tenant_of_function() AS function_set_clause, safeguard.current_tenant() AS after_function;
-- The *_setting names are superuser-only (42501) and must name a custom setting (22023).
SET ROLE sg_ctx_app;
SET safeguard.tenant_setting = 'my.own_setting';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET safeguard.tenant_setting = 'work_mem';
\echo :LAST_ERROR_SQLSTATE
SET safeguard.tenant_setting = 'app.x; DROP TABLE y';
\echo :LAST_ERROR_SQLSTATE
RESET safeguard.tenant_setting;
RESET safeguard.actor_setting;

-- Volatility and parallel safety.
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proparallel AS parallel
  FROM pg_proc p
 WHERE p.pronamespace = 'safeguard'::regnamespace
   AND p.proname IN ('set_context', 'current_tenant', 'current_actor', 'current_impersonator', 'current_request_id')
 ORDER BY 1::text;

DROP ROLE sg_ctx_app;
