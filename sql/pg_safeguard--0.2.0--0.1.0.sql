-- pg_safeguard 0.2.0 -> 0.1.0 (ALTER EXTENSION pg_safeguard UPDATE TO '0.1.0'): the way back,
-- before going back to the 0.1.0 package. Written by hand: 0.1.0's definitions (from
-- sql/pg_safeguard--0.1.0.sql) replace 0.2.0's, and what 0.2.0 added is dropped. Nothing that
-- holds data is dropped; tenant-scoped foreign keys stay as they are (plain constraints), and
-- the rule registry's way of undoing them is rewritten for 0.1.0's drop_rule().
-- scripts/upgrade-test.sh compares the result with a fresh 0.1.0 install.
\echo Use "ALTER EXTENSION pg_safeguard UPDATE TO '0.1.0'" to load this file. \quit

-- 0.1.0 chains every entry one by one and numbers entries by txid_current() alone. Going back
-- is refused when the chain does not verify (its blocks are dropped below, and their entries
-- chained again the 0.1.0 way, which must not launder a tampered log), and when this log was
-- restored into a cluster whose transaction numbers it had to offset (0.1.0 has no offsets), or
-- when entries record the token that set their context (0.1.0 has no such columns).
DO $$
DECLARE
    verdict record;
BEGIN
    IF EXISTS (SELECT 1 FROM safeguard.audit_eras e WHERE e.txid_offset <> 0) THEN
        RAISE EXCEPTION 'this audit log was restored into a cluster that offsets its transaction numbers: 0.1.0 cannot continue it'
            USING ERRCODE = '55000', HINT = 'Stay on 0.2.0, or take the log out (pg_dump) before going back.';
    END IF;
    -- 0.1.0's log has no token columns: going back would drop which token set each context.
    IF EXISTS (SELECT 1 FROM safeguard.audit_log l WHERE l.token_id IS NOT NULL OR l.token_subject IS NOT NULL) THEN
        RAISE EXCEPTION 'audit entries record the token that set their context, which 0.1.0 cannot keep: not taking them back to 0.1.0'
            USING ERRCODE = '55000', HINT = 'Stay on 0.2.0.';
    END IF;
    IF EXISTS (SELECT 1 FROM safeguard.audit_chain_blocks) THEN
        SELECT * INTO verdict FROM safeguard._audit_verify_chain();
        IF NOT verdict.ok THEN
            RAISE EXCEPTION 'the audit chain does not verify (%): not taking it back to 0.1.0', verdict.detail
                USING ERRCODE = '55000', HINT = 'Investigate with SELECT * FROM safeguard.audit_verify(); first.';
        END IF;
    END IF;
END $$;

-- The token columns, empty (checked above), and the encoding without them.
CREATE OR REPLACE FUNCTION safeguard._audit_canonical(l safeguard.audit_log) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT convert_to(concat_ws(',',
        quote_nullable(l.id::text), quote_nullable(extract(epoch FROM l.occurred_at)::text),
        quote_nullable(l.tenant_id::text), quote_nullable(l.actor_id::text),
        quote_nullable(l.impersonator_id::text), quote_nullable(l.request_id),
        quote_nullable(l.db_user::text), quote_nullable(l.client_addr::text),
        quote_nullable(l.application_name), quote_nullable(l.txid::text),
        quote_nullable(l.table_schema::text), quote_nullable(l.table_name::text),
        quote_nullable(l.operation), quote_nullable(l.record_id::text),
        quote_nullable(l.old_data::text), quote_nullable(l.new_data::text),
        quote_nullable(l.changed_columns::text)), 'UTF8')
$$;
ALTER TABLE safeguard.audit_log DROP COLUMN token_id, DROP COLUMN token_subject;

-- 0.1.0's functions, in place of the ones that read settings through the library or refuse
-- widening policies.
-- The hash chain's PL/pgSQL loops.
CREATE OR REPLACE FUNCTION safeguard.audit_seal() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    horizon bigint;
    link bytea;
    seq bigint;
    first_seq bigint;
    entry safeguard.audit_log;
    sealed bigint := 0;
BEGIN
    -- One sealer at a time; writers are never blocked.
    PERFORM pg_advisory_xact_lock(hashtext('safeguard.audit_seal'));
    horizon := txid_snapshot_xmin(txid_current_snapshot());
    SELECT c.link, c.seq INTO link, seq FROM safeguard.audit_chain c ORDER BY c.seq DESC LIMIT 1;
    IF seq IS NULL THEN
        -- Everything sealed so far was purged: continue from the last purged link.
        SELECT p.through_link, p.through_seq INTO link, seq
          FROM safeguard.audit_purges p ORDER BY p.through_seq DESC LIMIT 1;
    END IF;
    link := coalesce(link, decode(repeat('00', 32), 'hex'));
    seq := coalesce(seq, 0);
    first_seq := seq + 1;
    FOR entry IN
        SELECT l.* FROM safeguard.audit_log l
         WHERE l.txid < horizon
           AND NOT EXISTS (SELECT 1 FROM safeguard.audit_chain c WHERE c.log_id = l.id)
         ORDER BY l.id
    LOOP
        seq := seq + 1;
        link := sha256(link || safeguard._audit_canonical(entry));
        INSERT INTO safeguard.audit_chain (seq, log_id, link) VALUES (seq, entry.id, link);
        sealed := sealed + 1;
    END LOOP;
    IF sealed > 0 THEN
        INSERT INTO safeguard.audit_seals (first_seq, last_seq, horizon, entries, last_link)
        VALUES (first_seq, seq, horizon, sealed, link);
    END IF;
    RETURN sealed;
