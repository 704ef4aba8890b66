"""Keys, a JWKS file and tokens for benches/token.sh, made with PyJWT / pyca cryptography.

Writes into the directory given: jwks.json (one Ed25519, one P-256, one RSA-2048 key), and
tokens.csv: alg, kind ('cached': the same token for every call; 'fresh': distinct tokens, each
verified once), token."""

import csv
import json
import os
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

out = sys.argv[1]
fresh_per_alg = int(sys.argv[2])
issuer, audience = "https://id.bench.test/", "bench-api"
keys = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
jwks = []
for alg, key in keys.items():
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    jwk.update(kid=alg.lower(), use="sig", alg=alg)
    jwks.append(jwk)
with open(os.path.join(out, "jwks.json"), "w") as f:
    json.dump({"keys": jwks}, f)
os.chmod(os.path.join(out, "jwks.json"), 0o644)
now = int(time.time())


def token(alg, n):
    claims = {"iss": issuer, "aud": audience, "sub": str(uuid.uuid4()), "exp": now + 3600, "iat": now,
              "tenant_id": f"00000000-0000-4000-8000-{n % 1000:012d}", "jti": str(uuid.uuid4())}
    return jwt.encode(claims, keys[alg], algorithm=alg, headers={"kid": alg.lower()})


with open(os.path.join(out, "tokens.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    for alg in keys:
        writer.writerow([alg, "cached", token(alg, 7)])
        for n in range(fresh_per_alg):
            writer.writerow([alg, "fresh", token(alg, n)])
