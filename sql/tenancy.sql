-- Tenant isolation: row-level security on tagged tables, fail closed, one call per table.
--
-- A table is "tagged" by isolating it: safeguard.isolate() enables and forces RLS, adds policy
-- sg_tenant (and sg_tenant_admin when an admin role is given), indexes the tenant column when
-- needed, and records all of it in safeguard.tenant_registry so that unisolate() can remove
-- exactly that and isolated_tables/lint can tell when someone changed it.
--
-- The helpers run with the caller's rights (they are not SECURITY DEFINER): only a table's owner
-- can change its row security, and PostgreSQL enforces that. The registry is writable by everyone
-- through its own row-level security, which admits only rows for tables the caller owns.
-- All dynamic SQL quotes identifiers with format('%I') or regclass output.

-- Whether the current role owns tbl, directly or through a role it belongs to: the registries'
-- row policies let each role record and remove the rows of its own tables only.
CREATE FUNCTION safeguard._owns(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = tbl), 'USAGE')
$$;

CREATE TABLE safeguard.tenant_registry (
    tbl              regclass PRIMARY KEY,
    mode             text NOT NULL CHECK (mode IN ('direct', 'via')),
    -- direct: the column compared with current_tenant()
    tenant_column    name,
    -- via: this table's column that references parent(parent_column)
    fk_column        name,
    parent           regclass,
    parent_column    name,
    admin_role       name,
    -- set on partitions: the partitioned table whose isolation they inherit
    root             regclass,
    -- indexes isolate created, for unisolate to remove: qualified, quoted names (not regclass:
    -- pg_restore loads this table's rows before it creates indexes)
    created_indexes  text[] NOT NULL DEFAULT '{}',
    -- the table's row security before isolate, for unisolate to restore
    rls_was_enabled  boolean NOT NULL,
    rls_was_forced   boolean NOT NULL,
    -- the policy expression as created (pg_get_expr), to notice later edits
    policy_using     text,
    isolated_at      timestamptz NOT NULL DEFAULT now(),
    isolated_by      name NOT NULL DEFAULT current_user,
    CHECK ((mode = 'direct') = (tenant_column IS NOT NULL)),
    CHECK ((mode = 'via') = (parent IS NOT NULL AND fk_column IS NOT NULL AND parent_column IS NOT NULL))
);
COMMENT ON TABLE safeguard.tenant_registry IS
    'Tables isolated by safeguard.isolate()/isolate_via(): what was created, for unisolate() and lint';

CREATE TABLE safeguard.tenant_auto_isolation (
    schema_name    name PRIMARY KEY,
    tenant_column  name NOT NULL,
    enabled_at     timestamptz NOT NULL DEFAULT now(),
    enabled_by     name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE safeguard.tenant_auto_isolation IS
    'Schemas where safeguard.auto_isolate() isolates every new table that has the tenant column';

SELECT pg_catalog.pg_extension_config_dump('safeguard.tenant_registry', '');
SELECT pg_catalog.pg_extension_config_dump('safeguard.tenant_auto_isolation', '');

-- Everyone may read; each may write only the rows of tables (schemas) they own.
ALTER TABLE safeguard.tenant_registry ENABLE ROW LEVEL SECURITY;
ALTER TABLE safeguard.tenant_auto_isolation ENABLE ROW LEVEL SECURITY;
CREATE POLICY sg_read ON safeguard.tenant_registry FOR SELECT USING (true);
CREATE POLICY sg_owner ON safeguard.tenant_registry FOR ALL
    USING (safeguard._owns(tbl))
    WITH CHECK (safeguard._owns(tbl));
CREATE POLICY sg_read ON safeguard.tenant_auto_isolation FOR SELECT USING (true);
CREATE POLICY sg_owner ON safeguard.tenant_auto_isolation FOR ALL
    USING (pg_catalog.pg_has_role((SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = schema_name), 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role((SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = schema_name), 'USAGE'));
REVOKE ALL ON safeguard.tenant_registry, safeguard.tenant_auto_isolation FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON safeguard.tenant_registry, safeguard.tenant_auto_isolation TO PUBLIC;

-- A table the caller may isolate, audit or add data rules to: an ordinary or partitioned table it owns.
CREATE FUNCTION safeguard._require_own_table(tbl regclass) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kind "char";
    owner oid;
BEGIN
    SELECT c.relkind, c.relowner INTO kind, owner FROM pg_class c WHERE c.oid = tbl;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid USING ERRCODE = '42P01';
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl
            USING ERRCODE = '42809',
                  HINT = 'Isolation, auditing and data rules apply to ordinary and partitioned tables; for a view, apply them to the tables it reads.';
    END IF;
    IF NOT pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl
            USING ERRCODE = '42501',
                  HINT = 'Run the helper as the table''s owner (the role your migrations use).';
    END IF;
END $$;

-- The type of a live column of tbl; 42703 when there is none.
CREATE FUNCTION safeguard._column_type(tbl regclass, col name, purpose text) RETURNS regtype
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    typ regtype;
BEGIN
    SELECT a.atttypid INTO typ FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF typ IS NULL THEN
        RAISE EXCEPTION 'column % of table % does not exist', quote_ident(col), tbl
            USING ERRCODE = '42703', HINT = 'Name the ' || purpose || '.';
    END IF;
    RETURN typ;
END $$;

-- Whether a valid, non-partial index of tbl has col as its first key column.
CREATE FUNCTION safeguard._has_leading_index(tbl regclass, col name) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = tbl AND a.attname = col AND i.indpred IS NULL AND i.indisvalid)
$$;

-- A policy's expression as text, deparsed under a fixed search_path so that the text does not
-- depend on the caller's (names outside pg_catalog come out schema-qualified).
CREATE FUNCTION safeguard._policy_expr(tbl regclass, policy name, with_check boolean) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_get_expr(CASE WHEN with_check THEN p.polwithcheck ELSE p.polqual END, p.polrelid)
      FROM pg_policy p WHERE p.polrelid = tbl AND p.polname = policy
$$;

-- Permissive policies of tbl other than isolation's own. PostgreSQL combines permissive policies
-- with OR, so each of them admits rows (and writes) that sg_tenant refuses: isolation would be
-- only as narrow as the widest of them. sg_tenant_admin is the one deliberate widening, for
-- members of the admin role.
CREATE FUNCTION safeguard._widening_policies(tbl regclass) RETURNS name[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(p.polname ORDER BY p.polname), '{}') FROM pg_policy p
     WHERE p.polrelid = tbl AND p.polpermissive AND p.polname NOT IN ('sg_tenant', 'sg_tenant_admin')
$$;

-- The statements that re-create a policy as RESTRICTIVE with the same commands, roles and
-- expressions: a restrictive policy is ANDed with sg_tenant, so it can only narrow what a
-- tenant sees and writes.
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

-- Refuses (55000) to leave tbl isolated beside permissive policies that widen sg_tenant.
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

-- A free index name 'sg_<table>_<column>_idx' in tbl's schema, shortened to fit 63 bytes.
CREATE FUNCTION safeguard._free_index_name(tbl regclass, col name) RETURNS name
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel name;
    nsp oid;
    base text;
    candidate text;
    n int := 1;
BEGIN
    SELECT c.relname, c.relnamespace INTO rel, nsp FROM pg_class c WHERE c.oid = tbl;
    base := 'sg_' || left(rel, 28) || '_' || left(col, 24);
    WHILE octet_length(base) > 55 LOOP
        base := left(base, -1);
    END LOOP;
    candidate := base || '_idx';
    WHILE EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = candidate AND c.relnamespace = nsp) LOOP
        n := n + 1;
        candidate := base || '_idx' || n;
    END LOOP;
    RETURN candidate;
END $$;

-- The one place that applies isolation to a table: registry row, RLS, policies, index, then the
-- partitions. The DDL event trigger stays out of the helpers' own ALTER TABLEs
-- (isolation_ddl_hook is off while they run).
CREATE FUNCTION safeguard._apply_isolation(
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

CREATE FUNCTION safeguard.isolate(tbl regclass, tenant_column name DEFAULT 'tenant_id', admin_role name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    typ regtype;
    inherited regclass;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    typ := safeguard._column_type(tbl, tenant_column,
        'column that holds the tenant id, e.g. safeguard.isolate(''patients'', ''organization_id'')');
    IF typ <> 'uuid'::regtype THEN
        RAISE EXCEPTION 'column % of table % has type %, not uuid', quote_ident(tenant_column), tbl, typ
            USING ERRCODE = '42804',
                  HINT = 'safeguard.current_tenant() returns uuid; the tenant column must be uuid too.';
    END IF;
    IF admin_role IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = admin_role) THEN
        RAISE EXCEPTION 'role % does not exist', quote_ident(admin_role)
            USING ERRCODE = '42704', HINT = 'Create the admin role first; its members will see every tenant''s rows.';
    END IF;
    SELECT r.root INTO inherited FROM safeguard.tenant_registry r WHERE r.tbl = isolate.tbl AND r.root IS NOT NULL;
    IF inherited IS NOT NULL THEN
        RAISE EXCEPTION 'table % is isolated as a partition of %', tbl, inherited
            USING ERRCODE = '55000', HINT = format('Isolate the partitioned table instead: SELECT safeguard.isolate(%L, ...).', inherited::text);
    END IF;
    PERFORM safeguard._apply_isolation(tbl, 'direct', tenant_column, NULL, NULL, NULL, admin_role, NULL);
END $$;
COMMENT ON FUNCTION safeguard.isolate(regclass, name, name) IS
    'Enable and force row-level security on a table so each transaction sees only the rows of safeguard.current_tenant()';

CREATE FUNCTION safeguard.isolate_via(tbl regclass, fk_column name, parent regclass, parent_column name DEFAULT 'id')
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
COMMENT ON FUNCTION safeguard.isolate_via(regclass, name, regclass, name) IS
    'Isolate a table whose tenant comes through a parent: a row is visible only when its parent row is';

CREATE FUNCTION safeguard.isolate_all(tenant_column name, in_schema name DEFAULT 'public')
RETURNS SETOF regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regclass;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = in_schema) THEN
        RAISE EXCEPTION 'schema % does not exist', quote_ident(in_schema) USING ERRCODE = '3F000';
    END IF;
    FOR t IN
        SELECT c.oid::regclass FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid
         WHERE n.nspname = in_schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND a.attname = tenant_column AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY c.relname
    LOOP
        PERFORM safeguard.isolate(t, tenant_column);
        RETURN NEXT t;
    END LOOP;
END $$;
COMMENT ON FUNCTION safeguard.isolate_all(name, name) IS
    'Isolate every table of a schema that has the tenant column; returns the tables';

CREATE FUNCTION safeguard.auto_isolate(tenant_column name, in_schema name DEFAULT 'public')
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner oid;
BEGIN
    SELECT n.nspowner INTO owner FROM pg_namespace n WHERE n.nspname = in_schema;
    IF owner IS NULL THEN
        RAISE EXCEPTION 'schema % does not exist', quote_ident(in_schema) USING ERRCODE = '3F000';
    END IF;
    IF NOT pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of schema %', quote_ident(in_schema) USING ERRCODE = '42501';
    END IF;
    INSERT INTO safeguard.tenant_auto_isolation AS a (schema_name, tenant_column)
    VALUES (in_schema, tenant_column)
    ON CONFLICT (schema_name) DO UPDATE SET tenant_column = excluded.tenant_column;
END $$;
COMMENT ON FUNCTION safeguard.auto_isolate(name, name) IS
    'Isolate every table created later in the schema (or that gains the tenant column)';

CREATE FUNCTION safeguard.auto_isolate_off(in_schema name DEFAULT 'public')
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM safeguard.tenant_auto_isolation a WHERE a.schema_name = in_schema) THEN
        DELETE FROM safeguard.tenant_auto_isolation a WHERE a.schema_name = in_schema;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'must be owner of schema %', quote_ident(in_schema) USING ERRCODE = '42501';
        END IF;
    END IF;
