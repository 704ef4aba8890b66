-- safeguard.lint(): the database review, automated (src/lint, docs/lint.md).
--
-- One set-based query over the catalogs per rule, combined with UNION ALL: a schema of a
-- thousand tables is reviewed in one pass, not table by table. Every finding names the object
-- (qualified, quoted) and, where one statement fixes it, gives that statement.

-- Columns that hold protected data, tagged by their owners (the rules read the tags first).
CREATE TABLE safeguard.data_classification (
    tbl          regclass NOT NULL,
    column_name  name NOT NULL,
    class        text NOT NULL CHECK (class IN ('phi', 'pii')),
    classified_at timestamptz NOT NULL DEFAULT now(),
    classified_by name NOT NULL DEFAULT current_user,
    PRIMARY KEY (tbl, column_name)
);
COMMENT ON TABLE safeguard.data_classification IS 'Columns tagged as PHI or PII (safeguard.classify)';
SELECT pg_catalog.pg_extension_config_dump('safeguard.data_classification', '');
ALTER TABLE safeguard.data_classification ENABLE ROW LEVEL SECURITY;
CREATE POLICY sg_read ON safeguard.data_classification FOR SELECT USING (true);
CREATE POLICY sg_owner ON safeguard.data_classification FOR ALL
    USING (safeguard._owns(tbl))
    WITH CHECK (safeguard._owns(tbl));
REVOKE ALL ON safeguard.data_classification FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON safeguard.data_classification TO PUBLIC;

-- Findings accepted on purpose: not reported again.
CREATE TABLE safeguard.lint_ignores (
    rule       text NOT NULL,
    object     text NOT NULL,
    reason     text NOT NULL CHECK (reason <> ''),
    ignored_by name NOT NULL DEFAULT current_user,
    ignored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule, object)
);
COMMENT ON TABLE safeguard.lint_ignores IS 'lint findings accepted on purpose, with the reason';
SELECT pg_catalog.pg_extension_config_dump('safeguard.lint_ignores', '');
REVOKE ALL ON safeguard.lint_ignores FROM PUBLIC;
GRANT SELECT ON safeguard.lint_ignores TO PUBLIC;   -- lint() runs as any role (CI)
CREATE VIEW safeguard.lint_ignored AS SELECT rule, object, reason, ignored_by, ignored_at FROM safeguard.lint_ignores;
GRANT SELECT ON safeguard.lint_ignored TO PUBLIC;

CREATE FUNCTION safeguard.classify(tbl regclass, columns name[], class text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col name;
BEGIN
    PERFORM safeguard._require_own_table(tbl);
    IF class IS NULL OR class NOT IN ('phi', 'pii') THEN
        RAISE EXCEPTION 'class must be phi or pii' USING ERRCODE = '22023';
    END IF;
    PERFORM safeguard._rule_columns(tbl, columns);
    FOREACH col IN ARRAY columns LOOP
        INSERT INTO safeguard.data_classification AS d (tbl, column_name, class)
        VALUES (classify.tbl, col, classify.class)
        ON CONFLICT ON CONSTRAINT data_classification_pkey DO UPDATE SET class = excluded.class, classified_at = now(),
                                                    classified_by = current_user;
    END LOOP;
END $$;
COMMENT ON FUNCTION safeguard.classify(regclass, name[], text) IS
    'Tags columns as holding PHI or PII; lint expects them encrypted and audited';

CREATE FUNCTION safeguard.lint_ignore(rule text, object text, reason text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF rule IS NULL OR object IS NULL OR coalesce(reason, '') = '' THEN
        RAISE EXCEPTION 'rule, object and a reason are required' USING ERRCODE = '22023',
            HINT = 'Say why the finding is accepted: the reason is what a later reviewer reads.';
    END IF;
    INSERT INTO safeguard.lint_ignores AS i (rule, object, reason)
    VALUES (lint_ignore.rule, lint_ignore.object, lint_ignore.reason)
    ON CONFLICT ON CONSTRAINT lint_ignores_pkey
    DO UPDATE SET reason = excluded.reason, ignored_by = current_user, ignored_at = now();
END $$;

CREATE FUNCTION safeguard.lint_unignore(rule text, object text) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM safeguard.lint_ignores i WHERE i.rule = lint_unignore.rule AND i.object = lint_unignore.object
$$;
-- Accepting a finding is a reviewer's decision: EXECUTE is granted explicitly.
REVOKE ALL ON FUNCTION safeguard.lint_ignore(text, text, text), safeguard.lint_unignore(text, text) FROM PUBLIC;

-- When the oldest audit entry not yet sealed was written (NULL when all are sealed). SECURITY
-- DEFINER: the log is tenant-scoped for its readers, the review needs every entry.
CREATE FUNCTION safeguard._audit_oldest_unsealed() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- Sealed means below the last seal's horizon (a seal takes every entry below it), so only
    -- the tail above it is read, through the log's block-range index on txid.
    SELECT min(l.occurred_at) FROM safeguard.audit_log l
     WHERE l.txid >= coalesce((SELECT max(s.horizon) FROM safeguard.audit_seals s), -9223372036854775808)
$$;

-- Column names that usually hold PHI or PII (the heuristic, reported as INFO only).
CREATE FUNCTION safeguard._looks_like_phi(col name) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT col::text ~* ('^(medical_history|diagnos[ie]s|diagnosis_codes?|icd10?_codes?|medications?|allerg(y|ies)'
                        '|ssn|social_security(_number)?|date_of_birth|dob|birth_?date|mrn|medical_record_number'
                        '|insurance_(id|number|member_id)|address(_line_?[12])?|street(_address)?|home_address'
                        '|emergency_contacts?|clinical_notes?|notes_clinical|symptoms|treatment(_plan)?|lab_results?'
                        '|phone(_number)?|mobile|email(_address)?)$')
$$;

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

CREATE FUNCTION safeguard.lint(in_schema name DEFAULT NULL)
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

CREATE FUNCTION safeguard.lint_summary(in_schema name DEFAULT NULL)
RETURNS TABLE (level text, findings bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT l.level, count(*) FILTER (WHERE f.level IS NOT NULL)
      FROM unnest(ARRAY['ERROR', 'WARN', 'INFO']) WITH ORDINALITY l(level, n)
      LEFT JOIN safeguard.lint(in_schema) f ON f.level = l.level
     GROUP BY l.level, l.n ORDER BY l.n
$$;
COMMENT ON FUNCTION safeguard.lint_summary(name) IS 'How many lint findings per level, for dashboards';
