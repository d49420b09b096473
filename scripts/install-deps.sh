#!/usr/bin/env bash
# Installs what Reelhouse needs on Debian 12, and only what is missing, so a warm
# machine is through in well under a second.
#
#   scripts/install-deps.sh [system] [python] [node]     (no argument: all three, in that order)
#
#   system  apt packages: ffmpeg, redis-server, nginx, chromium, Java 17, Maven, PostgreSQL
#           (+ python3/pip, nodejs/npm when needed)
#   python  uv (pinned) and .venv from uv.lock (`uv sync --frozen`)
#   node    `npm ci` in web/ (hls.js for the watch page) and tests/e2e/js (tus-js-client, playwright-core)
#           where package-lock.json is newer than node_modules
#
# Browsers are never downloaded: Playwright drives Debian's /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UV_VERSION=0.13.8
# npm packages: what the serving API hands to browsers, and the end-to-end tests' clients.
NODE_DIRS=(web tests/e2e/js)
POLICY_RC_D=/usr/sbin/policy-rc.d

say() { printf 'deps: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "deps: root (or sudo) is needed to run: $*" >&2; exit 1
    fi
}

# /usr/sbin is not on a normal user's PATH, and nginx lives there.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

uv_available() { have uv || python3 -m uv --version >/dev/null 2>&1; }

uv_run() { if have uv; then uv "$@"; else python3 -m uv "$@"; fi; }

# npm writes node_modules/.package-lock.json at every install: newer than the lock means installed from it.
needs_node_modules() {
    local dir="$1" stamp="$1/node_modules/.package-lock.json"
    [ -f "$dir/package-lock.json" ] || return 1
    [ -f "$stamp" ] || return 0
    [ "$dir/package-lock.json" -nt "$stamp" ] || [ "$dir/package.json" -nt "$stamp" ]
}

any_node_lock() {
    local dir
    for dir in "${NODE_DIRS[@]}"; do [ -f "$dir/package-lock.json" ] && return 0; done
    return 1
}

install_system() {
    local missing=()
    { have ffmpeg && have ffprobe; } || missing+=(ffmpeg)
    have redis-server || missing+=(redis-server)
    have nginx || missing+=(nginx-light)
    have chromium || missing+=(chromium)
    have python3 || missing+=(python3)
    if ! uv_available && ! python3 -m pip --version >/dev/null 2>&1; then missing+=(python3-pip); fi
    if any_node_lock && ! have npm; then missing+=(nodejs npm); fi
    # The full stack's JVM engines: Cassandra 5.0 runs on Java 11 or 17 only; Maven resolves the jars.
    [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ] || missing+=(openjdk-17-jre-headless)
    have mvn || missing+=(maven)
    # Airflow's metadata database: Debian's PostgreSQL server, run by reelhouse on its own cluster.
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)

    if [ ${#missing[@]} -eq 0 ]; then
        say "system packages present (ffmpeg, redis-server, nginx, chromium, Java 17, Maven, PostgreSQL)"
        return
    fi
    say "installing ${missing[*]} (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    if [[ " ${missing[*]} " == *" nginx-light "* ]] && ! apt-cache show nginx-light >/dev/null 2>&1; then
        missing=("${missing[@]/nginx-light/nginx}")  # newer Debian dropped the light flavour
    fi
    # redis-server and nginx start their system daemons on install; Reelhouse runs its own
    # on other ports, so keep the package scripts from starting anything.
    if [ ! -e "$POLICY_RC_D" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$POLICY_RC_D" >/dev/null
        as_root chmod 755 "$POLICY_RC_D"
        trap 'as_root rm -f "$POLICY_RC_D"' EXIT
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python() {
    if ! uv_available; then
        say "installing uv $UV_VERSION (pip)"
        # Debian marks its Python externally managed; uv is a standalone binary, safe to add.
        PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
            python3 -m pip install -q "uv==$UV_VERSION"
    fi
    uv_run sync --frozen -q
    say ".venv in sync with uv.lock"
}

install_node() {
    local dir
    for dir in "${NODE_DIRS[@]}"; do
        if [ ! -f "$dir/package-lock.json" ]; then
            say "no $dir/package-lock.json: no npm packages to install there"
        elif ! needs_node_modules "$dir"; then
            say "$dir/node_modules up to date"
        else
            say "npm ci in $dir"
            (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        fi
    done
}

main() {
    local steps=("$@")
    [ ${#steps[@]} -gt 0 ] || steps=(system python node)
    for step in "${steps[@]}"; do
        case "$step" in
            system) install_system ;;
            python) install_python ;;
            node) install_node ;;
            *) echo "deps: unknown step '$step' (use: system, python, node)" >&2; exit 2 ;;
        esac
    done
}

# Sourced (to try a step with some commands pretended missing), it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
