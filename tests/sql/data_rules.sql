-- Data-rule helpers: each rule's happy path, idempotence, bad arguments, hostile identifiers and
-- where_clauses, the violations (SQLSTATE, rule named, no values), and drop_rule.
\set SHOW_CONTEXT never
SET search_path = public;
SET client_min_messages = notice;

CREATE ROLE sg_rules_owner NOSUPERUSER NOBYPASSRLS;
CREATE ROLE sg_rules_app NOSUPERUSER NOBYPASSRLS;
CREATE ROLE sg_rules_purger NOSUPERUSER NOBYPASSRLS;
GRANT CREATE ON SCHEMA public TO sg_rules_owner;

SET ROLE sg_rules_owner;
CREATE TABLE organizations (id int PRIMARY KEY, name text, member_count int NOT NULL DEFAULT 0);
CREATE TABLE care_team_assignments (
    id          serial PRIMARY KEY,
    organization_id int NOT NULL REFERENCES organizations,
    patient_id  int NOT NULL,
    provider_id int NOT NULL,
    role        text NOT NULL,
    npi_number  text,
    starts_at   timestamptz,
    ends_at     timestamptz,
    status      text,
    removed_at  timestamptz,
    created_at  timestamptz,
    updated_at  timestamptz,
    deleted_at  timestamptz
);
CREATE TABLE "Odd ""Table""; DROP TABLE organizations; --" ("we""ird col" int, "two words" text);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON organizations, care_team_assignments TO sg_rules_app, sg_rules_purger;
GRANT USAGE ON SEQUENCE care_team_assignments_id_seq TO sg_rules_app, sg_rules_purger;
INSERT INTO organizations VALUES (1, 'Riverside'), (2, 'Lakeview');

-- Only the table's owner adds rules.
SET ROLE sg_rules_app;
SELECT safeguard.require_values('care_team_assignments', 'role', '{PRIMARY}');
\echo :LAST_ERROR_SQLSTATE
SET ROLE sg_rules_owner;

-- require_unique: one PRIMARY per patient; NPI unique per organization.
SELECT safeguard.require_unique('care_team_assignments', '{patient_id}', $$role = 'PRIMARY' AND removed_at IS NULL$$);
SELECT safeguard.require_unique('care_team_assignments', '{patient_id}', $$role = 'PRIMARY' AND removed_at IS NULL$$);
SELECT safeguard.require_unique('care_team_assignments', '{organization_id, npi_number}', 'npi_number IS NOT NULL');
SELECT safeguard.require_unique('care_team_assignments', '{patient_id}', 'removed_at IS NULL');
\echo :LAST_ERROR_SQLSTATE
-- Bad arguments and where_clauses that are not one boolean expression over the table.
SELECT safeguard.require_unique('care_team_assignments', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{no_such_column}');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('no_such_table', '{id}');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{provider_id}', $$true); DROP TABLE organizations; --$$);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{provider_id}', $$true) OR (true$$);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{provider_id}', $$true) FROM organizations --$$);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{provider_id}', $$status = 'x', role = 'y'$$);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{provider_id}', 'patient_id + 1');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{provider_id}', 'no_such_column IS NULL');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{provider_id}', $$random() > 0.5$$);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_unique('care_team_assignments', '{provider_id}', '');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS organizations_still_there FROM organizations;

