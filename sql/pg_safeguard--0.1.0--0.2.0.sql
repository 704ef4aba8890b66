-- pg_safeguard 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_safeguard UPDATE TO '0.2.0').
--
-- Written by hand: every change of the SQL surface between the two releases, in place. Nothing
-- that holds data is dropped or recreated (the audit log and chain, key store and registries
-- are only read by the new functions). scripts/upgrade-test.sh compares the result with a fresh
-- 0.2.0 install and checks that the data survives.
\echo Use "ALTER EXTENSION pg_safeguard UPDATE TO '0.2.0'" to load this file. \quit

-- New functions of the library (0.2.0's library also serves every 0.1.0 function).
CREATE FUNCTION safeguard."_setting"("name" TEXT) RETURNS TEXT
STRICT STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_setting_wrapper';
CREATE FUNCTION safeguard."_preloaded"() RETURNS bool
STRICT STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_preloaded_wrapper';
CREATE FUNCTION safeguard."_alter_table_with_unforced_checks"("statement" TEXT) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_alter_table_with_unforced_checks_wrapper';
CREATE FUNCTION safeguard."_audit_seal_chain"() RETURNS bigint
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_audit_seal_chain_wrapper';
CREATE FUNCTION safeguard."_audit_verify_chain"() RETURNS TABLE (
    "ok" bool,
    "rows_checked" bigint,
    "first_bad_id" uuid,
    "detail" TEXT
)
STRICT STABLE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_audit_verify_chain_wrapper';
REVOKE ALL ON FUNCTION safeguard._audit_seal_chain(), safeguard._audit_verify_chain() FROM PUBLIC;

-- Sealing by blocks (sql/audit_chain.sql): the chain's new table, the clusters' transaction
-- number offsets, and the block-range index that finds a seal's entries by txid (the time index
-- gains the txid column: one block-range index, not two, for the writers to maintain). The
-- per-entry links 0.1.0 wrote stay in audit_chain, verified as before; blocks continue from them.
CREATE TABLE safeguard.audit_chain_blocks (
    last_seq     bigint PRIMARY KEY,   -- chain position of the block's last entry
    after_txid   bigint NOT NULL,      -- the block's key range: after (after_txid, after_id) ...
    after_id     uuid NOT NULL,
    through_txid bigint NOT NULL,      -- ... through (through_txid, through_id), inclusive
    through_id   uuid NOT NULL,
    latest_at    timestamptz,          -- the newest entry's occurred_at (what audit_purge asks)
    hashes       bytea NOT NULL,       -- per entry, in key order: txid (8 bytes), id (16), sha256 (32)
    link         bytea NOT NULL
);
ALTER TABLE safeguard.audit_chain_blocks ALTER COLUMN hashes SET STORAGE EXTERNAL;
CREATE TABLE safeguard.audit_eras (
    system_identifier bigint PRIMARY KEY,  -- pg_control_system().system_identifier
    txid_offset       bigint NOT NULL,
    began_at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE safeguard.audit_chain_blocks IS 'Hash-chain blocks of sealed audit entries (safeguard.audit_seal)';
COMMENT ON TABLE safeguard.audit_eras IS
    'The clusters that wrote this audit log and the offset each adds to txid_current() in audit_log.txid';
COMMENT ON TABLE safeguard.audit_chain IS 'Hash-chain links of the audit entries sealed by pg_safeguard 0.1.0';
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_chain_blocks', '');
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_eras', '');
REVOKE ALL ON safeguard.audit_chain_blocks, safeguard.audit_eras FROM PUBLIC;
GRANT SELECT ON safeguard.audit_eras TO PUBLIC;
SELECT safeguard._make_append_only('safeguard.audit_chain_blocks');
SELECT safeguard._make_append_only('safeguard.audit_eras');
-- The log so far was written by this cluster, with txid_current() itself: its offset is 0.
INSERT INTO safeguard.audit_eras (system_identifier, txid_offset)
SELECT system_identifier, 0 FROM pg_catalog.pg_control_system();
-- Unsealed means at or above the last horizon: the lint rule reads only the log's tail.
CREATE OR REPLACE FUNCTION safeguard._audit_oldest_unsealed() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- Sealed means below the last seal's horizon (a seal takes every entry below it), so only
    -- the tail above it is read, through the log's block-range index on txid.
    SELECT min(l.occurred_at) FROM safeguard.audit_log l
     WHERE l.txid >= coalesce((SELECT max(s.horizon) FROM safeguard.audit_seals s), -9223372036854775808)
$$;
DROP INDEX safeguard.audit_log_time_idx;
CREATE INDEX audit_log_time_idx ON safeguard.audit_log USING brin (occurred_at, txid)
    WITH (autosummarize = on);

-- The hash chain is extended (in blocks) and checked in Rust, 0.1.0's links with the same
-- encoding as before: audit_seal and audit_verify become wrappers that give those functions the
-- owner's rights.
CREATE OR REPLACE FUNCTION safeguard.audit_seal() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$ SELECT safeguard._audit_seal_chain() $$;
CREATE OR REPLACE FUNCTION safeguard.audit_verify()
RETURNS TABLE (ok boolean, rows_checked bigint, first_bad_id uuid, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
AS $$ SELECT * FROM safeguard._audit_verify_chain() $$;

-- safeguard.ulid's comparison operators move to pg_catalog, where every search_path finds them.
-- The operator classes refer to them by OID and follow.
ALTER OPERATOR safeguard.= (safeguard.ulid, safeguard.ulid) SET SCHEMA pg_catalog;
ALTER OPERATOR safeguard.<> (safeguard.ulid, safeguard.ulid) SET SCHEMA pg_catalog;
ALTER OPERATOR safeguard.< (safeguard.ulid, safeguard.ulid) SET SCHEMA pg_catalog;
ALTER OPERATOR safeguard.<= (safeguard.ulid, safeguard.ulid) SET SCHEMA pg_catalog;
ALTER OPERATOR safeguard.> (safeguard.ulid, safeguard.ulid) SET SCHEMA pg_catalog;
ALTER OPERATOR safeguard.>= (safeguard.ulid, safeguard.ulid) SET SCHEMA pg_catalog;

-- audit_purge reads audit_retention through the library, and purges whole blocks.
CREATE OR REPLACE FUNCTION safeguard.audit_purge(older_than interval) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    setting text;
    retention interval;
    cutoff timestamptz;
    chained record;
    written timestamptz;
    through_seq bigint;
    through_link bytea;
    too_young boolean := false;
BEGIN
    -- Read through the library (safeguard._setting), never current_setting(): in a session that
    -- has not loaded it yet, the setting would not exist, or be a placeholder any role could set.
    setting := safeguard._setting('safeguard.audit_retention');
    BEGIN
        retention := setting::interval;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'safeguard.audit_retention is not an interval'
            USING ERRCODE = '22023', HINT = 'Set it to an interval such as ''6 years''.';
    END;
    IF older_than IS NULL OR older_than < retention THEN
        RAISE EXCEPTION 'audit entries younger than safeguard.audit_retention (%) cannot be purged',
                        setting
            USING ERRCODE = '22023',
                  HINT = 'Purge with an interval of at least safeguard.audit_retention, which only a superuser can lower.';
    END IF;
    cutoff := now() - older_than;
    PERFORM pg_advisory_xact_lock(hashtext('safeguard.audit_seal'));
    -- The oldest sealed entries, in chain order, as long as they are older than the cutoff:
    -- a prefix of the chain, read through its primary key, so the rest of the log is not read.
    -- First the per-entry links of 0.1.0, then whole blocks (their newest entry is recorded).
    FOR chained IN SELECT c.seq, c.log_id, c.link FROM safeguard.audit_chain c ORDER BY c.seq LOOP
        SELECT l.occurred_at INTO written FROM safeguard.audit_log l WHERE l.id = chained.log_id;
        IF written IS NULL OR written >= cutoff THEN
            too_young := true;
            EXIT;
        END IF;
        through_seq := chained.seq;
        through_link := chained.link;
    END LOOP;
    IF NOT too_young THEN
        FOR chained IN SELECT b.last_seq, b.link, b.latest_at FROM safeguard.audit_chain_blocks b
                        WHERE b.last_seq > coalesce((SELECT max(p.through_seq) FROM safeguard.audit_purges p), 0)
                        ORDER BY b.last_seq LOOP
            EXIT WHEN chained.latest_at >= cutoff;
            through_seq := chained.last_seq;
            through_link := chained.link;
        END LOOP;
    END IF;
    IF through_seq IS NULL THEN
        RETURN 0;
    END IF;
    RETURN safeguard._audit_purge_through(through_seq, through_link, older_than::text);
END $$;
COMMENT ON FUNCTION safeguard.audit_purge(interval) IS
    'Delete sealed audit entries older than the interval (at least safeguard.audit_retention); the chain stays verifiable';
REVOKE ALL ON FUNCTION safeguard.audit_purge(interval) FROM PUBLIC;

-- Tenancy: no permissive policy may widen sg_tenant; the DDL hook reads its setting through the
-- library; isolated_tables gains widened_by (a new last column).
CREATE FUNCTION safeguard._widening_policies(tbl regclass) RETURNS name[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(p.polname ORDER BY p.polname), '{}') FROM pg_policy p
     WHERE p.polrelid = tbl AND p.polpermissive AND p.polname NOT IN ('sg_tenant', 'sg_tenant_admin')
$$;

CREATE FUNCTION safeguard._restrictive_policy_ddl(tbl regclass, policy name) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('DROP POLICY %I ON %s; CREATE POLICY %I ON %s AS RESTRICTIVE FOR %s TO %s%s%s;',
                  p.polname, tbl, p.polname, tbl,
                  CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                  (SELECT string_agg(CASE WHEN r.role = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.role)) END,
                                     ', ' ORDER BY r.n)
                     FROM unnest(p.polroles) WITH ORDINALITY r(role, n)),
                  ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                  ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')
      FROM pg_policy p WHERE p.polrelid = tbl AND p.polname = policy
$$;

CREATE FUNCTION safeguard._refuse_widening_policies(tbl regclass) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    widening name[] := safeguard._widening_policies(tbl);
BEGIN
    IF cardinality(widening) > 0 THEN
        RAISE EXCEPTION 'permissive policies on % would widen its tenant isolation: %', tbl,
                        (SELECT string_agg(quote_ident(w), ', ') FROM unnest(widening) w)
            USING ERRCODE = '55000',
                  DETAIL = 'PostgreSQL combines permissive policies with OR: each of them admits rows or writes of other tenants that the isolation policy refuses.',
                  HINT = 'Re-create each AS RESTRICTIVE (it then narrows what a tenant sees) or drop it; for a role that must see every tenant, use isolate(..., admin_role => ...). For example: '
                         || safeguard._restrictive_policy_ddl(tbl, widening[1]);
    END IF;
END $$;

CREATE FUNCTION safeguard._ddl_hook_enabled() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(safeguard._setting('safeguard.isolation_ddl_hook'), ''), 'on')::boolean
$$;

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
    PERFORM safeguard._refuse_widening_policies(tbl);

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
        -- The sub-select makes the tenant a constant of each query (evaluated once). Citus refuses
        -- sub-selects in the policies of distributed tables: in a database with Citus the plain
        -- call, evaluated once per index scan but once per row by a sequential scan.
        IF EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus') THEN
            predicate := format('%I = safeguard.current_tenant()', tenant_column);
        ELSE
            predicate := format('%I = (SELECT safeguard.current_tenant())', tenant_column);
        END IF;
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
    IF NOT safeguard._ddl_hook_enabled() THEN
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

