-- Data-integrity validators (src/constraints) as SQL functions, and domains over them.
-- The five identifier validators are version-1 C functions in Rust; is_valid_timezone() is
-- defined by pgrx (it reads pg_timezone_names once per backend).

CREATE FUNCTION safeguard.is_valid_npi(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'sg_is_valid_npi';
COMMENT ON FUNCTION safeguard.is_valid_npi(text) IS
    'US National Provider Identifier: 10 digits, first 1 or 2, Luhn check digit with prefix 80840';
CREATE FUNCTION safeguard.is_valid_dea(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'sg_is_valid_dea';
COMMENT ON FUNCTION safeguard.is_valid_dea(text) IS
    'DEA registration number: two upper-case letters, seven digits, DEA checksum';
CREATE FUNCTION safeguard.is_valid_e164(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'sg_is_valid_e164';
COMMENT ON FUNCTION safeguard.is_valid_e164(text) IS 'E.164 telephone number: + then 8 to 15 digits, the first not 0';
CREATE FUNCTION safeguard.is_valid_email(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'sg_is_valid_email';
COMMENT ON FUNCTION safeguard.is_valid_email(text) IS
    'A pragmatic e-mail address check (one @, dotted domain, RFC 5321 length limits, no spaces)';
CREATE FUNCTION safeguard.is_valid_us_state(text) RETURNS boolean
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'sg_is_valid_us_state';
COMMENT ON FUNCTION safeguard.is_valid_us_state(text) IS
    'USPS two-letter code: the 50 states, DC, territories, freely associated states, military';

-- Domains: a column of one of these types refuses invalid values (23514) without repeating them.
CREATE DOMAIN safeguard.npi AS text CONSTRAINT npi_valid CHECK (safeguard.is_valid_npi(VALUE));
CREATE DOMAIN safeguard.dea_number AS text CONSTRAINT dea_number_valid CHECK (safeguard.is_valid_dea(VALUE));
CREATE DOMAIN safeguard.e164_phone AS text CONSTRAINT e164_phone_valid CHECK (safeguard.is_valid_e164(VALUE));
CREATE DOMAIN safeguard.email_address AS text CONSTRAINT email_address_valid CHECK (safeguard.is_valid_email(VALUE));
CREATE DOMAIN safeguard.us_state AS text CONSTRAINT us_state_valid CHECK (safeguard.is_valid_us_state(VALUE));
CREATE DOMAIN safeguard.iana_timezone AS text CONSTRAINT iana_timezone_valid CHECK (safeguard.is_valid_timezone(VALUE));
