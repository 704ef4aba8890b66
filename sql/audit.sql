-- Audit trail: the log, its append-only guard, and the helpers that put the Rust trigger
-- (safeguard._audit_trigger) on a table.

CREATE TABLE safeguard.audit_log (
    id               uuid PRIMARY KEY DEFAULT safeguard.ulid(),
    occurred_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    tenant_id        uuid,
    actor_id         uuid,
    impersonator_id  uuid,
    request_id       text,
    db_user          name NOT NULL,
    client_addr      inet,
    application_name text,
    txid             bigint,
    table_schema     name NOT NULL,
    table_name       name NOT NULL,
    -- INSERT, UPDATE, DELETE, TRUNCATE or READ. Only the extension's triggers and audit_read()
    -- write the log; a CHECK constraint here would be re-read from the catalog by every
    -- row-trigger insert and cost about a tenth of its time.
    operation        text NOT NULL,
    record_id        jsonb,
    old_data         jsonb,
    new_data         jsonb,
    changed_columns  name[],
    -- The token that set the context (set_context_from_token(): its jti and sub), when one did.
    token_id         text,
    token_subject    text
);
COMMENT ON TABLE safeguard.audit_log IS
    'Append-only audit trail written by safeguard.enable_audit() triggers and safeguard.audit_read()';
-- A record's history (hash: equality is the only question asked of record_id, and hashing a
-- small jsonb costs the writers far less than the jsonb comparisons of a btree descent); a
-- tenant's activity over time; time ranges and transaction ranges (BRIN: the log is written in
-- time and transaction order, so a block-range index is tiny and costs the writers next to
-- nothing; audit_seal() and audit_verify() find a seal's entries through its txid column, and
-- autosummarize keeps the ranges summarized as the log grows).
CREATE INDEX audit_log_record_idx ON safeguard.audit_log USING hash (record_id);
CREATE INDEX audit_log_tenant_time_idx ON safeguard.audit_log (tenant_id, occurred_at);
CREATE INDEX audit_log_time_idx ON safeguard.audit_log USING brin (occurred_at, txid)
    WITH (autosummarize = on);
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_log', '');

-- Reads are tenant-scoped like an isolated table. Not forced: the log's owner writes it (the
-- trigger switches to the owner for its insert), everyone else only reads, per tenant.
ALTER TABLE safeguard.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY sg_tenant ON safeguard.audit_log FOR SELECT TO PUBLIC
    USING (tenant_id = (SELECT safeguard.current_tenant()));
REVOKE ALL ON safeguard.audit_log FROM PUBLIC;
GRANT SELECT ON safeguard.audit_log TO PUBLIC;

-- Append-only for everyone, the owner and superusers included; ALWAYS, so that
-- session_replication_role = replica does not switch it off. Used for the log and for the
-- tables of its hash chain.
CREATE FUNCTION safeguard._make_append_only(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('CREATE TRIGGER sg_audit_guard BEFORE UPDATE OR DELETE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION safeguard._audit_guard()', tbl);
    EXECUTE format('CREATE TRIGGER sg_audit_guard_truncate BEFORE TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION safeguard._audit_guard()', tbl);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sg_audit_guard', tbl);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sg_audit_guard_truncate', tbl);
END $$;
REVOKE ALL ON FUNCTION safeguard._make_append_only(regclass) FROM PUBLIC;
SELECT safeguard._make_append_only('safeguard.audit_log');

CREATE TABLE safeguard.audit_registry (
    tbl              regclass PRIMARY KEY,
    exclude_columns  name[] NOT NULL DEFAULT '{}',
    log_unchanged    boolean NOT NULL DEFAULT false,
    enabled_at       timestamptz NOT NULL DEFAULT now(),
    enabled_by       name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE safeguard.audit_registry IS 'Tables audited by safeguard.enable_audit(), with their options';
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_registry', '');
ALTER TABLE safeguard.audit_registry ENABLE ROW LEVEL SECURITY;
CREATE POLICY sg_read ON safeguard.audit_registry FOR SELECT USING (true);
CREATE POLICY sg_owner ON safeguard.audit_registry FOR ALL
    USING (safeguard._owns(tbl))
    WITH CHECK (safeguard._owns(tbl));
REVOKE ALL ON safeguard.audit_registry FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON safeguard.audit_registry TO PUBLIC;

-- The tables an audit of tbl covers: tbl, and for a partitioned table every table of its
-- partition tree (sub-partitioned ones included).
CREATE FUNCTION safeguard._audit_members(tbl regclass) RETURNS SETOF regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT tbl UNION SELECT t.relid FROM pg_partition_tree(tbl) t
$$;

CREATE FUNCTION safeguard._drop_audit_triggers(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    member regclass;
    trigger_name name;
BEGIN
    FOR member, trigger_name IN
        SELECT t.tgrelid::regclass, t.tgname FROM pg_trigger t
         WHERE t.tgrelid IN (SELECT safeguard._audit_members(tbl)) AND t.tgparentid = 0
           AND t.tgname IN ('sg_audit_insert', 'sg_audit_update', 'sg_audit_delete', 'sg_audit_truncate', 'sg_audit_row')
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, member);
    END LOOP;
END $$;

-- The TRUNCATE trigger of each table of an audited partition tree that lacks one. PostgreSQL
-- copies row triggers onto partitions, present and future, but not statement triggers, and a
-- TRUNCATE aimed at a partition fires only that partition's.
-- only_owned: the DDL hook skips the tables the user running the DDL does not own, rather than
-- fail that DDL (audited_tables then shows the trigger missing).
CREATE FUNCTION safeguard._audit_truncate_triggers(root regclass, args text, only_owned boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    member regclass;
BEGIN
    FOR member IN
        SELECT m FROM safeguard._audit_members(root) m JOIN pg_class c ON c.oid = m
         WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = m AND t.tgname = 'sg_audit_truncate')
           AND (NOT only_owned OR pg_has_role(current_user, c.relowner, 'USAGE'))
    LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = member AND t.tgname = 'sg_audit_truncate');
        EXECUTE format('CREATE TRIGGER sg_audit_truncate AFTER TRUNCATE ON %s
                        FOR EACH STATEMENT EXECUTE FUNCTION safeguard._audit_statement(%s)', member, args);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sg_audit_truncate', member);
    END LOOP;
