"""Keys and tokens for tests/citus/token.sql, made with PyJWT: writes jwks.json into the
directory given and prints psql variable assignments (\\set name 'value'), one per line."""

import json
import os
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

out = sys.argv[1]
key = ed25519.Ed25519PrivateKey.generate()
jwk = json.loads(jwt.algorithms.get_default_algorithms()["EdDSA"].to_jwk(key.public_key()))
jwk.update(kid="portal-1", use="sig", alg="EdDSA")
path = os.path.join(out, "jwks.json")
with open(path, "w") as f:
    json.dump({"keys": [jwk]}, f)
os.chmod(path, 0o644)
now = int(time.time())


def token(tenant, exp, jti):
    claims = {"iss": "https://id.portal.test/", "aud": "portal", "sub": "00000000-0000-4000-8000-0000000000d1",
              "tenant_id": tenant, "exp": exp, "jti": jti}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "portal-1"})


print(f"\\set jwks_file '{path}'")
print(f"\\set token_c1 '{token('00000000-0000-4000-8000-0000000000c1', now + 3600, 'login-c1')}'")
# Expired 45 s ago: within a 60 s leeway on the coordinator, past the workers' default 30 s.
print(f"\\set token_expired_on_workers '{token('00000000-0000-4000-8000-0000000000c1', now - 45, 'login-old')}'")
