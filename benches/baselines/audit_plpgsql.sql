-- The baseline the Rust audit trigger is measured against: a conventional PL/pgSQL trigger that
-- writes exactly the same log rows (same columns, diff-only updates, the context functions) into
-- a table with the same columns and indexes as safeguard.audit_log.
CREATE TABLE bench_plpgsql_log (LIKE safeguard.audit_log INCLUDING DEFAULTS INCLUDING INDEXES);

CREATE FUNCTION bench_plpgsql_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    o jsonb;
    n jsonb;
    changed name[];
    ident jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        n := to_jsonb(NEW);
        ident := jsonb_build_object('id', NEW.id);
    ELSIF TG_OP = 'DELETE' THEN
        o := to_jsonb(OLD);
        ident := jsonb_build_object('id', OLD.id);
    ELSE
        o := to_jsonb(OLD);
        n := to_jsonb(NEW);
        SELECT array_agg(key) INTO changed FROM jsonb_each(n) AS e WHERE o -> e.key IS DISTINCT FROM e.value;
        IF changed IS NULL THEN
            RETURN NULL;
        END IF;
        o := (SELECT jsonb_object_agg(key, value) FROM jsonb_each(o) WHERE key = ANY (changed));
        n := (SELECT jsonb_object_agg(key, value) FROM jsonb_each(n) WHERE key = ANY (changed));
        ident := jsonb_build_object('id', NEW.id);
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
