#!/usr/bin/env bash
# The verified request context (set_context_from_token, require_verified_context) against the
# running throwaway cluster, with tokens signed by PyJWT / pyca cryptography (tests/token): valid
# EdDSA, ES256 and RS256 tokens; forged, truncated, alg none, HS256 signed with the public key,
# unknown kid, expired, not yet valid, wrong issuer or audience, another tenant, replay after
# expiry, oversized and malformed tokens, 10^5 generated tokens; and for a required role every
# other way of writing the context. The token settings are set for the test and reset after it.
source "$(dirname "$0")/common.sh"
say "verified request context: tokens signed by PyJWT (tests/token)"
venv=$("$ROOT/scripts/token-venv.sh")
db=safeguard_token
fresh_database "$db"
# The key sets the server reads (written by the tests, read by the server's OS user).
keys_dir="$STATE_DIR/token-keys"
make_run_user_dir "$keys_dir"
reset_settings() {
    "${PSQL[@]}" -q -c "LOAD 'pg_safeguard'" -c "ALTER SYSTEM RESET safeguard.jwt_keys_file" -c "ALTER SYSTEM RESET safeguard.jwt_issuer" \
        -c "ALTER SYSTEM RESET safeguard.jwt_audience" -c "ALTER SYSTEM RESET safeguard.jwt_leeway" \
        -c "ALTER SYSTEM RESET safeguard.jwt_algorithms" -c "ALTER SYSTEM RESET safeguard.jwt_tenant_claim" \
        -c "ALTER SYSTEM RESET safeguard.tenant_setting" -c "SELECT pg_reload_conf()" >/dev/null
}
trap reset_settings EXIT
(cd "$ROOT/tests/token" &&
    SAFEGUARD_TOKEN_DB=$db SAFEGUARD_TOKEN_KEYS_DIR=$keys_dir "$venv/bin/python" -m pytest -q -p no:cacheprovider)
