-- pg_safeguard on a Citus cluster (src/citus.rs, docs/citus.md): the set-up a coordinator runs
-- once, and the grants that must hold on every node. Citus objects are named only inside
-- function bodies, which PostgreSQL resolves when they run: without Citus these functions say so
-- instead of failing to install.

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
