#!/usr/bin/env python3
"""Prints the forms in which key bytes could leak into a log, one per line: for the master key
(read from standard input, as in the master key file) and for every data key listed in the file
named by the first argument (lines "id tenant-or-dash wrapped-hex", as read from
safeguard.key_store), each key in lower-case hex, upper-case hex, base64 and unpadded base64.

The data keys are unwrapped here with OpenSSL's AES-GCM (Python's cryptography package),
following the wrapping documented in docs/encryption.md: version byte 1, 12-byte nonce, 32-byte
encrypted key, 16-byte tag; associated data "pg_safeguard data key" || key id (4 bytes, big
endian) || tenant id (16 bytes, zero for the global key). A key that does not unwrap fails."""
import base64
import sys
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def parse_master(text: str) -> bytes:
    text = text.strip()
    if len(text) == 64:
        return bytes.fromhex(text)
    padded = text + "=" * (-len(text) % 4)
    key = base64.b64decode(padded, validate=True)
    if len(key) != 32:
        sys.exit("the master key file does not hold 32 bytes")
    return key


def forms(key: bytes):
    b64 = base64.b64encode(key).decode()
    return [key.hex(), key.hex().upper(), b64, b64.rstrip("=")]


master = parse_master(sys.stdin.read())
out = forms(master)
with open(sys.argv[1]) as listing:
    for line in listing:
        if not line.strip():
            continue
        key_id, tenant, wrapped_hex = line.split()
        wrapped = bytes.fromhex(wrapped_hex)
        assert wrapped[0] == 1 and len(wrapped) == 61, "unknown wrapping"
        tenant_bytes = bytes(16) if tenant == "-" else uuid.UUID(tenant).bytes
        aad = b"pg_safeguard data key" + int(key_id).to_bytes(4, "big") + tenant_bytes
        data_key = AESGCM(master).decrypt(wrapped[1:13], wrapped[13:], aad)
        out += forms(data_key)
print("\n".join(out))
