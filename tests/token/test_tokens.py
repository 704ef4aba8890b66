"""set_context_from_token() as an attacker would try it: every token here is made by PyJWT or by
hand from pyca/cryptography keys, never by the verifier under test."""

import base64
import hashlib
import hmac
import json
import random
import time

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization

from conftest import ACTOR, AUDIENCE, ISSUER, TENANT_A, TENANT_B, Keys, admin, connect, reload_settings


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header, claims, signature=b""):
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


def claims(**overrides):
    now = int(time.time())
    result = {"iss": ISSUER, "aud": AUDIENCE, "sub": ACTOR, "tenant_id": TENANT_A, "exp": now + 300}
    result.update(overrides)
    return result


def refused(conn, token, sqlstate="28000", fragment=None):
    """The token is refused with `sqlstate`; returns the message."""
    with pytest.raises(psycopg.Error) as caught:
        with conn.transaction():
            conn.execute("SELECT safeguard.set_context_from_token(%s)", (token,))
    assert caught.value.sqlstate == sqlstate, (caught.value.sqlstate, str(caught.value))
    if fragment:
        assert fragment in str(caught.value), str(caught.value)
    return str(caught.value)


def visible(conn, token):
    """The tenant and the notes a transaction sees after taking its context from `token`."""
    with conn.transaction():
        conn.execute("SELECT safeguard.set_context_from_token(%s)", (token,))
        tenant = conn.execute("SELECT safeguard.current_tenant()::text").fetchone()[0]
        notes = [row[0] for row in conn.execute("SELECT body FROM notes ORDER BY id")]
    return tenant, notes


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_a_valid_token_sets_the_context(keys, alg):
    with connect("sg_tok_app") as conn:
        assert visible(conn, keys.token(alg)) == (TENANT_A, ["a1", "a2"])
        assert visible(conn, keys.token(alg, tenant_id=TENANT_B)) == (TENANT_B, ["b1"])
        with conn.transaction():
            token = keys.token(alg, jti="login-42", act={"sub": "00000000-0000-4000-8000-0000000000f1"})
            conn.execute("SELECT safeguard.set_context_from_token(%s, 'req-7')", (token,))
            row = conn.execute(
                "SELECT safeguard.current_actor()::text, safeguard.current_impersonator()::text,"
                " safeguard.current_request_id(), t.token_id, t.subject"
                " FROM safeguard._verified_context_of_transaction() t").fetchone()
            assert row == (ACTOR, "00000000-0000-4000-8000-0000000000f1", "req-7", "login-42", ACTOR)
        # The context ends with the transaction, as set_context()'s does.
        assert conn.execute("SELECT safeguard.current_tenant()").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 0


def test_forged_and_truncated_signatures(keys):
    token = keys.token()
    header, payload, signature = token.split(".")
    with connect("sg_tok_app") as conn:
        raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
        raw[5] ^= 1
        refused(conn, f"{header}.{payload}.{b64(bytes(raw))}", fragment="signature does not verify")
        refused(conn, f"{header}.{payload}.{signature[:40]}")
        refused(conn, f"{header}.{payload}.", fragment="signature does not verify")
        # Another tenant's claims under a valid header and signature.
        other = b64(json.dumps(claims(tenant_id=TENANT_B)).encode())
        refused(conn, f"{header}.{other}.{signature}", fragment="signature does not verify")
        # A signature made by another key of the same type, presented under the real kid.
        stranger = Keys("stranger").token(kid=keys.kids["EdDSA"])
        refused(conn, stranger, fragment="signature does not verify")


def test_alg_none_and_hmac_with_the_public_key(keys):
    with connect("sg_tok_app") as conn:
        for alg in ("none", "None", "NONE"):
            refused(conn, unsigned({"alg": alg, "typ": "JWT"}, claims()), fragment="is not accepted")
        refused(conn, unsigned({"typ": "JWT"}, claims()), fragment="malformed header")
        # Algorithm confusion: HS256 with the verification key's public bytes as the secret.
        for key in (keys.rsa, keys.ed25519, keys.p256):
            public_pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            for secret in (public_pem, public_pem.strip()):
                header = {"alg": "HS256", "typ": "JWT", "kid": keys.kids["RS256"]}
                signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
                mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
                refused(conn, f"{signing_input}.{b64(mac)}", fragment='"HS256" is not accepted')
        # An algorithm switched to another allowed one under the same kid: the key decides.
        token = keys.token("EdDSA")
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        header["alg"] = "ES256"
        refused(conn, ".".join([b64(json.dumps(header).encode())] + token.split(".")[1:]), fragment="no key")
        # crit extensions are not understood, so refused.
        refused(conn, keys.token(headers={"crit": ["exp"]}), fragment="critical")