CREATE FUNCTION safeguard._on_policy_change() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regclass;
BEGIN
    IF NOT safeguard._ddl_hook_enabled() THEN
        RETURN;
    END IF;
    FOR t IN
        SELECT DISTINCT p.polrelid::regclass FROM pg_event_trigger_ddl_commands() c
          JOIN pg_policy p ON p.oid = c.objid
         WHERE c.classid = 'pg_policy'::regclass
           AND EXISTS (SELECT 1 FROM safeguard.tenant_registry r WHERE r.tbl = p.polrelid)
    LOOP
        PERFORM safeguard._refuse_widening_policies(t);
    END LOOP;
END $$;

CREATE EVENT TRIGGER sg_guard_isolation_policies ON ddl_command_end
    WHEN TAG IN ('CREATE POLICY', 'ALTER POLICY')
    EXECUTE FUNCTION safeguard._on_policy_change();

CREATE OR REPLACE VIEW safeguard.isolated_tables WITH (security_invoker = true) AS
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
       r.isolated_by,
       safeguard._widening_policies(r.tbl) AS widened_by
  FROM safeguard.tenant_registry r
  JOIN pg_class c ON c.oid = r.tbl
  LEFT JOIN pg_policy p ON p.polrelid = r.tbl AND p.polname = 'sg_tenant';
COMMENT ON VIEW safeguard.isolated_tables IS
    'Isolated tables and whether their row security is still as safeguard.isolate() left it';
GRANT SELECT ON safeguard.isolated_tables TO PUBLIC;

