-- safeguard.lint(), rule by rule: for each rule a table (or function, view) that breaks it and
-- one that follows it. Every "bad_" object must be reported by its rule, and no "good_" object
-- by any rule of the pair.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE SCHEMA lint_rules;
SET search_path = lint_rules, public;
SELECT safeguard.current_tenant() IS NULL AS library_loaded;

-- tenant_table_not_isolated (ERROR): a tenant column and no isolation.
CREATE TABLE bad_not_isolated (id int PRIMARY KEY, tenant_id uuid NOT NULL);
CREATE TABLE good_isolated (id int PRIMARY KEY, tenant_id uuid NOT NULL);
SELECT safeguard.isolate('good_isolated');
-- rls_enabled_without_policy (ERROR)
CREATE TABLE bad_rls_no_policy (id int PRIMARY KEY);
ALTER TABLE bad_rls_no_policy ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE TABLE good_rls_with_policy (id int PRIMARY KEY, owner_name name);
ALTER TABLE good_rls_with_policy ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY own ON good_rls_with_policy USING (owner_name = (SELECT current_user));
-- policy_without_rls (ERROR)
CREATE TABLE bad_policy_no_rls (id int PRIMARY KEY, owner_name name);
CREATE POLICY own ON bad_policy_no_rls USING (owner_name = (SELECT current_user));
-- isolation_policy_altered (ERROR)
CREATE TABLE bad_policy_altered (id int PRIMARY KEY, tenant_id uuid NOT NULL);
SELECT safeguard.isolate('bad_policy_altered');
ALTER POLICY sg_tenant ON bad_policy_altered USING (true);
-- phi_unencrypted (ERROR)
CREATE TABLE bad_phi_plain (id int PRIMARY KEY, diagnosis text);
SELECT safeguard.classify('bad_phi_plain', '{diagnosis}', 'phi');
CREATE TABLE good_phi_encrypted (id int PRIMARY KEY, diagnosis safeguard.encrypted_text);
SELECT safeguard.classify('good_phi_encrypted', '{diagnosis}', 'phi');
-- rls_not_forced (WARN)
CREATE TABLE bad_rls_not_forced (id int PRIMARY KEY, owner_name name);
ALTER TABLE bad_rls_not_forced ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON bad_rls_not_forced USING (owner_name = (SELECT current_user));
-- policy_function_per_row (WARN)
CREATE TABLE bad_policy_per_row (id int PRIMARY KEY, org uuid);
ALTER TABLE bad_policy_per_row ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY org ON bad_policy_per_row USING (org = current_setting('app.org')::uuid);
CREATE TABLE good_policy_wrapped (id int PRIMARY KEY, org uuid);
ALTER TABLE good_policy_wrapped ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY org ON good_policy_wrapped USING (org = (SELECT current_setting('app.org')::uuid));
-- tenant_column_nullable and tenant_column_unindexed (WARN): isolated, but nullable / no index.
CREATE TABLE bad_tenant_nullable (id int PRIMARY KEY, tenant_id uuid);
SELECT safeguard.isolate('bad_tenant_nullable');
CREATE TABLE bad_tenant_unindexed (id int PRIMARY KEY, tenant_id uuid NOT NULL);
SELECT safeguard.isolate('bad_tenant_unindexed');
SELECT format('DROP INDEX %s', i) FROM safeguard.tenant_registry r, unnest(r.created_indexes) i
 WHERE r.tbl = 'bad_tenant_unindexed'::regclass \gexec
