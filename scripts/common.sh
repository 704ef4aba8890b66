# Shared by the scripts: paths and settings derived from pgrx.toml. Source it; do not run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# manifest SECTION KEY: the value of KEY in [SECTION] of pgrx.toml.
manifest() {
    awk -v section="[$1]" -v key="$2" '
        /^\[/ { in_section = ($0 == section); next }
        in_section && $1 == key {
            sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t]*#.*$/, ""); gsub(/"/, ""); print; exit
        }' "$ROOT/pgrx.toml"
}

PGRX_VERSION=$(manifest pgrx version)
# The majors built and tested, and the one the Makefile's targets use unless PG=N names another.
SUPPORTED_MAJORS=$(manifest postgres supported)
DEFAULT_MAJOR=$(manifest postgres test)
# PG_CONFIG=/path/to/pg_config (make install PG_CONFIG=...) names a server of one's own: its
# major and programs come from it.
CUSTOM_PG_CONFIG=${PG_CONFIG:-}
if [ -n "$CUSTOM_PG_CONFIG" ]; then
    [ -x "$CUSTOM_PG_CONFIG" ] || { printf 'error: PG_CONFIG=%s is not an executable\n' "$CUSTOM_PG_CONFIG" >&2; exit 1; }
    PG=$("$CUSTOM_PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
fi
PG_MAJOR=${PG:-$DEFAULT_MAJOR}
case " $SUPPORTED_MAJORS " in
*" $PG_MAJOR "*) ;;
*) printf 'error: PostgreSQL %s is not supported (pgrx.toml: %s)\n' "$PG_MAJOR" "$SUPPORTED_MAJORS" >&2; exit 1 ;;
esac

# pg_bindir N: the programs of PostgreSQL N: Debian's for its own major, otherwise the relocatable
# build scripts/setup-postgres.sh unpacked under target/postgres/N.
pg_bindir() {
    if [ "$1" = "$DEFAULT_MAJOR" ]; then
        echo "/usr/lib/postgresql/$1/bin"
    else
        local bindir
        bindir=$(ls -d "$ROOT"/target/postgres/"$1"/*/pginstall/bin 2>/dev/null | head -1)
        echo "${bindir:-$ROOT/target/postgres/$1/bin}"
    fi
}
if [ -n "$CUSTOM_PG_CONFIG" ]; then
    PG_BINDIR=$("$CUSTOM_PG_CONFIG" --bindir)
    PG_CONFIG=$CUSTOM_PG_CONFIG
else
    PG_BINDIR=$(pg_bindir "$PG_MAJOR")
    PG_CONFIG=$PG_BINDIR/pg_config
fi
# Each major's throwaway cluster has its own port: the manifest's for the default major, the
# next ones for the others (28816 for 16, and so on).
PG_PORT=$(( $(manifest cluster port) + PG_MAJOR - DEFAULT_MAJOR ))
# PgBouncer in front of it during the client tests (scripts/pgbouncer.sh): 100 ports further.
BOUNCER_PORT=$(( PG_PORT + 100 ))

if [ "$(id -u)" = 0 ]; then
    RUN_USER=$(manifest cluster os_user)
else
    RUN_USER=$(id -un)
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# as_root CMD...: run CMD as root (directly when root, else through sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# as_run_user CMD...: run CMD as the OS user that owns the throwaway clusters.
as_run_user() {
    if [ "$(id -u)" = 0 ]; then sudo -u "$RUN_USER" -- "$@"; else "$@"; fi
}

# The folder holding the throwaway clusters: target/cluster when the server's OS user can reach
# it; when the checkout sits where that user cannot enter (under /root, say), a folder of /tmp
# named after the checkout, so two checkouts never share one.
state_dir() {
    local preferred="$ROOT/target/cluster"
    [ "$PG_MAJOR" = "$DEFAULT_MAJOR" ] || preferred="$ROOT/target/cluster-pg$PG_MAJOR"
    mkdir -p "$ROOT/target"
    if as_run_user test -x "$ROOT/target" 2>/dev/null; then
        echo "$preferred"
    else
        echo "/tmp/pg_safeguard-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)-pg$PG_MAJOR"
    fi
}

STATE_DIR=$(state_dir)
PGDATA_DIR=$STATE_DIR/data
SOCKET_DIR=$STATE_DIR/run
SERVER_LOG=$STATE_DIR/server.log
PGRX_TEST_DIR=$STATE_DIR/pgrx-test
# The throwaway clusters' master keys for encrypted columns (random, created on first use, mode
# 0600, owned by the server's OS user). Throwaway keys for throwaway data: never reuse them.
MASTER_KEY_FILE=$STATE_DIR/master.key
PGRX_TEST_MASTER_KEY_FILE=$STATE_DIR/pgrx-test-master.key

# Clients connect over the cluster's Unix socket as its bootstrap superuser.
export PGHOST=$SOCKET_DIR PGPORT=$PG_PORT PGUSER=$RUN_USER PGDATABASE=postgres
PSQL=("$PG_BINDIR/psql" -X -v ON_ERROR_STOP=1)

# fresh_database NAME...: each database dropped (its sessions closed) and made again, empty.
fresh_database() {
    local db
    for db in "$@"; do
        "${PSQL[@]}" -q -c "SET client_min_messages = warning" \
            -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
    done
}

# make_run_user_dir DIR: create DIR owned by the server's OS user.
make_run_user_dir() {
    mkdir -p "$1"
    if [ "$(id -u)" = 0 ]; then chown "$RUN_USER" "$1"; fi
}

# make_master_key FILE: a random 256-bit key in hex, readable only by the server's OS user.
make_master_key() {
    [ -f "$1" ] && return 0
    as_run_user sh -c 'umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d " \n" > "$1"' sh "$1"
}

# How a person connects to the demo database.
CONNECT_HINT="psql -h $SOCKET_DIR -p $PG_PORT -U $RUN_USER safeguard_demo"
