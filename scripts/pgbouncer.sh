#!/usr/bin/env bash
# PgBouncer (Debian's, installed by setup.sh) in front of the throwaway cluster, in transaction
# mode: port PG_PORT + 100 on 127.0.0.1, four server connections per database and user shared by
# up to 1,000 clients, trust authentication for the test roles (userlist.txt). Runs as the
# cluster's OS user (PgBouncer refuses root). Each database named in start's arguments also gets
# an alias NAME_single with one server connection, so a test knows that two clients in a row
# share it. Usage: pgbouncer.sh start [DATABASE...] | stop
source "$(dirname "$0")/common.sh"
dir=$STATE_DIR/pgbouncer
pidfile=$dir/pgbouncer.pid
running() { [ -f "$pidfile" ] && as_run_user kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
start)
    command -v pgbouncer >/dev/null || die "pgbouncer not installed: run scripts/setup.sh"
    running && die "PgBouncer already runs (pid $(cat "$pidfile")): scripts/pgbouncer.sh stop first"
    shift
    make_run_user_dir "$dir"
    # The roles the client tests log in as (trust: the file only names them).
    printf '"%s" ""\n' "$RUN_USER" sg_py_app sg_py_owner sg_py_reader sg_node_app \
        | as_run_user tee "$dir/userlist.txt" >/dev/null
    as_run_user tee "$dir/pgbouncer.ini" >/dev/null <<INI
[databases]
* = host=$SOCKET_DIR port=$PG_PORT
$(for db in "$@"; do echo "${db}_single = host=$SOCKET_DIR port=$PG_PORT dbname=$db pool_size=1"; done)

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 1000
logfile = $dir/pgbouncer.log
pidfile = $pidfile
INI
    say "starting PgBouncer $(pgbouncer --version | head -1 | cut -d' ' -f2) on 127.0.0.1:$BOUNCER_PORT (transaction mode)"
    as_run_user pgbouncer -d -q "$dir/pgbouncer.ini" || die "PgBouncer did not start: see $dir/pgbouncer.log"
    for _ in $(seq 50); do
        "${PSQL[@]}" -h 127.0.0.1 -p "$BOUNCER_PORT" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1 && exit 0
        sleep 0.1
    done
    die "PgBouncer does not answer on port $BOUNCER_PORT: see $dir/pgbouncer.log"
    ;;
stop)
    if running; then
        as_run_user kill "$(cat "$pidfile")"
        for _ in $(seq 50); do running || exit 0; sleep 0.1; done
        die "PgBouncer did not stop"
    fi
    ;;
*)
    die "usage: $0 start|stop"
    ;;
esac
