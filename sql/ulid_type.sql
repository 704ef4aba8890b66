-- Type safeguard.ulid: 16 bytes, the same bytes as uuid, shown as the 26-character ULID text.
--
-- Only text input and output are ours (Rust, symbols ulid_in_wrapper / ulid_out_wrapper). Binary
-- I/O, comparison, sorting and hashing reuse PostgreSQL's own uuid functions (LANGUAGE internal)
-- on the identical bytes: merge joins, hash joins, sorted index builds and btree deduplication
-- run at uuid speed, and the order is uuid's byte order, which is also the ULID text order.

CREATE TYPE safeguard.ulid;

CREATE FUNCTION safeguard.ulid_in(cstring) RETURNS safeguard.ulid
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ulid_in_wrapper';
CREATE FUNCTION safeguard.ulid_out(safeguard.ulid) RETURNS cstring
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ulid_out_wrapper';
CREATE FUNCTION safeguard.ulid_recv(internal) RETURNS safeguard.ulid
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'uuid_recv';
CREATE FUNCTION safeguard.ulid_send(safeguard.ulid) RETURNS bytea
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'uuid_send';

CREATE TYPE safeguard.ulid (
    INPUT = safeguard.ulid_in,
    OUTPUT = safeguard.ulid_out,
    RECEIVE = safeguard.ulid_recv,
    SEND = safeguard.ulid_send,
    INTERNALLENGTH = 16,
    ALIGNMENT = char,
    STORAGE = plain,
    CATEGORY = 'U'
);
COMMENT ON TYPE safeguard.ulid IS
    'Time-ordered 128-bit ID (ULID, UUIDv7-compatible): 16 bytes, 26-character text';

-- Comparison: uuid's functions, which are leakproof (usable below row-level security quals).
CREATE FUNCTION safeguard.ulid_eq(safeguard.ulid, safeguard.ulid) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_eq';
CREATE FUNCTION safeguard.ulid_ne(safeguard.ulid, safeguard.ulid) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_ne';
CREATE FUNCTION safeguard.ulid_lt(safeguard.ulid, safeguard.ulid) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_lt';
CREATE FUNCTION safeguard.ulid_le(safeguard.ulid, safeguard.ulid) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_le';
CREATE FUNCTION safeguard.ulid_gt(safeguard.ulid, safeguard.ulid) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_gt';
CREATE FUNCTION safeguard.ulid_ge(safeguard.ulid, safeguard.ulid) RETURNS boolean
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_ge';
CREATE FUNCTION safeguard.ulid_cmp(safeguard.ulid, safeguard.ulid) RETURNS integer
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_cmp';
CREATE FUNCTION safeguard.ulid_sortsupport(internal) RETURNS void
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE AS 'uuid_sortsupport';
CREATE FUNCTION safeguard.ulid_hash(safeguard.ulid) RETURNS integer
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_hash';
CREATE FUNCTION safeguard.ulid_hash_extended(safeguard.ulid, bigint) RETURNS bigint
    LANGUAGE internal IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'uuid_hash_extended';