END $$;
CREATE OR REPLACE FUNCTION safeguard.audit_verify()
RETURNS TABLE (ok boolean, rows_checked bigint, first_bad_id uuid, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    link bytea := decode(repeat('00', 32), 'hex');
    resume_after bigint := 0;
    chained record;
    entry safeguard.audit_log;
    checked bigint := 0;
    stray uuid;
BEGIN
    -- After a purge the chain resumes from the last purged link.
    SELECT p.through_seq, p.through_link INTO resume_after, link
      FROM safeguard.audit_purges p ORDER BY p.through_seq DESC LIMIT 1;
    resume_after := coalesce(resume_after, 0);
    link := coalesce(link, decode(repeat('00', 32), 'hex'));
    FOR chained IN SELECT c.seq, c.log_id, c.link FROM safeguard.audit_chain c
                    WHERE c.seq > resume_after ORDER BY c.seq LOOP
        SELECT * INTO entry FROM safeguard.audit_log l WHERE l.id = chained.log_id;
        IF NOT FOUND THEN
            RETURN QUERY SELECT false, checked, chained.log_id, 'a sealed entry is missing: it was deleted';
            RETURN;
        END IF;
        link := sha256(link || safeguard._audit_canonical(entry));
        IF link <> chained.link THEN
            RETURN QUERY SELECT false, checked, chained.log_id,
                                'a sealed entry does not match its seal: it was modified (or its link was)';
            RETURN;
        END IF;
        checked := checked + 1;
    END LOOP;
    -- An entry that claims a transaction which had finished before the last seal, yet was not
    -- sealed by it, or claims none, or one that has not started yet, was written around the
    -- triggers (they always record the writing transaction).
    SELECT l.id INTO stray FROM safeguard.audit_log l
     WHERE (l.txid IS NULL
            OR l.txid < (SELECT max(s.horizon) FROM safeguard.audit_seals s)
            OR l.txid >= txid_snapshot_xmax(txid_current_snapshot()))
       AND NOT EXISTS (SELECT 1 FROM safeguard.audit_chain c WHERE c.log_id = l.id)
     ORDER BY l.id LIMIT 1;
    IF stray IS NOT NULL THEN
        RETURN QUERY SELECT false, checked, stray,
                            'an entry that no seal covers claims a transaction that ended before the last seal, none, or one not yet begun: it was inserted out of band';
        RETURN;
    END IF;
    RETURN QUERY SELECT true, checked, NULL::uuid, format('%s sealed entries verified', checked);
END $$;
CREATE OR REPLACE FUNCTION safeguard.audit_purge(older_than interval) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    retention interval;
    cutoff timestamptz;
    chained record;
    written timestamptz;
    through_seq bigint;
    through_link bytea;
BEGIN
    BEGIN
        retention := current_setting('safeguard.audit_retention')::interval;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'safeguard.audit_retention is not an interval'
            USING ERRCODE = '22023', HINT = 'Set it to an interval such as ''6 years''.';
    END;
    IF older_than IS NULL OR older_than < retention THEN
        RAISE EXCEPTION 'audit entries younger than safeguard.audit_retention (%) cannot be purged',
                        current_setting('safeguard.audit_retention')
            USING ERRCODE = '22023',
                  HINT = 'Purge with an interval of at least safeguard.audit_retention, which only a superuser can lower.';
    END IF;
    cutoff := now() - older_than;
    PERFORM pg_advisory_xact_lock(hashtext('safeguard.audit_seal'));
    -- The oldest sealed entries, in chain order, as long as they are older than the cutoff:
    -- a prefix of the chain, read through its primary key, so the rest of the log is not read.
    FOR chained IN SELECT c.seq, c.log_id, c.link FROM safeguard.audit_chain c ORDER BY c.seq LOOP
        SELECT l.occurred_at INTO written FROM safeguard.audit_log l WHERE l.id = chained.log_id;
        EXIT WHEN written IS NULL OR written >= cutoff;
        through_seq := chained.seq;
        through_link := chained.link;
    END LOOP;
    IF through_seq IS NULL THEN
        RETURN 0;
    END IF;
    RETURN safeguard._audit_purge_through(through_seq, through_link, older_than::text);
END $$;
COMMENT ON FUNCTION safeguard.audit_purge(interval) IS
    'Delete sealed audit entries older than the interval (at least safeguard.audit_retention); the chain stays verifiable';
REVOKE ALL ON FUNCTION safeguard.audit_purge(interval) FROM PUBLIC;

CREATE OR REPLACE FUNCTION safeguard._apply_isolation(
    tbl regclass, mode text, tenant_column name, fk_column name, parent regclass,
    parent_column name, admin_role name, root regclass
) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET safeguard.isolation_ddl_hook = off AS $$
DECLARE
    kind "char";
    rls_on boolean;
    rls_forced boolean;
    key_column name := coalesce(tenant_column, fk_column);
    rel_name name;
    predicate text;
    index_name name;
    part regclass;
BEGIN
    SELECT c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relname
      INTO kind, rls_on, rls_forced, rel_name
      FROM pg_class c WHERE c.oid = tbl;

    INSERT INTO safeguard.tenant_registry AS r
           (tbl, mode, tenant_column, fk_column, parent, parent_column, admin_role, root,
            rls_was_enabled, rls_was_forced)
    VALUES (tbl, mode, tenant_column, fk_column, parent, parent_column, admin_role, root,
            rls_on, rls_forced)
    ON CONFLICT ON CONSTRAINT tenant_registry_pkey DO UPDATE
       SET mode = excluded.mode, tenant_column = excluded.tenant_column,
           fk_column = excluded.fk_column, parent = excluded.parent,
           parent_column = excluded.parent_column, admin_role = excluded.admin_role,
           root = excluded.root;

    IF NOT rls_on THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    END IF;
    IF NOT rls_forced THEN
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    END IF;

    IF mode = 'direct' THEN
        predicate := format('%I = (SELECT safeguard.current_tenant())', tenant_column);
    ELSE
        -- The outer row is named by its table name: the parent, aliased, cannot shadow it.
        predicate := format('EXISTS (SELECT 1 FROM %s sg_parent WHERE sg_parent.%I = %I.%I)',
                            parent, parent_column, rel_name, fk_column);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = tbl AND p.polname = 'sg_tenant') THEN
        EXECUTE format('ALTER POLICY sg_tenant ON %s TO PUBLIC USING (%s) WITH CHECK (%s)',
                       tbl, predicate, predicate);
    ELSE
        EXECUTE format('CREATE POLICY sg_tenant ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s)',
                       tbl, predicate, predicate);
    END IF;

    IF admin_role IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = tbl AND p.polname = 'sg_tenant_admin') THEN
            EXECUTE format('ALTER POLICY sg_tenant_admin ON %s TO %I USING (true) WITH CHECK (true)',
                           tbl, admin_role);
        ELSE
            EXECUTE format('CREATE POLICY sg_tenant_admin ON %s AS PERMISSIVE FOR ALL TO %I USING (true) WITH CHECK (true)',
                           tbl, admin_role);
        END IF;
    ELSIF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = tbl AND p.polname = 'sg_tenant_admin') THEN
        EXECUTE format('DROP POLICY sg_tenant_admin ON %s', tbl);
    END IF;

    -- Partitions get their index from the partitioned table's index.
    IF root IS NULL AND NOT safeguard._has_leading_index(tbl, key_column) THEN
        index_name := safeguard._free_index_name(tbl, key_column);
        EXECUTE format('CREATE INDEX %I ON %s (%I)', index_name, tbl, key_column);
        UPDATE safeguard.tenant_registry r
           SET created_indexes = r.created_indexes
                                 || (SELECT quote_ident(n.nspname) || '.' || quote_ident(index_name)
                                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                      WHERE c.oid = _apply_isolation.tbl)
         WHERE r.tbl = _apply_isolation.tbl;
    END IF;

    UPDATE safeguard.tenant_registry r
       SET policy_using = safeguard._policy_expr(_apply_isolation.tbl, 'sg_tenant', false)
     WHERE r.tbl = _apply_isolation.tbl;

    -- A query on a partition does not pass through the partitioned table's policy: every
    -- partition, at any depth, gets the same isolation.
    IF kind = 'p' THEN
        FOR part IN SELECT t.relid FROM pg_partition_tree(tbl) t WHERE t.relid <> tbl LOOP
            PERFORM safeguard._apply_isolation(part, mode, tenant_column, fk_column, parent,
                                               parent_column, admin_role, coalesce(root, tbl));
        END LOOP;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION safeguard._on_ddl_isolate() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regclass;
    entry safeguard.tenant_registry;
    part regclass;
    anc regclass;
    auto_column name;
