#!/usr/bin/env bash
# `make test`: every supported major (pgrx.toml), every layer on the oldest and the newest and
# the core layers on the others (scripts/test-major.sh), then pg_upgrade from the oldest to the
# newest with pg_safeguard in both. With PG=N, every layer on that major alone.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
python3 tests/crypto/vector.py
if [ -n "${PG:-}" ]; then
    scripts/test-major.sh --full
    exit
fi
read -r -a majors <<<"$SUPPORTED_MAJORS"
oldest=${majors[0]}
newest=${majors[${#majors[@]} - 1]}
for major in "${majors[@]}"; do
    if [ "$major" = "$oldest" ] || [ "$major" = "$newest" ]; then
        PG=$major scripts/test-major.sh --full
    else
        PG=$major scripts/test-major.sh
    fi
    # Only the default major's cluster stays up (make run and make bench use it).
    [ "$major" = "$DEFAULT_MAJOR" ] || PG=$major scripts/cluster.sh stop
done
scripts/pg-upgrade-test.sh "$oldest" "$newest"
scripts/package-test.sh
say "make test: all layers passed on PostgreSQL ${majors[*]}"
