-- lint() on a Citus coordinator: distributed tables keep the policy form Citus accepts (no advice
-- to wrap it in a sub-select, which Citus refuses), and a tenant table distributed by another
-- column is reported with the Citus remediation.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_safeguard;
RESET client_min_messages;
CREATE TABLE messages (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text);
SELECT create_distributed_table('messages', 'id');
SELECT safeguard.isolate('messages') IS NOT NULL AS isolated;
-- A local table with a per-row policy is still reported as before.
CREATE TABLE local_notes (id int PRIMARY KEY, tenant_id uuid NOT NULL);
CREATE INDEX ON local_notes (tenant_id);
ALTER TABLE local_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE local_notes FORCE ROW LEVEL SECURITY;
CREATE POLICY per_row ON local_notes USING (tenant_id = safeguard.current_tenant());
SELECT rule, object, remediation FROM safeguard.lint()
 WHERE rule IN ('citus_distribution_column', 'policy_function_per_row') ORDER BY rule, object;
SELECT count(*) AS isolation_findings_on_isolated_distributed_tables FROM safeguard.lint() l
 WHERE l.rule IN ('tenant_table_not_isolated', 'isolation_policy_altered')
   AND l.object IN ('public.charts', 'public.clinics', 'public.messages');
-- After safeguard.citus_setup() (tests/citus/encryption.sql), no set-up finding.
SELECT count(*) AS citus_not_set_up_findings FROM safeguard.lint() WHERE rule = 'citus_not_set_up';
-- Shards are never reviewed, even where Citus is told to show them: a reference table without a
-- primary key is reported once, not also for its copy on the coordinator.
CREATE TABLE lookup_codes (code text, label text);
SELECT create_reference_table('lookup_codes');
SET citus.show_shards_for_app_name_prefixes = '*';
SELECT rule, object FROM safeguard.lint() WHERE object LIKE '%lookup\_codes%';
SELECT count(*) AS findings_naming_a_shard FROM safeguard.lint() WHERE object ~ '_1[0-9]{5}\M';
RESET citus.show_shards_for_app_name_prefixes;
-- On a worker, one finding: the review runs on the coordinator.
\c clinic - :node_socket :worker1_port
SELECT level, rule, object, remediation FROM safeguard.lint();
\c clinic - :node_socket :coordinator_port
