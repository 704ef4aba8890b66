"""Fixtures of the token tests: keys made with pyca/cryptography, a JWKS file the server reads,
the server's token settings, and a database with an isolated table and two application roles
(one required to use tokens)."""

import json
import os
import time
import uuid

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

DB = os.environ["SAFEGUARD_TOKEN_DB"]
KEYS_DIR = os.environ["SAFEGUARD_TOKEN_KEYS_DIR"]
ISSUER = "https://id.example-clinic.test/"
AUDIENCE = "clinic-api"
TENANT_A = "00000000-0000-4000-8000-00000000000a"
TENANT_B = "00000000-0000-4000-8000-00000000000b"
ACTOR = "00000000-0000-4000-8000-0000000000a1"


def connect(user=None, autocommit=True):
    conn = psycopg.connect(dbname=DB, user=user, autocommit=autocommit)
    return conn


def admin(*statements):
    with connect() as conn:
        conn.execute("LOAD 'pg_safeguard'")
        for statement in statements:
            conn.execute(statement)


def reload_settings(**settings):
    with connect() as conn:
        conn.execute("LOAD 'pg_safeguard'")  # ALTER SYSTEM knows the settings once it is loaded
        for name, value in settings.items():
            conn.execute(f"ALTER SYSTEM SET safeguard.{name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)


class Keys:
    """The identity provider's signing keys and the public JWKS the server gets."""

    def __init__(self, suffix):
        self.ed25519 = ed25519.Ed25519PrivateKey.generate()
        self.p256 = ec.generate_private_key(ec.SECP256R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kids = {"EdDSA": f"ed-{suffix}", "ES256": f"ec-{suffix}", "RS256": f"rsa-{suffix}"}

    def private(self, alg):
        return {"EdDSA": self.ed25519, "ES256": self.p256, "RS256": self.rsa}[alg]

    def jwks(self):
        keys = []
        for alg, key in (("EdDSA", self.ed25519), ("ES256", self.p256), ("RS256", self.rsa)):
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
            jwk.update(kid=self.kids[alg], use="sig", alg=alg)
            keys.append(jwk)
        return {"keys": keys}

    def write(self, name="jwks.json"):
        path = os.path.join(KEYS_DIR, name)
        with open(path, "w") as f:
            json.dump(self.jwks(), f)
        os.chmod(path, 0o644)
        return path

    def token(self, alg="EdDSA", kid=None, headers=None, **claims):
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": ACTOR, "tenant_id": TENANT_A,
                   "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"kid": kid or self.kids[alg]}
        header.update(headers or {})
        return jwt.encode(payload, self.private(alg), algorithm=alg, headers=header)


@pytest.fixture(scope="session")
def keys():
    keys = Keys("2026")
    path = keys.write()
    reload_settings(jwt_keys_file=path, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_leeway="0")
    admin(
        "SET client_min_messages = warning",
        "CREATE EXTENSION IF NOT EXISTS pg_safeguard",
        "DROP TABLE IF EXISTS notes",
        "CREATE TABLE notes (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text)",
        "SELECT safeguard.isolate('notes')",
        f"INSERT INTO notes VALUES (1, '{TENANT_A}', 'a1'), (2, '{TENANT_A}', 'a2'), (3, '{TENANT_B}', 'b1')",
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_tok_app') THEN CREATE ROLE sg_tok_app LOGIN; END IF;"
        " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_tok_legacy') THEN CREATE ROLE sg_tok_legacy LOGIN; END IF; END $$",
        "GRANT USAGE ON SCHEMA safeguard TO sg_tok_app, sg_tok_legacy",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO sg_tok_app, sg_tok_legacy",
        "SELECT safeguard.require_verified_context('sg_tok_app')",
    )
    return keys