-- require_values, require_order, forbid_overlap.
SELECT safeguard.require_values('care_team_assignments', 'role', '{PRIMARY, CONSULTING, NURSE}');
SELECT safeguard.require_values('care_team_assignments', 'status', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_values('care_team_assignments', 'status', ARRAY['booked', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.require_values('care_team_assignments', 'status', $${booked, "it's done", cancelled, no_show}$$);
SELECT safeguard.require_order('care_team_assignments', 'starts_at', 'ends_at');
SELECT safeguard.require_order('care_team_assignments', 'starts_at', 'role');
\echo :LAST_ERROR_SQLSTATE
-- Equality on provider_id inside the exclusion constraint needs btree_gist, which a role without
-- CREATE on the database cannot add: a clear 42501 first; with the grant, the helper adds it.
SELECT safeguard.forbid_overlap('care_team_assignments', 'starts_at', 'ends_at', '{provider_id}',
                                $$status IS DISTINCT FROM 'cancelled' AND status IS DISTINCT FROM 'no_show'$$);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT current_database() AS db \gset
GRANT CREATE ON DATABASE :"db" TO sg_rules_owner;
SET ROLE sg_rules_owner;
SELECT safeguard.forbid_overlap('care_team_assignments', 'starts_at', 'ends_at', '{provider_id}',
                                $$status IS DISTINCT FROM 'cancelled' AND status IS DISTINCT FROM 'no_show'$$);
SELECT safeguard.forbid_overlap('care_team_assignments', 'starts_at', 'role');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.forbid_overlap('care_team_assignments', 'role', 'status');
\echo :LAST_ERROR_SQLSTATE
SELECT extname FROM pg_extension WHERE extname = 'btree_gist';

-- protect_columns, maintain_timestamps, enable_soft_delete, maintain_count.
SELECT safeguard.protect_columns('care_team_assignments', '{organization_id, patient_id}');
SELECT safeguard.maintain_timestamps('care_team_assignments');
SELECT safeguard.maintain_timestamps('care_team_assignments', 'role', 'status');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.enable_soft_delete('care_team_assignments', hard_delete_role => 'sg_rules_purger') IS NOT NULL AS soft_delete;
SELECT safeguard.enable_soft_delete('care_team_assignments', hard_delete_role => 'no_such_role');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.maintain_count('organizations', 'member_count', 'care_team_assignments', 'organization_id',
                                'deleted_at IS NULL AND removed_at IS NULL') IS NOT NULL AS counter;
SELECT safeguard.maintain_count('organizations', 'name', 'care_team_assignments', 'organization_id');
\echo :LAST_ERROR_SQLSTATE
-- Hostile identifiers are quoted everywhere.
SELECT safeguard.require_unique('"Odd ""Table""; DROP TABLE organizations; --"', '{"we\"ird col"}', $$"two words" IS NOT NULL$$);
SELECT safeguard.require_values('"Odd ""Table""; DROP TABLE organizations; --"', 'two words', ARRAY['a''b', 'c"d']);
SELECT name, kind FROM safeguard.rule_registry ORDER BY tbl::text, name;
RESET ROLE;

-- The application writes; the rules hold.
SET ROLE sg_rules_app;
BEGIN;
INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role, npi_number, starts_at, ends_at, status,
                                   created_at, updated_at)
VALUES (1, 100, 10, 'PRIMARY', '1234567893', '2026-01-05 09:00+00', '2026-01-05 09:45+00', 'booked',
        '1999-01-01', '1999-01-01'),
       (1, 101, 11, 'NURSE', NULL, '2026-01-05 09:00+00', '2026-01-05 09:45+00', 'booked', NULL, NULL),
       (2, 200, 20, 'PRIMARY', '1234567893', '2026-01-05 09:00+00', '2026-01-05 09:45+00', 'booked', NULL, NULL);
-- Timestamps come from the database's clock, not the client's.
SELECT count(*) FILTER (WHERE created_at = now() AND updated_at = now()) AS stamped_by_database FROM care_team_assignments;
COMMIT;
-- Counters: maintained by the triggers.
SELECT id, member_count FROM organizations ORDER BY id;
-- Violations: SQLSTATE, the rule's name, and no row values in the message.
INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role) VALUES (1, 100, 12, 'PRIMARY');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role, npi_number) VALUES (1, 102, 12, 'NURSE', '1234567893');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role) VALUES (1, 103, 12, 'SURGEON');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role, starts_at, ends_at)
VALUES (1, 104, 12, 'NURSE', '2026-01-05 10:00+00', '2026-01-05 09:00+00');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role, starts_at, ends_at, status)
VALUES (1, 105, 10, 'NURSE', '2026-01-05 09:30+00', '2026-01-05 10:00+00', 'booked');
\echo :LAST_ERROR_SQLSTATE
-- A cancelled appointment may overlap; back-to-back ones ([start, end)) do not overlap.
INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role, starts_at, ends_at, status)
VALUES (1, 106, 10, 'NURSE', '2026-01-05 09:30+00', '2026-01-05 10:00+00', 'cancelled'),
       (1, 107, 10, 'NURSE', '2026-01-05 09:45+00', '2026-01-05 10:30+00', 'booked');
