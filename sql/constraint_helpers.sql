-- Helpers that add one clinical data rule each (src/constraints, docs/constraints.md).
--
-- Every helper: checks that the caller owns the table (42501, safeguard._require_own_table) and
-- that the columns exist (42703, safeguard._column_type); quotes every identifier; validates a where_clause with PostgreSQL's parser before
-- using it (safeguard._single_expression, then a type check against the table); names what it
-- creates sg_<rule>_<table>_<columns> (at most 63 bytes: long names end in a hash); records the
-- rule in safeguard.rule_registry with the DDL that undoes it; and returns the DDL it executed,
-- so it can be pasted into a migration. Called again with the same arguments it changes nothing
-- and returns the same DDL (NOTICE); with other arguments for a rule of the same name it refuses
-- (42710) until safeguard.drop_rule() removes the old one.

CREATE TABLE safeguard.rule_registry (
    tbl        regclass NOT NULL,
    name       text NOT NULL,
    kind       text NOT NULL,
    ddl        text NOT NULL,
    undo_ddl   text NOT NULL,
    options    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tbl, name)
);
COMMENT ON TABLE safeguard.rule_registry IS
    'pg_safeguard data rules added by the helpers: what each executed and what undoes it';
SELECT pg_catalog.pg_extension_config_dump('safeguard.rule_registry', '');
-- Everyone may read; each may record and remove only the rules of tables they own.
ALTER TABLE safeguard.rule_registry ENABLE ROW LEVEL SECURITY;
CREATE POLICY sg_read ON safeguard.rule_registry FOR SELECT USING (true);
CREATE POLICY sg_owner ON safeguard.rule_registry FOR ALL
    USING (safeguard._owns(tbl))
    WITH CHECK (safeguard._owns(tbl));
REVOKE ALL ON safeguard.rule_registry FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON safeguard.rule_registry TO PUBLIC;