-- Data rules: tenant-scoped foreign keys.
CREATE FUNCTION safeguard._foreign_key_scoped(fk oid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN c.mode = 'via' THEN
            c.parent = k.confrelid::regclass
            AND k.conkey = ARRAY[(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = k.conrelid AND a.attname = c.fk_column)]
            AND k.confkey = ARRAY[(SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = k.confrelid AND a.attname = c.parent_column)]
        WHEN p.mode = 'direct' THEN EXISTS (
            SELECT 1 FROM unnest(k.conkey, k.confkey) u(child_att, parent_att)
             WHERE u.child_att = (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = k.conrelid AND a.attname = c.tenant_column)
               AND u.parent_att = (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = k.confrelid AND a.attname = p.tenant_column))
        ELSE false
    END
      FROM pg_constraint k
      JOIN safeguard.tenant_registry c ON c.tbl = k.conrelid::regclass
      JOIN safeguard.tenant_registry p ON p.tbl = k.confrelid::regclass
     WHERE k.oid = fk AND k.contype = 'f'
$$;

CREATE FUNCTION safeguard.scope_foreign_key(tbl regclass, constraint_name name) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fk pg_constraint;
    child safeguard.tenant_registry;
    parent safeguard.tenant_registry;
    existing safeguard.rule_registry;
    child_cols text;
    set_cols text;
    parent_key name[];
    index_script text := '';
    actions text;
    fk_script text;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    SELECT * INTO fk FROM pg_constraint k WHERE k.conrelid = tbl AND k.conname = constraint_name AND k.contype = 'f';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no foreign key %', tbl, quote_ident(constraint_name)
            USING ERRCODE = '42704', HINT = 'Name one of the table''s foreign key constraints (\d in psql lists them).';
    END IF;
    SELECT * INTO existing FROM safeguard.rule_registry r
     WHERE r.tbl = scope_foreign_key.tbl AND r.name = constraint_name AND r.kind = 'scoped_foreign_key';
    IF FOUND AND safeguard._foreign_key_scoped(fk.oid) THEN
        RAISE NOTICE 'foreign key % of % is already tenant-scoped', quote_ident(constraint_name), tbl;
        RETURN coalesce(existing.options ->> 'parent_index', '') || existing.ddl;
    END IF;
    IF fk.conparentid <> 0 THEN
        RAISE EXCEPTION 'foreign key % of % belongs to a partitioned table''s foreign key', quote_ident(constraint_name), tbl
            USING ERRCODE = '55000', HINT = 'Scope the foreign key of the partitioned table; its partitions follow.';
    END IF;
    SELECT * INTO child FROM safeguard.tenant_registry r WHERE r.tbl = scope_foreign_key.tbl;
    SELECT * INTO parent FROM safeguard.tenant_registry r WHERE r.tbl = fk.confrelid::regclass;
    IF child.mode IS DISTINCT FROM 'direct' OR parent.mode IS DISTINCT FROM 'direct' THEN
        RAISE EXCEPTION 'foreign key % of % does not join two tables isolated by their tenant column',
                        quote_ident(constraint_name), tbl
            USING ERRCODE = '55000',
                  HINT = 'Isolate both tables with safeguard.isolate(table, tenant_column) first. A table isolated through its parent (isolate_via) has no tenant column to add to its keys.';
    END IF;
    IF safeguard._foreign_key_scoped(fk.oid) THEN
        RAISE NOTICE 'foreign key % of % already includes the tenant column on both sides', quote_ident(constraint_name), tbl;
        RETURN '';
    END IF;
    IF fk.confupdtype IN ('n', 'd') THEN
        RAISE EXCEPTION 'foreign key % of % sets its columns ON UPDATE, which would change the tenant column too',
                        quote_ident(constraint_name), tbl
            USING ERRCODE = '0A000', HINT = 'Change the ON UPDATE action (NO ACTION, RESTRICT or CASCADE), then scope the key.';
    END IF;

    child_cols := (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY o.n)
                     FROM unnest(fk.conkey) WITH ORDINALITY o(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = o.attnum);
    parent_key := ARRAY[parent.tenant_column]
                  || ARRAY(SELECT a.attname FROM unnest(fk.confkey) WITH ORDINALITY o(attnum, n)
                             JOIN pg_attribute a ON a.attrelid = fk.confrelid AND a.attnum = o.attnum
                            ORDER BY o.n);
    -- A foreign key needs a unique index on exactly the referenced columns (in any order).
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i
         WHERE i.indrelid = fk.confrelid AND i.indisunique AND i.indisvalid AND i.indimmediate
           AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = cardinality(parent_key)
           AND (SELECT array_agg(x ORDER BY x) FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) x)
               = (SELECT array_agg(a.attnum ORDER BY a.attnum) FROM pg_attribute a
                   WHERE a.attrelid = fk.confrelid AND a.attname = ANY (parent_key)))
    THEN
        index_script := safeguard.require_unique(fk.confrelid::regclass, parent_key) || E'\n';
    END IF;

    -- The delete actions keep the tenant column: SET NULL and SET DEFAULT name the key's own
    -- columns (or the ones the key already named).
    set_cols := coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY o.n)
                            FROM unnest(fk.confdelsetcols) WITH ORDINALITY o(attnum, n)
                            JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = o.attnum),
                         child_cols);
    actions := CASE fk.confmatchtype WHEN 'f' THEN ' MATCH FULL' ELSE '' END
               || CASE fk.confupdtype WHEN 'r' THEN ' ON UPDATE RESTRICT' WHEN 'c' THEN ' ON UPDATE CASCADE' ELSE '' END
               || CASE fk.confdeltype
                      WHEN 'r' THEN ' ON DELETE RESTRICT'
                      WHEN 'c' THEN ' ON DELETE CASCADE'
                      WHEN 'n' THEN ' ON DELETE SET NULL (' || set_cols || ')'
                      WHEN 'd' THEN ' ON DELETE SET DEFAULT (' || set_cols || ')'
                      ELSE '' END
               || CASE WHEN fk.condeferrable THEN ' DEFERRABLE' || CASE WHEN fk.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END
                       ELSE '' END
               || CASE WHEN NOT fk.convalidated THEN ' NOT VALID' ELSE '' END;
    -- Run through _alter_table_with_unforced_checks: PostgreSQL's own check of the new key, run
    -- by an owner of tables that FORCE ROW LEVEL SECURITY, would see the current tenant's rows
    -- only and accept a key that other rows break.
    fk_script := safeguard._rule_apply(tbl, constraint_name, 'scoped_foreign_key',
        ARRAY[format('SELECT safeguard._alter_table_with_unforced_checks(%L)',
                     format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I FOREIGN KEY (%I, %s) REFERENCES %s (%s)%s',
                            tbl, constraint_name, constraint_name, child.tenant_column, child_cols, fk.confrelid::regclass,
                            (SELECT string_agg(quote_ident(k), ', ') FROM unnest(parent_key) k), actions))],
        format('SELECT safeguard._alter_table_with_unforced_checks(%L)',
               format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s',
                      tbl, constraint_name, constraint_name, pg_get_constraintdef(fk.oid))),
        jsonb_build_object('parent', fk.confrelid::regclass::text, 'parent_index', nullif(index_script, '')));
    RETURN index_script || fk_script;
END $$;
COMMENT ON FUNCTION safeguard.scope_foreign_key(regclass, name) IS
    'Rewrites a foreign key between isolated tables to include the tenant column on both sides, so it cannot cross tenants';

-- lint: the new rules (one reads Citus's distributed tables), and the tenant column read through the
-- library.
-- Citus's distributed tables and their distribution columns (a reference table's is NULL); none
-- where Citus is not installed. Read through EXECUTE: the catalog exists only with Citus.
CREATE FUNCTION safeguard._citus_distributed() RETURNS TABLE (tbl oid, column_name name)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT p.logicalrelid::oid, CASE WHEN p.partkey IS NOT NULL
                                          THEN column_to_column_name(p.logicalrelid, p.partkey)::name END
           FROM pg_catalog.pg_dist_partition p';
END $$;

-- Whether this server is a Citus worker (a node a coordinator added to its cluster). Two
-- statements: Citus's catalog is only named where it exists.
CREATE FUNCTION safeguard._is_citus_worker() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
        RETURN false;
    END IF;
    RETURN (SELECT g.groupid FROM pg_dist_local_group g) <> 0;
END $$;

-- The shards of Citus's tables on this node (ordinary tables to the catalog, named after their
-- table and shard id), which lint() leaves out: it reviews the tables, not their pieces.
CREATE FUNCTION safeguard._citus_shards() RETURNS SETOF oid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('pg_catalog.pg_dist_shard') IS NULL THEN
        RETURN;
    END IF;
    -- shard_name() leaves out a schema on the caller's search path: the name is qualified here.
    RETURN QUERY EXECUTE
        'SELECT r FROM (
             SELECT pg_catalog.to_regclass(pg_catalog.format(''%I.%I'', n.nspname,
                        i.parts[pg_catalog.array_upper(i.parts, 1)]))::oid AS r
               FROM pg_catalog.pg_dist_shard s
               JOIN pg_catalog.pg_class c ON c.oid = s.logicalrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              CROSS JOIN LATERAL (SELECT pg_catalog.parse_ident(pg_catalog.shard_name(s.logicalrelid, s.shardid)) AS parts) i) x
          WHERE r IS NOT NULL';
END $$;