UPDATE care_team_assignments SET organization_id = 2 WHERE patient_id = 101;
\echo :LAST_ERROR_SQLSTATE
SELECT created_at AS created_before FROM care_team_assignments WHERE patient_id = 106 \gset
BEGIN;
UPDATE care_team_assignments SET created_at = '2000-01-01', updated_at = '2000-01-01', status = 'no_show' WHERE patient_id = 106;
SELECT created_at = :'created_before' AS created_at_kept, updated_at = now() AS updated_at_now
  FROM care_team_assignments WHERE patient_id = 106;
COMMIT;
SELECT id, member_count FROM organizations ORDER BY id;
-- Soft delete: DELETE marks the row; deleting it again changes nothing; counters follow.
DELETE FROM care_team_assignments WHERE patient_id = 101;
DELETE FROM care_team_assignments WHERE patient_id = 101;
SELECT patient_id, deleted_at IS NOT NULL AS soft_deleted FROM care_team_assignments WHERE patient_id = 101;
SELECT id, member_count FROM organizations ORDER BY id;
-- Hard delete: only for members of the named role.
SELECT safeguard.hard_delete('care_team_assignments', 'patient_id = 101');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE sg_rules_purger;
SELECT safeguard.hard_delete('care_team_assignments', 'patient_id = 101') AS hard_deleted;
SELECT safeguard.hard_delete('care_team_assignments', 'true; DELETE FROM organizations');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.hard_delete('organizations', 'id = 1');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows_left FROM care_team_assignments WHERE patient_id = 101;
RESET ROLE;
-- Drift repaired by recount().
UPDATE organizations SET member_count = 42;
SELECT safeguard.recount('organizations', 'member_count') AS parents_fixed;
SELECT o.id, o.member_count, (SELECT count(*) FROM care_team_assignments c WHERE c.organization_id = o.id
                                AND c.deleted_at IS NULL AND c.removed_at IS NULL) AS true_count
  FROM organizations o ORDER BY o.id;
SELECT safeguard.recount('organizations', 'name');
\echo :LAST_ERROR_SQLSTATE

-- maintain_count, the corners: rolled-back savepoints and exception blocks, several parents in
-- one statement, NULL parents, COPY, moves between parents, a where_clause with a string that
-- names a column, uuid keys; and what it refuses.
SET ROLE sg_rules_owner;
CREATE TABLE clinics (id uuid PRIMARY KEY, open_visits bigint NOT NULL DEFAULT 0);
CREATE TABLE visits (id serial PRIMARY KEY, clinic_id uuid REFERENCES clinics, status text NOT NULL DEFAULT 'open');
INSERT INTO clinics VALUES ('00000000-0000-4000-8000-000000000001'), ('00000000-0000-4000-8000-000000000002');
SELECT safeguard.maintain_count('clinics', 'open_visits', 'visits', 'clinic_id', $$status <> 'status = closed' AND status <> 'closed'$$)
       IS NOT NULL AS counter;
BEGIN;
INSERT INTO visits (clinic_id) VALUES ('00000000-0000-4000-8000-000000000002'), ('00000000-0000-4000-8000-000000000001'),
                                      ('00000000-0000-4000-8000-000000000002'), (NULL);
