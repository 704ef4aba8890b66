#!/usr/bin/env bash
# pg_safeguard on a Citus cluster: a coordinator and two workers made afresh on this major's
# installed PostgreSQL, tests/citus/*.sql run on the coordinator as psql scripts (each compared
# with tests/citus/expected/), then the nodes are stopped and removed.
#
# Citus is in no package registry this project can reach, so the project cannot install it:
# where it is not installed in this major's PostgreSQL, this prints one line saying so and
# passes. (docs/citus.md: how it was built and installed by hand on the development machine.)
source "$(dirname "$0")/common.sh"
pkglibdir=$("$PG_BINDIR/pg_config" --pkglibdir)
sharedir=$("$PG_BINDIR/pg_config" --sharedir)
if [ ! -f "$pkglibdir/citus.so" ] || [ ! -f "$sharedir/extension/citus.control" ]; then
    echo "citus: the Citus layer was NOT run: Citus is not installed in PostgreSQL $PG_MAJOR ($pkglibdir); it cannot be installed from a package registry, see docs/citus.md"
    exit 0
fi
say "pg_safeguard on Citus $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$sharedir/extension/citus.control"), PostgreSQL $PG_MAJOR: a coordinator and two workers"

NODES_DIR=$STATE_DIR-citus
NODE_SOCKET=$NODES_DIR/run
NODES=(coordinator worker1 worker2)
declare -A PORT=([coordinator]=$((PG_PORT + 300)) [worker1]=$((PG_PORT + 310)) [worker2]=$((PG_PORT + 320)))
DB=clinic

node_ctl() { local node=$1; shift; as_run_user "$PG_BINDIR/pg_ctl" -D "$NODES_DIR/$node" "$@"; }
node_psql() { local node=$1; shift; "$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 -h "$NODE_SOCKET" -p "${PORT[$node]}" -U "$RUN_USER" "$@"; }
cleanup() {
    local node
    for node in "${NODES[@]}"; do node_ctl "$node" -m immediate -w stop >/dev/null 2>&1 || true; done
    rm -rf "$NODES_DIR"
}
cleanup
# CITUS_KEEP=1 leaves the nodes running after the tests, to look at by hand (psql -h $NODE_SOCKET).
if [ "${CITUS_KEEP:-0}" = 1 ]; then
    trap 'echo "citus: nodes left running: psql -h $NODE_SOCKET -p ${PORT[coordinator]} -U $RUN_USER $DB (workers ${PORT[worker1]}, ${PORT[worker2]})"' EXIT
else
    trap cleanup EXIT
fi

make_run_user_dir "$NODES_DIR"
make_run_user_dir "$NODE_SOCKET"
# One master key for every node: encrypted values are read wherever a query runs.
make_master_key "$NODES_DIR/master.key"
# The next master key, for the test of a master-key rotation on every node (rewrap_keys).
make_master_key "$NODES_DIR/master-next.key"
for node in "${NODES[@]}"; do
    as_run_user "$PG_BINDIR/initdb" -D "$NODES_DIR/$node" --username="$RUN_USER" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    as_run_user tee -a "$NODES_DIR/$node/postgresql.conf" >/dev/null <<CONF
shared_preload_libraries = 'citus'
safeguard.master_key_file = '$NODES_DIR/master.key'
max_connections = 60
CONF
    node_ctl "$node" -l "$NODES_DIR/$node.log" -w -t 60 \
        -o "-p ${PORT[$node]} -k $NODE_SOCKET -c listen_addresses=''" start >/dev/null \
        || { tail -20 "$NODES_DIR/$node.log" >&2; die "the Citus $node did not start"; }
    node_psql "$node" -q -d postgres -c "CREATE DATABASE $DB"
    node_psql "$node" -q -d "$DB" -c "SET client_min_messages = warning" -c "CREATE EXTENSION citus"
done
node_psql coordinator -q -d "$DB" \
    -c "SELECT citus_set_coordinator_host('$NODE_SOCKET', ${PORT[coordinator]})" \
    -c "SELECT citus_add_node('$NODE_SOCKET', ${PORT[worker1]})" \
    -c "SELECT citus_add_node('$NODE_SOCKET', ${PORT[worker2]})" >/dev/null

# Tokens for tests/citus/token.sql, signed by PyJWT (the venv of the token tests).
venv=$("$ROOT/scripts/token-venv.sh")
"$venv/bin/python" "$ROOT/tests/citus/tokens.py" "$NODES_DIR" > "$NODES_DIR/tokens.psql"

outdir="$ROOT/target/citus-pg$PG_MAJOR"
rm -rf "$outdir" && mkdir -p "$outdir"
failed=0
# basics.sql first (it creates the extension, as a DBA would), then the others in name order.
tests=("$ROOT/tests/citus/basics.sql")
for test in "$ROOT"/tests/citus/*.sql; do
    [ "$(basename "$test")" = basics.sql ] || tests+=("$test")
done
for test in "${tests[@]}"; do
    name=$(basename "$test" .sql)
    # As pg_regress runs a test: every statement echoed, errors printed and the script going on.
    # (:node_socket and :<node>_port let a test connect to a node itself; :master_key and
    # :next_master_key name the key files; \i :tokens sets :jwks_file and the tokens.)
    "$PG_BINDIR/psql" -X -a -q -v ON_ERROR_STOP=0 -h "$NODE_SOCKET" -p "${PORT[coordinator]}" \
        -v node_socket="$NODE_SOCKET" -v coordinator_port="${PORT[coordinator]}" \
        -v worker1_port="${PORT[worker1]}" -v worker2_port="${PORT[worker2]}" \
        -v master_key="$NODES_DIR/master.key" -v next_master_key="$NODES_DIR/master-next.key" \
        -v tokens="$NODES_DIR/tokens.psql" \
        -U "$RUN_USER" -d "$DB" < "$test" 2>&1 |
        # A shard's name carries its id, which depends on how many shards earlier tests made.
        sed -E 's/("[a-z_]+_)1[0-9]{5}"/\1<shard>"/g' > "$outdir/$name.out" || true
    if diff -u "$ROOT/tests/citus/expected/$name.out" "$outdir/$name.out" > "$outdir/$name.diff"; then
        echo "citus: $name ... ok"
    else
        cat "$outdir/$name.diff" >&2
        echo "citus: $name ... FAILED (diff above, output in $outdir/$name.out)" >&2
        failed=1
    fi
done
[ "$failed" = 0 ] || die "the Citus layer failed"
say "pg_safeguard on Citus: every test passed"
