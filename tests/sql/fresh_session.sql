-- Every function that reads a setting, called as the first statement of a new connection (\c),
-- as a cron job or pg_cron would: the same answer as in a session that already loaded the
-- library. The regression cluster does not preload pg_safeguard (shared_preload_libraries is
-- tested by scripts/preload-test.sh), so each \c starts without it.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT current_user AS superuser \gset
CREATE ROLE sg_fresh_job LOGIN NOSUPERUSER;
GRANT EXECUTE ON FUNCTION safeguard.audit_purge(interval) TO sg_fresh_job;
CREATE SCHEMA fresh_auto;
SELECT safeguard.auto_isolate('tenant_id', 'fresh_auto');
CREATE TABLE fresh_lint (id int PRIMARY KEY, clinic_id uuid NOT NULL);

-- audit_purge reads safeguard.audit_retention (failed with 22023 in 0.1.0).
\c
SELECT safeguard.audit_purge('7 years') AS purged;
\c
SELECT safeguard.audit_purge('1 day') AS purged;
\echo :LAST_ERROR_SQLSTATE
-- A non-superuser's placeholder for the superuser-only setting is discarded as the library loads
-- (0.1.0 read it: a job role could purge yesterday's entries).
\c - sg_fresh_job
SET safeguard.audit_retention = '1 second';
SELECT safeguard.audit_purge('1 day') AS purged;
\echo :LAST_ERROR_SQLSTATE
SHOW safeguard.audit_retention;
\c - :superuser

-- SHOW before anything has loaded the library: PostgreSQL does not know the setting yet. With
-- shared_preload_libraries = 'pg_safeguard' (recommended) it does; lint says so (INFO).
\c
SHOW safeguard.audit_retention;
\echo :LAST_ERROR_SQLSTATE
\c
SELECT level, rule, object FROM safeguard.lint() WHERE rule = 'library_not_preloaded';
SELECT safeguard._preloaded();

-- lint reads safeguard.tenant_column: set as a session's first statement, it is used.
\c
SET safeguard.tenant_column = 'clinic_id';
SELECT level, rule, object FROM safeguard.lint('public') WHERE object LIKE 'public.fresh\_lint%' AND level = 'ERROR';
\c
SELECT level, rule, object FROM safeguard.lint('public') WHERE object LIKE 'public.fresh\_lint%' AND level = 'ERROR';
\c
SELECT level, findings FROM safeguard.lint_summary('fresh_auto');

-- The DDL hook reads safeguard.isolation_ddl_hook: a CREATE TABLE as the first statement is
-- isolated; turned off as the first statement, it is not.
\c
CREATE TABLE fresh_auto.visits (id int PRIMARY KEY, tenant_id uuid NOT NULL);
SELECT table_name, mode FROM safeguard.isolated_tables WHERE table_name::text LIKE 'fresh_auto.%';
\c
SET safeguard.isolation_ddl_hook = off;
CREATE TABLE fresh_auto.scratch (id int PRIMARY KEY, tenant_id uuid NOT NULL);
SELECT table_name, mode FROM safeguard.isolated_tables WHERE table_name::text LIKE 'fresh_auto.%';
-- The policy guard (same setting) refuses a widening policy from the first statement on.
\c
CREATE POLICY fresh_open ON fresh_auto.visits FOR SELECT USING (true);
\echo :LAST_ERROR_SQLSTATE

-- The context readers and set_context (Rust: the call itself loads the library).
\c
SELECT safeguard.current_tenant() IS NULL AS no_tenant, safeguard.current_request_id() IS NULL AS no_request;
\c
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001', request_id => 'req-1');
SELECT safeguard.current_tenant(), safeguard.current_request_id();
COMMIT;
-- A session-level SET of the context before the library loads is a placeholder, discarded with
-- a WARNING when the first policy or context call loads it: never a tenant.
\c
SET safeguard.tenant_id = '0000000a-0000-4000-8000-000000000001';
SELECT safeguard.current_tenant() IS NULL AS no_tenant;
-- An adopted setting named with ALTER ROLE ... SET reaches current_tenant() in a new session.
ALTER ROLE sg_fresh_job SET safeguard.tenant_setting = 'app.tenant';
\c - sg_fresh_job
BEGIN;
SELECT set_config('app.tenant', '0000000a-0000-4000-8000-000000000002', true) IS NOT NULL AS set;
SELECT safeguard.current_tenant();
COMMIT;
-- A value of the adopted setting given to the role as a default is a session's value: an error
-- (42501) in the first statement of a new session, as in any other.
\c - :superuser
ALTER ROLE sg_fresh_job SET app.tenant = '0000000a-0000-4000-8000-000000000002';
\c - sg_fresh_job
SELECT safeguard.current_tenant();
\echo :LAST_ERROR_SQLSTATE
\c - :superuser
ALTER ROLE sg_fresh_job RESET app.tenant;
ALTER ROLE sg_fresh_job RESET safeguard.tenant_setting;
-- safeguard._setting() answers for the extension's own settings only (42704).
SELECT safeguard._setting('work_mem');
\echo :LAST_ERROR_SQLSTATE

SET client_min_messages = warning;
DROP SCHEMA fresh_auto CASCADE;
DROP TABLE fresh_lint;
REVOKE EXECUTE ON FUNCTION safeguard.audit_purge(interval) FROM sg_fresh_job;
DROP ROLE sg_fresh_job;