BEGIN
    -- '' as well as NULL means the default (on): when a session's first call into the extension
    -- is a helper whose SET clause names this setting, PostgreSQL restores it to '' on exit,
    -- because the library (which defines it) loaded only inside that call.
    IF NOT coalesce(nullif(current_setting('safeguard.isolation_ddl_hook', true), ''), 'on')::boolean THEN
        RETURN;
    END IF;
    FOR t IN
        SELECT DISTINCT c.objid::regclass FROM pg_event_trigger_ddl_commands() c
         WHERE c.classid = 'pg_class'::regclass AND c.object_type = 'table'
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t AND c.relkind IN ('r', 'p'));
        SELECT * INTO entry FROM safeguard.tenant_registry r WHERE r.tbl = t;
        IF FOUND THEN
            -- An isolated partitioned table gained partitions (ATTACH PARTITION): isolate them.
            IF (SELECT c.relkind FROM pg_class c WHERE c.oid = t) = 'p' THEN
                FOR part IN
                    SELECT p.relid FROM pg_partition_tree(t) p
                     WHERE p.relid <> t AND NOT EXISTS (SELECT 1 FROM safeguard.tenant_registry r WHERE r.tbl = p.relid)
                LOOP
                    PERFORM safeguard._apply_isolation(part, entry.mode, entry.tenant_column, entry.fk_column,
                                                       entry.parent, entry.parent_column, entry.admin_role,
                                                       coalesce(entry.root, t));
                END LOOP;
            END IF;
            CONTINUE;
        END IF;
        -- A new partition (CREATE TABLE ... PARTITION OF) of an isolated table.
        SELECT a.relid INTO anc FROM pg_partition_ancestors(t) WITH ORDINALITY AS a (relid, depth)
          JOIN safeguard.tenant_registry r ON r.tbl = a.relid
         WHERE a.relid <> t ORDER BY a.depth LIMIT 1;
        IF anc IS NOT NULL THEN
            SELECT * INTO entry FROM safeguard.tenant_registry r WHERE r.tbl = anc;
            PERFORM safeguard._apply_isolation(t, entry.mode, entry.tenant_column, entry.fk_column,
                                               entry.parent, entry.parent_column, entry.admin_role,
                                               coalesce(entry.root, anc));
            CONTINUE;
        END IF;
        -- A table in an auto-isolated schema that has (or just gained) the tenant column.
        SELECT a.tenant_column INTO auto_column
          FROM safeguard.tenant_auto_isolation a JOIN pg_class c ON c.oid = t
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = a.schema_name
          JOIN pg_attribute att ON att.attrelid = t AND att.attname = a.tenant_column
                               AND att.attnum > 0 AND NOT att.attisdropped;
        IF auto_column IS NOT NULL THEN
            PERFORM safeguard.isolate(t, auto_column);
        END IF;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION safeguard.lint(in_schema name DEFAULT NULL)
