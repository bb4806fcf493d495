#!/usr/bin/env bash
# Make a Docker engine and local base images available, for machines that reach
# Debian's archive and the language registries but no container registry (the compose
# test, tests/deploy/test_compose_docker.py). Nothing here is needed where
# `docker pull python:3.11-slim-bookworm` works: the Dockerfiles default to the
# official images.
#
#   bash scripts/docker-base.sh          # engine + compose + base images
#   bash scripts/docker-base.sh engine   # only make `docker info` answer
#   bash scripts/docker-base.sh images   # engine + base images, no compose
#
# What it does, each step skipped when already done:
#   1. apt-get install docker.io and debootstrap (Debian's packages) when missing;
#   2. start dockerd when no engine answers, logging to $STATE/dockerd.log; its pid goes
#      to $STATE/dockerd.pid so whoever asked can stop what was started;
#   3. `docker compose`: when the CLI has no compose plugin, build Compose v2 from the Go
#      module proxy into $CACHE/bin/docker-compose and link it as the CLI plugin;
#   4. backup-api-base:bookworm: a Debian 12 rootfs made by debootstrap from the apt
#      mirror this machine uses (/etc/apt/sources.list*), cached as a tarball under
#      $STATE and imported once (`docker import`); reused while the image is present;
#   5. backup-api-python:3.11-bookworm: that base + Debian's python3 (3.11) in a venv at
#      /opt/python whose bin is first on PATH: `python` and `pip` as in python:3.11-slim.
#
# Exit status: 0; 3 when no Docker engine can run here (not root, dockerd fails to start);
# 1 for any other failure.
# stdout: KEY=VALUE lines (DOCKERD_STARTED=<pid or empty>, COMPOSE=<argv>, BUILD=<argv>,
# PIP_SECRETS=<docker build flags>); progress goes to stderr.
# Cache root: BACKUP_API_CACHE (default ~/.cache/backup-api).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${BACKUP_API_CACHE:-$HOME/.cache/backup-api}"
STATE="$CACHE/docker"
BASE_IMAGE=backup-api-base:bookworm
PYTHON_IMAGE=backup-api-python:3.11-bookworm
COMPOSE_VERSION=v2.28.1

log() { printf '[docker-base] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# Exit 3: no Docker engine can run on this machine (the compose test skips, saying why).
cannot() { log "cannot run Docker here: $*"; exit 3; }

[[ $(id -u) -eq 0 ]] || cannot "needs root (apt-get, dockerd, debootstrap); $(id -un) is not"
mkdir -p "$STATE" "$CACHE/bin"

# Serialise concurrent runs: two dockerd or two debootstraps would collide.
exec 9>"$STATE/.lock"
flock 9

install_debian_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
}

# Debian's docker.io ships a 20.10 CLI with BuildKit built in; a newer CLI without the
# buildx plugin falls back to the legacy builder, which has no build secrets.
docker_cli() {
    if docker buildx version >/dev/null 2>&1; then
        echo docker
    elif [[ -x /usr/bin/docker ]]; then
        echo /usr/bin/docker
    else
        echo docker
    fi
}

STARTED=""
start_engine() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    log "no Docker engine answers: starting dockerd (log: $STATE/dockerd.log)"
    # setsid: the engine outlives this script; whoever asked stops it by its pid.
    setsid dockerd >"$STATE/dockerd.log" 2>&1 </dev/null 9>&- &
    local pid=$!
    local i
    for i in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then
            # dockerd's own pidfile: right whether or not setsid had to fork.
            STARTED=$(cat /var/run/docker.pid 2>/dev/null || echo "$pid")
            echo "$STARTED" >"$STATE/dockerd.pid"
            log "dockerd $pid is up ($(docker info --format '{{.Driver}}' 2>/dev/null))"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { tail -20 "$STATE/dockerd.log" >&2;
            cannot "dockerd exited: $(tail -n1 "$STATE/dockerd.log")"; }
        sleep 1
    done
    tail -20 "$STATE/dockerd.log" >&2
    cannot "dockerd did not answer within 60 s (log: $STATE/dockerd.log)"
}

compose_argv() {
    if docker compose version >/dev/null 2>&1; then
        echo "docker compose"
        return 0
    fi
    local bin="$CACHE/bin/docker-compose"
    if [[ ! -x "$bin" ]]; then
        build_compose "$bin"
    fi
    # As the CLI plugin too, so `docker compose` works for the person at the keyboard.
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sf "$bin" "$HOME/.docker/cli-plugins/docker-compose"
    if docker compose version >/dev/null 2>&1; then
        echo "docker compose"
    else
        echo "$bin"
    fi
}

