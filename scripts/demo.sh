#!/usr/bin/env bash
# (Re)creates database safeguard_demo with the extension and examples/clinic.sql, then runs the
# guided tour examples/tour.sql. Running it again starts the demo afresh.
source "$(dirname "$0")/common.sh"
say "creating database safeguard_demo with examples/clinic.sql"
fresh_database safeguard_demo
"${PSQL[@]}" -q -c "ALTER DATABASE safeguard_demo SET search_path = \"\$user\", public, safeguard"
"${PSQL[@]}" -q -d safeguard_demo -c "CREATE EXTENSION pg_safeguard" -f "$ROOT/examples/clinic.sql"
say "the tour: examples/tour.sql"
"${PSQL[@]}" -d safeguard_demo -f "$ROOT/examples/tour.sql"
