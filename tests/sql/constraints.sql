-- Data-integrity validators and domains.
\set SHOW_CONTEXT never
SET search_path = public;

-- Published and hand-checked vectors, valid then invalid.
SELECT v, safeguard.is_valid_npi(v) FROM unnest(ARRAY['1234567893', '1245319599', '1234567890', '123456789',
       '3234567893', '12345678a3', '']) v;
SELECT v, safeguard.is_valid_dea(v) FROM unnest(ARRAY['AP5836727', 'BJ1234563', 'AB4523767', 'ap5836727',
       'AP583672']) v;
-- Registrants under a business name and address carry 9 as the second character; any other
-- digit there, a 9 in first place, or a wrong check digit stays invalid.
SELECT v, safeguard.is_valid_dea(v) FROM unnest(ARRAY['F91234563', 'A95836727', 'F91234564', 'A15836727',
       'A05836727', '9P5836727', 'F9123456']) v;
SELECT v, safeguard.is_valid_e164(v) FROM unnest(ARRAY['+14155552671', '+442071838750', '14155552671',
       '+04155552671', '+1234567', '+1234567890123456', '+1 415 555 2671']) v;
SELECT v, safeguard.is_valid_email(v) FROM unnest(ARRAY['ana.lima@clinic.example', 'first+tag@sub.domain.org',
       'plainaddress', 'a@b', 'a b@c.com', 'a@b..com', 'a@@b.com']) v;
SELECT v, safeguard.is_valid_us_state(v) FROM unnest(ARRAY['CA', 'DC', 'PR', 'GU', 'ca', 'XX']) v;
SELECT v, safeguard.is_valid_timezone(v) FROM unnest(ARRAY['America/New_York', 'UTC', 'Europe/Lisbon',
       'america/new_york', 'Mars/Olympus_Mons', '']) v;
-- NULL in, NULL out (STRICT): a NULL column passes a CHECK; NOT NULL is a separate rule.
SELECT safeguard.is_valid_npi(NULL) IS NULL AS strict_null;
-- Every single-digit change of a valid NPI is caught.
SELECT count(*) AS caught, count(*) FILTER (WHERE safeguard.is_valid_npi(changed)) AS missed
  FROM (SELECT overlay('1234567893' placing d::text from p for 1) AS changed
          FROM generate_series(1, 10) p, generate_series(0, 9) d
         WHERE substr('1234567893', p, 1) <> d::text) s;
-- Random strings never crash a validator.
SELECT count(*) AS random_inputs,
       count(*) FILTER (WHERE safeguard.is_valid_npi(s) OR safeguard.is_valid_dea(s) OR safeguard.is_valid_e164(s)
                              OR safeguard.is_valid_email(s) OR safeguard.is_valid_us_state(s)) AS accepted
  FROM (SELECT string_agg(chr(32 + ((n * 7919 + i * 104729) % 95)), '') AS s
          FROM generate_series(1, 2000) n, generate_series(1, (n % 40) + 1) i GROUP BY n) r;
-- Volatility and parallel safety as documented.
SELECT p.proname, p.provolatile, p.proparallel, p.proisstrict, p.proleakproof
  FROM pg_proc p WHERE p.pronamespace = 'safeguard'::regnamespace AND p.proname LIKE 'is\_valid\_%' ORDER BY 1;

-- Domains refuse invalid values with 23514, naming the domain and its constraint, not the value.
CREATE TABLE providers (
    id int PRIMARY KEY,
    npi safeguard.npi,
    dea safeguard.dea_number,
    phone safeguard.e164_phone,
    email safeguard.email_address,
    state safeguard.us_state,
    tz safeguard.iana_timezone
);
INSERT INTO providers VALUES (1, '1234567893', 'AP5836727', '+14155552671', 'ana.lima@clinic.example', 'CA', 'America/Los_Angeles');
INSERT INTO providers VALUES (2, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO providers (id, dea) VALUES (4, 'F91234563');
INSERT INTO providers (id, npi) VALUES (3, '1234567890');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO providers (id, dea) VALUES (3, 'AB4523767');
INSERT INTO providers (id, phone) VALUES (3, '555-0101');
INSERT INTO providers (id, email) VALUES (3, 'not an address');
INSERT INTO providers (id, state) VALUES (3, 'Cal');
INSERT INTO providers (id, tz) VALUES (3, 'Pacific Time');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM providers;
-- A CHECK constraint with a validator works the same way on an existing text column.
CREATE TABLE contacts (id int, phone text CONSTRAINT phone_is_e164 CHECK (safeguard.is_valid_e164(phone)));
INSERT INTO contacts VALUES (1, '+442071838750');
\set VERBOSITY terse
INSERT INTO contacts VALUES (2, '020 7183 8750');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
DROP TABLE providers, contacts;
