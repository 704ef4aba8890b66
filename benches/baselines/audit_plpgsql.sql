-- The baseline the Rust audit triggers are measured against: a conventional, generic PL/pgSQL
-- audit trigger that writes exactly the same entries (same columns, diff-only updates, the same
-- context functions) into a copy of safeguard.audit_log with the same indexes. Like
-- safeguard.enable_audit(), it is one function for every table: the primary-key columns come as
-- trigger arguments (TG_ARGV), not written into the function for one table.
CREATE TABLE bench_plpgsql_log (LIKE safeguard.audit_log INCLUDING DEFAULTS INCLUDING INDEXES);

CREATE FUNCTION bench_plpgsql_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    n jsonb;
    changed name[];
    ident jsonb;
BEGIN
    IF TG_OP <> 'DELETE' THEN
        n := to_jsonb(NEW);
    END IF;
    IF TG_OP <> 'INSERT' THEN
        o := to_jsonb(OLD);
    END IF;
    -- The record: its primary-key columns, from the row after the change (before, for DELETE).
    SELECT jsonb_object_agg(k, coalesce(n, o) -> k) INTO ident FROM unnest(TG_ARGV) AS k;
    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(e.key) INTO changed FROM jsonb_each(n) AS e WHERE o -> e.key IS DISTINCT FROM e.value;
        IF changed IS NULL THEN
            RETURN NULL;
        END IF;
        o := (SELECT jsonb_object_agg(key, value) FROM jsonb_each(o) WHERE key = ANY (changed));
        n := (SELECT jsonb_object_agg(key, value) FROM jsonb_each(n) WHERE key = ANY (changed));
    END IF;
    INSERT INTO bench_plpgsql_log
           (tenant_id, actor_id, impersonator_id, request_id, db_user, client_addr, application_name,
            txid, table_schema, table_name, operation, record_id, old_data, new_data, changed_columns)
    VALUES (safeguard.current_tenant(), safeguard.current_actor(), safeguard.current_impersonator(),
            safeguard.current_request_id(), current_user, inet_client_addr(),
            current_setting('application_name'), txid_current(), TG_TABLE_SCHEMA, TG_TABLE_NAME,
            TG_OP, ident, o, n, changed);
    RETURN NULL;
END $$;