END $$;

-- The audit triggers' arguments, as SQL literals: tenant column (of an isolated table, whose
-- entries carry the row's own tenant), log_unchanged, number of primary-key columns, the key
-- columns, the excluded columns (read by src/audit/changes.rs).
CREATE FUNCTION safeguard._audit_trigger_args(tbl regclass, exclude_columns name[], log_unchanged boolean)
RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(quote_literal(v), ', ' ORDER BY o)
      FROM (SELECT array_agg(a.attname::text ORDER BY k.ord) AS key_columns
              FROM pg_index i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k (attnum, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = tbl AND i.indisprimary) pk
     CROSS JOIN LATERAL unnest(
            ARRAY[coalesce((SELECT r.tenant_column::text FROM safeguard.tenant_registry r
                             WHERE r.tbl = _audit_trigger_args.tbl AND r.mode = 'direct'), ''),
                  log_unchanged::text,
                  coalesce(cardinality(pk.key_columns), 0)::text]
            || coalesce(pk.key_columns, '{}') || coalesce(exclude_columns::text[], '{}'))
           WITH ORDINALITY AS x (v, o)
$$;

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

CREATE FUNCTION safeguard.enable_audit(tbl regclass, exclude_columns name[] DEFAULT '{}', log_unchanged boolean DEFAULT false)
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
COMMENT ON FUNCTION safeguard.enable_audit(regclass, name[], boolean) IS
    'Log every INSERT, UPDATE, DELETE and TRUNCATE of a table in safeguard.audit_log';

CREATE FUNCTION safeguard.disable_audit(tbl regclass)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET safeguard.isolation_ddl_hook = off AS $$
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    PERFORM safeguard._allow_audit_triggers_on_citus(tbl);
    PERFORM safeguard._drop_audit_triggers(tbl);
    DELETE FROM safeguard.audit_registry r WHERE r.tbl = disable_audit.tbl;
END $$;
COMMENT ON FUNCTION safeguard.disable_audit(regclass) IS 'Stop auditing a table (its log entries stay)';

-- trigger_present: every trigger enable_audit() made is there (for a partitioned table: the row
-- trigger and its copy on each partition, and a TRUNCATE trigger on each table of the tree);
-- trigger_enabled_always: and none of them was disabled or set to fire on origin only.
CREATE VIEW safeguard.audited_tables WITH (security_invoker = true) AS
SELECT r.tbl AS table_name,
       r.exclude_columns,
       r.log_unchanged,
       coalesce(t.present = t.expected, false) AS trigger_present,
       coalesce(t.present = t.expected AND t.always = t.expected, false) AS trigger_enabled_always,
       r.enabled_at,
       r.enabled_by
  FROM safeguard.audit_registry r
  LEFT JOIN LATERAL (
        SELECT count(*) AS present, count(*) FILTER (WHERE g.tgenabled = 'A') AS always,
               CASE WHEN (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = r.tbl) = 'p'
                    THEN 2 * (SELECT count(*) FROM safeguard._audit_members(r.tbl)) ELSE 4 END AS expected
          FROM pg_catalog.pg_trigger g
         WHERE g.tgrelid IN (SELECT safeguard._audit_members(r.tbl))
           AND g.tgname IN ('sg_audit_insert', 'sg_audit_update', 'sg_audit_delete', 'sg_audit_truncate', 'sg_audit_row')
       ) t ON true;
COMMENT ON VIEW safeguard.audited_tables IS 'Audited tables, their options, and whether the trigger is still in place';
GRANT SELECT ON safeguard.audited_tables TO PUBLIC;

CREATE FUNCTION safeguard.audit_history(tbl regclass, record_id jsonb)
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
COMMENT ON FUNCTION safeguard.audit_history(regclass, jsonb) IS
    'One record''s audit timeline, newest first (tenant-scoped like the log)';

-- Dropped tables leave the audit registry (their log entries stay). SECURITY DEFINER for the
-- same reason as safeguard._on_drop_isolated(): the dropped table's owner can no longer be
-- looked up by the registry's owner policy.
CREATE FUNCTION safeguard._on_drop_audited() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM safeguard.audit_registry r
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objid = r.tbl::oid AND d.objsubid = 0;
END $$;
REVOKE ALL ON FUNCTION safeguard._on_drop_audited() FROM PUBLIC;
CREATE EVENT TRIGGER sg_forget_dropped_audited ON sql_drop EXECUTE FUNCTION safeguard._on_drop_audited();

-- New partitions of an audited partitioned table get its TRUNCATE trigger; the row trigger
-- PostgreSQL copies by itself. CREATE TABLE ... PARTITION OF reports the new partition. ATTACH
-- PARTITION reports only the partitioned table, like the ALTER TABLE ... ENABLE ALWAYS TRIGGER
-- of a pg_restore, which must find the triggers it restores not yet made: so the tables of the
-- audited partition trees are noted when an ALTER TABLE starts, and only a table that joined a
-- tree during it counts as attached. (A restore creates and attaches partitions before the
-- audit registry's rows are back, so this hook leaves them to the restore.) The hooks run as the
-- user whose DDL it is, and skip partitions that user does not own.

-- The tables of every audited partition tree, as a list of OIDs.
CREATE FUNCTION safeguard._audited_partition_members() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(string_agg(m::oid::text, ','), '')
      FROM safeguard.audit_registry a
      JOIN pg_class c ON c.oid = a.tbl AND c.relkind = 'p'
      CROSS JOIN LATERAL safeguard._audit_members(a.tbl) m
$$;

-- No SET clause: the note must outlive this function (a SET clause would undo set_config's
-- transaction-local value on return); hence every name is schema-qualified.
CREATE FUNCTION safeguard._on_ddl_start_audit_partitions() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('pg_safeguard_audit.members_before', safeguard._audited_partition_members(), true);
END $$;
CREATE EVENT TRIGGER sg_audit_partitions_before ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION safeguard._on_ddl_start_audit_partitions();

CREATE FUNCTION safeguard._on_ddl_audit_partitions() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    before oid[] := string_to_array(nullif(current_setting('pg_safeguard_audit.members_before', true), ''), ',')::oid[];
    new_partition regclass;
    root regclass;
    args text;
BEGIN
    FOR new_partition, root IN
        -- Partitions created by CREATE TABLE ... PARTITION OF.
        SELECT c.oid, a.tbl
          FROM pg_event_trigger_ddl_commands() d
          JOIN pg_class c ON c.oid = d.objid AND c.relispartition
          JOIN safeguard.audit_registry a ON a.tbl = pg_partition_root(c.oid)
         WHERE d.classid = 'pg_class'::regclass AND d.command_tag = 'CREATE TABLE'
        UNION
        -- Tables that joined an audited tree during this ALTER TABLE (ATTACH PARTITION).
        SELECT m, a.tbl
          FROM safeguard.audit_registry a
          JOIN pg_class c ON c.oid = a.tbl AND c.relkind = 'p'
          CROSS JOIN LATERAL safeguard._audit_members(a.tbl) m
         WHERE EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() d WHERE d.command_tag = 'ALTER TABLE')
           AND before IS NOT NULL AND m::oid <> ALL (before)
    LOOP
        SELECT safeguard._audit_trigger_args(root, a.exclude_columns, a.log_unchanged) INTO args
          FROM safeguard.audit_registry a WHERE a.tbl = root;
        PERFORM safeguard._audit_truncate_triggers(new_partition, args, only_owned => true);
    END LOOP;
END $$;
CREATE EVENT TRIGGER sg_audit_new_partitions ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION safeguard._on_ddl_audit_partitions();

-- Admins by role membership, as for isolated tables: members of the role read every tenant's
-- entries. Only the log's owner (the extension's owner) can set it.
CREATE FUNCTION safeguard.set_audit_admin(admin_role name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = 'safeguard.audit_log'::regclass), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table safeguard.audit_log' USING ERRCODE = '42501';
    END IF;
    IF admin_role IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = admin_role) THEN
        RAISE EXCEPTION 'role % does not exist', quote_ident(admin_role)
            USING ERRCODE = '42704', HINT = 'Create the role first; its members will read every tenant''s audit entries.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = 'safeguard.audit_log'::regclass AND p.polname = 'sg_tenant_admin') THEN
        DROP POLICY sg_tenant_admin ON safeguard.audit_log;
    END IF;
    IF admin_role IS NOT NULL THEN
        EXECUTE format('CREATE POLICY sg_tenant_admin ON safeguard.audit_log FOR SELECT TO %I USING (true)', admin_role);
    END IF;
END $$;
COMMENT ON FUNCTION safeguard.set_audit_admin(name) IS
    'Let members of a role read every tenant''s audit entries (NULL: nobody)';