RETURNS TABLE (level text, rule text, object text, detail text, remediation text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $lint$
WITH
-- The tables under review: ordinary and partitioned tables (not partitions: rules apply to their
-- root), outside system schemas, the extension's schema and objects of any extension.
rels AS (
    SELECT c.oid, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity, n.nspname,
           format('%I.%I', n.nspname, c.relname) AS qname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'safeguard', 'pg_toast')
       AND n.nspname !~ '^pg_(toast_)?temp_'
       AND (in_schema IS NULL OR n.nspname = in_schema)
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                                    AND d.deptype = 'e')
),
cols AS (
    SELECT r.oid, r.qname, a.attname, a.atttypid, a.attnotnull, a.atthasdef, a.attnum
      FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
),
-- The tenant column of each tenant-scoped table: the configured name first, then the names the
-- reviews keep meeting.
tenant_cols AS (
    SELECT DISTINCT ON (c.oid) c.oid, c.qname, c.attname, c.attnotnull
      FROM cols c
     WHERE c.attname IN (coalesce(nullif(current_setting('safeguard.tenant_column', true), ''), 'tenant_id'),
                         'tenant_id', 'organization_id', 'workspace_id')
     ORDER BY c.oid, array_position(ARRAY[coalesce(nullif(current_setting('safeguard.tenant_column', true), ''), 'tenant_id'),
                                          'tenant_id', 'organization_id', 'workspace_id']::name[], c.attname)
),
isolated AS (SELECT r.tbl::oid AS oid, r.* FROM safeguard.tenant_registry r),
audited AS (SELECT a.tbl::oid AS oid FROM safeguard.audit_registry a),
classified AS (
    SELECT d.tbl::oid AS oid, d.column_name, d.class FROM safeguard.data_classification d
),
policies AS (
    SELECT p.polrelid AS oid, p.polname,
           coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') AS expr
      FROM pg_policy p
),
-- Indexes by their leading key columns, to answer "is there an index that starts with these?"
index_keys AS (
    SELECT i.indrelid AS oid, i.indkey::int2[] AS keys, i.indpred IS NOT NULL AS partial,
           pg_get_expr(i.indpred, i.indrelid) AS predicate
      FROM pg_index i WHERE i.indisvalid
),
findings AS (
    -- ERROR ----------------------------------------------------------------------------------
    SELECT 'ERROR' AS level, 'tenant_table_not_isolated' AS rule, t.qname AS object,
           format('Table %s has the tenant column %I but no row-level isolation: every role that can read it sees every tenant''s rows.',
                  t.qname, t.attname) AS detail,
           format('SELECT safeguard.isolate(%L, %L);', t.qname, t.attname) AS remediation
      FROM tenant_cols t WHERE NOT EXISTS (SELECT 1 FROM isolated i WHERE i.oid = t.oid)
    UNION ALL
    SELECT 'ERROR', 'rls_enabled_without_policy', r.qname,
           format('Row-level security is enabled on %s but no policy exists: ordinary roles see no rows, owners and BYPASSRLS roles see all; the intent is unclear.', r.qname),
           NULL
      FROM rels r WHERE r.relrowsecurity AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.oid = r.oid)
    UNION ALL
    SELECT 'ERROR', 'policy_without_rls', r.qname,
           format('Table %s has row-level security policies, but row-level security is disabled: the policies do nothing.', r.qname),
           format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY;', r.qname)
      FROM rels r WHERE NOT r.relrowsecurity AND EXISTS (SELECT 1 FROM policies p WHERE p.oid = r.oid)
    UNION ALL
    SELECT 'ERROR', 'isolation_policy_altered', format('%s', v.table_name),
           format('The isolation policy of %s was dropped or edited since safeguard.isolate() created it.', v.table_name),
           CASE v.mode
               WHEN 'direct' THEN format('SELECT safeguard.isolate(%L, %L%s);', v.table_name::text, v.tenant_column,
                                         CASE WHEN v.admin_role IS NOT NULL
                                              THEN format(', admin_role => %L', v.admin_role) ELSE '' END)
               WHEN 'via' THEN format('SELECT safeguard.isolate_via(%L, %L, %L, %L);', v.table_name::text,
                                      v.fk_column, v.parent::text, v.parent_column)
           END
      FROM safeguard.isolated_tables v
      JOIN rels r ON r.oid = v.table_name::oid
     WHERE v.mode IN ('direct', 'via') AND NOT (v.policy_present AND v.policy_unchanged)
    UNION ALL
    SELECT 'ERROR', 'audit_log_guard_disabled', 'safeguard.audit_log',
           format('The append-only guard %I of the audit log is missing or not ENABLE ALWAYS: entries can be changed without trace.', g.name),
           format('ALTER TABLE safeguard.audit_log ENABLE ALWAYS TRIGGER %I;', g.name)
      FROM (VALUES ('sg_audit_guard'), ('sg_audit_guard_truncate')) g(name)
     WHERE in_schema IS NULL
       AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = 'safeguard.audit_log'::regclass
                                                    AND t.tgname = g.name AND t.tgenabled = 'A')
    UNION ALL
    SELECT 'ERROR', 'phi_unencrypted', format('%s.%I', c.qname, c.attname),
           format('Column %I of %s is tagged %s but stored in plain text (%s).', c.attname, c.qname, k.class,
                  format_type(c.atttypid, NULL)),
           CASE WHEN c.atttypid IN ('jsonb'::regtype, 'json'::regtype)
                THEN format('ALTER TABLE %s ALTER COLUMN %I TYPE safeguard.encrypted_jsonb USING %I::jsonb;', c.qname, c.attname, c.attname)
                WHEN c.atttypid = 'bytea'::regtype
                THEN format('ALTER TABLE %s ALTER COLUMN %I TYPE safeguard.encrypted_bytea USING %I;', c.qname, c.attname, c.attname)
                ELSE format('ALTER TABLE %s ALTER COLUMN %I TYPE safeguard.encrypted_text USING %I::text;', c.qname, c.attname, c.attname)
           END
      FROM cols c JOIN classified k ON k.oid = c.oid AND k.column_name = c.attname
     WHERE k.class = 'phi'
       AND c.atttypid NOT IN ('safeguard.encrypted_text'::regtype, 'safeguard.encrypted_bytea'::regtype,
                              'safeguard.encrypted_jsonb'::regtype)
    -- WARN -----------------------------------------------------------------------------------
    UNION ALL
    SELECT 'WARN', 'rls_not_forced', r.qname,
           format('Row-level security on %s is not forced: the table''s owner (often the role migrations and some services use) bypasses it.', r.qname),
           format('ALTER TABLE %s FORCE ROW LEVEL SECURITY;', r.qname)
      FROM rels r WHERE r.relrowsecurity AND NOT r.relforcerowsecurity
    UNION ALL
    SELECT 'WARN', 'policy_function_per_row', format('%s (policy %I)', r.qname, p.polname),
           format('Policy %I on %s calls a function per row (%s); wrapped as (SELECT ...) it is evaluated once per query.',
                  p.polname, r.qname, substring(p.expr from '([a-z_.]*(current_setting|current_tenant|current_user_id|auth\.[a-z_]+)\()')),
           NULL
      FROM rels r JOIN policies p ON p.oid = r.oid
     WHERE p.expr ~ '(current_setting|current_tenant|current_user_id|auth\.[a-z_]+)\('
       AND p.expr !~* '\(\s*SELECT\s'
    UNION ALL
    SELECT 'WARN', 'tenant_column_nullable', format('%s.%I', t.qname, t.attname),
           format('The tenant column %I of %s accepts NULL: a row without a tenant belongs to nobody, or to everybody.', t.attname, t.qname),
           format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL;', t.qname, t.attname)
      FROM tenant_cols t WHERE NOT t.attnotnull
    UNION ALL
    SELECT 'WARN', 'tenant_column_unindexed', format('%s.%I', t.qname, t.attname),
           format('No index of %s starts with its tenant column %I: every tenant-filtered query scans the whole table.', t.qname, t.attname),
           format('CREATE INDEX ON %s (%I);', t.qname, t.attname)
      FROM tenant_cols t
      JOIN cols c ON c.oid = t.oid AND c.attname = t.attname
     WHERE NOT EXISTS (SELECT 1 FROM index_keys k WHERE k.oid = t.oid AND NOT k.partial AND k.keys[0] = c.attnum)
    UNION ALL
    SELECT 'WARN', 'not_audited', r.qname,
           format('Table %s holds %s but changes to it are not audited.', r.qname,
                  CASE WHEN EXISTS (SELECT 1 FROM classified k WHERE k.oid = r.oid) THEN 'tagged PHI/PII' ELSE 'tenant data' END),
           format('SELECT safeguard.enable_audit(%L);', r.qname)
      FROM rels r
     WHERE (EXISTS (SELECT 1 FROM tenant_cols t WHERE t.oid = r.oid) OR EXISTS (SELECT 1 FROM classified k WHERE k.oid = r.oid)
            OR EXISTS (SELECT 1 FROM isolated i WHERE i.oid = r.oid))
       AND NOT EXISTS (SELECT 1 FROM audited a WHERE a.oid = r.oid)
    UNION ALL
    SELECT 'WARN', 'timestamp_without_time_zone', format('%s.%I', c.qname, c.attname),
           format('Column %I of %s is timestamp without time zone: its values mean different instants to clients in different zones.', c.attname, c.qname),
           format('ALTER TABLE %s ALTER COLUMN %I TYPE timestamptz;', c.qname, c.attname)
      FROM cols c WHERE c.atttypid = 'timestamp'::regtype
    UNION ALL
    SELECT 'WARN', 'timestamps_set_by_application', format('%s.%I', c.qname, c.attname),
           format('Column %I of %s is set by the application''s clock (no database default or trigger).', c.attname, c.qname),
           CASE WHEN EXISTS (SELECT 1 FROM cols o WHERE o.oid = c.oid AND o.attname = 'created_at')
                 AND EXISTS (SELECT 1 FROM cols o WHERE o.oid = c.oid AND o.attname = 'updated_at')
                THEN format('SELECT safeguard.maintain_timestamps(%L);', c.qname)
                ELSE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT now();', c.qname, c.attname)
           END
      FROM cols c
     WHERE c.attname IN ('created_at', 'updated_at')
       AND c.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)
       AND NOT EXISTS (SELECT 1 FROM safeguard.rule_registry g WHERE g.tbl::oid = c.oid AND g.kind = 'timestamps')
       -- a default stamps created_at; updated_at needs the trigger
       AND NOT (c.attname = 'created_at' AND c.atthasdef)
    UNION ALL
    SELECT 'WARN', 'foreign_key_without_index', format('%s (%s)', r.qname, k.conname),
           format('Foreign key %I of %s has no index starting with its columns: deletes and key updates of the referenced rows scan %s.',
                  k.conname, r.qname, r.qname),
           format('CREATE INDEX ON %s (%s);', r.qname,
                  (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY o.n)
                     FROM unnest(k.conkey) WITH ORDINALITY o(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = o.attnum))
      FROM rels r JOIN pg_constraint k ON k.conrelid = r.oid AND k.contype = 'f'
     WHERE NOT EXISTS (SELECT 1 FROM index_keys i
                        WHERE i.oid = r.oid AND NOT i.partial
                          AND cardinality(i.keys) >= cardinality(k.conkey)
                          AND (SELECT array_agg(x ORDER BY x) FROM unnest(i.keys[0:cardinality(k.conkey) - 1]) x)
                              = (SELECT array_agg(x ORDER BY x) FROM unnest(k.conkey) x))
    UNION ALL
    SELECT 'WARN', 'no_primary_key', r.qname,
           format('Table %s has no primary key: rows cannot be addressed reliably (audit, replication, updates by id).', r.qname),
           NULL
      FROM rels r WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = r.oid AND k.contype = 'p')
    UNION ALL
    SELECT 'WARN', 'security_definer_without_search_path', p.oid::regprocedure::text,
           format('Function %s runs with its owner''s rights but does not pin search_path: a caller can make it run objects of their own.',
                  p.oid::regprocedure),
           format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;', p.oid::regprocedure)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.prosecdef
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'safeguard')
       AND (in_schema IS NULL OR n.nspname = in_schema)
       AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) s WHERE s LIKE 'search\_path=%')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT DISTINCT 'WARN', 'view_without_security_invoker', format('%I.%I', vn.nspname, v.relname),
           format('View %I.%I reads the isolated table %s with its owner''s rights: row-level security is checked against the view''s owner, not the reader.',
                  vn.nspname, v.relname, src.qname),
           format('ALTER VIEW %I.%I SET (security_invoker = true);', vn.nspname, v.relname)
      FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace
      JOIN pg_rewrite w ON w.ev_class = v.oid
      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_class'::regclass
      JOIN rels src ON src.oid = d.refobjid
     WHERE v.relkind = 'v' AND d.refobjid <> v.oid
       AND vn.nspname NOT IN ('pg_catalog', 'information_schema', 'safeguard')
       AND (in_schema IS NULL OR vn.nspname = in_schema)
       AND src.relrowsecurity
       AND NOT coalesce('security_invoker=true' = ANY (v.reloptions) OR 'security_invoker=on' = ANY (v.reloptions), false)
    UNION ALL
    SELECT 'WARN', 'soft_delete_without_live_index', format('%s.%I', c.qname, c.attname),
           format('Column %I of %s marks deleted rows, but no partial index covers the live ones: every query for live rows reads the deleted too.',
                  c.attname, c.qname),
           format('CREATE INDEX ON %s (%s) WHERE %I IS NULL;', c.qname,
                  coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY o.n)
                              FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY o(attnum, n)
                              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = o.attnum
                             WHERE i.indrelid = c.oid AND i.indisprimary), quote_ident(c.attname)),
                  c.attname)
      FROM cols c
     WHERE c.attname IN ('deleted_at', 'archived_at', 'removed_at')
       AND c.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)
       AND NOT EXISTS (SELECT 1 FROM index_keys k WHERE k.oid = c.oid AND k.partial
                                                  AND k.predicate ~ format('\m%s\M IS NULL', c.attname))
    -- INFO -----------------------------------------------------------------------------------
    UNION ALL
    SELECT 'INFO', 'phi_column_untagged', format('%s.%I', c.qname, c.attname),
           format('Column %I of %s is named like PHI/PII but not classified: tag it (or ignore this finding) so the ERROR rules can check it.',
                  c.attname, c.qname),
           format('SELECT safeguard.classify(%L, ARRAY[%L], %L);', c.qname, c.attname, 'phi')
      FROM cols c
     WHERE safeguard._looks_like_phi(c.attname)
       AND NOT EXISTS (SELECT 1 FROM classified k WHERE k.oid = c.oid AND k.column_name = c.attname)
    UNION ALL
    SELECT 'INFO', 'audit_unsealed', 'safeguard.audit_log',
           format('Audit entries written since %s are not sealed into the hash chain (more than a day).', u.oldest),
           'SELECT safeguard.audit_seal();'
      FROM (SELECT safeguard._audit_oldest_unsealed() AS oldest) u
     WHERE in_schema IS NULL AND u.oldest < now() - interval '1 day'
)
SELECT f.level, f.rule, f.object, f.detail, f.remediation
  FROM findings f
 WHERE NOT EXISTS (SELECT 1 FROM safeguard.lint_ignores i WHERE i.rule = f.rule AND i.object = f.object)
 ORDER BY array_position(ARRAY['ERROR', 'WARN', 'INFO'], f.level), f.object, f.rule