def test_unknown_kid_and_rotation(keys):
    with connect("sg_tok_app") as conn:
        refused(conn, keys.token(kid="no-such-key"), fragment="no key")
        # Without a kid: accepted only when one key fits the algorithm.
        token = keys.token()
        header = {"alg": "EdDSA", "typ": "JWT"}
        import jwt as pyjwt
        no_kid = pyjwt.encode(claims(), keys.ed25519, algorithm="EdDSA", headers=header)
        assert visible(conn, no_kid)[0] == TENANT_A
        assert visible(conn, token)[0] == TENANT_A
    # The identity provider rotates: the new key set replaces the file, and a reload makes the
    # server read it. Until the reload, the old set is used (and tokens verified before stay
    # remembered); after it, old tokens are refused and new ones accepted.
    new_keys = Keys("2027")
    try:
        with connect("sg_tok_app") as conn:
            old_token = keys.token()
            assert visible(conn, old_token)[0] == TENANT_A
            new_keys.write()
            assert visible(conn, old_token)[0] == TENANT_A
            reload_settings()
            conn.execute("SELECT 1")  # the backend reads the reload before its next statement
            refused(conn, old_token, fragment="no key")
            refused(conn, keys.token(), fragment="no key")
            assert visible(conn, new_keys.token())[0] == TENANT_A
    finally:
        keys.write()
        reload_settings()


def test_time_issuer_and_audience(keys):
    now = int(time.time())
    with connect("sg_tok_app") as conn:
        refused(conn, keys.token(exp=now - 1), fragment="expired")
        refused(conn, keys.token(exp=None), fragment='"exp" is missing')
        refused(conn, keys.token(exp="tomorrow"), fragment='"exp" is malformed')
        refused(conn, keys.token(nbf=now + 120), fragment="not valid yet")
        refused(conn, keys.token(iss="https://evil.test/"), fragment="wrong issuer")
        refused(conn, keys.token(iss=None), fragment="wrong issuer")
        refused(conn, keys.token(aud="other-api"), fragment="wrong audience")
        refused(conn, keys.token(aud=None), fragment="wrong audience")
        assert visible(conn, keys.token(aud=["other-api", AUDIENCE]))[0] == TENANT_A
        # The leeway tolerates a small clock difference.
        reload_settings(jwt_leeway="60")
        try:
            conn.execute("SELECT 1")
            assert visible(conn, keys.token(exp=now - 10, nbf=now + 10))[0] == TENANT_A
        finally:
            reload_settings(jwt_leeway="0")


def test_replay_after_expiry(keys):
    token = keys.token(exp=int(time.time()) + 2)
    with connect("sg_tok_app") as conn:
        assert visible(conn, token)[0] == TENANT_A
        time.sleep(2.5)
        # Remembered by this backend, and still refused: expiry is checked on every use.
        refused(conn, token, fragment="expired")
    with connect("sg_tok_app") as conn:
        refused(conn, token, fragment="expired")


def test_claims_must_be_well_formed(keys):
    with connect("sg_tok_app") as conn:
        refused(conn, keys.token(tenant_id="clinic-a"), fragment='claim "tenant_id" is malformed')
        refused(conn, keys.token(tenant_id=42), fragment='claim "tenant_id" is malformed')
        refused(conn, keys.token(tenant_id=None), fragment='claim "tenant_id" is missing')
        refused(conn, keys.token(sub="auth0|12345"), fragment='claim "sub" is malformed')
        # The claim names are settings.
        reload_settings(jwt_tenant_claim="org.id")
        try:
            conn.execute("SELECT 1")
            assert visible(conn, keys.token(tenant_id=None, org={"id": TENANT_B}))[0] == TENANT_B
            refused(conn, keys.token(), fragment='claim "org.id" is missing')
        finally:
            admin("ALTER SYSTEM RESET safeguard.jwt_tenant_claim")
            reload_settings()