-- A predictable object name: sg_<rule>_<table>_<parts>, shortened with a hash beyond 63 bytes.
CREATE FUNCTION safeguard._rule_name(rule text, tbl regclass, parts text[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN octet_length(full_name) <= 63 THEN full_name
                ELSE left(full_name, 50) || '_' || left(md5(full_name), 12) END
      FROM (SELECT 'sg_' || rule || '_' || c.relname
                   || coalesce('_' || array_to_string(parts, '_'), '') AS full_name
              FROM pg_class c WHERE c.oid = tbl) n
$$;

-- The schema of tbl, for names of objects created beside it.
CREATE FUNCTION safeguard._rule_schema(tbl regclass) RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl
$$;

-- A non-empty list of existing columns of tbl (22023, 42703).
CREATE FUNCTION safeguard._rule_columns(tbl regclass, columns name[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name;
BEGIN
    IF columns IS NULL OR cardinality(columns) = 0 THEN
        RAISE EXCEPTION 'columns must name at least one column' USING ERRCODE = '22023';
    END IF;
    FOREACH col IN ARRAY columns LOOP
        PERFORM safeguard._column_type(tbl, col, 'column');
    END LOOP;
END $$;

-- A where_clause, checked: one expression (parser), boolean, over the table's columns.
CREATE FUNCTION safeguard._rule_where(tbl regclass, where_clause text) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    expr text;
BEGIN
    IF where_clause IS NULL THEN
        RETURN NULL;
    END IF;
    expr := safeguard._single_expression(where_clause);
    -- CASE WHEN takes a boolean only (no cast from integer or text sneaks in).
    BEGIN
        EXECUTE format('SELECT CASE WHEN %s THEN 1 END FROM %s WHERE false', expr, tbl);
    EXCEPTION
        WHEN undefined_column OR undefined_function OR datatype_mismatch OR cannot_coerce
             OR invalid_text_representation OR undefined_table OR syntax_error THEN
            RAISE EXCEPTION 'where_clause is not a boolean condition over the columns of %', tbl
                USING ERRCODE = SQLSTATE, DETAIL = SQLERRM;
    END;
    RETURN expr;
END $$;

-- Runs a rule's DDL and records it; or, when the same rule is in place, returns its DDL.
CREATE FUNCTION safeguard._rule_apply(tbl regclass, rule_name text, kind text, ddl text[], undo_ddl text,
                                      options jsonb DEFAULT '{}') RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    existing safeguard.rule_registry;
    statement text;
    script text := array_to_string(ddl, E';\n') || ';';
BEGIN
    SELECT * INTO existing FROM safeguard.rule_registry r WHERE r.tbl = _rule_apply.tbl AND r.name = rule_name;
    IF FOUND THEN
        IF existing.ddl = script AND existing.options = _rule_apply.options THEN
            RAISE NOTICE 'rule % on % is already in place', rule_name, tbl;
            RETURN script;
        END IF;
        RAISE EXCEPTION 'rule % on % already exists with other arguments', rule_name, tbl
            USING ERRCODE = '42710',
                  HINT = format('Remove it first: SELECT safeguard.drop_rule(%L, %L);', tbl::text, rule_name);
    END IF;
    FOREACH statement IN ARRAY ddl LOOP
        EXECUTE statement;
    END LOOP;
    INSERT INTO safeguard.rule_registry (tbl, name, kind, ddl, undo_ddl, options)
    VALUES (tbl, rule_name, kind, script, undo_ddl, options);
    RETURN script;
END $$;

CREATE FUNCTION safeguard.require_unique(tbl regclass, columns name[], where_clause text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    expr text;
    rule_name text;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    PERFORM safeguard._rule_columns(tbl, columns);
    expr := safeguard._rule_where(tbl, where_clause);
    rule_name := safeguard._rule_name('unique', tbl, columns::text[]);
    RETURN safeguard._rule_apply(tbl, rule_name, 'unique',
        ARRAY[format('CREATE UNIQUE INDEX %I ON %s (%s)%s', rule_name, tbl,
                     (SELECT string_agg(quote_ident(c), ', ') FROM unnest(columns) c),
                     coalesce(' WHERE ' || expr, ''))],
        format('DROP INDEX IF EXISTS %I.%I', safeguard._rule_schema(tbl), rule_name));
END $$;
COMMENT ON FUNCTION safeguard.require_unique(regclass, name[], text) IS
    'A (partial) unique index: one PRIMARY provider per patient, one NPI per organization';

CREATE FUNCTION safeguard.require_values(tbl regclass, col name, allowed text[]) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rule_name text;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    PERFORM safeguard._column_type(tbl, col, 'column');
    IF allowed IS NULL OR cardinality(allowed) = 0 OR array_position(allowed, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'allowed must list at least one value, and no NULL' USING ERRCODE = '22023',
            HINT = 'NULL stays allowed unless the column is NOT NULL.';
    END IF;
    rule_name := safeguard._rule_name('values', tbl, ARRAY[col::text]);
    RETURN safeguard._rule_apply(tbl, rule_name, 'values',
        ARRAY[format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I IN (%s))', tbl, rule_name, col,
                     (SELECT string_agg(quote_literal(v), ', ' ORDER BY o) FROM unnest(allowed) WITH ORDINALITY a(v, o)))],
        format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', tbl, rule_name));
END $$;
COMMENT ON FUNCTION safeguard.require_values(regclass, name, text[]) IS
    'A CHECK constraint limiting a column to a list of values (contact types, roles, statuses)';

CREATE FUNCTION safeguard.require_order(tbl regclass, start_col name, end_col name, allow_equal boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rule_name text;
    condition text;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    PERFORM safeguard._column_type(tbl, start_col, 'column');
    PERFORM safeguard._column_type(tbl, end_col, 'column');
    condition := format('%I %s %I', end_col, CASE WHEN allow_equal THEN '>=' ELSE '>' END, start_col);
    BEGIN
        EXECUTE format('SELECT %s FROM %s WHERE false', condition, tbl);
    EXCEPTION WHEN undefined_function OR datatype_mismatch THEN
        RAISE EXCEPTION 'columns % and % of % cannot be compared', quote_ident(start_col), quote_ident(end_col), tbl
            USING ERRCODE = '42804', DETAIL = SQLERRM;
    END;
    rule_name := safeguard._rule_name('order', tbl, ARRAY[start_col::text, end_col::text]);
    RETURN safeguard._rule_apply(tbl, rule_name, 'order',
        ARRAY[format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s)', tbl, rule_name, condition)],
        format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', tbl, rule_name),
        jsonb_build_object('allow_equal', coalesce(allow_equal, false)));
END $$;
COMMENT ON FUNCTION safeguard.require_order(regclass, name, name, boolean) IS
    'A CHECK that a row ends after it starts (appointments, episodes, coverage periods)';

CREATE FUNCTION safeguard.forbid_overlap(tbl regclass, start_col name, end_col name,
                                         same_columns name[] DEFAULT '{}', where_clause text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    start_type regtype;
    end_type regtype;
    range_fn text;
    col name;
    expr text;
    rule_name text;
    ddl text[] := '{}';
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    start_type := safeguard._column_type(tbl, start_col, 'column');
    end_type := safeguard._column_type(tbl, end_col, 'column');
    IF start_type <> end_type THEN
        RAISE EXCEPTION 'columns % and % of % have different types (% and %)', quote_ident(start_col),
            quote_ident(end_col), tbl, start_type, end_type USING ERRCODE = '42804';
    END IF;
    range_fn := CASE start_type
        WHEN 'timestamp with time zone'::regtype THEN 'tstzrange'
        WHEN 'timestamp without time zone'::regtype THEN 'tsrange'
        WHEN 'date'::regtype THEN 'daterange'
        WHEN 'integer'::regtype THEN 'int4range'
        WHEN 'bigint'::regtype THEN 'int8range'
        WHEN 'numeric'::regtype THEN 'numrange' END;
    IF range_fn IS NULL THEN
        RAISE EXCEPTION 'columns of type % cannot form a range', start_type USING ERRCODE = '42804',
            HINT = 'forbid_overlap works on timestamptz, timestamp, date, integer, bigint and numeric columns.';
    END IF;
    FOREACH col IN ARRAY coalesce(same_columns, '{}') LOOP
        PERFORM safeguard._column_type(tbl, col, 'column');
    END LOOP;
    expr := safeguard._rule_where(tbl, where_clause);
    -- Equality on plain columns inside a GiST exclusion constraint needs btree_gist.
    IF cardinality(coalesce(same_columns, '{}')) > 0
       AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gist') THEN
            RAISE EXCEPTION 'forbid_overlap with same_columns needs the extension btree_gist, which is not installed on this server'
                USING ERRCODE = '0A000',
                      HINT = 'Install PostgreSQL''s contrib modules (Debian: postgresql-contrib), or call forbid_overlap without same_columns.';
        END IF;
        -- btree_gist is a trusted extension: CREATE on the database is enough to add it.
        IF NOT has_database_privilege(current_database(), 'CREATE') THEN
            RAISE EXCEPTION 'forbid_overlap with same_columns needs the extension btree_gist, and you may not create it'
                USING ERRCODE = '42501',
                      HINT = 'Run CREATE EXTENSION btree_gist once as the database owner (or grant CREATE on the database), then call forbid_overlap again.';
        END IF;
        ddl := ddl || format('CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA %I',
                             safeguard._rule_schema(tbl));
    END IF;
    rule_name := safeguard._rule_name('no_overlap', tbl, coalesce(same_columns, '{}')::text[] || ARRAY[start_col::text, end_col::text]);
    ddl := ddl || format('ALTER TABLE %s ADD CONSTRAINT %I EXCLUDE USING gist (%s%s(%I, %I, %L) WITH &&)%s',
        tbl, rule_name,
        coalesce((SELECT string_agg(format('%I WITH =', c), ', ') || ', ' FROM unnest(same_columns) c), ''),
        range_fn, start_col, end_col, '[)', coalesce(' WHERE ' || expr, ''));
    RETURN safeguard._rule_apply(tbl, rule_name, 'no_overlap', ddl,
        format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', tbl, rule_name));
END $$;
COMMENT ON FUNCTION safeguard.forbid_overlap(regclass, name, name, name[], text) IS
    'An exclusion constraint: no two rows with the same keys have overlapping [start, end) periods';

-- Append-only and protected columns refuse with 55000, naming the rule and column, never values.
CREATE FUNCTION safeguard._refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP
        USING ERRCODE = '55000', CONSTRAINT = TG_NAME,
              HINT = 'Rows of this table are kept as written (safeguard.make_append_only).';
END $$;

CREATE FUNCTION safeguard.make_append_only(tbl regclass) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rule_name text;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    rule_name := safeguard._rule_name('append_only', tbl, NULL);
    RETURN safeguard._rule_apply(tbl, rule_name, 'append_only', ARRAY[
        format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION safeguard._refuse_change()',
               rule_name, tbl),
        format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION safeguard._refuse_change()',
               rule_name || '_truncate', tbl),
        -- ENABLE ALWAYS: also under session_replication_role = replica.
        format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, rule_name),
        format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, rule_name || '_truncate')],
        format('DROP TRIGGER IF EXISTS %I ON %s; DROP TRIGGER IF EXISTS %I ON %s', rule_name, tbl, rule_name || '_truncate', tbl));
END $$;
COMMENT ON FUNCTION safeguard.make_append_only(regclass) IS
    'UPDATE, DELETE and TRUNCATE fail (55000) for every role, including the owner';

CREATE FUNCTION safeguard._refuse_column_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col text;
    old_row jsonb := to_jsonb(OLD);
    new_row jsonb := to_jsonb(NEW);
BEGIN
    FOREACH col IN ARRAY TG_ARGV LOOP
        IF old_row -> col IS DISTINCT FROM new_row -> col THEN
            RAISE EXCEPTION 'column % of % cannot change after insert', quote_ident(col),
                TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME
                USING ERRCODE = '55000', CONSTRAINT = TG_NAME, COLUMN = col,
                      HINT = 'The column is protected (safeguard.protect_columns): insert a new row instead.';
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

CREATE FUNCTION safeguard.protect_columns(tbl regclass, columns name[]) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rule_name text;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    PERFORM safeguard._rule_columns(tbl, columns);
    rule_name := safeguard._rule_name('protect', tbl, columns::text[]);
    -- The WHEN condition keeps the trigger off the path of updates that leave the columns alone.
    RETURN safeguard._rule_apply(tbl, rule_name, 'protect', ARRAY[
        format('CREATE TRIGGER %I BEFORE UPDATE OF %s ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION safeguard._refuse_column_change(%s)',
               rule_name,
               (SELECT string_agg(quote_ident(c), ', ') FROM unnest(columns) c), tbl,
               (SELECT string_agg(format('OLD.%I IS DISTINCT FROM NEW.%I', c, c), ' OR ') FROM unnest(columns) c),
               (SELECT string_agg(quote_literal(c), ', ') FROM unnest(columns) c)),
        format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, rule_name)],
        format('DROP TRIGGER IF EXISTS %I ON %s', rule_name, tbl));
END $$;
COMMENT ON FUNCTION safeguard.protect_columns(regclass, name[]) IS
    'Columns that cannot change after insert (tenant ids, created_at, MRN issuers): 55000';

-- Generated trigger functions (timestamps, soft delete, counters) live in the table's schema,
-- named like the rule, with the column names written into their code: PL/pgSQL caches their
-- plans, which a generic function taking names as arguments could not.
CREATE FUNCTION safeguard._rule_function_name(tbl regclass, rule_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('%I.%I', safeguard._rule_schema(tbl), rule_name)
$$;

CREATE FUNCTION safeguard.maintain_timestamps(tbl regclass, created_col name DEFAULT 'created_at',
                                              updated_col name DEFAULT 'updated_at') RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    typ regtype;
    col name;
    rule_name text;
    fn text;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    FOREACH col IN ARRAY ARRAY[created_col, updated_col] LOOP
        typ := safeguard._column_type(tbl, col, 'column');
        IF typ NOT IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype) THEN
            RAISE EXCEPTION 'column % of % is of type %, not a timestamp', quote_ident(col), tbl, typ
                USING ERRCODE = '42804';
        END IF;
    END LOOP;
    rule_name := safeguard._rule_name('timestamps', tbl, NULL);
    fn := safeguard._rule_function_name(tbl, rule_name);
    RETURN safeguard._rule_apply(tbl, rule_name, 'timestamps', ARRAY[
        format($f$CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
    -- pg_safeguard maintain_timestamps: the database's clock, whatever the client sent.
    IF TG_OP = 'INSERT' THEN
        NEW.%I := now();
    ELSE
        NEW.%I := OLD.%I;
    END IF;
    NEW.%I := now();
    RETURN NEW;
END $body$ $f$, fn, created_col, created_col, created_col, updated_col),
        format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s()', rule_name, tbl, fn),
        format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, rule_name)],
        format('DROP TRIGGER IF EXISTS %I ON %s; DROP FUNCTION IF EXISTS %s()', rule_name, tbl, fn),
        jsonb_build_object('created_col', created_col, 'updated_col', updated_col, 'functions', jsonb_build_array(fn)));
END $$;
COMMENT ON FUNCTION safeguard.maintain_timestamps(regclass, name, name) IS
    'created_at and updated_at set from the database clock; client-supplied values are overridden';

-- Soft delete: a BEFORE DELETE trigger turns the delete into `SET col = now()` (rows already
-- soft-deleted stay as they are) unless safeguard.hard_delete() is running, which only members
-- of the role named here may call. The row is marked where it lives (a partition's trigger names
-- the partition) with the deleting role's privileges: it needs UPDATE, as for any update.
CREATE FUNCTION safeguard.enable_soft_delete(tbl regclass, col name DEFAULT 'deleted_at',
                                             hard_delete_role name DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    typ regtype;
    rule_name text;
    live_index text;
    fn text;
    ddl text[] := '{}';
    key_columns text;
    undo text;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    typ := safeguard._column_type(tbl, col, 'soft-delete column (a timestamptz)');
    IF typ NOT IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype) THEN
        RAISE EXCEPTION 'column % of % is of type %, not a timestamp', quote_ident(col), tbl, typ
            USING ERRCODE = '42804';
    END IF;
    IF hard_delete_role IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = hard_delete_role) THEN
        RAISE EXCEPTION 'role % does not exist', quote_ident(hard_delete_role) USING ERRCODE = '42704';
    END IF;
    rule_name := safeguard._rule_name('soft_delete', tbl, NULL);
    live_index := safeguard._rule_name('live', tbl, NULL);
    fn := safeguard._rule_function_name(tbl, rule_name);
    ddl := ddl || format($f$CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $body$
BEGIN
    -- pg_safeguard enable_soft_delete: a DELETE marks the row instead of removing it.
    IF safeguard._hard_delete_in_progress() THEN
        RETURN OLD;
    END IF;
    IF OLD.%I IS NULL THEN
        EXECUTE format('UPDATE ONLY %%I.%%I SET %%I = now() WHERE ctid = $1', TG_TABLE_SCHEMA, TG_TABLE_NAME, %L)
          USING OLD.ctid;
    END IF;
    RETURN NULL;
END $body$ $f$, fn, col, col);
    ddl := ddl || format('CREATE TRIGGER %I BEFORE DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()', rule_name, tbl, fn);
    ddl := ddl || format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, rule_name);
    undo := format('DROP TRIGGER IF EXISTS %I ON %s; DROP FUNCTION IF EXISTS %s()', rule_name, tbl, fn);
    -- Queries read live rows: an index of the primary key over them alone.
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) INTO key_columns
      FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = tbl AND i.indisprimary;
    IF key_columns IS NOT NULL THEN
        ddl := ddl || format('CREATE INDEX %I ON %s (%s) WHERE %I IS NULL', live_index, tbl, key_columns, col);
        undo := undo || format('; DROP INDEX IF EXISTS %I.%I',
            safeguard._rule_schema(tbl),
            live_index);
    END IF;
    RETURN safeguard._rule_apply(tbl, rule_name, 'soft_delete', ddl, undo,
        jsonb_build_object('column', col, 'hard_delete_role', hard_delete_role, 'functions', jsonb_build_array(fn)));