$lint$;
COMMENT ON FUNCTION safeguard.lint(name) IS
    'The database review: findings (ERROR, WARN, INFO) with the SQL that fixes each';

-- isolated_tables without widened_by (a column cannot be taken out of a view in place).
DROP VIEW safeguard.isolated_tables;
CREATE VIEW safeguard.isolated_tables WITH (security_invoker = true) AS
SELECT r.tbl AS table_name,
       CASE WHEN r.root IS NOT NULL THEN 'partition' ELSE r.mode END AS mode,
       r.tenant_column,
       r.parent,
       r.fk_column,
       r.parent_column,
       r.root AS partition_of,
       r.admin_role,
       c.relrowsecurity AS rls_enabled,
       c.relforcerowsecurity AS rls_forced,
       p.polname IS NOT NULL AS policy_present,
       coalesce(p.polcmd = '*' AND p.polpermissive AND p.polroles = '{0}'
                AND safeguard._policy_expr(r.tbl, 'sg_tenant', false) IS NOT DISTINCT FROM r.policy_using
                AND safeguard._policy_expr(r.tbl, 'sg_tenant', true) IS NOT DISTINCT FROM r.policy_using,
                false) AS policy_unchanged,
       safeguard._has_leading_index(r.tbl, coalesce(r.tenant_column, r.fk_column))
           OR (r.root IS NOT NULL AND safeguard._has_leading_index(r.root, coalesce(r.tenant_column, r.fk_column)))
           AS key_indexed,
       r.isolated_at,
       r.isolated_by
  FROM safeguard.tenant_registry r
  JOIN pg_class c ON c.oid = r.tbl
  LEFT JOIN pg_policy p ON p.polrelid = r.tbl AND p.polname = 'sg_tenant';