def test_oversized_and_malformed_tokens(keys):
    with connect("sg_tok_app") as conn:
        refused(conn, keys.token(padding="x" * 20000), fragment="longer than")
        for token in ("", "abc", "a.b", "a.b.c.d", "....", "eyJ.eyJ.eyJ", "%%%.%%%.%%%",
                      b64(b"[1,2]") + "." + b64(b"{}") + ".", b64(b'{"alg":"EdDSA"') + ".e30.",
                      "\u00e9\u00e9.\u00e9\u00e9.\u00e9"):
            refused(conn, token)
        refused(conn, None, fragment="NULL")


def test_a_required_role_has_no_other_way(keys):
    with connect("sg_tok_app") as conn:
        refused(conn, "x")  # the token path itself works for it
        for statement, sqlstate in (
            (f"SELECT safeguard.set_context('{TENANT_B}')", "42501"),
            (f"SELECT set_config('safeguard.tenant_id', '{TENANT_B}', true)", "42501"),
            (f"SET LOCAL safeguard.tenant_id = '{TENANT_B}'", "42501"),
            (f"SET safeguard.actor_id = '{ACTOR}'", "42501"),
        ):
            with pytest.raises(psycopg.Error) as caught:
                with conn.transaction():
                    conn.execute(statement)
            assert caught.value.sqlstate == sqlstate, (statement, str(caught.value))
        # A token for tenant A, then an attempt to switch to B inside the transaction.
        with pytest.raises(psycopg.Error) as caught:
            with conn.transaction():
                conn.execute("SELECT safeguard.set_context_from_token(%s)", (keys.token(),))
                conn.execute(f"SELECT safeguard.set_context('{TENANT_B}')")
        assert caught.value.sqlstate == "42501"
        assert "verified token" in str(caught.value)
    # The adopted application setting: written by the application itself, it is refused for the
    # required role (42501) and still works for a role that is not required.
    reload_settings(tenant_setting="app.current_tenant_id")
    try:
        with connect("sg_tok_app") as conn:
            with pytest.raises(psycopg.Error) as caught:
                with conn.transaction():
                    conn.execute(f"SELECT set_config('app.current_tenant_id', '{TENANT_B}', true)")
                    conn.execute("SELECT count(*) FROM notes").fetchone()
            assert caught.value.sqlstate == "42501", str(caught.value)
            # Through a token, the adopted setting is written by the extension and read back.
            assert visible(conn, keys.token(tenant_id=TENANT_B)) == (TENANT_B, ["b1"])
        with connect("sg_tok_legacy") as conn:
            with conn.transaction():
                conn.execute(f"SELECT set_config('app.current_tenant_id', '{TENANT_B}', true)")
                assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 1
    finally:
        admin("ALTER SYSTEM RESET safeguard.tenant_setting")
        reload_settings()


def test_the_requirement_follows_the_session_and_the_role(keys):
    """A superuser's session that SET ROLEs to a role not required keeps set_context(); one that
    SET ROLEs to the required role is refused; a required session stays required inside a
    SECURITY DEFINER function owned by a superuser."""
    admin("CREATE OR REPLACE FUNCTION public.definer_sets_context(t uuid) RETURNS void"
          " LANGUAGE sql SECURITY DEFINER AS $$ SELECT safeguard.set_context(t) $$",
          "GRANT EXECUTE ON FUNCTION public.definer_sets_context(uuid) TO sg_tok_app")
    with connect() as conn:
        conn.execute("SET ROLE sg_tok_legacy")
        conn.execute(f"SELECT safeguard.set_context('{TENANT_B}')")
        conn.execute("RESET ROLE")
        conn.execute("SET ROLE sg_tok_app")
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(f"SELECT safeguard.set_context('{TENANT_B}')")
        assert caught.value.sqlstate == "42501"
    with connect("sg_tok_app") as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(f"SELECT public.definer_sets_context('{TENANT_B}')")
        assert caught.value.sqlstate == "42501", str(caught.value)


