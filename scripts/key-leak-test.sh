#!/usr/bin/env bash
# No key bytes in the server log. `start` turns on the most talkative logging (every statement,
# debug1 messages) before the test layers run; `check`, after them, reads the master key file and
# unwraps every data key left in the cluster's databases (tests/crypto/keys.py, an independent
# implementation of the documented wrapping), then searches the log written in between for each
# key in hex (either case) and base64 (with and without padding), and restores the logging.
source "$(dirname "$0")/common.sh"
offset_file="$STATE_DIR/key-leak-test.offset"

logging() {
    "${PSQL[@]}" -q -c "ALTER SYSTEM $1 log_statement $2" -c "ALTER SYSTEM $1 log_min_messages $3" \
        -c "SELECT pg_reload_conf()" >/dev/null
}

case "${1:-}" in
start)
    say "server log: every statement and debug1 messages from here on (checked for key bytes at the end)"
    stat -c %s "$SERVER_LOG" > "$offset_file"
    logging SET "= 'all'" "= 'debug1'"
    ;;
check)
    [ -f "$offset_file" ] || die "run '$0 start' before the tests"
    say "server log: searching for master and data key bytes"
    logging RESET "" ""
    mapfile -t databases < <("${PSQL[@]}" -At -c \
        "SELECT datname FROM pg_database WHERE datallowconn AND datname NOT IN ('template0', 'template1')")
    wrapped=$(for db in "${databases[@]}"; do
        "${PSQL[@]}" -At -d "$db" -c "SELECT to_regclass('safeguard.key_store') IS NOT NULL" \
            | grep -q t || continue
        "${PSQL[@]}" -At -d "$db" -F ' ' -c \
            "SELECT id, coalesce(tenant_id::text, '-'), encode(wrapped_key, 'hex')
               FROM safeguard.key_store WHERE wrapped_key IS NOT NULL"
    done)
    mapfile -t needles < <(as_run_user cat "$MASTER_KEY_FILE" | python3 "$ROOT/tests/crypto/keys.py" <(echo "$wrapped"))
    [ "${#needles[@]}" -ge 4 ] || die "no key forms to search for"
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    tail -c +"$(( $(cat "$offset_file") + 1 ))" "$SERVER_LOG" > "$log"
    statements=$(grep -c "LOG:  statement:" "$log" || true)
    [ "$statements" -gt 1000 ] || die "the log holds only $statements statements: was log_statement = 'all' in effect?"
    for needle in "${needles[@]}"; do
        if grep -qiF -- "$needle" "$log"; then
            die "key bytes found in the server log ($SERVER_LOG)"
        fi
    done
    echo "no key bytes in $(wc -c < "$log") bytes of server log ($statements statements logged):" \
        "$(( ${#needles[@]} / 4 )) keys searched in 4 forms each"
    ;;
*)
    die "usage: $0 start|check"
    ;;
esac