CREATE OR REPLACE FUNCTION safeguard.lint(in_schema name DEFAULT NULL)
RETURNS TABLE (level text, rule text, object text, detail text, remediation text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $lint$
WITH
citus_shards AS MATERIALIZED (SELECT s FROM safeguard._citus_shards() s),
-- The tables under review: ordinary and partitioned tables (not partitions: rules apply to their
-- root), outside system schemas, the extension's schema and objects of any extension, and
-- Citus's shards.
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
       AND c.oid NOT IN (SELECT s FROM citus_shards s)
),
cols AS (
    SELECT r.oid, r.qname, a.attname, a.atttypid, a.attnotnull, a.atthasdef, a.attnum
      FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
),
-- The tenant column of each tenant-scoped table: the configured name first, then the names the
-- reviews keep meeting.
-- The names looked for, the configured one first: read once (MATERIALIZED), not once per column
-- (a call into the library per column of a thousand tables cost about 100 ms).
tenant_names AS MATERIALIZED (
    SELECT ARRAY[coalesce(nullif(safeguard._setting('safeguard.tenant_column'), ''), 'tenant_id'),
                 'tenant_id', 'organization_id', 'workspace_id']::name[] AS names
),
tenant_cols AS (
    SELECT DISTINCT ON (c.oid) c.oid, c.qname, c.attname, c.attnotnull
      FROM cols c CROSS JOIN tenant_names t
     WHERE c.attname = ANY (t.names)
     ORDER BY c.oid, array_position(t.names, c.attname)
),
isolated AS (SELECT r.tbl::oid AS oid, r.* FROM safeguard.tenant_registry r),
audited AS (SELECT a.tbl::oid AS oid FROM safeguard.audit_registry a),
classified AS (
    SELECT d.tbl::oid AS oid, d.column_name, d.class FROM safeguard.data_classification d
),
distributed AS MATERIALIZED (SELECT d.tbl AS oid, d.column_name FROM safeguard._citus_distributed() d),
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
-- Foreign keys; for a tenant-scoped one also its columns without the tenant column, which an
-- index need not lead with (every tenant's rows are few). Worked out once per key.
fk_keys AS MATERIALIZED (
    SELECT k.conrelid, k.conname, k.conkey,
           (SELECT array_remove(k.conkey, a.attnum)
              FROM safeguard.tenant_registry t JOIN pg_attribute a ON a.attrelid = t.tbl AND a.attname = t.tenant_column
             WHERE t.tbl = k.conrelid AND a.attnum = ANY (k.conkey) AND cardinality(k.conkey) > 1) AS scoped_cols
      FROM pg_constraint k WHERE k.contype = 'f'
),
findings AS (
    -- ERROR ----------------------------------------------------------------------------------
    SELECT 'ERROR' AS level, 'tenant_table_not_isolated' AS rule, t.qname AS object,
           format('Table %s has the tenant column %I but no row-level isolation: every role that can read it sees every tenant''s rows.',
                  t.qname, t.attname) AS detail,
           -- isolate() refuses to leave a permissive policy beside its own (it would widen the
           -- isolation): hand-written ones are first made restrictive, which only narrows.
           coalesce((SELECT string_agg(safeguard._restrictive_policy_ddl(t.oid, w.policy), ' ' ORDER BY w.policy)
                       FROM unnest(safeguard._widening_policies(t.oid)) w(policy)) || ' ', '')
           || format('SELECT safeguard.isolate(%L, %L);', t.qname, t.attname) AS remediation
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
    UNION ALL
    SELECT 'ERROR', 'isolation_widened', format('%s (policy %I)', v.table_name, w.policy),
           format('Policy %I on the isolated table %s is permissive: PostgreSQL combines it with sg_tenant by OR, so it admits rows or writes of other tenants.',
                  w.policy, v.table_name),
           safeguard._restrictive_policy_ddl(v.table_name, w.policy)
      FROM safeguard.isolated_tables v
      CROSS JOIN LATERAL unnest(v.widened_by) w(policy)
     WHERE in_schema IS NULL OR safeguard._rule_schema(v.table_name) = in_schema
    UNION ALL
    SELECT 'ERROR', 'foreign_key_not_tenant_scoped', format('%s (%s)', r.qname, quote_ident(k.conname)),
           format('Foreign key %I of %s references the isolated table %s without the tenant column: foreign keys are checked without row-level security, so a tenant can attach rows to another tenant''s records and learn which ids exist there.',
                  k.conname, r.qname, k.confrelid::regclass),
           CASE WHEN ci.mode = 'direct' AND pi.mode = 'direct'
                THEN format('SELECT safeguard.scope_foreign_key(%L, %L);', r.qname, k.conname) END
      FROM rels r
      JOIN isolated ci ON ci.oid = r.oid
      JOIN pg_constraint k ON k.conrelid = r.oid AND k.contype = 'f' AND k.conparentid = 0
      JOIN isolated pi ON pi.oid = k.confrelid
     WHERE NOT safeguard._foreign_key_scoped(k.oid)
    UNION ALL
    SELECT 'ERROR', 'materialized_view_over_isolated_table', format('%I.%I', vn.nspname, v.relname),
           format('Materialized view %I.%I stores rows of the isolated table(s) %s: it has no row-level security of its own, so every role that may read it sees the rows it was refreshed with, of every tenant.',
                  vn.nspname, v.relname, string_agg(DISTINCT d.refobjid::regclass::text, ', ')),
           format('DROP MATERIALIZED VIEW %I.%I; CREATE VIEW %I.%I WITH (security_invoker = true) AS%s',
                  vn.nspname, v.relname, vn.nspname, v.relname, pg_get_viewdef(v.oid))
      FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace
      JOIN pg_rewrite w ON w.ev_class = v.oid
      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_class'::regclass
      JOIN isolated src ON src.oid = d.refobjid
     WHERE v.relkind = 'm'
       AND vn.nspname NOT IN ('pg_catalog', 'information_schema', 'safeguard')
       AND (in_schema IS NULL OR vn.nspname = in_schema)
     GROUP BY vn.nspname, v.relname, v.oid
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
       -- Citus refuses the sub-select in the policies of distributed tables; in a database
       -- with Citus, isolate() writes the plain call on every table, which may be distributed later.
       AND NOT EXISTS (SELECT 1 FROM distributed d WHERE d.oid = r.oid)
       AND NOT (p.polname = 'sg_tenant' AND EXISTS (SELECT 1 FROM isolated i WHERE i.oid = r.oid)
                AND EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus'))
    UNION ALL
    SELECT 'WARN', 'citus_distribution_column', t.qname,
           format('Distributed table %s is distributed by %I, not by its tenant column %I: one tenant''s rows and queries spread over every shard, and co-location with the other tenant tables is lost.',
                  t.qname, d.column_name, t.attname),
           format('SELECT alter_distributed_table(%L, distribution_column := %L);', t.qname, t.attname)
      FROM tenant_cols t JOIN distributed d ON d.oid = t.oid
     WHERE d.column_name IS NOT NULL AND d.column_name <> t.attname
    UNION ALL
    -- Citus distributes tables here, and pg_safeguard's key table is not on every node yet.
    SELECT 'WARN', 'citus_not_set_up', 'safeguard.key_store',
           'Citus distributes tables in this database, and safeguard.citus_setup() has not been run: the keys exist only on the coordinator (encrypted values of distributed tables do not decrypt on the workers), and grants on safeguard.decrypt() made here do not reach the workers, and the workers do not know which roles must take their context from a verified token.',
           'SELECT * FROM safeguard.citus_setup();  -- on the coordinator'
     WHERE in_schema IS NULL
       AND EXISTS (SELECT 1 FROM distributed d)
       AND (NOT EXISTS (SELECT 1 FROM distributed d WHERE d.oid = 'safeguard.key_store'::regclass)
            OR NOT EXISTS (SELECT 1 FROM distributed d WHERE d.oid = 'safeguard.verified_context_roles'::regclass))
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
    SELECT 'WARN', 'unique_without_tenant_column', format('%s (%s)', r.qname, quote_ident(ic.relname)),
           format('Unique %s %I of %s does not include the tenant column %I: a tenant that writes a duplicate learns that another tenant has that value (23505), and the rule is usually meant per tenant.',
                  CASE WHEN k.oid IS NULL THEN 'index' ELSE 'constraint' END, ic.relname, r.qname, i.tenant_column),
           CASE WHEN k.oid IS NOT NULL
                THEN format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s;', r.qname, k.conname, k.conname,
                            regexp_replace(pg_get_constraintdef(k.oid), '\(', '(' || quote_ident(i.tenant_column) || ', '))
                ELSE format('DROP INDEX %I.%I; %s;', r.nspname, ic.relname,
                            regexp_replace(pg_get_indexdef(x.indexrelid), '( USING \w+ \()', '\1' || quote_ident(i.tenant_column) || ', '))
           END
      FROM rels r
      JOIN isolated i ON i.oid = r.oid AND i.mode = 'direct'
      JOIN pg_index x ON x.indrelid = r.oid AND x.indisunique AND NOT x.indisprimary
      JOIN pg_class ic ON ic.oid = x.indexrelid
      LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = r.oid AND k.contype = 'u'
     WHERE NOT (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attname = i.tenant_column)
               = ANY ((x.indkey::int2[])[0:x.indnkeyatts - 1])
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
      FROM rels r JOIN fk_keys k ON k.conrelid = r.oid
     WHERE NOT EXISTS (SELECT 1 FROM index_keys i
                        WHERE i.oid = r.oid AND NOT i.partial
                          AND ((cardinality(i.keys) >= cardinality(k.conkey)
                                AND (SELECT array_agg(x ORDER BY x) FROM unnest(i.keys[0:cardinality(k.conkey) - 1]) x)
                                    = (SELECT array_agg(x ORDER BY x) FROM unnest(k.conkey) x))
                               OR (k.scoped_cols IS NOT NULL AND cardinality(i.keys) >= cardinality(k.scoped_cols)
                                   AND (SELECT array_agg(x ORDER BY x) FROM unnest(i.keys[0:cardinality(k.scoped_cols) - 1]) x)
                                       = (SELECT array_agg(x ORDER BY x) FROM unnest(k.scoped_cols) x))))
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
    SELECT 'INFO', 'library_not_preloaded', 'shared_preload_libraries',
           'pg_safeguard is not in shared_preload_libraries: its settings exist only once a session has called into the library (SHOW safeguard.audit_retention fails before), and the hook that keeps row values out of the messages of sg_ rule violations runs only in sessions that have.',
           -- The list as it stands plus ours; shown to roles that may read it (superusers,
           -- pg_read_all_settings), NULL for others: ALTER SYSTEM replaces the whole list.
           CASE WHEN pg_has_role('pg_read_all_settings', 'USAGE')
                THEN format('ALTER SYSTEM SET shared_preload_libraries = %L;  -- then restart the server',
                            concat_ws(', ', nullif(current_setting('shared_preload_libraries'), ''), 'pg_safeguard'))
           END
     WHERE in_schema IS NULL AND NOT safeguard._preloaded()
    UNION ALL
    SELECT 'INFO', 'audit_unsealed', 'safeguard.audit_log',
           format('Audit entries written since %s are not sealed into the hash chain (more than a day).', u.oldest),
           'SELECT safeguard.audit_seal();'
      FROM (SELECT safeguard._audit_oldest_unsealed() AS oldest) u
     WHERE in_schema IS NULL AND u.oldest < now() - interval '1 day'
)
SELECT x.level, x.rule, x.object, x.detail, x.remediation FROM (
    SELECT f.level, f.rule, f.object, f.detail, f.remediation
      FROM findings f
     WHERE NOT EXISTS (SELECT 1 FROM safeguard.lint_ignores i WHERE i.rule = f.rule AND i.object = f.object)
       AND NOT safeguard._is_citus_worker()
    UNION ALL
    -- On a Citus worker the review is the coordinator's: the registries (isolated and audited
    -- tables, classifications, ignored findings) live there.
    SELECT 'INFO', 'citus_worker', 'lint()',
           'This node is a Citus worker: lint() reviews the cluster on the coordinator, where pg_safeguard''s registries are.',
           'SELECT * FROM safeguard.lint();  -- on the coordinator'
     WHERE safeguard._is_citus_worker()
) x
 ORDER BY array_position(ARRAY['ERROR', 'WARN', 'INFO'], x.level), x.object, x.rule
