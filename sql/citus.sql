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
                  HINT = 'On a single server there is nothing to set up.';
    END IF;
    IF (SELECT g.groupid FROM pg_dist_local_group g) <> 0 THEN
        RAISE EXCEPTION '% runs on the Citus coordinator, and this node is a worker', caller
            USING ERRCODE = '55000',
                  HINT = 'Connect to the coordinator and call it there; it reaches every worker from there.';
    END IF;
END
$$;

-- Whether this server is the coordinator of a Citus cluster (Citus is installed here, and this
-- node is not a worker). Two statements: Citus's catalog is only named where it exists.
CREATE FUNCTION safeguard._is_citus_coordinator() RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension e WHERE e.extname = 'citus') THEN
        RETURN false;
    END IF;
    RETURN (SELECT g.groupid FROM pg_dist_local_group g) = 0;
END
$$;

-- Runs one GRANT or REVOKE on every worker (the coordinator ran it already). Citus propagates
-- grants only on objects it distributed itself, and it refuses to distribute an extension's
-- functions without a distribution argument; so the grants on safeguard.decrypt() are sent here.
-- run_command_on_workers() commits on each worker on its own: the callers are idempotent, run
-- them again after a failure.
CREATE FUNCTION safeguard._on_every_worker(command text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    failed text;
BEGIN
    SELECT string_agg(format('%s:%s: %s', w.nodename, w.nodeport, w.result), '; ')
      INTO failed
      FROM run_command_on_workers(command) w
     WHERE NOT w.success;
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'the command failed on a Citus worker' USING ERRCODE = '58000',
            DETAIL = format('%s -- %s', command, failed),
            HINT = 'The coordinator and the workers that succeeded have it; call the function again once the workers are reachable.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION safeguard._on_every_worker(text) FROM PUBLIC;

-- Who may decrypt: EXECUTE on the three safeguard.decrypt() functions, on this server and, on a
-- Citus coordinator, on every worker too (where the decryption of distributed tables runs).
-- Idempotent. The caller needs the right to grant them (their owner, or a grant option).
CREATE FUNCTION safeguard.grant_decrypt(grantee regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    command text;
BEGIN
    IF grantee IS NULL THEN
        RAISE EXCEPTION 'grantee must not be NULL' USING ERRCODE = '22004';
    END IF;
    command := format('GRANT EXECUTE ON FUNCTION safeguard.decrypt(safeguard.encrypted_text), '
                      'safeguard.decrypt(safeguard.encrypted_bytea), safeguard.decrypt(safeguard.encrypted_jsonb) TO %s',
                      grantee);
    EXECUTE command;
    IF safeguard._is_citus_coordinator() THEN
        PERFORM safeguard._on_every_worker(command);
    END IF;
END
$$;
COMMENT ON FUNCTION safeguard.grant_decrypt(regrole) IS
    'GRANT EXECUTE on safeguard.decrypt() to a role, on every node of a Citus cluster';

CREATE FUNCTION safeguard.revoke_decrypt(grantee regrole) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    command text;
BEGIN
    IF grantee IS NULL THEN
        RAISE EXCEPTION 'grantee must not be NULL' USING ERRCODE = '22004';
    END IF;
    command := format('REVOKE EXECUTE ON FUNCTION safeguard.decrypt(safeguard.encrypted_text), '
                      'safeguard.decrypt(safeguard.encrypted_bytea), safeguard.decrypt(safeguard.encrypted_jsonb) FROM %s',
                      grantee);
    EXECUTE command;
    IF safeguard._is_citus_coordinator() THEN
        PERFORM safeguard._on_every_worker(command);
    END IF;
END
$$;
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
    unsafe_triggers text;
    grant_command text;
    granted int := 0;
BEGIN
    PERFORM safeguard._require_citus_coordinator('safeguard.citus_setup()');

    -- Keys wherever encryption and decryption run: the key table becomes a reference table,
    -- one copy on every node, changed on all of them in the coordinator's transaction.
    step := 'safeguard.key_store';
    IF EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = 'safeguard.key_store'::regclass) THEN
        result := 'already a reference table';
    ELSE
        -- Citus refuses tables with triggers unless told otherwise; the key table's one trigger
        -- only drops the node's cached keys, which is what every copy needs.
        unsafe_triggers := current_setting('citus.enable_unsafe_triggers');
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
        PERFORM create_reference_table('safeguard.key_store');
        PERFORM set_config('citus.enable_unsafe_triggers', unsafe_triggers, true);
        -- The coordinator's own rows were copied to the reference table; drop the local ones.
        PERFORM truncate_local_data_after_distributing_table('safeguard.key_store');
        result := 'made a reference table: every node reads the same keys';
    END IF;
    RETURN NEXT;

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