def test_roles_not_required_keep_set_context(keys):
    with connect("sg_tok_legacy") as conn:
        with conn.transaction():
            conn.execute(f"SELECT safeguard.set_context('{TENANT_B}')")
            assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 1
        assert visible(conn, keys.token())[0] == TENANT_A
    # Membership carries the requirement; lifting it restores set_context().
    admin("GRANT sg_tok_app TO sg_tok_legacy")
    try:
        with connect("sg_tok_legacy") as conn:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(f"SELECT safeguard.set_context('{TENANT_B}')")
            assert caught.value.sqlstate == "42501"
    finally:
        admin("REVOKE sg_tok_app FROM sg_tok_legacy")
    # A requirement made or lifted while a session is open applies to its next context.
    with connect("sg_tok_legacy") as conn:
        conn.execute(f"SELECT safeguard.set_context('{TENANT_B}')")
        admin("SELECT safeguard.require_verified_context('sg_tok_legacy')")
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(f"SELECT safeguard.set_context('{TENANT_B}')")
        assert caught.value.sqlstate == "42501"
        admin("SELECT safeguard.require_verified_context('sg_tok_legacy', false)")
        conn.execute(f"SELECT safeguard.set_context('{TENANT_B}')")
    with connect() as conn:
        rows = conn.execute("SELECT role_name::text, members FROM safeguard.verified_context_required").fetchall()
        assert rows == [("sg_tok_app", [])]
        conn.execute("SELECT safeguard.require_verified_context('sg_tok_app')")  # idempotent
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT safeguard.require_verified_context(CURRENT_USER::regrole)")
        assert caught.value.sqlstate == "22023"  # a superuser
    with connect("sg_tok_legacy") as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT safeguard.require_verified_context('sg_tok_legacy')")
        assert caught.value.sqlstate == "42501"


def test_not_configured(keys):
    admin("ALTER SYSTEM SET safeguard.jwt_audience = ''")
    reload_settings()
    try:
        with connect("sg_tok_app") as conn:
            refused(conn, keys.token(), sqlstate="55000", fragment="not configured")
    finally:
        reload_settings(jwt_audience=AUDIENCE)


def test_generated_tokens_never_crash(keys):
    """10^5 tokens mutated from valid ones (bytes flipped, parts cut, swapped, re-encoded,
    random headers): every one is refused with 28000, none crashes the backend, none is
    accepted."""
    rng = random.Random(20261201)
    seeds = [keys.token(alg) for alg in ("EdDSA", "ES256", "RS256")]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %\"{}"

    def mutate(token):
        choice = rng.randrange(7)
        parts = token.split(".")
        if choice == 0:  # a flipped character
            i = rng.randrange(len(token))
            return token[:i] + rng.choice(alphabet.replace(token[i], "")) + token[i + 1:]
        if choice == 1:  # cut anywhere
            return token[: rng.randrange(len(token))]
        if choice == 2:  # parts of different tokens
            other = rng.choice(seeds).split(".")
            i = rng.randrange(3)
            parts[i] = other[i] if other[i] != parts[i] else parts[i][::-1]
            return ".".join(parts)
        if choice == 3:  # a random header
            header = {rng.choice(["alg", "kid", "typ", "crit", "x"]): rng.choice(
                ["none", "HS256", "EdDSA", "ES256", "RS256", 1, None, [], {}, "ed-2026", ""]) for _ in range(3)}
            return ".".join([b64(json.dumps(header).encode())] + parts[1:])
        if choice == 4:  # random bytes in a part
            i = rng.randrange(3)
            parts[i] = b64(rng.randbytes(rng.randrange(0, 120)))
            return ".".join(parts)
        if choice == 5:  # extra or missing dots
            return rng.choice([token + ".", "." + token, token.replace(".", "", 1), token + "." + parts[2]])
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))

    tokens = [mutate(rng.choice(seeds)) for _ in range(100_000)]
    tokens = [t for t in tokens if t not in seeds]
    with connect() as conn:
        conn.execute("CREATE TEMP TABLE fuzz (token text)")
        with conn.cursor().copy("COPY fuzz (token) FROM STDIN") as copy:
            for token in tokens:
                copy.write_row((token,))
        conn.execute("CREATE TEMP TABLE outcomes (sqlstate text)")
        conn.execute("""
            DO $$
            DECLARE t text;
            BEGIN
                FOR t IN SELECT token FROM fuzz LOOP
                    BEGIN
                        PERFORM safeguard.set_context_from_token(t);
                        INSERT INTO outcomes VALUES ('accepted');
                    EXCEPTION WHEN OTHERS THEN
                        INSERT INTO outcomes VALUES (SQLSTATE);
                    END;
                END LOOP;
            END $$""")
        counts = dict(conn.execute("SELECT sqlstate, count(*) FROM outcomes GROUP BY 1").fetchall())
    assert sum(counts.values()) == len(tokens) >= 99_000
    assert counts == {"28000": len(tokens)}, counts