END $$;
COMMENT ON FUNCTION safeguard.auto_isolate_off(name) IS 'Stop isolating new tables of the schema automatically';

CREATE FUNCTION safeguard.unisolate(tbl regclass)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    entry safeguard.tenant_registry;
    dependents text;
    part regclass;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    SELECT * INTO entry FROM safeguard.tenant_registry r WHERE r.tbl = unisolate.tbl;
    IF NOT FOUND THEN
        RETURN;  -- not isolated: nothing to remove
    END IF;
    IF entry.root IS NOT NULL AND EXISTS (SELECT 1 FROM pg_partition_ancestors(tbl) a WHERE a.relid = entry.root) THEN
        RAISE EXCEPTION 'table % is isolated as a partition of %', tbl, entry.root
            USING ERRCODE = '55000', HINT = format('Unisolate the partitioned table: SELECT safeguard.unisolate(%L);', entry.root::text);
    END IF;
    SELECT string_agg(r.tbl::text, ', ' ORDER BY r.tbl::text) INTO dependents
      FROM safeguard.tenant_registry r WHERE r.parent = unisolate.tbl AND r.root IS NULL;
    IF dependents IS NOT NULL THEN
        RAISE EXCEPTION 'tables isolated through % depend on it: %', tbl, dependents
            USING ERRCODE = '55000', HINT = 'Unisolate those tables first; their rows would otherwise become visible to every tenant.';
    END IF;

    FOR part IN SELECT r.tbl FROM safeguard.tenant_registry r WHERE r.root = unisolate.tbl LOOP
        PERFORM safeguard._remove_isolation(part);
    END LOOP;
    PERFORM safeguard._remove_isolation(tbl);
