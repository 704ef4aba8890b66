#!/usr/bin/env bash
# The Debian package of the Debian-packaged major (pgrx.toml's test major), as a DBA would use it
# on a machine without Rust: the development install of pg_safeguard is taken out, the .deb is
# installed with dpkg, the extension is created (and updated from 0.1.0) in a cluster, the
# package is removed (its files go), and the development install is put back.
source "$(dirname "$0")/common.sh"
[ "$PG_MAJOR" = "$DEFAULT_MAJOR" ] || die "the package test runs on Debian's own major, $DEFAULT_MAJOR"
name=postgresql-$PG_MAJOR-pg-safeguard
say "Debian package $name: install, use, remove"
deb=$(PG=$PG_MAJOR "$ROOT/scripts/package.sh" | tail -1 | cut -d' ' -f1)
[ -f "$deb" ] || die "no package was built"
lib_dir=$("$PG_CONFIG" --pkglibdir)
ext_dir=$("$PG_CONFIG" --sharedir)/extension
reinstall() { "$ROOT/scripts/install.sh" >/dev/null 2>&1; }
trap reinstall EXIT

as_root rm -f "$lib_dir/pg_safeguard.so" "$ext_dir"/pg_safeguard*
as_root env DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null 2>&1 || die "dpkg -i $deb failed"
files=$(dpkg -L "$name" | grep -c 'pg_safeguard')
[ -f "$lib_dir/pg_safeguard.so" ] || die "the package did not install $lib_dir/pg_safeguard.so"
fresh_database safeguard_package
"${PSQL[@]}" -q -d safeguard_package >/dev/null <<'SQL'
CREATE EXTENSION pg_safeguard VERSION '0.1.0';
ALTER EXTENSION pg_safeguard UPDATE;
CREATE TABLE t (id uuid PRIMARY KEY DEFAULT safeguard.ulid(), tenant_id uuid NOT NULL);
SELECT safeguard.isolate('t');
DO $$ BEGIN
    IF (SELECT extversion FROM pg_extension WHERE extname = 'pg_safeguard') <> (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_safeguard') THEN
        RAISE EXCEPTION 'not at the packaged version after the update';
    END IF;
END $$;
SQL
echo "package: $(basename "$deb") installed ($files files), CREATE EXTENSION, an update from 0.1.0 and isolate() work"
"${PSQL[@]}" -q -c "DROP DATABASE safeguard_package"
as_root dpkg -r "$name" >/dev/null 2>&1 || die "dpkg -r $name failed"
[ ! -e "$lib_dir/pg_safeguard.so" ] || die "dpkg -r left $lib_dir/pg_safeguard.so behind"
echo "package: removed, its files gone"
