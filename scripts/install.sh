#!/usr/bin/env bash
# Builds pg_safeguard (release) and installs it into the machine's PostgreSQL.
source "$(dirname "$0")/common.sh"
say "building and installing pg_safeguard (release) into PostgreSQL $PG_MAJOR"
sudo_flag=()
[ "$(id -u)" = 0 ] || sudo_flag=(--sudo)
cd "$ROOT"
cargo pgrx install --release --pg-config "$PG_CONFIG" "${sudo_flag[@]}"

# The complete install scripts of earlier releases (sql/pg_safeguard--X.Y.Z.sql), so that
# CREATE EXTENSION pg_safeguard VERSION 'X.Y.Z' works (the upgrade test starts there): cargo pgrx
# install copies only the upgrade scripts (pg_safeguard--A--B.sql).
extension_dir="$("$PG_CONFIG" --sharedir)/extension"
for script in "$ROOT"/sql/pg_safeguard--*.sql; do
    case "$(basename "$script")" in *--*--*) continue ;; esac
    as_root install -m 644 "$script" "$extension_dir/"
done
