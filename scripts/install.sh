#!/usr/bin/env bash
# Builds pg_safeguard (release) and installs it into the machine's PostgreSQL.
source "$(dirname "$0")/common.sh"
say "building and installing pg_safeguard (release) into PostgreSQL $PG_MAJOR"
sudo_flag=()
[ "$(id -u)" = 0 ] || sudo_flag=(--sudo)
cd "$ROOT"
cargo pgrx install --release --pg-config "$PG_CONFIG" "${sudo_flag[@]}"
