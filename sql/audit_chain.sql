-- Tamper evidence: a SHA-256 hash chain over the audit log, extended by audit_seal() and
-- checked by audit_verify() (both in Rust: src/audit/chain.rs).
--
-- A seal takes the entries of every transaction that had finished when it started (txid below
-- the snapshot's xmin, its horizon): the log's transaction numbers only grow (src/audit/era.rs
-- keeps them growing across a restore into another cluster), so no entry can later appear inside
-- a range already sealed, and a seal is a range of keys (txid, id). Its entries are chained in
-- blocks (safeguard.audit_chain_blocks): each block lists, in key order, every entry of its key
-- range with the SHA-256 of its canonical encoding, and its link is
-- sha256(previous link || block), so changing, removing or adding an entry anywhere, or a block,
-- breaks every later link. audit_seals records each seal's horizon and last link.
--
-- Entries sealed by 0.1.0 keep their per-entry links in safeguard.audit_chain (link =
-- sha256(previous link || canonical encoding)); the blocks continue from its last link.

CREATE TABLE safeguard.audit_chain (
    seq     bigint PRIMARY KEY,
    log_id  uuid NOT NULL UNIQUE,
    link    bytea NOT NULL
);
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
-- The hashes are random bytes: never worth a compression attempt.
ALTER TABLE safeguard.audit_chain_blocks ALTER COLUMN hashes SET STORAGE EXTERNAL;
-- The clusters that have written to this log, with the offset each adds to its transaction
-- numbers (src/audit/era.rs).
CREATE TABLE safeguard.audit_eras (
    system_identifier bigint PRIMARY KEY,  -- pg_control_system().system_identifier
    txid_offset       bigint NOT NULL,
    began_at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
COMMENT ON TABLE safeguard.audit_chain_blocks IS 'Hash-chain blocks of sealed audit entries (safeguard.audit_seal)';
COMMENT ON TABLE safeguard.audit_eras IS
    'The clusters that wrote this audit log and the offset each adds to txid_current() in audit_log.txid';
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_chain_blocks', '');
SELECT pg_catalog.pg_extension_config_dump('safeguard.audit_eras', '');
REVOKE ALL ON safeguard.audit_chain_blocks, safeguard.audit_eras FROM PUBLIC;
GRANT SELECT ON safeguard.audit_eras TO PUBLIC;
SELECT safeguard._make_append_only('safeguard.audit_chain_blocks');
SELECT safeguard._make_append_only('safeguard.audit_eras');
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

COMMENT ON TABLE safeguard.audit_chain IS 'Hash-chain links of the audit entries sealed by pg_safeguard 0.1.0';
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
        quote_nullable(l.changed_columns::text),
        -- The token columns (0.2.0) only when an entry has one: entries without stay encoded as
        -- 0.1.0 encoded them, so chains sealed before verify after.
        CASE WHEN l.token_id IS NOT NULL OR l.token_subject IS NOT NULL
             THEN quote_nullable(l.token_id) || ',' || quote_nullable(l.token_subject) END), 'UTF8')
$$;

-- Both are Rust (src/audit/chain.rs: the same encoding, each entry read once); these wrappers
-- give them the owner's rights, and keep JIT off: the log is read by a few large scans whose
-- compilation (about 0.1 s each) would cost more than it saves. _audit_canonical above stays the
-- reference encoding, which the tests compare with the Rust one.
CREATE FUNCTION safeguard.audit_seal() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off
AS $$ SELECT safeguard._audit_seal_chain() $$;
COMMENT ON FUNCTION safeguard.audit_seal() IS
    'Extend the audit hash chain over every entry of a finished transaction not yet sealed; returns how many';

-- Blocks are checked window by window against the entries of their key ranges. The per-entry
-- links of 0.1.0 (if any) are read in chain order with the entries joined by id: a nested loop
-- over the log's primary key follows the log's own order and needs no memory; a hash join of a
-- large chain spills to disk (measured: 4.9 s against 3.8 s for a million entries).
CREATE FUNCTION safeguard.audit_verify()
RETURNS TABLE (ok boolean, rows_checked bigint, first_bad_id uuid, detail text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
AS $$ SELECT * FROM safeguard._audit_verify_chain() $$;
COMMENT ON FUNCTION safeguard.audit_verify() IS
    'Recompute the audit hash chain; report the first entry modified, deleted or inserted out of band';
REVOKE ALL ON FUNCTION safeguard.audit_seal(), safeguard.audit_verify() FROM PUBLIC;
REVOKE ALL ON FUNCTION safeguard._audit_seal_chain(), safeguard._audit_verify_chain() FROM PUBLIC;

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
