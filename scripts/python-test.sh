#!/usr/bin/env bash
# The Python package (python/, importable as pg_safeguard) against the running throwaway
# cluster: a virtual environment under target/ with the pinned test requirements
# (python/requirements-test.txt) and the package installed from its source, a fixture database
# (python/tests/python_fixture.sql), then pytest: SQLAlchemy 2 sync (psycopg 3) and asyncio
# (asyncpg), psycopg_pool and asyncpg pools, thousands of concurrent requests for random tenants,
# encrypted columns through bound parameters, the lint helper; the round trips the context costs;
# the pooled tests again through PgBouncer in transaction mode.
source "$(dirname "$0")/common.sh"
say "Python package: SQLAlchemy, psycopg and asyncpg (python/tests)"
venv=$ROOT/target/python-venv
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s "$ROOT/python/requirements-test.txt" "$venv/requirements-test.txt"; then
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/python/requirements-test.txt"
    cp "$ROOT/python/requirements-test.txt" "$venv/requirements-test.txt"
fi
# The package from the working tree, every time (it is small and has no dependencies).
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$ROOT/python"

db=safeguard_python
fresh_database "$db"
"${PSQL[@]}" -q -d "$db" -f "$ROOT/python/tests/python_fixture.sql" >/dev/null
# An empty database for the Alembic tests: the extension, and the owner may create tables.
fresh_database "${db}_alembic"
"${PSQL[@]}" -q -d "${db}_alembic" -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_safeguard" \
    -c "GRANT CREATE ON SCHEMA public TO sg_py_owner"
# PgBouncer in transaction mode in front of the cluster for tests/test_pgbouncer.py, with the
# one-server-connection alias of the test database.
"$ROOT/scripts/pgbouncer.sh" stop
"$ROOT/scripts/pgbouncer.sh" start "$db"
trap '"$ROOT/scripts/pgbouncer.sh" stop' EXIT
# pytest runs as the invoking user; its clients connect over the cluster's socket with trust, or
# through PgBouncer.
(cd "$ROOT/python/tests" &&
    SAFEGUARD_PY_DB=$db SAFEGUARD_ALEMBIC_DB=${db}_alembic SAFEGUARD_PGBOUNCER_PORT=$BOUNCER_PORT "$venv/bin/python" -m pytest -q -p no:cacheprovider)

say "the example application (examples/python): migration, API, job, lint"
example_db=safeguard_example
"${PSQL[@]}" -q -c "SET client_min_messages = warning" -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'clinic_example_owner') THEN
            CREATE ROLE clinic_example_owner LOGIN NOSUPERUSER NOBYPASSRLS; END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'clinic_example_app') THEN
            CREATE ROLE clinic_example_app LOGIN NOSUPERUSER NOBYPASSRLS; END IF;
    END \$\$"
fresh_database "$example_db"
# What a DBA does once: the extension, and a schema the migrations' role may create tables in.
"${PSQL[@]}" -q -d "$example_db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION pg_safeguard" \
    -c "GRANT CREATE ON SCHEMA public TO clinic_example_owner"
(cd "$ROOT/examples/python" &&
    SAFEGUARD_EXAMPLE_DB=$example_db "$venv/bin/python" -m pytest -q -p no:cacheprovider test_clinic.py)
