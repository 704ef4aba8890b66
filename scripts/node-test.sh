#!/usr/bin/env bash
# node-postgres (npm pg, pinned in tests/node/package-lock.json, installed with npm ci under
# target/) against the running throwaway cluster: tests/node/smoke.js, directly over the socket
# and again through PgBouncer in transaction mode.
source "$(dirname "$0")/common.sh"
say "node-postgres smoke test (tests/node)"
command -v npm >/dev/null || die "npm not found: run scripts/setup.sh"
modules=$ROOT/target/node-client
if ! cmp -s "$ROOT/tests/node/package-lock.json" "$modules/package-lock.json" 2>/dev/null; then
    rm -rf "$modules" && mkdir -p "$modules"
    cp "$ROOT/tests/node/package.json" "$ROOT/tests/node/package-lock.json" "$modules/"
    (cd "$modules" && npm ci --silent --no-audit --no-fund)
fi
db=safeguard_node
fresh_database "$db"
"${PSQL[@]}" -q -d "$db" -f "$ROOT/tests/node/fixture.sql" >/dev/null
"$ROOT/scripts/pgbouncer.sh" stop
"$ROOT/scripts/pgbouncer.sh" start
trap '"$ROOT/scripts/pgbouncer.sh" stop' EXIT
export SAFEGUARD_NODE_DB=$db NODE_PATH=$modules/node_modules
node "$ROOT/tests/node/smoke.js" direct "$SOCKET_DIR" "$PG_PORT"
node "$ROOT/tests/node/smoke.js" pgbouncer 127.0.0.1 "$BOUNCER_PORT"
