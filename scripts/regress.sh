#!/usr/bin/env bash
# Golden SQL tests (tests/sql/*.sql against tests/expected/*.out) with PostgreSQL's own pg_regress,
# against the installed extension in the running throwaway cluster.
source "$(dirname "$0")/common.sh"
pg_regress="$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")/test/regress/pg_regress"
[ -x "$pg_regress" ] || die "pg_regress not found (package postgresql-server-dev-$PG_MAJOR)"

# Master key files the encryption tests point the server at (relative to the data directory).
keys_dir="$STATE_DIR/test-keys"
make_run_user_dir "$keys_dir"
as_run_user sh -c 'umask 077 && cd "$1" && echo "not a key" > not-a-key && printf "%064d" 0 > all-zero &&
    od -An -tx1 -N32 /dev/urandom | tr -d " \n" > other-master' sh "$keys_dir"
# The cluster's master key in base64, for the master key command test (tests/sql/key_command.sql).
as_run_user sh -c 'umask 077 && perl -e "print pack(q(H*), <STDIN>)" < "$1" | base64 > "$2/master.b64"' \
    sh "$MASTER_KEY_FILE" "$keys_dir"

# The master key settings the tests change with ALTER SYSTEM, back to the cluster's own (a run
# stopped half-way may have left them changed).
"${PSQL[@]}" -q -c "LOAD 'pg_safeguard'" -c "ALTER SYSTEM RESET safeguard.master_key_file" \
    -c "ALTER SYSTEM RESET safeguard.master_key_command" -c "ALTER SYSTEM RESET safeguard.master_key_command_timeout" \
    -c "SELECT pg_reload_conf()" >/dev/null

mapfile -t tests < <(cd "$ROOT/tests/sql" && ls -1 ./*.sql | sed 's|^\./||; s|\.sql$||' | sort)
say "golden SQL tests: ${tests[*]}"
outdir="$ROOT/target/regress-pg$PG_MAJOR"
rm -rf "$outdir" && mkdir -p "$outdir"
if ! "$pg_regress" --host="$SOCKET_DIR" --port="$PG_PORT" --user="$RUN_USER" \
        --bindir="$PG_BINDIR" --inputdir="$ROOT/tests" --outputdir="$outdir" \
        --dbname=safeguard_regress --load-extension=pg_safeguard "${tests[@]}"; then
    cat "$outdir/regression.diffs" >&2 || true
    die "golden SQL tests failed (diffs above, results in $outdir/results)"
fi
