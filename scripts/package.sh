#!/usr/bin/env bash
# Debian packages of pg_safeguard, one per supported major (PG=N: that one alone), for machines
# without Rust: `cargo pgrx package` builds the release library and SQL scripts against that
# major's pg_config, and dpkg-deb wraps them as postgresql-N-pg-safeguard_VERSION_amd64.deb in
# target/packages, installing where Debian's (and the PGDG's) postgresql-N looks for extensions:
# /usr/lib/postgresql/N/lib and /usr/share/postgresql/N/extension. The kept install scripts of
# earlier releases and every upgrade script are included, so ALTER EXTENSION UPDATE works after
# installing a newer package.
source "$(dirname "$0")/common.sh"
version=$(awk -F'"' '/^version *=/ { print $2; exit }' "$ROOT/Cargo.toml")
out=$ROOT/target/packages
mkdir -p "$out"
cd "$ROOT"
for major in ${PG:-$SUPPORTED_MAJORS}; do
    config=$( [ -n "$CUSTOM_PG_CONFIG" ] && echo "$CUSTOM_PG_CONFIG" || echo "$(pg_bindir "$major")/pg_config")
    name=postgresql-$major-pg-safeguard
    built=$ROOT/target/package-build/pg$major
    staging=$ROOT/target/package-build/$name
    say "packaging $name $version"
    rm -rf "$built" "$staging"
    cargo pgrx package --pg-config "$config" --out-dir "$built" >/dev/null
    lib_dir=$staging/usr/lib/postgresql/$major/lib
    ext_dir=$staging/usr/share/postgresql/$major/extension
    mkdir -p "$lib_dir" "$ext_dir" "$staging/DEBIAN" "$staging/usr/share/doc/$name"
    install -m 644 "$built$("$config" --pkglibdir)/pg_safeguard.so" "$lib_dir/"
    install -m 644 "$built$("$config" --sharedir)"/extension/pg_safeguard* "$ext_dir/"
    install -m 644 "$ROOT"/sql/pg_safeguard--*.sql "$ext_dir/"
    install -m 644 "$ROOT/README.md" "$ROOT/docs/install.md" "$ROOT/docs/upgrading.md" "$staging/usr/share/doc/$name/"
    cat > "$staging/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: amd64
Maintainer: pg_safeguard developers
Depends: postgresql-$major, libc6
Section: database
Priority: optional
Description: safeguards for multi-tenant healthcare databases, for PostgreSQL $major
 Tenant row-level isolation that fails closed, an append-only tamper-evident audit trail,
 AES-256-GCM encrypted column types, clinical integrity rules, time-ordered IDs and an
 automated database review (safeguard.lint()), enforced inside PostgreSQL.
 Configure shared_preload_libraries and safeguard.master_key_file as described in
 /usr/share/doc/$name/install.md, then CREATE EXTENSION pg_safeguard.
CONTROL
    dpkg-deb --root-owner-group --build "$staging" "$out/${name}_${version}_amd64.deb" >/dev/null
    echo "$out/${name}_${version}_amd64.deb ($(du -k "$out/${name}_${version}_amd64.deb" | cut -f1) KiB)"
done