END $$;
COMMENT ON FUNCTION safeguard.enable_soft_delete(regclass, name, name) IS
    'DELETE marks rows (col = now()); hard deletes only through safeguard.hard_delete() by members of a role';

CREATE FUNCTION safeguard.hard_delete(tbl regclass, where_clause text) RETURNS bigint
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'hard_delete_wrapper';
COMMENT ON FUNCTION safeguard.hard_delete(regclass, text) IS
    'Really deletes matching rows of a soft-delete table; for members of its hard-delete role only';

-- Counters kept exact. Row triggers written in Rust (src/constraints/counter.rs) note +1 or -1
-- for the parent as each child row is written; their WHEN conditions, evaluated by PostgreSQL
-- before anything is queued, say whether the row counts before and after the change (rows that
-- do not count, and updates that neither move a counted row nor change whether it counts, cost
-- nothing more). A statement trigger after them applies each statement's net change per parent,
-- one parent at a time in one fixed key order, so concurrent statements touching several parents
-- cannot deadlock on them. No separate SELECT ... FOR NO KEY UPDATE first: the lock taken, then
-- the update of the same row in one transaction, on top of the foreign key's KEY SHARE, made
-- PostgreSQL 15 fail now and then under 8 writers with rollbacks ("new multixact has more than
-- one updating member"). The parent is updated with the writer's privileges: roles that write
-- the child need UPDATE on the parent's counter column (and row-level security on the parent
-- applies with their context); as SECURITY DEFINER the first, PL/pgSQL version cost twice as much
-- per insert. Partitioned children are refused: PostgreSQL clones row triggers onto partitions
-- but not statement triggers, so writes aimed at a partition would be counted and never applied.
CREATE FUNCTION safeguard.maintain_count(parent regclass, counter_col name, child regclass, fk_col name,
                                         where_clause text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    key_col name;
    expr text;
    rule_name text;
    ddl text[] := '{}';
    counted_old text := 'true';
    counted_new text := 'true';
    same_parent text;
    parent_target text;
    triggers text[] := '{}';
    trigger_name text;
    change record;
BEGIN
    PERFORM safeguard._require_own_table(parent);
    PERFORM safeguard._require_own_table(child);
    IF (SELECT relkind FROM pg_class WHERE oid = child) = 'p' THEN
        RAISE EXCEPTION 'maintain_count() does not count the rows of partitioned table %', child
            USING ERRCODE = '0A000',
                  HINT = 'Count from a plain table, or keep the count with a query (count(*) with an index on the key).';
    END IF;
    IF safeguard._column_type(parent, counter_col, 'counter column') NOT IN
       ('integer'::regtype, 'bigint'::regtype, 'smallint'::regtype, 'numeric'::regtype) THEN
        RAISE EXCEPTION 'column % of % is not a number', quote_ident(counter_col), parent USING ERRCODE = '42804';
    END IF;
    PERFORM safeguard._column_type(child, fk_col, 'column of the child that references the parent');
    -- The parent's key: what the foreign key references, else the primary key (one column).
    SELECT a.attname INTO key_col FROM pg_constraint k
      JOIN pg_attribute ca ON ca.attrelid = k.conrelid AND ca.attnum = k.conkey[1]
      JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = k.confkey[1]
     WHERE k.contype = 'f' AND k.conrelid = child AND k.confrelid = parent AND cardinality(k.conkey) = 1
       AND ca.attname = fk_col
     LIMIT 1;
    IF key_col IS NULL THEN
        SELECT a.attname INTO key_col FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = parent AND i.indisprimary AND i.indnkeyatts = 1;
    END IF;
    IF key_col IS NULL THEN
        RAISE EXCEPTION 'cannot tell which column of % the child''s % refers to', parent, quote_ident(fk_col)
            USING ERRCODE = '42P10', HINT = 'Give the parent a one-column primary key, or add the foreign key.';
    END IF;
    expr := safeguard._rule_where(child, where_clause);
    IF expr IS NOT NULL THEN
        -- NULL counts as not counted, as in a WHERE clause.
        counted_old := format('coalesce(%s, false)', safeguard._qualified_expression(where_clause, 'old'));
        counted_new := format('coalesce(%s, false)', safeguard._qualified_expression(where_clause, 'new'));
    END IF;
    same_parent := format('old.%1$I IS NOT DISTINCT FROM new.%1$I', fk_col);
    rule_name := safeguard._rule_name('count', child, ARRAY[counter_col::text]);
    SELECT format('%L, %L, %L, %L', n.nspname, c.relname, counter_col, key_col) INTO parent_target
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
    -- One row trigger per way a change can add or remove a counted row: which event, when (the
    -- row counted after but not before, or before but not after, or under another parent),
    -- +1 or -1, and which version of the row names the parent.
    FOR change IN SELECT * FROM (VALUES
        ('insert', 'INSERT', counted_new, '1', 'new'),
        ('update_old', 'UPDATE', format('%s AND NOT (%s AND %s)', counted_old, counted_new, same_parent), '-1', 'old'),
        ('update_new', 'UPDATE', format('%s AND NOT (%s AND %s)', counted_new, counted_old, same_parent), '1', 'new'),
        ('delete', 'DELETE', counted_old, '-1', 'old')) v(suffix, event, condition, sign, version) LOOP
        trigger_name := safeguard._rule_name('count', child, ARRAY[counter_col::text, change.suffix]);
        triggers := triggers || trigger_name;
        ddl := ddl || format('CREATE TRIGGER %I AFTER %s ON %s FOR EACH ROW WHEN (%s) '
                             'EXECUTE FUNCTION safeguard._count_row(%s, %L, %L, %L)',
            trigger_name, change.event, child, change.condition, parent_target, fk_col, change.sign, change.version);
    END LOOP;
    trigger_name := safeguard._rule_name('count', child, ARRAY[counter_col::text, 'apply']);
    triggers := triggers || trigger_name;
    ddl := ddl || format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH STATEMENT '
                         'EXECUTE FUNCTION safeguard._count_flush(%s)', trigger_name, child, parent_target);
    -- Enabled like PostgreSQL's own foreign-key triggers (not ALWAYS): on a logical replica the
    -- apply and table-sync workers run as session_replication_role = replica, and the counter
    -- arrives there with the parent's own replicated rows; counting again would double it.
    RETURN safeguard._rule_apply(child, rule_name, 'count', ddl,
        (SELECT string_agg(format('DROP TRIGGER IF EXISTS %I ON %s', t, child), '; ') FROM unnest(triggers) t),
        jsonb_build_object('parent', parent::text, 'counter_col', counter_col, 'fk_col', fk_col,
                           'key_col', key_col, 'where', expr, 'functions', '[]'::jsonb));