def test_the_audit_log_records_the_token(keys):
    """Entries written under a token's context carry its jti and sub, sealed into the hash
    chain: an edit of them is reported. A context set afterwards by set_context() (a role not
    required to use tokens) no longer carries the token. Going back to 0.1.0, whose log has no
    such columns, is refused while entries hold them."""
    admin("DROP TABLE IF EXISTS prescriptions",
          "CREATE TABLE prescriptions (id int PRIMARY KEY, tenant_id uuid NOT NULL, drug text)",
          "SELECT safeguard.isolate('prescriptions')",
          "SELECT safeguard.enable_audit('prescriptions')",
          "GRANT SELECT, INSERT, UPDATE ON prescriptions TO sg_tok_app, sg_tok_legacy")
    with connect("sg_tok_app") as conn:
        with conn.transaction():
            conn.execute("SELECT safeguard.set_context_from_token(%s, 'req-audit')", (keys.token(jti="login-77"),))
            conn.execute(f"INSERT INTO prescriptions VALUES (1, '{TENANT_A}', 'amoxicillin'), (2, '{TENANT_A}', 'ibuprofen')")
            conn.execute("UPDATE prescriptions SET drug = 'Amoxicillin' WHERE id = 1")
    with connect("sg_tok_legacy") as conn:
        with conn.transaction():
            conn.execute("SELECT safeguard.set_context_from_token(%s)", (keys.token(jti="login-78"),))
            conn.execute(f"SELECT safeguard.set_context('{TENANT_A}')")
            conn.execute(f"INSERT INTO prescriptions VALUES (3, '{TENANT_A}', 'metformin')")
    with connect() as conn:
        rows = conn.execute("SELECT operation, record_id->>'id', token_id, token_subject, request_id"
                            " FROM safeguard.audit_log WHERE table_name = 'prescriptions' ORDER BY id").fetchall()
        assert rows == [("INSERT", "1", "login-77", ACTOR, "req-audit"), ("INSERT", "2", "login-77", ACTOR, "req-audit"),
                        ("UPDATE", "1", "login-77", ACTOR, "req-audit"), ("INSERT", "3", None, None, None)], rows
        assert conn.execute("SELECT safeguard.audit_seal() > 0").fetchone()[0]
        assert conn.execute("SELECT ok FROM safeguard.audit_verify()").fetchone()[0]
        conn.execute("ALTER TABLE safeguard.audit_log DISABLE TRIGGER sg_audit_guard")
        try:
            conn.execute("UPDATE safeguard.audit_log SET token_subject = 'someone else' WHERE token_id = 'login-77'"
                         " AND operation = 'UPDATE'")
            ok, detail = conn.execute("SELECT ok, detail FROM safeguard.audit_verify()").fetchone()
            assert not ok and "modified" in detail, detail
            conn.execute(f"UPDATE safeguard.audit_log SET token_subject = '{ACTOR}' WHERE token_id = 'login-77'")
        finally:
            conn.execute("ALTER TABLE safeguard.audit_log ENABLE ALWAYS TRIGGER sg_audit_guard")
        assert conn.execute("SELECT ok FROM safeguard.audit_verify()").fetchone()[0]
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("ALTER EXTENSION pg_safeguard UPDATE TO '0.1.0'")
        assert caught.value.sqlstate == "55000" and "token" in str(caught.value), str(caught.value)
