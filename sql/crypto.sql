-- Encrypted columns (src/crypto): the key table, the three encrypted types, their casts,
-- decrypt(), create_decrypted_view() and reencrypt(). See docs/encryption.md.

-- Data keys, each stored only wrapped (AES-256-GCM) under the master key, which lives outside
-- the database. No role but the owner holds any privilege on this table; the functions of
-- src/crypto read and write it as its owner. Dumped with the data (config dump) so that a
-- restore keeps every value decryptable; the dump holds wrapped keys only.
CREATE SEQUENCE safeguard.key_store_id_seq AS integer;
CREATE TABLE safeguard.key_store (
    id integer PRIMARY KEY DEFAULT nextval('safeguard.key_store_id_seq') CHECK (id > 0),
    tenant_id uuid,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired', 'destroyed')),
    wrapped_key bytea CHECK ((status = 'destroyed') = (wrapped_key IS NULL)),
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz,
    destroyed_at timestamptz
);
ALTER SEQUENCE safeguard.key_store_id_seq OWNED BY safeguard.key_store.id;
COMMENT ON TABLE safeguard.key_store IS
    'pg_safeguard data keys, wrapped under the master key; NULL tenant_id = the global key';
-- One active key per tenant, and one global key (NULL tenant).
CREATE UNIQUE INDEX key_store_one_active ON safeguard.key_store (tenant_id) NULLS NOT DISTINCT
    WHERE status = 'active';