END $$;
COMMENT ON FUNCTION safeguard.maintain_count(regclass, name, regclass, name, text) IS
    'Keeps a parent''s counter of child rows exact under concurrent inserts, deletes, soft deletes and re-parenting';

-- Sets a counter maintained by maintain_count() to the true count; returns how many parents it fixed.
CREATE FUNCTION safeguard.recount(parent regclass, counter_col name) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rule safeguard.rule_registry;
    fixed bigint;
BEGIN
    PERFORM safeguard._require_own_table(parent);
    SELECT * INTO rule FROM safeguard.rule_registry r
     WHERE r.kind = 'count' AND r.options ->> 'parent' = parent::text AND r.options ->> 'counter_col' = counter_col;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no counter %.% is maintained', parent, quote_ident(counter_col) USING ERRCODE = '42704',
            HINT = 'safeguard.maintain_count() sets one up.';
    END IF;
    -- Writers of the children wait until the true counts are in place (their triggers update the
    -- parent, which this lock holds off; whatever they committed before is counted).
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', parent);
    EXECUTE format($q$UPDATE %1$s p SET %2$I = coalesce(c.n, 0)
                        FROM %1$s q LEFT JOIN (SELECT %3$I AS k, count(*) AS n FROM %4$s WHERE %5$s GROUP BY 1) c
                          ON c.k = q.%6$I
                       WHERE p.%6$I = q.%6$I AND p.%2$I IS DISTINCT FROM coalesce(c.n, 0)$q$,
                   parent, counter_col, rule.options ->> 'fk_col', rule.tbl,
                   coalesce(rule.options ->> 'where', 'true'), rule.options ->> 'key_col');
    GET DIAGNOSTICS fixed = ROW_COUNT;
    RETURN fixed;
