-- Verified request context (src/token, docs/tenancy.md): the roles that must take their
-- request context from a token verified by safeguard.set_context_from_token().

CREATE TABLE safeguard.verified_context_roles (
    role_name   regrole PRIMARY KEY,
    required_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    required_by name NOT NULL DEFAULT CURRENT_USER
);
COMMENT ON TABLE safeguard.verified_context_roles IS
    'Roles (and their members) whose request context only a verified token may set: safeguard.require_verified_context()';
SELECT pg_catalog.pg_extension_config_dump('safeguard.verified_context_roles', '');
-- Every backend asks the registry again after a change (src/token: _verified_context_roles_changed).
CREATE TRIGGER sg_verified_context_roles_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON safeguard.verified_context_roles
    FOR EACH STATEMENT EXECUTE FUNCTION safeguard._verified_context_roles_changed();

-- Requires (or, with enabled => false, no longer requires) a role and the roles that belong to it
-- to take their context from a verified token: set_context(), and a context read from the
-- adopted application setting, are then refused for them (42501). Idempotent. For the owner of
-- the extension and superusers (the table's privileges decide).
CREATE FUNCTION safeguard.require_verified_context(role_name regrole, enabled boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF role_name IS NULL OR enabled IS NULL THEN
        RAISE EXCEPTION 'role_name and enabled must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = role_name) THEN
        RAISE EXCEPTION 'role % is a superuser, which nothing can be required of', role_name
            USING ERRCODE = '22023',
                  HINT = 'Connect the application as a role without SUPERUSER (and without BYPASSRLS).';
    END IF;
    IF enabled THEN
        INSERT INTO safeguard.verified_context_roles AS v (role_name) VALUES (require_verified_context.role_name)
            ON CONFLICT ON CONSTRAINT verified_context_roles_pkey DO NOTHING;
    ELSE
        DELETE FROM safeguard.verified_context_roles v WHERE v.role_name = require_verified_context.role_name;
    END IF;
END $$;
REVOKE ALL ON FUNCTION safeguard.require_verified_context(regrole, boolean) FROM PUBLIC;
COMMENT ON FUNCTION safeguard.require_verified_context(regrole, boolean) IS
    'Requires a role (and its members) to take its request context from a verified token (docs/tenancy.md)';

-- The required roles, with the roles that belong to them (to which the requirement applies too).
CREATE VIEW safeguard.verified_context_required AS
SELECT v.role_name, v.required_at, v.required_by,
       ARRAY(SELECT m.rolname FROM pg_catalog.pg_roles m
              WHERE m.oid <> v.role_name::oid AND NOT m.rolsuper
                AND pg_catalog.pg_has_role(m.oid, v.role_name::oid, 'MEMBER')
              ORDER BY m.rolname)::name[] AS members
  FROM safeguard.verified_context_roles v
  JOIN pg_catalog.pg_roles r ON r.oid = v.role_name::oid;