END $$;
COMMENT ON FUNCTION safeguard.unisolate(regclass) IS 'Remove exactly what safeguard.isolate() or isolate_via() created';

CREATE FUNCTION safeguard._remove_isolation(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET safeguard.isolation_ddl_hook = off AS $$
DECLARE
    entry safeguard.tenant_registry;
    idx text;
BEGIN
    SELECT * INTO entry FROM safeguard.tenant_registry r WHERE r.tbl = _remove_isolation.tbl;
    IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = tbl AND p.polname = 'sg_tenant') THEN
        EXECUTE format('DROP POLICY sg_tenant ON %s', tbl);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = tbl AND p.polname = 'sg_tenant_admin') THEN
        EXECUTE format('DROP POLICY sg_tenant_admin ON %s', tbl);
    END IF;
    IF NOT entry.rls_was_forced THEN
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
    END IF;
    IF NOT entry.rls_was_enabled THEN
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
    END IF;
    FOREACH idx IN ARRAY entry.created_indexes LOOP
        IF to_regclass(idx) IS NOT NULL THEN
            EXECUTE 'DROP INDEX ' || idx;  -- idx is a quoted, qualified name
        END IF;
    END LOOP;
    DELETE FROM safeguard.tenant_registry r WHERE r.tbl = _remove_isolation.tbl;