END $$;
COMMENT ON FUNCTION safeguard.recount(regclass, name) IS
    'Repairs drift: sets a maintained counter to the true count; returns how many parents it fixed';

-- Whether a foreign key between two isolated tables cannot cross tenants. PostgreSQL checks
-- foreign keys without row-level security, so an ordinary key lets a tenant attach its rows to
-- another tenant's and learn which ids exist there. It cannot when it pairs the child's tenant
-- column with the parent's (both isolated by their tenant column), or when it is the key through
-- which isolate_via() isolates the child: that policy admits a row only when the tenant can see
-- its parent row. NULL when either table is not isolated.
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

-- Rewrites a foreign key between two tables isolated by their tenant columns into its
-- tenant-scoped form: (tenant, fk...) REFERENCES parent (tenant, key...), same name, same
-- actions, match type and deferrability; the parent gets the unique index such a key needs
-- (through require_unique, recorded on the parent). Existing rows are checked as the key is
-- added: a row that already points into another tenant fails it with 23503.
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

CREATE FUNCTION safeguard.drop_rule(tbl regclass, name text) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rule safeguard.rule_registry;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    SELECT * INTO rule FROM safeguard.rule_registry r WHERE r.tbl = drop_rule.tbl AND r.name = drop_rule.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rule % on %', name, tbl USING ERRCODE = '42704',
            HINT = 'See safeguard.rule_registry for the rules on each table.';
    END IF;
    EXECUTE rule.undo_ddl;
    DELETE FROM safeguard.rule_registry r WHERE r.tbl = drop_rule.tbl AND r.name = drop_rule.name;
    RETURN rule.undo_ddl || ';';
END $$;
COMMENT ON FUNCTION safeguard.drop_rule(regclass, text) IS 'Removes what a data-rule helper created';

-- Dropped tables leave the rule registry: their indexes, constraints and triggers went with them;
-- the trigger functions generated for them (recorded in options.functions) are dropped here.
CREATE FUNCTION safeguard._on_drop_ruled() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn text;
BEGIN
    FOR fn IN
        WITH gone AS (
            DELETE FROM safeguard.rule_registry r
             USING pg_event_trigger_dropped_objects() d
             WHERE d.classid = 'pg_class'::regclass AND d.objid = r.tbl::oid AND d.objsubid = 0
            RETURNING r.options)
        SELECT jsonb_array_elements_text(coalesce(options -> 'functions', '[]')) FROM gone
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s()', fn);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION safeguard._on_drop_ruled() FROM PUBLIC;
CREATE EVENT TRIGGER sg_forget_dropped_rules ON sql_drop EXECUTE FUNCTION safeguard._on_drop_ruled();