$lint$;
COMMENT ON FUNCTION safeguard.lint(name) IS
    'The database review: findings (ERROR, WARN, INFO) with the SQL that fixes each';

-- Encryption on a Citus cluster (sql/crypto.sql, sql/citus.sql): the key table's invalidation
-- trigger, the assignment casts STABLE (Citus refuses VOLATILE ones in an UPDATE of a distributed
-- table), and the set-up and grant helpers.
CREATE FUNCTION safeguard."_key_store_changed"() RETURNS TRIGGER
LANGUAGE c AS 'MODULE_PATHNAME', '_key_store_changed_wrapper';
CREATE TRIGGER sg_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON safeguard.key_store
    FOR EACH STATEMENT EXECUTE FUNCTION safeguard._key_store_changed();
ALTER FUNCTION safeguard._encrypt(text) STABLE;
ALTER FUNCTION safeguard._encrypt(character varying) STABLE;
ALTER FUNCTION safeguard._encrypt(bytea) STABLE;
ALTER FUNCTION safeguard._encrypt(jsonb) STABLE;
-- Refuses (55000) unless this is a Citus coordinator; the helpers below only make sense there.
CREATE FUNCTION safeguard._require_citus_coordinator(caller text) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus') THEN
        RAISE EXCEPTION '% is for a Citus cluster, and Citus is not installed in this database', caller
            USING ERRCODE = '55000',
                  HINT = 'On a single server there is nothing to set up, and audit_seal(), audit_verify() and safeguard.audit_log serve the one log there is.';
    END IF;
    IF safeguard._is_citus_worker() THEN
        RAISE EXCEPTION '% runs on the Citus coordinator, and this node is a worker', caller
            USING ERRCODE = '55000',
                  HINT = 'Connect to the coordinator and call it there; it reaches every worker from there.';
    END IF;
END
$$;