END $$;

-- Whether the DDL event triggers act (safeguard.isolation_ddl_hook). Read through the library,
-- so the setting exists whatever the session ran before. '' means the default (on): when a
-- session's first call into the extension is a helper whose SET clause names this setting,
-- PostgreSQL restores it to '' on exit, because the library (which defines it) loaded only
-- inside that call.
CREATE FUNCTION safeguard._ddl_hook_enabled() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(safeguard._setting('safeguard.isolation_ddl_hook'), ''), 'on')::boolean
$$;

-- DDL hook: new partitions of isolated tables, and new tables in auto-isolated schemas.
CREATE FUNCTION safeguard._on_ddl_isolate() RETURNS event_trigger
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

-- CREATE POLICY / ALTER POLICY on an isolated table: a permissive policy beside sg_tenant widens
-- the isolation (see _widening_policies), so it is refused as isolate() refuses it. Turning
-- safeguard.isolation_ddl_hook off skips the check; safeguard.isolated_tables (widened_by) and
-- lint (isolation_widened) still report such a policy.
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

-- Dropped tables and indexes leave the registry. SECURITY DEFINER: by now the dropped table's
-- owner can no longer be looked up, so the registry's owner policy would hide its row.
-- pg_event_trigger_dropped_objects() lists only what this very command dropped.
CREATE FUNCTION safeguard._on_drop_isolated() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM safeguard.tenant_registry r
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objid = r.tbl::oid AND d.objsubid = 0;
    UPDATE safeguard.tenant_registry r
       SET created_indexes = array(SELECT i FROM unnest(r.created_indexes) i
                                    WHERE i NOT IN (SELECT d.object_identity FROM pg_event_trigger_dropped_objects() d
                                                     WHERE d.object_type = 'index'))
     WHERE r.created_indexes && array(SELECT d.object_identity FROM pg_event_trigger_dropped_objects() d
                                       WHERE d.object_type = 'index');
    DELETE FROM safeguard.tenant_auto_isolation a
     USING pg_event_trigger_dropped_objects() d
     WHERE d.object_type = 'schema' AND d.object_name = a.schema_name;
END $$;
REVOKE ALL ON FUNCTION safeguard._on_drop_isolated() FROM PUBLIC;

CREATE EVENT TRIGGER sg_isolate_new_tables ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TABLE AS', 'SELECT INTO')
    EXECUTE FUNCTION safeguard._on_ddl_isolate();
CREATE EVENT TRIGGER sg_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION safeguard._on_drop_isolated();
CREATE EVENT TRIGGER sg_guard_isolation_policies ON ddl_command_end
    WHEN TAG IN ('CREATE POLICY', 'ALTER POLICY')
    EXECUTE FUNCTION safeguard._on_policy_change();

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
       r.isolated_by,
       safeguard._widening_policies(r.tbl) AS widened_by
  FROM safeguard.tenant_registry r
  JOIN pg_class c ON c.oid = r.tbl
  LEFT JOIN pg_policy p ON p.polrelid = r.tbl AND p.polname = 'sg_tenant';
COMMENT ON VIEW safeguard.isolated_tables IS
    'Isolated tables and whether their row security is still as safeguard.isolate() left it';
GRANT SELECT ON safeguard.isolated_tables TO PUBLIC;