# Compose v2 from its Go module (go install probes sub-package paths the proxy may
# refuse, so build from the module's source, as scripts/peers.sh does).
build_compose() {
    local out=$1 tmp dir
    command -v go >/dev/null || die "docker compose is missing and go is not on PATH to build it"
    export GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/pkg/mod" GOCACHE="$CACHE/go/cache"
    export GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0 GO111MODULE=on
    mkdir -p "$CACHE/tmp"
    tmp=$(mktemp -d "$CACHE/tmp/compose.XXXXXX")
    log "building docker compose $COMPOSE_VERSION from the Go module proxy (minutes)"
    dir=$(cd "$tmp" && go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [[ -n "$dir" ]] || die "the Go module proxy did not serve docker compose $COMPOSE_VERSION"
    cp -R "$dir" "$tmp/src"
    chmod -R u+w "$tmp/src"
    (cd "$tmp/src" && go build -trimpath \
        -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
        -o "$tmp/docker-compose" ./cmd) >&2
    mv -f "$tmp/docker-compose" "$out"
    chmod -R u+w "$tmp"
    rm -rf "$tmp"
}

# The first Debian archive URI this machine's apt uses (deb822 or one-line format).
debian_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' \
        | grep -E '/debian/?$' | head -n1 || true)
    if [[ -z "$uri" ]]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
            | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' \
            | grep -E '/debian/?$' | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    local tarball="$STATE/bookworm-rootfs.tar.gz"
    if [[ ! -s "$tarball" ]]; then
        local mirror rootfs
        mirror=$(debian_mirror)
        rootfs=$(mktemp -d "$STATE/rootfs.XXXXXX")
        log "debootstrap bookworm from $mirror (a few minutes)"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
            || { tail -20 "$STATE/debootstrap.log" >&2; rm -rf "$rootfs"; die "debootstrap failed"; }
        # The same sources as this machine's apt, without caches or the host's identity.
        printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" \
            >"$rootfs/etc/apt/sources.list"
        : >"$rootfs/etc/hostname"
        # As Docker's debian:bookworm-slim does: no docs, man pages or translations (now
        # or from later packages), no recommends, and apt keeps no caches in the layers.
        printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
            'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
            'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
            >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
        printf '%s\n' 'APT::Install-Recommends "false";' 'APT::Install-Suggests "false";' \
            >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends"
        printf '%s\n' 'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
            'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
            >"$rootfs/etc/apt/apt.conf.d/docker-clean"
        find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
        find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
            -exec rm -rf {} +
        rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
            "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
            "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
        tar -C "$rootfs" -czf "$tarball.tmp" .
        mv -f "$tarball.tmp" "$tarball"
        rm -rf "$rootfs"
    fi
    log "docker import $tarball as $BASE_IMAGE"
    docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
        "$tarball" "$BASE_IMAGE" >/dev/null
}

python_image() {
    if docker image inspect "$PYTHON_IMAGE" >/dev/null 2>&1; then
        return 0
    fi
    log "building $PYTHON_IMAGE (Debian's python3 in a venv)"
    DOCKER_BUILDKIT=1 $(docker_cli) build --network host --progress plain \
        --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$PYTHON_IMAGE" \
        -f deploy/docker/python.Dockerfile deploy/docker >&2
}

# The host's pip settings for `pip install` inside builds, as BuildKit secrets (never a
# layer): its CA bundle (a proxy's CA may be in it) and its index settings.
pip_secrets() {
    local ca="" conf="$STATE/pip.build.conf" settings key value env_name candidate
    # One call: pip is slow to start. Lines like global.index-url='https://…'.
    settings=$(python3 -m pip config list 2>/dev/null || true)
    setting() { sed -n "s/^global\.$1='\(.*\)'\$/\1/p" <<<"$settings" | head -n1; }
    for candidate in "${PIP_CERT:-}" "$(setting cert)" "${REQUESTS_CA_BUNDLE:-}" \
            "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
        if [[ -n "$candidate" && -s "$candidate" ]]; then ca=$candidate; break; fi
    done
    {
        echo "[global]"
        [[ -n "$ca" ]] && echo "cert = /run/secrets/pip-ca"
        for key in index-url extra-index-url trusted-host timeout; do
            env_name="PIP_$(tr 'a-z-' 'A-Z_' <<<"$key")"
            value=${!env_name:-$(setting "$key")}
            [[ -n "$value" ]] && echo "$key = $value"
        done
    } >"$conf.tmp"
    chmod 600 "$conf.tmp"
    mv -f "$conf.tmp" "$conf"
    printf -- '--secret id=pip.conf,src=%s' "$conf"
    [[ -n "$ca" ]] && printf -- ' --secret id=pip-ca,src=%s' "$ca"
    echo
}

install_debian_packages
start_engine
echo "DOCKERD_STARTED=$STARTED"
[[ "${1:-all}" == engine ]] && exit 0
base_image
python_image
echo "BASE_IMAGE=$BASE_IMAGE"
echo "PYTHON_IMAGE=$PYTHON_IMAGE"
echo "BUILD=env DOCKER_BUILDKIT=1 $(docker_cli) build"
echo "PIP_SECRETS=$(pip_secrets)"
[[ "${1:-all}" == images ]] && exit 0
echo "COMPOSE=$(compose_argv)"
