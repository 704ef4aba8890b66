-- The 0.1.0 hash chain (PL/pgSQL loops, per-row sha256 and INSERT), for benches/audit_chain.sh:
-- the same encoding (safeguard._audit_canonical) and links, into copies of the chain tables.
CREATE TABLE bench_chain (seq bigint PRIMARY KEY, log_id uuid NOT NULL UNIQUE, link bytea NOT NULL);
CREATE TABLE bench_seals (LIKE safeguard.audit_seals INCLUDING DEFAULTS);

CREATE FUNCTION bench_plpgsql_seal() RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    horizon bigint;
    link bytea;
    seq bigint;
    first_seq bigint;
    entry safeguard.audit_log;
    sealed bigint := 0;
BEGIN
    -- One sealer at a time; writers are never blocked.
    PERFORM pg_advisory_xact_lock(hashtext('bench_plpgsql_seal'));
    horizon := txid_snapshot_xmin(txid_current_snapshot());
    SELECT c.link, c.seq INTO link, seq FROM public.bench_chain c ORDER BY c.seq DESC LIMIT 1;
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
           AND NOT EXISTS (SELECT 1 FROM public.bench_chain c WHERE c.log_id = l.id)
         ORDER BY l.id
    LOOP
        seq := seq + 1;
        link := sha256(link || safeguard._audit_canonical(entry));
        INSERT INTO public.bench_chain (seq, log_id, link) VALUES (seq, entry.id, link);
        sealed := sealed + 1;
    END LOOP;
    IF sealed > 0 THEN
        INSERT INTO public.bench_seals (first_seq, last_seq, horizon, entries, last_link)
        VALUES (first_seq, seq, horizon, sealed, link);
    END IF;
    RETURN sealed;
END $$;

CREATE FUNCTION bench_plpgsql_verify()
RETURNS TABLE (ok boolean, rows_checked bigint, first_bad_id uuid, detail text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
    FOR chained IN SELECT c.seq, c.log_id, c.link FROM public.bench_chain c
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
            OR l.txid < (SELECT max(s.horizon) FROM public.bench_seals s)
            OR l.txid >= txid_snapshot_xmax(txid_current_snapshot()))
       AND NOT EXISTS (SELECT 1 FROM public.bench_chain c WHERE c.log_id = l.id)
     ORDER BY l.id LIMIT 1;
    IF stray IS NOT NULL THEN
        RETURN QUERY SELECT false, checked, stray,
                            'an entry that no seal covers claims a transaction that ended before the last seal, none, or one not yet begun: it was inserted out of band';
        RETURN;
    END IF;
    RETURN QUERY SELECT true, checked, NULL::uuid, format('%s sealed entries verified', checked);
END $$;
