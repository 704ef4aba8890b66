#!/usr/bin/env bash
# The throwaway cluster of make run/test/bench: data under target/ (see common.sh), Unix socket
# only, its own port. Usage: cluster.sh start|stop|status|env
source "$(dirname "$0")/common.sh"

pg_ctl() { as_run_user "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" "$@"; }
running() { [ -f "$PGDATA_DIR/PG_VERSION" ] && pg_ctl status >/dev/null 2>&1; }

case "${1:-}" in
start)
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        say "creating a throwaway cluster in $PGDATA_DIR (runs as OS user $RUN_USER)"
        make_run_user_dir "$STATE_DIR"
        as_run_user "$PG_BINDIR/initdb" -D "$PGDATA_DIR" --username="$RUN_USER" --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    fi
    make_run_user_dir "$SOCKET_DIR"
    make_master_key "$MASTER_KEY_FILE"
    if ! grep -q '^safeguard.master_key_file' "$PGDATA_DIR/postgresql.conf"; then
        echo "safeguard.master_key_file = '$MASTER_KEY_FILE'" | as_run_user tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
    fi
    if ! running; then
        say "starting PostgreSQL $PG_MAJOR on port $PG_PORT (socket in $SOCKET_DIR)"
        pg_ctl -l "$SERVER_LOG" -w -t 60 \
            -o "-p $PG_PORT -k $SOCKET_DIR -c listen_addresses=''" start >/dev/null \
            || { tail -20 "$SERVER_LOG" >&2; die "PostgreSQL did not start"; }
    fi
    ;;
stop)
    if running; then
        say "stopping the throwaway cluster"
        pg_ctl -m fast -w stop >/dev/null
    fi
    ;;
status)
    if running; then echo "running: $CONNECT_HINT"; else echo "stopped"; fi
    ;;
*)
    die "usage: $0 start|stop|status"
    ;;
esac