SAVEPOINT s;
INSERT INTO visits (clinic_id) VALUES ('00000000-0000-4000-8000-000000000001');
ROLLBACK TO SAVEPOINT s;
DO $$
BEGIN
    INSERT INTO visits (clinic_id) VALUES ('00000000-0000-4000-8000-000000000001');
    RAISE EXCEPTION 'undo the insert';
EXCEPTION WHEN raise_exception THEN NULL;
END $$;
COMMIT;
SELECT right(id::text, 1) AS clinic, open_visits FROM clinics ORDER BY id;
COPY visits (clinic_id, status) FROM stdin;
00000000-0000-4000-8000-000000000001	open
00000000-0000-4000-8000-000000000001	closed
\N	open
\.
UPDATE visits SET clinic_id = '00000000-0000-4000-8000-000000000001' WHERE clinic_id = '00000000-0000-4000-8000-000000000002';
UPDATE visits SET status = 'closed' WHERE id = 1;
UPDATE visits SET status = 'closed' WHERE id = 1;
UPDATE visits SET status = 'open', clinic_id = NULL WHERE id = 1;
SELECT right(c.id::text, 1) AS clinic, c.open_visits,
       (SELECT count(*) FROM visits v WHERE v.clinic_id = c.id AND v.status <> 'closed') AS true_count
  FROM clinics c ORDER BY c.id;
-- The counter is updated with the writer's privileges: a role that may insert visits but not
-- update clinics is refused (42501), and nothing is written.
GRANT SELECT, INSERT ON visits TO sg_rules_app;
GRANT USAGE ON SEQUENCE visits_id_seq TO sg_rules_app;
SET ROLE sg_rules_app;
INSERT INTO visits (clinic_id) VALUES ('00000000-0000-4000-8000-000000000002');
\echo :LAST_ERROR_SQLSTATE
SET ROLE sg_rules_owner;
-- A rolled-back transaction leaves no delta behind for the next one.
BEGIN;
INSERT INTO visits (clinic_id) VALUES ('00000000-0000-4000-8000-000000000002');
ROLLBACK;
INSERT INTO visits (clinic_id) VALUES ('00000000-0000-4000-8000-000000000002');
SELECT right(id::text, 1) AS clinic, open_visits FROM clinics ORDER BY id;
-- Counters of counters: clinics count their open visits, regions count their clinics with open
-- visits; applying the visits' counter changes whether a clinic counts for its region, so the
-- clinics' own counter triggers run inside the visits' one.
CREATE TABLE regions (id int PRIMARY KEY, busy_clinics int NOT NULL DEFAULT 0);
INSERT INTO regions VALUES (1);
ALTER TABLE clinics ADD COLUMN region_id int REFERENCES regions;
SELECT safeguard.maintain_count('regions', 'busy_clinics', 'clinics', 'region_id', 'open_visits > 0') IS NOT NULL AS counter;
UPDATE clinics SET region_id = 1;
SELECT busy_clinics FROM regions;
UPDATE visits SET status = 'closed' WHERE clinic_id = '00000000-0000-4000-8000-000000000002';
SELECT busy_clinics FROM regions;
INSERT INTO visits (clinic_id) VALUES ('00000000-0000-4000-8000-000000000002');
SELECT right(id::text, 1) AS clinic, open_visits, (SELECT busy_clinics FROM regions) FROM clinics ORDER BY id;
-- The statement trigger disabled by hand while the row triggers still fire: the commit is refused.
ALTER TABLE visits DISABLE TRIGGER sg_count_visits_open_visits_apply;
INSERT INTO visits (clinic_id) VALUES ('00000000-0000-4000-8000-000000000002');
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE visits ENABLE TRIGGER sg_count_visits_open_visits_apply;
SELECT count(*) AS visits_of_clinic_2, (SELECT open_visits FROM clinics WHERE id = '00000000-0000-4000-8000-000000000002')
  FROM visits WHERE clinic_id = '00000000-0000-4000-8000-000000000002';
