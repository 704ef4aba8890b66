#!/usr/bin/env bash
# Unit, property and #[pg_test] tests: `cargo pgrx test`, whose own throwaway cluster runs as the
# unprivileged OS user (pgrx installs the debug build with sudo when --runas is given).
source "$(dirname "$0")/common.sh"
say "cargo pgrx test pg$PG_MAJOR (unit, property and in-database tests)"
make_run_user_dir "$STATE_DIR"
make_run_user_dir "$PGRX_TEST_DIR"
make_master_key "$PGRX_TEST_MASTER_KEY_FILE"
# Read by pg_test::postgresql_conf_options() in src/lib.rs.
export SAFEGUARD_TEST_MASTER_KEY_FILE=$PGRX_TEST_MASTER_KEY_FILE
cd "$ROOT"
cargo pgrx test "pg$PG_MAJOR" --runas "$RUN_USER" --pgdata "$PGRX_TEST_DIR"