-- The six comparison operators live in pg_catalog, not in safeguard: PostgreSQL looks operators up
-- through the search_path, and applications and drivers run with the default one ("$user",
-- public), where `id = $1` on a safeguard.ulid column would fail with 42883. pg_catalog is always
-- searched (first, unless a search_path names it later), as it is for uuid's operators; no
-- other schema a role could create objects in can shadow them. They are members of the
-- extension like everything else here: dumped with it, dropped with it.
CREATE OPERATOR pg_catalog.= (
    LEFTARG = safeguard.ulid, RIGHTARG = safeguard.ulid, FUNCTION = safeguard.ulid_eq,
    COMMUTATOR = OPERATOR(pg_catalog.=), NEGATOR = OPERATOR(pg_catalog.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES
);
CREATE OPERATOR pg_catalog.<> (
    LEFTARG = safeguard.ulid, RIGHTARG = safeguard.ulid, FUNCTION = safeguard.ulid_ne,
    COMMUTATOR = OPERATOR(pg_catalog.<>), NEGATOR = OPERATOR(pg_catalog.=),
    RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR pg_catalog.< (
    LEFTARG = safeguard.ulid, RIGHTARG = safeguard.ulid, FUNCTION = safeguard.ulid_lt,
    COMMUTATOR = OPERATOR(pg_catalog.>), NEGATOR = OPERATOR(pg_catalog.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR pg_catalog.<= (
    LEFTARG = safeguard.ulid, RIGHTARG = safeguard.ulid, FUNCTION = safeguard.ulid_le,
    COMMUTATOR = OPERATOR(pg_catalog.>=), NEGATOR = OPERATOR(pg_catalog.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR pg_catalog.> (
    LEFTARG = safeguard.ulid, RIGHTARG = safeguard.ulid, FUNCTION = safeguard.ulid_gt,
    COMMUTATOR = OPERATOR(pg_catalog.<), NEGATOR = OPERATOR(pg_catalog.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
CREATE OPERATOR pg_catalog.>= (
    LEFTARG = safeguard.ulid, RIGHTARG = safeguard.ulid, FUNCTION = safeguard.ulid_ge,
    COMMUTATOR = OPERATOR(pg_catalog.<=), NEGATOR = OPERATOR(pg_catalog.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel
);

-- btequalimage: equal ulids are bitwise equal, so btree deduplication applies, as for uuid.
CREATE OPERATOR CLASS safeguard.ulid_ops DEFAULT FOR TYPE safeguard.ulid USING btree AS
    OPERATOR 1 pg_catalog.<,
    OPERATOR 2 pg_catalog.<=,
    OPERATOR 3 pg_catalog.=,
    OPERATOR 4 pg_catalog.>=,
    OPERATOR 5 pg_catalog.>,
    FUNCTION 1 safeguard.ulid_cmp(safeguard.ulid, safeguard.ulid),
    FUNCTION 2 safeguard.ulid_sortsupport(internal),
    FUNCTION 4 pg_catalog.btequalimage(oid);

CREATE OPERATOR CLASS safeguard.ulid_hash_ops DEFAULT FOR TYPE safeguard.ulid USING hash AS
    OPERATOR 1 pg_catalog.=,
    FUNCTION 1 safeguard.ulid_hash(safeguard.ulid),
    FUNCTION 2 safeguard.ulid_hash_extended(safeguard.ulid, bigint);

-- A new ID as type ulid: the very function behind safeguard.ulid(), declared with this type.
CREATE FUNCTION safeguard.gen_ulid() RETURNS safeguard.ulid
    LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ulid_wrapper';
COMMENT ON FUNCTION safeguard.gen_ulid() IS 'A new time-ordered ID as type safeguard.ulid';

-- Casts. ulid <-> uuid are the same 128 bits: binary-coercible, free.
CREATE CAST (safeguard.ulid AS uuid) WITHOUT FUNCTION;
CREATE CAST (uuid AS safeguard.ulid) WITHOUT FUNCTION;

CREATE FUNCTION safeguard._ulid_to_timestamptz(safeguard.ulid) RETURNS timestamptz
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ulid_time_wrapper';
CREATE CAST (safeguard.ulid AS timestamptz) WITH FUNCTION safeguard._ulid_to_timestamptz(safeguard.ulid);

CREATE FUNCTION safeguard._ulid_to_text(safeguard.ulid) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ulid_encode_wrapper';
CREATE CAST (safeguard.ulid AS text) WITH FUNCTION safeguard._ulid_to_text(safeguard.ulid);

CREATE FUNCTION safeguard._text_to_ulid(text) RETURNS safeguard.ulid
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'ulid_decode_wrapper';
CREATE CAST (text AS safeguard.ulid) WITH FUNCTION safeguard._text_to_ulid(text);