CREATE INDEX key_store_tenant ON safeguard.key_store (tenant_id);
REVOKE ALL ON safeguard.key_store, safeguard.key_store_id_seq FROM PUBLIC;
-- Every backend of the node forgets its cached keys when the table changes, by whatever path
-- (on a Citus cluster, Citus changes the workers' copies: docs/citus.md).
CREATE TRIGGER sg_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON safeguard.key_store
    FOR EACH STATEMENT EXECUTE FUNCTION safeguard._key_store_changed();
SELECT pg_catalog.pg_extension_config_dump('safeguard.key_store', '');
SELECT pg_catalog.pg_extension_config_dump('safeguard.key_store_id_seq', '');

CREATE VIEW safeguard.keys AS
    SELECT id, tenant_id, status, created_at, retired_at, destroyed_at FROM safeguard.key_store;
COMMENT ON VIEW safeguard.keys IS 'pg_safeguard data keys: ids, tenants, status, timestamps; never key material';
REVOKE ALL ON safeguard.keys FROM PUBLIC;

-- Key management is for administrators: grant EXECUTE to a key-admin role where needed.
REVOKE ALL ON FUNCTION safeguard.create_key(uuid), safeguard.rotate_key(uuid),
    safeguard.destroy_key(integer), safeguard.shred_tenant(uuid), safeguard.rewrap_keys(text),
    safeguard.rewrap_keys_from_command(text) FROM PUBLIC;

-- The three types. Text input is STABLE, not VOLATILE, although it encrypts with a random
-- nonce: PostgreSQL warns about volatile I/O functions, and an input function is never
-- constant-folded by the planner either way. A literal is converted once, when the statement is
-- parsed; parameters are converted per execution (docs/encryption.md).
CREATE TYPE safeguard.encrypted_text;
CREATE FUNCTION safeguard.encrypted_text_in(cstring) RETURNS safeguard.encrypted_text
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encrypted_text_in_wrapper';
CREATE FUNCTION safeguard.encrypted_text_out(safeguard.encrypted_text) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_out_wrapper';
CREATE FUNCTION safeguard.encrypted_text_recv(internal) RETURNS safeguard.encrypted_text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_recv_wrapper';
CREATE FUNCTION safeguard.encrypted_text_send(safeguard.encrypted_text) RETURNS bytea
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'byteasend';
CREATE TYPE safeguard.encrypted_text (
    INPUT = safeguard.encrypted_text_in, OUTPUT = safeguard.encrypted_text_out,
    RECEIVE = safeguard.encrypted_text_recv, SEND = safeguard.encrypted_text_send,
    INTERNALLENGTH = VARIABLE, STORAGE = external, CATEGORY = 'U'
);

CREATE TYPE safeguard.encrypted_bytea;
CREATE FUNCTION safeguard.encrypted_bytea_in(cstring) RETURNS safeguard.encrypted_bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encrypted_bytea_in_wrapper';
CREATE FUNCTION safeguard.encrypted_bytea_out(safeguard.encrypted_bytea) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_out_wrapper';
CREATE FUNCTION safeguard.encrypted_bytea_recv(internal) RETURNS safeguard.encrypted_bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_recv_wrapper';
CREATE FUNCTION safeguard.encrypted_bytea_send(safeguard.encrypted_bytea) RETURNS bytea
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'byteasend';
CREATE TYPE safeguard.encrypted_bytea (
    INPUT = safeguard.encrypted_bytea_in, OUTPUT = safeguard.encrypted_bytea_out,
    RECEIVE = safeguard.encrypted_bytea_recv, SEND = safeguard.encrypted_bytea_send,
    INTERNALLENGTH = VARIABLE, STORAGE = external, CATEGORY = 'U'
);

CREATE TYPE safeguard.encrypted_jsonb;
CREATE FUNCTION safeguard.encrypted_jsonb_in(cstring) RETURNS safeguard.encrypted_jsonb
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encrypted_jsonb_in_wrapper';
CREATE FUNCTION safeguard.encrypted_jsonb_out(safeguard.encrypted_jsonb) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_out_wrapper';
CREATE FUNCTION safeguard.encrypted_jsonb_recv(internal) RETURNS safeguard.encrypted_jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_recv_wrapper';
CREATE FUNCTION safeguard.encrypted_jsonb_send(safeguard.encrypted_jsonb) RETURNS bytea
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'byteasend';
CREATE TYPE safeguard.encrypted_jsonb (
    INPUT = safeguard.encrypted_jsonb_in, OUTPUT = safeguard.encrypted_jsonb_out,
    RECEIVE = safeguard.encrypted_jsonb_recv, SEND = safeguard.encrypted_jsonb_send,
    INTERNALLENGTH = VARIABLE, STORAGE = external, CATEGORY = 'U'
);
COMMENT ON TYPE safeguard.encrypted_text IS 'Text stored encrypted (AES-256-GCM envelope); safeguard.decrypt() reads it';
COMMENT ON TYPE safeguard.encrypted_bytea IS 'Bytes stored encrypted (AES-256-GCM envelope); safeguard.decrypt() reads them';
COMMENT ON TYPE safeguard.encrypted_jsonb IS 'JSON stored encrypted (AES-256-GCM envelope); safeguard.decrypt() reads it';

-- Assignment casts: a text, varchar, bytea or jsonb value (a typed bind parameter of any
-- driver) stored into an encrypted column is encrypted; like text input, a value that spells an
-- envelope's text form (sgenc:...) is that envelope, kept as it is. STABLE like text input, for
-- the same reasons (never constant-folded; a call per row and per execution), and because Citus
-- refuses VOLATILE functions in an UPDATE of a distributed table: a STABLE one of a bound
-- parameter it evaluates once on the coordinator (docs/citus.md).
CREATE FUNCTION safeguard._encrypt(text) RETURNS safeguard.encrypted_text
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'sg_encrypt_text';
CREATE FUNCTION safeguard._encrypt(character varying) RETURNS safeguard.encrypted_text
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'sg_encrypt_text';
CREATE FUNCTION safeguard._encrypt(bytea) RETURNS safeguard.encrypted_bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'sg_encrypt_bytea';
CREATE FUNCTION safeguard._encrypt(jsonb) RETURNS safeguard.encrypted_jsonb
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'encrypt_jsonb_value_wrapper';
CREATE CAST (text AS safeguard.encrypted_text) WITH FUNCTION safeguard._encrypt(text) AS ASSIGNMENT;
CREATE CAST (character varying AS safeguard.encrypted_text)
    WITH FUNCTION safeguard._encrypt(character varying) AS ASSIGNMENT;
CREATE CAST (bytea AS safeguard.encrypted_bytea) WITH FUNCTION safeguard._encrypt(bytea) AS ASSIGNMENT;
CREATE CAST (jsonb AS safeguard.encrypted_jsonb) WITH FUNCTION safeguard._encrypt(jsonb) AS ASSIGNMENT;

-- Decryption: not for PUBLIC. GRANT EXECUTE ON FUNCTION safeguard.decrypt(...) TO a role.
CREATE FUNCTION safeguard.decrypt(safeguard.encrypted_text) RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'sg_decrypt_text';
CREATE FUNCTION safeguard.decrypt(safeguard.encrypted_bytea) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'sg_decrypt_bytea';
CREATE FUNCTION safeguard.decrypt(safeguard.encrypted_jsonb) RETURNS jsonb
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'decrypt_jsonb_wrapper';
REVOKE ALL ON FUNCTION safeguard.decrypt(safeguard.encrypted_text), safeguard.decrypt(safeguard.encrypted_bytea),
    safeguard.decrypt(safeguard.encrypted_jsonb) FROM PUBLIC;

-- Which key a value is under (no decryption): for reports such as "how much is still under
-- the retired key".
CREATE FUNCTION safeguard.key_id(safeguard.encrypted_text) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_key_id_wrapper';
CREATE FUNCTION safeguard.key_id(safeguard.encrypted_bytea) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_key_id_wrapper';
CREATE FUNCTION safeguard.key_id(safeguard.encrypted_jsonb) RETURNS integer
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'encrypted_key_id_wrapper';

-- Blind index: HMAC-SHA-256 under a key derived from the master key, the current tenant and the
-- purpose. STABLE (it reads the context and the key), so it cannot be an index expression: store
-- it in a bytea column next to the encrypted one and index that.
CREATE FUNCTION safeguard.blind_index(value text, purpose text) RETURNS bytea
    LANGUAGE c STABLE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'blind_index_wrapper';
COMMENT ON FUNCTION safeguard.blind_index(text, text) IS
    'Deterministic keyed hash of a value for equality lookups and UNIQUE constraints on encrypted data';

CREATE FUNCTION safeguard.reencrypt(tbl regclass, col name, batch_size integer DEFAULT 1000) RETURNS bigint
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'reencrypt_wrapper';
REVOKE ALL ON FUNCTION safeguard.reencrypt(regclass, name, integer) FROM PUBLIC;
COMMENT ON FUNCTION safeguard.reencrypt(regclass, name, integer) IS
    'Rewrites the values of an encrypted column that are not under the active key; resumable';

-- A view of the table with its encrypted columns decrypted, for reporting roles. It runs with
-- the privileges of whoever queries it (security_invoker): they need SELECT on the table and
-- EXECUTE on safeguard.decrypt(), and see only their tenant's rows where the table is isolated.
CREATE FUNCTION safeguard.create_decrypted_view(tbl regclass, view_name name DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel_schema name;
    rel_name name;
    select_list text;
    view_regclass regclass;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tbl must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT n.nspname, c.relname INTO rel_schema, rel_name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl AND c.relkind IN ('r', 'p', 'v', 'm', 'f');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % is not a table or view', tbl USING ERRCODE = '42809';
    END IF;
    SELECT string_agg(
               CASE WHEN a.atttypid IN ('safeguard.encrypted_text'::regtype, 'safeguard.encrypted_bytea'::regtype,
                                        'safeguard.encrypted_jsonb'::regtype)
                    THEN format('safeguard.decrypt(%I) AS %I', a.attname, a.attname)
                    ELSE format('%I', a.attname) END,
               ', ' ORDER BY a.attnum)
      INTO select_list
      FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped;
    IF select_list IS NULL THEN
        RAISE EXCEPTION 'relation % has no columns', tbl USING ERRCODE = '42P16';
    END IF;
    view_name := coalesce(view_name, left(rel_name, 53) || '_decrypted');
    EXECUTE format('CREATE OR REPLACE VIEW %I.%I WITH (security_invoker = true) AS SELECT %s FROM %s',
                   rel_schema, view_name, select_list, tbl);
    view_regclass := format('%I.%I', rel_schema, view_name)::regclass;
    EXECUTE format('COMMENT ON VIEW %s IS %L', view_regclass,
                   format('pg_safeguard: %s with its encrypted columns decrypted', tbl));
    RETURN view_regclass;
END
$$;
COMMENT ON FUNCTION safeguard.create_decrypted_view(regclass, name) IS
    'Creates (or replaces) a security_invoker view of a table with its encrypted columns decrypted';
