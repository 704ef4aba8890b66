-- Runs first. CREATE EXTENSION creates schema safeguard (named in the control file); every role
-- may look up its objects. What a role may do with them is granted per object: functions such
-- as ulid() are for everyone, while the tables later capabilities add get their own minimal grants.
GRANT USAGE ON SCHEMA safeguard TO PUBLIC;
COMMENT ON SCHEMA safeguard IS 'pg_safeguard: tenant isolation, audit, encryption, integrity and time-ordered IDs';
