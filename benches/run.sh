#!/usr/bin/env bash
# make bench: runs every benches/*.sql against the installed extension in the throwaway cluster,
# in a fresh database, and prints each figure as a ratio against its plain-PostgreSQL baseline
# measured in the same run (interleaved repetitions, medians), with the absolute numbers and the
# machine. Benchmarks print; they never assert.
source "$(dirname "$0")/../scripts/common.sh"

say "machine"
echo "cpu:        $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(nproc) cores)"
echo "memory:     $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
echo "kernel:     $(uname -r)"
echo "postgresql: $("${PSQL[@]}" -At -c 'SHOW server_version')"
echo "date:       $(date -u '+%Y-%m-%d %H:%M UTC')"

# Default logging: a test run that stopped half-way may have left every statement logged.
"${PSQL[@]}" -q -c "ALTER SYSTEM RESET log_statement" -c "ALTER SYSTEM RESET log_min_messages" \
    -c "SELECT pg_reload_conf()" >/dev/null
fresh_database safeguard_bench
"${PSQL[@]}" -q -d safeguard_bench -c "CREATE EXTENSION pg_safeguard"
for bench in "$ROOT"/benches/*.sql "$ROOT"/benches/*.sh; do
    case "$(basename "$bench")" in run.sh | cpu_bound.sh) continue ;; esac
    say "benchmark $(basename "${bench%.*}")"
    case "$bench" in
        *.sql) "${PSQL[@]}" -q -d safeguard_bench -f "$bench" ;;
        *.sh) "$bench" ;;
    esac
done