COMMENT ON VIEW safeguard.isolated_tables IS
    'Isolated tables and whether their row security is still as safeguard.isolate() left it';
GRANT SELECT ON safeguard.isolated_tables TO PUBLIC;

-- What 0.2.0 added. scope_foreign_key's rules are kept, with the plain ALTER TABLE as their undo.
UPDATE safeguard.rule_registry
   SET undo_ddl = regexp_replace(undo_ddl, '^SELECT safeguard\._alter_table_with_unforced_checks\(''(.*)''\)$', '\1')
 WHERE kind = 'scoped_foreign_key';
UPDATE safeguard.rule_registry SET undo_ddl = replace(undo_ddl, '''''', '''') WHERE kind = 'scoped_foreign_key';
DROP EVENT TRIGGER sg_guard_isolation_policies;
DROP FUNCTION safeguard._on_policy_change();
DROP FUNCTION safeguard._ddl_hook_enabled();
DROP FUNCTION safeguard._refuse_widening_policies(regclass);
DROP FUNCTION safeguard._restrictive_policy_ddl(regclass, name);
DROP FUNCTION safeguard._widening_policies(regclass);
DROP FUNCTION safeguard.scope_foreign_key(regclass, name);
DROP FUNCTION safeguard._foreign_key_scoped(oid);
DROP FUNCTION safeguard._alter_table_with_unforced_checks(text);
DROP FUNCTION safeguard._setting(text);
-- Sealing by blocks: the entries the blocks sealed are chained again by 0.1.0's audit_seal()
-- (restored above) once the blocks are gone; verified just before.
DROP TABLE safeguard.audit_chain_blocks;
DROP TABLE safeguard.audit_eras;
DROP INDEX safeguard.audit_log_time_idx;
CREATE INDEX audit_log_time_idx ON safeguard.audit_log USING brin (occurred_at);
COMMENT ON TABLE safeguard.audit_chain IS 'Hash-chain links of sealed audit entries (safeguard.audit_seal)';
CREATE OR REPLACE FUNCTION safeguard._audit_oldest_unsealed() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT min(l.occurred_at) FROM safeguard.audit_log l
     WHERE NOT EXISTS (SELECT 1 FROM safeguard.audit_chain c WHERE c.log_id = l.id)
$$;
SELECT safeguard.audit_seal()
 WHERE EXISTS (SELECT 1 FROM safeguard.audit_log l
                WHERE l.txid < (SELECT max(s.horizon) FROM safeguard.audit_seals s)
                  AND NOT EXISTS (SELECT 1 FROM safeguard.audit_chain c WHERE c.log_id = l.id));
DROP FUNCTION safeguard._audit_seal_chain();
DROP FUNCTION safeguard._audit_verify_chain();
DROP FUNCTION safeguard._preloaded();
-- isolate_via() as 0.1.0 had it (before _citus_distributed(), which the 0.2.0 one reads, goes).
CREATE OR REPLACE FUNCTION safeguard.isolate_via(tbl regclass, fk_column name, parent regclass, parent_column name DEFAULT 'id')
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fk_type regtype;
    parent_type regtype;
    parent_ok boolean;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    fk_type := safeguard._column_type(tbl, fk_column, 'column that references the parent table');
    parent_type := safeguard._column_type(parent, parent_column, 'parent''s key column (default id)');
    IF fk_type <> parent_type THEN
        RAISE EXCEPTION 'column % of table % has type %, but %.% has type %',
                        quote_ident(fk_column), tbl, fk_type, parent, quote_ident(parent_column), parent_type
            USING ERRCODE = '42804', HINT = 'The column must reference the parent''s key column.';
    END IF;
    IF tbl = parent THEN
        RAISE EXCEPTION 'table % cannot be isolated through itself', tbl
            USING ERRCODE = '22023', HINT = 'Use safeguard.isolate() with its tenant column.';
    END IF;
    SELECT c.relrowsecurity AND c.relforcerowsecurity
      INTO parent_ok
      FROM safeguard.tenant_registry r JOIN pg_class c ON c.oid = r.tbl
     WHERE r.tbl = isolate_via.parent;
    IF parent_ok IS NOT TRUE THEN
        RAISE EXCEPTION 'parent table % is not isolated', parent
            USING ERRCODE = '55000',
                  HINT = format('Isolate the parent first: SELECT safeguard.isolate(%L, ''tenant_id'');', parent::text);
    END IF;
    PERFORM safeguard._apply_isolation(tbl, 'via', NULL, fk_column, parent, parent_column, NULL, NULL);
END $$;
DROP FUNCTION safeguard._is_citus_worker();
DROP FUNCTION safeguard._citus_shards();
DROP FUNCTION safeguard._citus_distributed();

-- Encryption on a Citus cluster. (On a cluster, undistribute_table('safeguard.key_store') on the
-- coordinator first: 0.1.0 knows no reference key table.)
-- Audit on a Citus cluster: the functions as 0.1.0 had them.
DROP FUNCTION safeguard.cluster_audit_verify();
DROP FUNCTION safeguard.cluster_audit_seal();
DROP FUNCTION safeguard.cluster_audit_log(uuid, timestamptz, timestamptz, regclass, jsonb);
DROP FUNCTION safeguard._audit_entries_json(text, uuid, timestamptz, timestamptz, text[], jsonb);
CREATE OR REPLACE FUNCTION safeguard.enable_audit(tbl regclass, exclude_columns name[] DEFAULT '{}', log_unchanged boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET safeguard.isolation_ddl_hook = off AS $$
DECLARE
    col name;
    args text;
    first_enabled_at timestamptz;
    first_enabled_by name;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    -- A partition is audited through the partitioned table at the top of its tree: writes routed
    -- through the parent and writes aimed at the partition then both reach the same triggers.
    IF (SELECT c.relispartition FROM pg_class c WHERE c.oid = tbl) THEN
        RAISE EXCEPTION 'table % is a partition: audit the partitioned table %', tbl, pg_partition_root(tbl)
            USING ERRCODE = '0A000',
                  HINT = format('SELECT safeguard.enable_audit(%L) audits every partition, present and future.',
                                pg_partition_root(tbl)::text);
    END IF;
    IF (SELECT c.relnamespace FROM pg_class c WHERE c.oid = tbl) = 'safeguard'::regnamespace THEN
        RAISE EXCEPTION 'the extension''s own table % cannot be audited', tbl
            USING ERRCODE = '22023', HINT = 'The audit log is the audit trail itself, and append-only.';
    END IF;
    FOREACH col IN ARRAY coalesce(exclude_columns, '{}') LOOP
        PERFORM safeguard._column_type(tbl, col, 'column to exclude');
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = tbl AND i.indisprimary) THEN
        RAISE NOTICE 'table % has no primary key: its audit entries identify a record by its whole row', tbl
            USING HINT = 'Add a primary key so that safeguard.audit_history() can follow a record through updates.';
    END IF;
    args := safeguard._audit_trigger_args(tbl, exclude_columns, log_unchanged);
    -- Out of the registry while its triggers are remade, so that the partition hook
    -- (_on_ddl_audit_partitions), which fires on the ALTER TABLEs below, leaves them alone.
    DELETE FROM safeguard.audit_registry r WHERE r.tbl = enable_audit.tbl
    RETURNING r.enabled_at, r.enabled_by INTO first_enabled_at, first_enabled_by;
    PERFORM safeguard._drop_audit_triggers(tbl);
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) = 'p' THEN
        -- A partitioned table: one row trigger for every change, which PostgreSQL copies onto
        -- each partition, present and future, so that writes aimed at a partition are logged
        -- too (statement triggers fire only on the table a statement names). Entries name the
        -- partition that holds the row; a row moved to another partition by an UPDATE of the
        -- partition key is logged as PostgreSQL performs it: a DELETE and an INSERT.
        EXECUTE format('CREATE TRIGGER sg_audit_row AFTER INSERT OR UPDATE OR DELETE ON %s
                        FOR EACH ROW EXECUTE FUNCTION safeguard._audit_row(%s)', tbl, args);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sg_audit_row', tbl);
        PERFORM safeguard._audit_truncate_triggers(tbl, args);
    ELSE
        -- INSERT and DELETE: one set-based log insert per statement, over its transition table;
        -- UPDATE: per row, to log only the changed columns. ALWAYS: session_replication_role =
        -- replica does not switch auditing off.
        EXECUTE format('CREATE TRIGGER sg_audit_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS sg_new
                        FOR EACH STATEMENT EXECUTE FUNCTION safeguard._audit_statement(%s)', tbl, args);
        EXECUTE format('CREATE TRIGGER sg_audit_update AFTER UPDATE ON %s
                        FOR EACH ROW EXECUTE FUNCTION safeguard._audit_row(%s)', tbl, args);
        EXECUTE format('CREATE TRIGGER sg_audit_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS sg_old
                        FOR EACH STATEMENT EXECUTE FUNCTION safeguard._audit_statement(%s)', tbl, args);
        EXECUTE format('CREATE TRIGGER sg_audit_truncate AFTER TRUNCATE ON %s
                        FOR EACH STATEMENT EXECUTE FUNCTION safeguard._audit_statement(%s)', tbl, args);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sg_audit_insert', tbl);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sg_audit_update', tbl);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sg_audit_delete', tbl);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sg_audit_truncate', tbl);
    END IF;
    INSERT INTO safeguard.audit_registry AS r (tbl, exclude_columns, log_unchanged, enabled_at, enabled_by)
    VALUES (tbl, coalesce(exclude_columns, '{}'), log_unchanged, coalesce(first_enabled_at, now()),
            coalesce(first_enabled_by, current_user));
END $$;
CREATE OR REPLACE FUNCTION safeguard.disable_audit(tbl regclass)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET safeguard.isolation_ddl_hook = off AS $$
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    PERFORM safeguard._drop_audit_triggers(tbl);
    DELETE FROM safeguard.audit_registry r WHERE r.tbl = disable_audit.tbl;
END $$;
CREATE OR REPLACE FUNCTION safeguard.audit_history(tbl regclass, record_id jsonb)
RETURNS SETOF safeguard.audit_log
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    -- A partitioned table's entries name the partition that held the row.
    SELECT l.*
      FROM safeguard.audit_log l
     WHERE l.record_id = audit_history.record_id
       AND (l.table_schema, l.table_name) IN (
            SELECT n.nspname, c.relname
              FROM safeguard._audit_members(tbl) m
              JOIN pg_class c ON c.oid = m
              JOIN pg_namespace n ON n.oid = c.relnamespace)
     ORDER BY l.id DESC
$$;
DROP FUNCTION safeguard.rewrap_keys_from_command(text);
DROP VIEW safeguard.verified_context_required;
DROP FUNCTION safeguard.require_verified_context(regrole, boolean);
DROP TABLE safeguard.verified_context_roles;
DROP FUNCTION safeguard._verified_context_roles_changed();
DROP FUNCTION safeguard.set_context_from_token(text, text);
DROP FUNCTION safeguard._verified_context_of_transaction();
DROP EVENT TRIGGER sg_audit_citus_partitions;
DROP FUNCTION safeguard._on_ddl_allow_citus_partition_triggers();
DROP FUNCTION safeguard._joins_audited_distributed_tree();
DROP FUNCTION safeguard._allow_audit_triggers_on_citus(regclass);
DROP FUNCTION safeguard.citus_setup();
DROP FUNCTION safeguard.grant_decrypt(regrole);
DROP FUNCTION safeguard.revoke_decrypt(regrole);
DROP FUNCTION safeguard._change_decrypt_grant(text, regrole);
DROP FUNCTION safeguard._on_every_worker(text);
DROP FUNCTION safeguard._is_citus_coordinator();
DROP FUNCTION safeguard._require_citus_coordinator(text);
DROP TRIGGER sg_keys_changed ON safeguard.key_store;
DROP FUNCTION safeguard._key_store_changed();
ALTER FUNCTION safeguard._encrypt(text) VOLATILE;
ALTER FUNCTION safeguard._encrypt(character varying) VOLATILE;
ALTER FUNCTION safeguard._encrypt(bytea) VOLATILE;
ALTER FUNCTION safeguard._encrypt(jsonb) VOLATILE;

-- safeguard.ulid's operators back into schema safeguard.
ALTER OPERATOR pg_catalog.= (safeguard.ulid, safeguard.ulid) SET SCHEMA safeguard;
ALTER OPERATOR pg_catalog.<> (safeguard.ulid, safeguard.ulid) SET SCHEMA safeguard;
ALTER OPERATOR pg_catalog.< (safeguard.ulid, safeguard.ulid) SET SCHEMA safeguard;
ALTER OPERATOR pg_catalog.<= (safeguard.ulid, safeguard.ulid) SET SCHEMA safeguard;
ALTER OPERATOR pg_catalog.> (safeguard.ulid, safeguard.ulid) SET SCHEMA safeguard;
ALTER OPERATOR pg_catalog.>= (safeguard.ulid, safeguard.ulid) SET SCHEMA safeguard;