-- The trigger functions attached by hand the wrong way.
CREATE TRIGGER wrong BEFORE INSERT ON visits FOR EACH ROW EXECUTE FUNCTION safeguard._count_row('public', 'clinics', 'open_visits', 'id', 'clinic_id', '1', 'new');
INSERT INTO visits (clinic_id) VALUES (NULL);
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER wrong ON visits;
CREATE TRIGGER wrong AFTER INSERT ON visits FOR EACH ROW EXECUTE FUNCTION safeguard._count_row('public', 'clinics', 'open_visits', 'id', 'no_such_column', '1', 'new');
INSERT INTO visits (clinic_id) VALUES (NULL);
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER wrong ON visits;
-- How a where_clause becomes a WHEN condition: column references are prefixed, nothing else
-- (string literals, function names, quoted names, casts and array elements stay as written).
SELECT safeguard._qualified_expression($$"Status" <> 'status' AND lower(status)::text = ANY ('{x}') AND (tags)[1] IS NULL$$, 'old');
SELECT safeguard._qualified_expression('status', 'evil');
\echo :LAST_ERROR_SQLSTATE
-- What it refuses: conditions a row trigger cannot check, partitioned children.
SELECT safeguard.maintain_count('clinics', 'open_visits', 'visits', 'clinic_id', 'status IN (SELECT v.status FROM public.visits v)');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.maintain_count('clinics', 'open_visits', 'visits', 'clinic_id', $$visits.status <> 'closed'$$);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE visits_by_year (clinic_id uuid, year int) PARTITION BY LIST (year);
SELECT safeguard.maintain_count('clinics', 'open_visits', 'visits_by_year', 'clinic_id');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.drop_rule('visits', 'sg_count_visits_open_visits');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'visits'::regclass AND NOT tgisinternal;
DROP TABLE visits, visits_by_year, clinics, regions;
RESET ROLE;

-- make_append_only: for the owner and superusers too, also under session_replication_role.
SET ROLE sg_rules_owner;
CREATE TABLE consents (id int PRIMARY KEY, text text);
INSERT INTO consents VALUES (1, 'signed');
SELECT safeguard.make_append_only('consents');
INSERT INTO consents VALUES (2, 'signed too');
UPDATE consents SET text = 'forged';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM consents;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE consents;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET session_replication_role = replica;
DELETE FROM consents;
\echo :LAST_ERROR_SQLSTATE
RESET session_replication_role;
SELECT count(*) AS consents_kept FROM consents;

-- drop_rule removes what the helper created, and nothing else.
SET ROLE sg_rules_owner;
SELECT safeguard.drop_rule('consents', 'sg_append_only_consents');
UPDATE consents SET text = 'amended' WHERE id = 2;
SELECT safeguard.drop_rule('consents', 'sg_append_only_consents');
\echo :LAST_ERROR_SQLSTATE
SELECT safeguard.drop_rule('care_team_assignments', 'sg_timestamps_care_team_assignments');
SELECT count(*) AS timestamp_functions_left FROM pg_proc WHERE proname = 'sg_timestamps_care_team_assignments';
SELECT safeguard.drop_rule('care_team_assignments', 'sg_unique_care_team_assignments_patient_id');
SELECT count(*) AS unique_index_left FROM pg_class WHERE relname = 'sg_unique_care_team_assignments_patient_id';
RESET ROLE;

-- Dropping a table forgets its rules.
DROP TABLE care_team_assignments, consents, "Odd ""Table""; DROP TABLE organizations; --";
SELECT count(*) AS rules_left FROM safeguard.rule_registry;
SELECT count(*) AS generated_functions_left FROM pg_proc WHERE proname LIKE 'sg\_%care\_team%';
DROP TABLE organizations;
DROP EXTENSION btree_gist;
REVOKE CREATE ON SCHEMA public FROM sg_rules_owner;
REVOKE CREATE ON DATABASE :"db" FROM sg_rules_owner;
DROP ROLE sg_rules_owner, sg_rules_app, sg_rules_purger;
