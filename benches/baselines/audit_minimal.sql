-- Calibration, not a competitor: the "minimal PL/pgSQL trigger" the audit issue quotes for scale
-- (0.76x INSERT, 0.75x UPDATE, 2.9x COPY where the issue was written). It writes only
-- to_jsonb(OLD) and to_jsonb(NEW) into a log table without indexes: no context, no record id, no
-- diff. Running it here tells how this machine and this table compare with the issue's set-up.
CREATE TABLE bench_minimal_log (op text, old_data jsonb, new_data jsonb);

CREATE FUNCTION bench_minimal_audit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO bench_minimal_log VALUES (TG_OP, NULL, to_jsonb(NEW));
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO bench_minimal_log VALUES (TG_OP, to_jsonb(OLD), to_jsonb(NEW));
    ELSE
        INSERT INTO bench_minimal_log VALUES (TG_OP, to_jsonb(OLD), NULL);
    END IF;
    RETURN NULL;
END $$;
