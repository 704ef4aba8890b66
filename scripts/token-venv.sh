#!/usr/bin/env bash
# Prints the path of the Python virtual environment with PyJWT and pyca/cryptography
# (tests/token/requirements.txt, exact versions) that the token tests and benchmark sign with,
# creating it under target/ when it is missing or its requirements changed.
source "$(dirname "$0")/common.sh"
venv=$ROOT/target/token-venv
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s "$ROOT/tests/token/requirements.txt" "$venv/requirements.txt"; then
    python3 -m venv --clear "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tests/token/requirements.txt" >&2
    cp "$ROOT/tests/token/requirements.txt" "$venv/requirements.txt"
fi
echo "$venv"
