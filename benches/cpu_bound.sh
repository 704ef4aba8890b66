# Sourced by the benchmarks' CPU-bound modes (not a benchmark itself: benches/run.sh skips it).
# enter_cpu_bound: restarts the throwaway cluster with fsync = off, synchronous_commit = off and
# shared_buffers = 512MB, so that commit flushes do not hide the extension's own cost (as on a
# busy server with group commit); leave_cpu_bound puts the defaults back and restarts again, so
# that later benchmarks and tests keep default settings. Callers run leave_cpu_bound from their
# EXIT trap.
enter_cpu_bound() {
    "${PSQL[@]}" -q -c "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET synchronous_commit = off" \
        -c "ALTER SYSTEM SET shared_buffers = '512MB'" >/dev/null
    "$ROOT/scripts/cluster.sh" stop && "$ROOT/scripts/cluster.sh" start
}
leave_cpu_bound() {
    "${PSQL[@]}" -q -c "ALTER SYSTEM RESET fsync" -c "ALTER SYSTEM RESET synchronous_commit" \
        -c "ALTER SYSTEM RESET shared_buffers" >/dev/null
    "$ROOT/scripts/cluster.sh" stop && "$ROOT/scripts/cluster.sh" start
}
