-- After the update (and after a restore of the updated database): the extension keeps working,
-- and what the new version adds works on the old data. Every check raises when it fails.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SET search_path = public;
-- Writes as the application: isolated, audited with the request id, encrypted under the key.
SET ROLE sg_up_app;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001', request_id => 'after-update');
INSERT INTO patients (clinic_id, full_name, history) VALUES (safeguard.current_tenant(), 'Riverside patient 6', 'History 6');
DO $$ BEGIN
    IF (SELECT count(*) FROM patients WHERE clinic_id <> safeguard.current_tenant()) <> 0 THEN
        RAISE EXCEPTION 'another tenant''s rows are visible after the update';
    END IF;
END $$;
COMMIT;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
DO $$ BEGIN
    INSERT INTO patients (clinic_id, full_name) VALUES ('0000000b-0000-4000-8000-000000000002', 'forged');
    RAISE EXCEPTION 'a row for another tenant was written after the update';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;
COMMIT;
RESET ROLE;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM safeguard.audit_log WHERE request_id = 'after-update' AND operation = 'INSERT') THEN
        RAISE EXCEPTION 'the write after the update was not audited';
    END IF;
    PERFORM safeguard.audit_seal();
    IF NOT (SELECT ok FROM safeguard.audit_verify()) THEN
        RAISE EXCEPTION 'audit_verify() fails after new entries were sealed';
    END IF;
END $$;
SET ROLE sg_up_support;
BEGIN;
SELECT safeguard.set_context('0000000a-0000-4000-8000-000000000001');
DO $$ BEGIN
    IF (SELECT safeguard.decrypt(history) FROM patients WHERE full_name = 'Riverside patient 6') IS DISTINCT FROM 'History 6' THEN
        RAISE EXCEPTION 'a value written after the update does not decrypt';
    END IF;
END $$;
COMMIT;
RESET ROLE;
-- What 0.2.0 adds: ulid operators under the default search_path, the policy guard, the new
-- lint rules and isolated_tables.widened_by.
DO $$ BEGIN
    IF (SELECT count(*) FROM visits a JOIN visits b ON a.id = b.id) <> (SELECT count(*) FROM visits) THEN
        RAISE EXCEPTION 'ulid comparison under the default search_path';
    END IF;
    BEGIN
        CREATE POLICY open_read ON patients FOR SELECT USING (true);
        RAISE EXCEPTION 'a permissive policy beside sg_tenant was accepted after the update';
    EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL;
    END;
    IF EXISTS (SELECT 1 FROM safeguard.isolated_tables WHERE widened_by <> '{}') THEN
        RAISE EXCEPTION 'isolated_tables reports a widened isolation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM safeguard.lint() WHERE rule = 'library_not_preloaded') THEN
        RAISE EXCEPTION 'lint() does not run its 0.2.0 rules';
    END IF;
END $$;
