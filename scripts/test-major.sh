#!/usr/bin/env bash
# The test layers of `make test` for one PostgreSQL major (PG=N; pgrx.toml's test major when
# unset). Usage: test-major.sh [--full]
#   always: the unit, property and #[pg_test] tests, then the release build installed and, with
#           every statement logged, the golden SQL tests, the demo, the pg_dump/pg_restore round
#           trip (and a restore into a new cluster), ALTER EXTENSION UPDATE from every kept
#           release, the Citus layer (where Citus is installed: scripts/citus-test.sh), and the
#           search of the server log for key bytes;
#   --full: also the connection-pool client test, the Python package's tests and example
#           application (with PgBouncer), the node-postgres smoke test, the audit and
#           maintain_count concurrency
#           tests, maintain_count on a logical replication subscriber and the
#           shared_preload_libraries set-up (scripts/test-all.sh runs them on the oldest and the
#           newest major).
source "$(dirname "$0")/common.sh"
full=false
[ "${1:-}" = --full ] && full=true
say "PostgreSQL $PG_MAJOR: $($full && echo "every test layer" || echo "the core test layers")"
cd "$ROOT"
scripts/pgrx-test.sh
scripts/install.sh
scripts/cluster.sh start
scripts/key-leak-test.sh start
scripts/regress.sh
scripts/token-test.sh
if $full; then scripts/client-test.sh; scripts/python-test.sh; scripts/node-test.sh; fi
scripts/demo.sh >/dev/null
scripts/dump-test.sh
scripts/restore-new-cluster-test.sh
scripts/upgrade-test.sh
scripts/citus-test.sh
if $full; then
    scripts/audit-concurrency-test.sh
    scripts/rules-concurrency-test.sh
    scripts/replication-test.sh
    scripts/preload-test.sh
fi
scripts/key-leak-test.sh check
say "PostgreSQL $PG_MAJOR: all layers passed"
