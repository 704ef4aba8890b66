#!/usr/bin/env python3
"""Checks the envelope test vector of docs/encryption.md with an independent AES-GCM
implementation (OpenSSL, through Python's cryptography package): the inputs below, laid out as
the document describes, must give exactly the envelope in vector_envelope.txt, which the Rust
unit test `documented_test_vector` also reproduces with the extension's own code.

Run with no argument to check; with --print to print the envelope it computes."""
import base64
import pathlib
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
NONCE = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaab")
KEY_ID = 7
TENANT = bytes.fromhex("018f2b3c4d5e7f608192a3b4c5d6e7f8")  # 018f2b3c-4d5e-7f60-8192-a3b4c5d6e7f8
PLAINTEXT = b"Allergic to penicillin"
VERSION = 1

header = bytes([VERSION]) + KEY_ID.to_bytes(4, "big")
associated_data = header + TENANT
sealed = AESGCM(KEY).encrypt(NONCE, PLAINTEXT, associated_data)  # ciphertext || 16-byte tag
envelope = header + NONCE + sealed
text = "sgenc:" + base64.b64encode(envelope).decode()

if "--print" in sys.argv:
    print(text)
    sys.exit(0)
expected = (pathlib.Path(__file__).parent / "vector_envelope.txt").read_text().strip()
if text != expected:
    print(f"test vector mismatch:\n  computed {text}\n  expected {expected}", file=sys.stderr)
    sys.exit(1)
print("test vector: reproduced by OpenSSL's AES-GCM")
