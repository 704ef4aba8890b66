-- Tamper evidence: a SHA-256 hash chain over the audit log, extended by audit_seal() and
-- checked by audit_verify().
--
-- Each sealed entry gets a link: sha256(previous link || canonical encoding of the entry). The
-- links live in safeguard.audit_chain, in sealing order (seq); within one seal, entries are
-- chained in id order. A seal takes only entries of transactions that had all finished when it
-- started (txid below the snapshot's xmin), so an entry can never appear later inside a range
-- that was already sealed; audit_seals records that horizon for every seal.

CREATE TABLE safeguard.audit_chain (
    seq     bigint PRIMARY KEY,
    log_id  uuid NOT NULL UNIQUE,
    link    bytea NOT NULL
);
CREATE TABLE safeguard.audit_seals (
    sealed_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    horizon    bigint NOT NULL,   -- txid_snapshot_xmin when sealing: every transaction below had finished
    entries    bigint NOT NULL,
    last_link  bytea NOT NULL     -- publish it elsewhere to anchor the chain outside the database
);
CREATE TABLE safeguard.audit_purges (
    purged_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    through_seq   bigint NOT NULL,  -- chain positions up to here were purged
    through_link  bytea NOT NULL,   -- the link at through_seq: verification resumes from it
    entries       bigint NOT NULL,
    older_than    interval NOT NULL
);
COMMENT ON TABLE safeguard.audit_purges IS 'One row per safeguard.audit_purge() that deleted entries';
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_purges', '');
REVOKE ALL ON safeguard.audit_purges FROM PUBLIC;
GRANT SELECT ON safeguard.audit_purges TO PUBLIC;
SELECT safeguard._make_append_only('safeguard.audit_purges');
REVOKE ALL ON FUNCTION safeguard._audit_purge_through(bigint, bytea, text) FROM PUBLIC;

COMMENT ON TABLE safeguard.audit_chain IS 'Hash-chain links of sealed audit entries (safeguard.audit_seal)';
COMMENT ON TABLE safeguard.audit_seals IS 'One row per safeguard.audit_seal() that sealed entries';
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_chain', '');
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_seals', '');
REVOKE ALL ON safeguard.audit_chain, safeguard.audit_seals FROM PUBLIC;
GRANT SELECT ON safeguard.audit_seals TO PUBLIC;
SELECT safeguard._make_append_only('safeguard.audit_chain');
SELECT safeguard._make_append_only('safeguard.audit_seals');

-- The canonical encoding of an entry: every column in a fixed order, each as a quoted literal
-- or NULL, joined by commas, UTF-8. Independent of session settings: the time is epoch seconds,
-- the other types print the same whatever DateStyle or TimeZone say.
CREATE FUNCTION safeguard._audit_canonical(l safeguard.audit_log) RETURNS bytea
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

CREATE FUNCTION safeguard.audit_seal() RETURNS bigint
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
COMMENT ON FUNCTION safeguard.audit_seal() IS
    'Extend the audit hash chain over every entry of a finished transaction not yet sealed; returns how many';

CREATE FUNCTION safeguard.audit_verify()
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
COMMENT ON FUNCTION safeguard.audit_verify() IS
    'Recompute the audit hash chain; report the first entry modified, deleted or inserted out of band';
REVOKE ALL ON FUNCTION safeguard.audit_seal(), safeguard.audit_verify() FROM PUBLIC;

CREATE FUNCTION safeguard.audit_purge(older_than interval) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    setting text;
    retention interval;
    cutoff timestamptz;
    chained record;
    written timestamptz;
    through_seq bigint;
    through_link bytea;
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