-- Whether this server is the coordinator of a Citus cluster: Citus is installed here, and this
-- node is not a worker (safeguard._is_citus_worker(), sql/lint.sql, reads the node's group).
CREATE FUNCTION safeguard._is_citus_coordinator() RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus') AND NOT safeguard._is_citus_worker();
END
$$;

-- Runs one command on every worker (the callers run it on the coordinator themselves) and returns
-- each worker's result, as run_command_on_workers() gives it, in node order; 58000 naming the
-- workers where it failed. Each worker commits on its own: the callers are idempotent or only
-- read, so calling them again after a failure is safe. (Citus propagates grants only on objects it
-- distributed itself, and refuses to distribute an extension's functions without a distribution
-- argument: the grants on safeguard.decrypt() are sent this way too.) It runs the command as the
-- caller, as Citus's run_command_on_workers() itself does for any role; the callers decide who
-- may call them.
CREATE FUNCTION safeguard._on_every_worker(command text) RETURNS TABLE (node text, result text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nodes text[];
    succeeded boolean[];
    results text[];
    failed text;
BEGIN
    SELECT array_agg(format('%s:%s', w.nodename, w.nodeport) ORDER BY w.nodename, w.nodeport),
           array_agg(w.success ORDER BY w.nodename, w.nodeport),
           array_agg(w.result ORDER BY w.nodename, w.nodeport)
      INTO nodes, succeeded, results
      FROM run_command_on_workers(command) w;
    SELECT string_agg(format('%s: %s', u.node, u.result), '; ') INTO failed
      FROM unnest(nodes, succeeded, results) AS u (node, success, result) WHERE NOT u.success;
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'a command failed on a Citus worker' USING ERRCODE = '58000', DETAIL = failed,
            HINT = 'The coordinator and the workers that succeeded have done their part; call the function again once every worker is reachable.';
    END IF;
    RETURN QUERY SELECT u.node, u.result FROM unnest(nodes, results) AS u (node, result);
END
$$;

-- Who may decrypt: EXECUTE on the three safeguard.decrypt() functions, granted or revoked on this
-- server and, on a Citus coordinator, on every worker too (where the decryption of distributed
-- tables runs). Idempotent. The caller needs the right to grant them (their owner, or a grant
-- option).
CREATE FUNCTION safeguard._change_decrypt_grant(change text, grantee regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    command text;
BEGIN
    IF grantee IS NULL THEN
        RAISE EXCEPTION 'grantee must not be NULL' USING ERRCODE = '22004';
    END IF;
    command := format('%s EXECUTE ON FUNCTION safeguard.decrypt(safeguard.encrypted_text), '
                      'safeguard.decrypt(safeguard.encrypted_bytea), safeguard.decrypt(safeguard.encrypted_jsonb) %s %s',
                      CASE change WHEN 'grant' THEN 'GRANT' ELSE 'REVOKE' END,
                      CASE change WHEN 'grant' THEN 'TO' ELSE 'FROM' END, grantee);
    EXECUTE command;
    IF safeguard._is_citus_coordinator() THEN
        PERFORM safeguard._on_every_worker(command);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION safeguard._change_decrypt_grant(text, regrole) FROM PUBLIC;

CREATE FUNCTION safeguard.grant_decrypt(grantee regrole) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT safeguard._change_decrypt_grant('grant', grantee) $$;
COMMENT ON FUNCTION safeguard.grant_decrypt(regrole) IS
    'GRANT EXECUTE on safeguard.decrypt() to a role, on every node of a Citus cluster';

CREATE FUNCTION safeguard.revoke_decrypt(grantee regrole) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT safeguard._change_decrypt_grant('revoke', grantee) $$;
COMMENT ON FUNCTION safeguard.revoke_decrypt(regrole) IS
    'REVOKE EXECUTE on safeguard.decrypt() from a role, on every node of a Citus cluster';
REVOKE ALL ON FUNCTION safeguard.grant_decrypt(regrole), safeguard.revoke_decrypt(regrole) FROM PUBLIC;

-- The set-up of a Citus cluster, run once on the coordinator after the workers were added (and
-- again after a node is added: it is idempotent). One row per step, saying what it did.
CREATE FUNCTION safeguard.citus_setup() RETURNS TABLE (step text, result text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
-- Citus's notices about copying the key table's rows say what the result row says.
SET client_min_messages = warning
AS $$
DECLARE
    made text;
    unsafe_triggers text;
    grant_command text;
    granted int := 0;
BEGIN
    PERFORM safeguard._require_citus_coordinator('safeguard.citus_setup()');

    -- Tables every node needs the same rows of become reference tables, one copy on every node,
    -- changed on all of them in the coordinator's transaction: the keys, wherever encryption and
    -- decryption run; the roles required to take their context from a verified token, against
    -- which a worker checks the context passed on to it (docs/tenancy.md).
    FOR step, made IN
        SELECT * FROM (VALUES ('safeguard.key_store', 'made a reference table: every node reads the same keys'),
                              ('safeguard.verified_context_roles',
                               'made a reference table: every node knows which roles must use tokens')) t
    LOOP
        IF EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = step::regclass) THEN
            result := 'already a reference table';
        ELSE
            -- Citus refuses tables with triggers unless told otherwise; each of these has one,
            -- which only makes the node's backends read the table again after a change: what
            -- every copy needs.
            unsafe_triggers := current_setting('citus.enable_unsafe_triggers');
            PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
            PERFORM create_reference_table(step::regclass);
            PERFORM set_config('citus.enable_unsafe_triggers', unsafe_triggers, true);
            -- The coordinator's own rows were copied to the reference table; drop the local ones.
            PERFORM truncate_local_data_after_distributing_table(step::regclass);
            result := made;
        END IF;
        RETURN NEXT;
    END LOOP;

    -- Who may decrypt here may decrypt on every worker: each grant on safeguard.decrypt() sent
    -- as it is (a role may hold one of the three functions and not the others).
    step := 'EXECUTE on safeguard.decrypt()';
    FOR grant_command IN
        SELECT format('GRANT EXECUTE ON FUNCTION %s TO %s', p.oid::regprocedure, a.grantee::regrole)
          FROM pg_proc p, aclexplode(p.proacl) a
         WHERE p.oid IN ('safeguard.decrypt(safeguard.encrypted_text)'::regprocedure,
                         'safeguard.decrypt(safeguard.encrypted_bytea)'::regprocedure,
                         'safeguard.decrypt(safeguard.encrypted_jsonb)'::regprocedure)
           AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
         ORDER BY 1
    LOOP
        PERFORM safeguard._on_every_worker(grant_command);
        granted := granted + 1;
    END LOOP;
    result := format('%s grant(s) made here sent to every worker', granted);
    RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION safeguard.citus_setup() FROM PUBLIC;
COMMENT ON FUNCTION safeguard.citus_setup() IS
    'Sets pg_safeguard up on a Citus cluster (run on the coordinator; idempotent): docs/citus.md';

-- isolate_via() refuses a distributed table, or one whose parent is distributed (0A000), with the
-- steps that give it the tenant column instead (Citus refuses its sub-select policy).
CREATE OR REPLACE FUNCTION safeguard.isolate_via(tbl regclass, fk_column name, parent regclass, parent_column name DEFAULT 'id')
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fk_type regtype;
    parent_type regtype;
    parent_ok boolean;
    parent_tenant_column name;
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
    -- Citus refuses sub-selects in the policies of distributed tables, and this policy is one: on
    -- Citus a child table carries the tenant column itself, which it needs anyway to be
    -- co-located with its parent and routed by tenant (docs/citus.md).
    IF EXISTS (SELECT 1 FROM safeguard._citus_distributed() d
                WHERE d.tbl IN (isolate_via.tbl, isolate_via.parent) AND d.column_name IS NOT NULL) THEN
        SELECT r.tenant_column INTO parent_tenant_column FROM safeguard.tenant_registry r WHERE r.tbl = isolate_via.parent;
        RAISE EXCEPTION 'table % cannot be isolated through its parent on Citus', tbl
            USING ERRCODE = '0A000',
                  DETAIL = 'Citus refuses sub-selects in the policies of distributed tables, and the policy of isolate_via() is one.',
                  HINT = format('Give %1$s the tenant column of %2$s and isolate it by that column: '
                                'ALTER TABLE %1$s ADD COLUMN %3$I uuid; UPDATE %1$s c SET %3$I = p.%3$I FROM %2$s p WHERE p.%4$I = c.%5$I; '
                                'ALTER TABLE %1$s ALTER COLUMN %3$I SET NOT NULL; distribute %1$s by %3$I, co-located with %2$s; '
                                'SELECT safeguard.isolate(%6$L, %7$L);',
                                tbl, parent, parent_tenant_column, parent_column, fk_column, tbl::text, parent_tenant_column);
    END IF;
    PERFORM safeguard._apply_isolation(tbl, 'via', NULL, fk_column, parent, parent_column, NULL, NULL);
END $$;

-- Audit on a Citus cluster (sql/audit.sql, sql/citus.sql): enable_audit() and disable_audit() on
-- distributed tables, audit_history() of a distributed table from the coordinator, and the
-- functions that read, seal and verify every node's log.
-- Citus (docs/citus.md): the audit triggers of a distributed table are copied onto its shards
-- and fire on the workers, which log into their own audit log under the distributed table's
-- name. Citus allows triggers on its tables only when told to: citus.enable_unsafe_triggers,
-- set here until the calling function returns (enable_audit and disable_audit have SET clauses,
-- which undo it). A reference table has a copy on every node, all changed in one transaction:
-- the coordinator's copy logs the change, so the coordinator must hold one.
CREATE FUNCTION safeguard._allow_audit_triggers_on_citus(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    distribution_column name;
BEGIN
    SELECT d.column_name INTO distribution_column FROM safeguard._citus_distributed() d
     WHERE d.tbl = _allow_audit_triggers_on_citus.tbl;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF distribution_column IS NULL AND NOT EXISTS (
            SELECT 1 FROM pg_dist_shard s JOIN pg_dist_placement p ON p.shardid = s.shardid
             WHERE s.logicalrelid = _allow_audit_triggers_on_citus.tbl AND p.groupid = 0) THEN
        RAISE EXCEPTION 'reference table % has no copy on the coordinator, whose copy logs its changes', tbl
            USING ERRCODE = '0A000',
                  DETAIL = 'Every node holds a copy of a reference table; pg_safeguard logs a change where the coordinator''s copy is changed, once.',
                  HINT = 'Add the coordinator to the cluster (SELECT citus_set_coordinator_host(<host>, <port>);), then SELECT replicate_reference_tables();';
    END IF;
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
END $$;
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
    PERFORM safeguard._allow_audit_triggers_on_citus(tbl);
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
    PERFORM safeguard._allow_audit_triggers_on_citus(tbl);
    PERFORM safeguard._drop_audit_triggers(tbl);
    DELETE FROM safeguard.audit_registry r WHERE r.tbl = disable_audit.tbl;
END $$;
CREATE OR REPLACE FUNCTION safeguard.audit_history(tbl regclass, record_id jsonb)
RETURNS SETOF safeguard.audit_log
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- On a Citus coordinator, a distributed table's entries are in the logs of the nodes that
    -- hold its shards (docs/citus.md).
    IF EXISTS (SELECT 1 FROM safeguard._citus_distributed() d WHERE d.tbl = audit_history.tbl)
       AND safeguard._is_citus_coordinator() THEN
        RETURN QUERY SELECT * FROM safeguard.cluster_audit_log(tbl => audit_history.tbl, record_id => audit_history.record_id) l
                      ORDER BY l.id DESC;
        RETURN;
    END IF;
    -- A partitioned table's entries name the partition that held the row.
    RETURN QUERY
    SELECT l.*
      FROM safeguard.audit_log l
     WHERE l.record_id = audit_history.record_id
       AND (l.table_schema, l.table_name) IN (
            SELECT n.nspname, c.relname
              FROM safeguard._audit_members(tbl) m
              JOIN pg_class c ON c.oid = m
              JOIN pg_namespace n ON n.oid = c.relnamespace)
     ORDER BY l.id DESC;
END $$;

-- Audit on a Citus cluster (docs/citus.md): each node logs the changes of the shards it holds
-- into its own safeguard.audit_log, under the distributed table's name, and keeps its own hash
-- chain. The functions below read, seal and verify the logs of every node from the coordinator.

-- This node's entries that match, as one JSON array, read with the caller's context: the sealed
-- context of the coordinator's transaction (safeguard.context_proof, '' for none) is set here
-- first, so that the log's row security on this node shows the caller what it shows them on the
-- coordinator. Called on each worker by cluster_audit_log(); SECURITY INVOKER, so it gives no
-- one more than a query of the log would.
CREATE FUNCTION safeguard._audit_entries_json(context_proof text, tenant_id uuid, since timestamptz,
                                             until timestamptz, tables text[], record_id jsonb)
RETURNS json
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    entries json;
BEGIN
    PERFORM set_config('safeguard.context_proof', coalesce(context_proof, ''), true);
    SELECT coalesce(json_agg(l ORDER BY l.id), '[]') INTO entries
      FROM safeguard.audit_log l
     WHERE (_audit_entries_json.tenant_id IS NULL OR l.tenant_id = _audit_entries_json.tenant_id)
       AND (since IS NULL OR l.occurred_at >= since)
       AND (until IS NULL OR l.occurred_at < until)
       AND (tables IS NULL OR format('%I.%I', l.table_schema, l.table_name) = ANY (tables))
       AND (_audit_entries_json.record_id IS NULL OR l.record_id = _audit_entries_json.record_id);
    RETURN entries;
END
$$;

-- The audit log of every node of the cluster, filtered (every argument optional), oldest first:
-- a tenant's activity, a table's or a record's history. Each node's row security applies, with
-- the caller's context (a superuser sees every tenant's entries). Runs on the coordinator; 58000
-- naming the node if one cannot be read.
CREATE FUNCTION safeguard.cluster_audit_log(tenant_id uuid DEFAULT NULL, since timestamptz DEFAULT NULL,
                                           until timestamptz DEFAULT NULL, tbl regclass DEFAULT NULL,
                                           record_id jsonb DEFAULT NULL)
RETURNS SETOF safeguard.audit_log
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    proof text := current_setting('safeguard.context_proof', true);
    tables text[];
    worker_entries json[];
BEGIN
    PERFORM safeguard._require_citus_coordinator('safeguard.cluster_audit_log()');
    IF tbl IS NOT NULL THEN
        SELECT array_agg(format('%I.%I', n.nspname, c.relname)) INTO tables
          FROM safeguard._audit_members(tbl) m JOIN pg_class c ON c.oid = m JOIN pg_namespace n ON n.oid = c.relnamespace;
    END IF;
    SELECT array_agg(w.result::json) INTO worker_entries
      FROM safeguard._on_every_worker(format('SELECT safeguard._audit_entries_json(%L, %L, %L, %L, %L, %L)',
                                             proof, tenant_id, since, until, tables, record_id)) w;
    RETURN QUERY
    SELECT l.*
      FROM unnest(safeguard._audit_entries_json(proof, tenant_id, since, until, tables, record_id)
                  || coalesce(worker_entries, '{}')) e,
           json_populate_recordset(NULL::safeguard.audit_log, e) l
     ORDER BY l.id;
END
$$;
COMMENT ON FUNCTION safeguard.cluster_audit_log(uuid, timestamptz, timestamptz, regclass, jsonb) IS
    'The audit log of every node of a Citus cluster, filtered; run on the coordinator';

-- Seal and verify the hash chain of every node (each node has its own: docs/citus.md) from the
-- coordinator: one row per node, the coordinator first. For the owner of the extension and
-- superusers, like audit_seal() and audit_verify(), which they call on each node.
CREATE FUNCTION safeguard.cluster_audit_seal() RETURNS TABLE (node text, sealed bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM safeguard._require_citus_coordinator('safeguard.cluster_audit_seal()');
    RETURN QUERY SELECT 'coordinator', safeguard.audit_seal();
    RETURN QUERY SELECT w.node, w.result::bigint FROM safeguard._on_every_worker('SELECT safeguard.audit_seal()') w;
END
$$;

CREATE FUNCTION safeguard.cluster_audit_verify()
RETURNS TABLE (node text, ok boolean, rows_checked bigint, first_bad_id uuid, detail text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM safeguard._require_citus_coordinator('safeguard.cluster_audit_verify()');
    RETURN QUERY SELECT 'coordinator', v.* FROM safeguard.audit_verify() v;
    RETURN QUERY
    SELECT w.node, v.*
      FROM safeguard._on_every_worker('SELECT pg_catalog.json_agg(v) FROM safeguard.audit_verify() v') w,
           json_to_recordset(w.result::json) AS v (ok boolean, rows_checked bigint, first_bad_id uuid, detail text);
END
$$;
REVOKE ALL ON FUNCTION safeguard.cluster_audit_seal(), safeguard.cluster_audit_verify() FROM PUBLIC;
COMMENT ON FUNCTION safeguard.cluster_audit_seal() IS
    'audit_seal() on every node of a Citus cluster; run on the coordinator';
COMMENT ON FUNCTION safeguard.cluster_audit_verify() IS
    'audit_verify() on every node of a Citus cluster, one row per node; run on the coordinator';

-- Citus distributes a new partition of a distributed table after the CREATE TABLE (or ATTACH
-- PARTITION) itself, and refuses one that has triggers unless citus.enable_unsafe_triggers is on;
-- a partition of an audited table always has them (PostgreSQL copies the row trigger, and
-- sg_audit_new_partitions in sql/audit.sql adds the TRUNCATE trigger). So, for such a partition
-- only, this turns the setting on for the rest of the transaction, as enable_audit() does for its
-- own statement.
CREATE FUNCTION safeguard._joins_audited_distributed_tree() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1
          FROM pg_event_trigger_ddl_commands() d
          JOIN pg_class c ON c.oid = d.objid
          JOIN safeguard.audit_registry a ON a.tbl = pg_partition_root(c.oid)
          JOIN safeguard._citus_distributed() t ON t.tbl = a.tbl
         WHERE d.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'p'))
$$;
-- No SET clause: the setting must outlive this function; hence every name is schema-qualified.
CREATE FUNCTION safeguard._on_ddl_allow_citus_partition_triggers() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF safeguard._joins_audited_distributed_tree() THEN
        PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    END IF;
END $$;
CREATE EVENT TRIGGER sg_audit_citus_partitions ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION safeguard._on_ddl_allow_citus_partition_triggers();

-- Master-key rotation when the previous master key comes from a command (a key service), as
-- safeguard.master_key_command does (src/crypto/key_command.rs). Superusers only.
CREATE FUNCTION safeguard."rewrap_keys_from_command"("previous_key_command" TEXT) RETURNS INT
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'rewrap_keys_from_command_wrapper';
REVOKE ALL ON FUNCTION safeguard.rewrap_keys_from_command(text) FROM PUBLIC;

-- Verified request context (src/token, sql/token.sql): set_context_from_token(), the roles that
-- must use it, and what the current transaction's token was.
CREATE FUNCTION safeguard."set_context_from_token"("token" TEXT, "request_id" TEXT DEFAULT NULL) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c AS 'MODULE_PATHNAME', 'set_context_from_token_wrapper';
CREATE FUNCTION safeguard."_verified_context_of_transaction"() RETURNS TABLE (
    "token_id" TEXT,
    "subject" TEXT,
    "expires_at" timestamp with time zone
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c AS 'MODULE_PATHNAME', '_verified_context_of_transaction_wrapper';
CREATE FUNCTION safeguard."_verified_context_roles_changed"() RETURNS TRIGGER
LANGUAGE c AS 'MODULE_PATHNAME', '_verified_context_roles_changed_wrapper';

CREATE TABLE safeguard.verified_context_roles (
    role_name   regrole PRIMARY KEY,
    required_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    required_by name NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE safeguard.verified_context_roles IS
    'Roles (and their members) whose request context only a verified token may set: safeguard.require_verified_context()';
SELECT pg_catalog.pg_extension_config_dump('safeguard.verified_context_roles', '');
-- Every backend asks the registry again after a change (src/token: _verified_context_roles_changed).
CREATE TRIGGER sg_verified_context_roles_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON safeguard.verified_context_roles
    FOR EACH STATEMENT EXECUTE FUNCTION safeguard._verified_context_roles_changed();

-- Requires (or, with enabled => false, no longer requires) a role and the roles that belong to it
-- to take their context from a verified token: set_context(), and a context read from the
-- adopted application setting, are then refused for them (42501). Idempotent. For the owner of
-- the extension and superusers (the table's privileges decide).
CREATE FUNCTION safeguard.require_verified_context(role_name regrole, enabled boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF role_name IS NULL OR enabled IS NULL THEN
        RAISE EXCEPTION 'role_name and enabled must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = role_name) THEN
        RAISE EXCEPTION 'role % is a superuser, which nothing can be required of', role_name
            USING ERRCODE = '22023',
                  HINT = 'Connect the application as a role without SUPERUSER (and without BYPASSRLS).';
    END IF;
    IF enabled THEN
        INSERT INTO safeguard.verified_context_roles AS v (role_name) VALUES (require_verified_context.role_name)
            ON CONFLICT ON CONSTRAINT verified_context_roles_pkey DO NOTHING;
    ELSE
        DELETE FROM safeguard.verified_context_roles v WHERE v.role_name = require_verified_context.role_name;
    END IF;
END $$;
REVOKE ALL ON FUNCTION safeguard.require_verified_context(regrole, boolean) FROM PUBLIC;
COMMENT ON FUNCTION safeguard.require_verified_context(regrole, boolean) IS
    'Requires a role (and its members) to take its request context from a verified token (docs/tenancy.md)';

-- The required roles, with the roles that belong to them (to which the requirement applies too).
CREATE VIEW safeguard.verified_context_required AS
SELECT v.role_name, v.required_at, v.required_by,
       ARRAY(SELECT m.rolname FROM pg_catalog.pg_roles m
              WHERE m.oid <> v.role_name::oid AND NOT m.rolsuper
                AND pg_catalog.pg_has_role(m.oid, v.role_name::oid, 'MEMBER')
              ORDER BY m.rolname)::name[] AS members
  FROM safeguard.verified_context_roles v
  JOIN pg_catalog.pg_roles r ON r.oid = v.role_name::oid;

-- The audit log records the token that set the context (set_context_from_token(): its jti and
-- sub). The canonical encoding of the hash chain takes the two columns only for entries that
-- have a token, so every entry written before keeps its encoding and the chain verifies.
ALTER TABLE safeguard.audit_log ADD COLUMN token_id text, ADD COLUMN token_subject text;
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
        quote_nullable(l.changed_columns::text),
        -- The token columns (0.2.0) only when an entry has one: entries without stay encoded as
        -- 0.1.0 encoded them, so chains sealed before verify after.
        CASE WHEN l.token_id IS NOT NULL OR l.token_subject IS NOT NULL
             THEN quote_nullable(l.token_id) || ',' || quote_nullable(l.token_subject) END), 'UTF8')
$$;