-- not_audited (WARN): tenant data / tagged data without audit (the good ones are audited).
CREATE TABLE bad_tagged_not_audited (id int PRIMARY KEY, email text);
SELECT safeguard.classify('bad_tagged_not_audited', '{email}', 'pii');
CREATE TABLE good_tagged_audited (id int PRIMARY KEY, email text);
SELECT safeguard.classify('good_tagged_audited', '{email}', 'pii');
SELECT safeguard.enable_audit('good_tagged_audited');
-- timestamp_without_time_zone (WARN)
CREATE TABLE bad_timestamp (id int PRIMARY KEY, seen_at timestamp);
CREATE TABLE good_timestamptz (id int PRIMARY KEY, seen_at timestamptz);
-- timestamps_set_by_application (WARN)
CREATE TABLE bad_app_timestamps (id int PRIMARY KEY, created_at timestamptz, updated_at timestamptz);
CREATE TABLE good_db_timestamps (id int PRIMARY KEY, created_at timestamptz, updated_at timestamptz);
SELECT safeguard.maintain_timestamps('good_db_timestamps') IS NOT NULL AS maintained;
CREATE TABLE good_created_default (id int PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now());
-- foreign_key_without_index (WARN)
CREATE TABLE parent_table (id int PRIMARY KEY);
CREATE TABLE bad_fk_unindexed (id int PRIMARY KEY, parent_id int REFERENCES parent_table);
CREATE TABLE good_fk_indexed (id int PRIMARY KEY, parent_id int REFERENCES parent_table);
CREATE INDEX ON good_fk_indexed (parent_id);
-- no_primary_key (WARN)
CREATE TABLE bad_no_primary_key (id int);
-- security_definer_without_search_path (WARN)
CREATE FUNCTION lint_rules.bad_definer() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
CREATE FUNCTION lint_rules.good_definer() RETURNS int LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS 'SELECT 1';
CREATE FUNCTION lint_rules.good_invoker() RETURNS int LANGUAGE sql AS 'SELECT 1';
-- view_without_security_invoker (WARN): views over a table with row security.
CREATE VIEW bad_definer_view AS SELECT id FROM good_isolated;
CREATE VIEW good_invoker_view WITH (security_invoker = true) AS SELECT id FROM good_isolated;
CREATE VIEW good_view_plain_table AS SELECT id FROM good_timestamptz;
-- soft_delete_without_live_index (WARN)
CREATE TABLE bad_soft_delete (id int PRIMARY KEY, deleted_at timestamptz);
CREATE TABLE good_soft_delete (id int PRIMARY KEY, deleted_at timestamptz);
CREATE INDEX ON good_soft_delete (id) WHERE deleted_at IS NULL;
-- isolation_widened (ERROR): a permissive policy beside sg_tenant (put in with the DDL hook off,
-- which otherwise refuses it); a restrictive one only narrows.
CREATE TABLE bad_widened (id int PRIMARY KEY, tenant_id uuid NOT NULL);
SELECT safeguard.isolate('bad_widened');
SET safeguard.isolation_ddl_hook = off;
CREATE POLICY open_insert ON bad_widened FOR INSERT WITH CHECK (true);
RESET safeguard.isolation_ddl_hook;
CREATE TABLE good_restrictive_beside (id int PRIMARY KEY, tenant_id uuid NOT NULL);
SELECT safeguard.isolate('good_restrictive_beside');
CREATE POLICY open_insert ON good_restrictive_beside AS RESTRICTIVE FOR INSERT WITH CHECK (true);
-- foreign_key_not_tenant_scoped (ERROR) and unique_without_tenant_column (WARN): keys between
-- isolated tables with and without the tenant column.
CREATE TABLE good_tenant_parent (id int PRIMARY KEY, tenant_id uuid NOT NULL, code text NOT NULL,
                                 UNIQUE (tenant_id, id), UNIQUE (tenant_id, code));
SELECT safeguard.isolate('good_tenant_parent');
CREATE TABLE bad_unscoped_fk (id int PRIMARY KEY, tenant_id uuid NOT NULL, parent_id int REFERENCES good_tenant_parent (id));
CREATE INDEX ON bad_unscoped_fk (parent_id);
SELECT safeguard.isolate('bad_unscoped_fk');
CREATE TABLE good_scoped_fk (id int PRIMARY KEY, tenant_id uuid NOT NULL, parent_id int,
                             FOREIGN KEY (tenant_id, parent_id) REFERENCES good_tenant_parent (tenant_id, id));
CREATE INDEX ON good_scoped_fk (parent_id);
SELECT safeguard.isolate('good_scoped_fk');
CREATE TABLE bad_unique_across (id int PRIMARY KEY, tenant_id uuid NOT NULL, email text UNIQUE);
SELECT safeguard.isolate('bad_unique_across');
-- materialized_view_over_isolated_table (ERROR)
CREATE MATERIALIZED VIEW bad_matview AS SELECT tenant_id, count(*) FROM good_isolated GROUP BY tenant_id;
CREATE VIEW good_invoker_summary WITH (security_invoker = true) AS
    SELECT tenant_id, count(*) FROM good_isolated GROUP BY tenant_id;
SELECT safeguard.enable_audit(t) FROM unnest(ARRAY['good_restrictive_beside', 'good_tenant_parent', 'good_scoped_fk']) t;
-- phi_column_untagged (INFO)
CREATE TABLE bad_untagged (id int PRIMARY KEY, medical_history text);
CREATE TABLE good_tagged_pii (id int PRIMARY KEY, medical_history safeguard.encrypted_text);
SELECT safeguard.classify('good_tagged_pii', '{medical_history}', 'phi');
SELECT safeguard.enable_audit('good_tagged_pii');
SELECT safeguard.enable_audit('good_phi_encrypted');
SELECT safeguard.enable_audit('good_isolated');

-- Every finding in the schema: each bad_ object with its rule, no good_ object.
SELECT level, rule, object FROM safeguard.lint('lint_rules');
SELECT count(*) AS findings_on_good_objects FROM safeguard.lint('lint_rules') WHERE object LIKE '%good%';
SELECT r.rule AS rule_without_a_bad_case
  FROM unnest(ARRAY['tenant_table_not_isolated', 'rls_enabled_without_policy', 'policy_without_rls',
                    'isolation_policy_altered', 'phi_unencrypted', 'rls_not_forced', 'policy_function_per_row',
                    'tenant_column_nullable', 'tenant_column_unindexed', 'not_audited',
                    'timestamp_without_time_zone', 'timestamps_set_by_application', 'foreign_key_without_index',
                    'no_primary_key', 'security_definer_without_search_path', 'view_without_security_invoker',
                    'soft_delete_without_live_index', 'phi_column_untagged', 'isolation_widened',
                    'foreign_key_not_tenant_scoped', 'unique_without_tenant_column',
                    'materialized_view_over_isolated_table']) r(rule)
 WHERE NOT EXISTS (SELECT 1 FROM safeguard.lint('lint_rules') l WHERE l.rule = r.rule);

DROP SCHEMA lint_rules CASCADE;
