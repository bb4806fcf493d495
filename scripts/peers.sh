#!/usr/bin/env bash
# Build the real test peers (MinIO, MongoDB Database Tools, FerretDB) from
# the Go module proxy and cache them outside the checkout.
#
# Usage:  BIN=$(bash scripts/peers.sh [minio] [mongotools] [ferretdb])
#
# No arguments builds every peer. A peer whose binary already exists in the
# cache is skipped, so a warm run returns in well under a second.
# Progress goes to stderr; the bin directory is the only line on stdout.
#
# Cache layout (override the root with BACKUP_API_CACHE):
#   $CACHE/bin/        minio, mongodump, mongorestore, ferretdb (+ NAME.version)
#   $CACHE/go/         private GOPATH, GOMODCACHE and GOCACHE
#   $CACHE/tmp/        scratch space for builds (removed on exit)
#
# Versions: the Go module proxy reachable here refuses some tags, so each
# peer tries the wanted version first and falls back to one it serves.
set -euo pipefail

MINIO_VERSIONS=(RELEASE.2025-10-15T17-29-55Z latest)
MONGOTOOLS_VERSIONS=(100.13.0 v0.0.0-20260702221138-e4f25276abe9 master)
FERRETDB_VERSION=v1.24.2

CACHE="${BACKUP_API_CACHE:-$HOME/.cache/backup-api}"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/go" "$CACHE/tmp"

export GOPATH="$CACHE/go"
export GOMODCACHE="$CACHE/go/pkg/mod"
export GOCACHE="$CACHE/go/cache"
export GOFLAGS="-modcacherw -buildvcs=false"
export CGO_ENABLED=0
export GO111MODULE=on
unset GOBIN

log() { printf '[peers] %s\n' "$*" >&2; }

command -v go >/dev/null || { log "error: go is not on PATH"; exit 1; }

# Serialise concurrent runs (parallel test workers, CI steps).
if command -v flock >/dev/null; then
    exec 9>"$CACHE/.lock"
    flock 9
fi

TMPDIRS=()
cleanup() {
    local d
    for d in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do
        chmod -R u+w "$d" 2>/dev/null || true
        rm -rf "$d"
    done
}
trap cleanup EXIT

# mktmp NAME: make a scratch dir, registered for removal on exit, in $TMP.
# (Not via $(...): a subshell could not register it.)
mktmp() {
    TMP=$(mktemp -d "$CACHE/tmp/$1.XXXXXX")
    TMPDIRS+=("$TMP")
}

have() { [[ -x "$BIN/$1" ]]; }

elapsed() { printf '%ss' $((SECONDS - $1)); }

# go install PKG@one-of-VERSIONS into GOBIN=$1; prints the version that worked.
install_first() {
    local gobin=$1 pkg=$2; shift 2
    local v
    for v in "$@"; do
        log "go install $pkg@$v"
        if (cd "$gobin" && GOBIN="$gobin" go install "$pkg@$v" >&2); then
            printf '%s\n' "$v"
            return 0
        fi
        log "  $pkg@$v failed; trying next version"
    done
    log "error: no version of $pkg could be built"
    return 1
}

# json_field NAME < go-json: value of a top-level string field.
json_field() { sed -n 's/^[[:space:]]*"'"$1"'": "\(.*\)",\{0,1\}$/\1/p' | head -n1; }

# Download MODULE at the first of VERSIONS the proxy serves and copy its
# source to the writable directory $1/src.  Prints the resolved version.
fetch_source() {
    local tmp=$1 mod=$2; shift 2
    local v json dir
    for v in "$@"; do
        log "go mod download $mod@$v"
        if json=$(cd "$tmp" && go mod download -json "$mod@$v"); then
            dir=$(json_field Dir <<<"$json")
            if [[ -n "$dir" && -d "$dir" ]]; then
                cp -R "$dir" "$tmp/src"
                chmod -R u+w "$tmp/src"
                json_field Version <<<"$json"
                return 0
            fi
        fi
        log "  $mod@$v: $(json_field Error <<<"${json:-}")"
        log "  $mod@$v not served; trying next version"
    done
    log "error: no version of $mod could be downloaded"
    return 1
}

build_minio() {
    if have minio; then log "minio: cached ($BIN/minio)"; return; fi
    local t0=$SECONDS tmp v
    mktmp minio
    tmp=$TMP
    log "minio: building (several minutes)"
    v=$(install_first "$tmp" github.com/minio/minio "${MINIO_VERSIONS[@]}")
    # Record the version the query resolved to (e.g. latest -> v0.0.0-...).
    v=$(go version -m "$tmp/minio" | awk '$1 == "mod" { print $3; exit }')
    mv -f "$tmp/minio" "$BIN/minio"
    printf 'github.com/minio/minio@%s\n' "$v" >"$BIN/minio.version"
    log "minio: done in $(elapsed $t0) ($v)"
}

build_mongotools() {
    if have mongodump && have mongorestore; then
        log "mongotools: cached ($BIN/mongodump, $BIN/mongorestore)"
        return
    fi
    # `go install .../mongodump/main@VERSION` cannot be used: the proxy here
    # answers 403 for the sub-package paths go install probes first.  Build
    # the packages from the module source instead (same go.mod/go.sum).
    local t0=$SECONDS tmp v tool commit
    mktmp mongotools
    tmp=$TMP
    v=$(fetch_source "$tmp" github.com/mongodb/mongo-tools "${MONGOTOOLS_VERSIONS[@]}")
    commit=${v##*-}
    for tool in mongodump mongorestore; do
        if have "$tool"; then log "$tool: cached ($BIN/$tool)"; continue; fi
        log "$tool: go build ./$tool/main ($v)"
        (cd "$tmp/src" && go build -trimpath \
            -ldflags "-X main.VersionStr=$v -X main.GitCommit=$commit" \
            -o "$tmp/$tool" "./$tool/main" >&2)
        mv -f "$tmp/$tool" "$BIN/$tool"
        printf 'github.com/mongodb/mongo-tools@%s\n' "$v" >"$BIN/$tool.version"
    done
    log "mongotools: done in $(elapsed $t0) ($v)"
}

build_ferretdb() {
    if have ferretdb; then log "ferretdb: cached ($BIN/ferretdb)"; return; fi
    # `go install .../cmd/ferretdb@VERSION` builds a binary that panics at
    # start: the module zip lacks build/version/version.txt.  Build from a
    # writable copy of the source with that file written.  No build tags are
    # needed: the PostgreSQL handler is in by default.
    local t0=$SECONDS tmp v
    mktmp ferretdb
    tmp=$TMP
    v=$(fetch_source "$tmp" github.com/FerretDB/FerretDB "$FERRETDB_VERSION")
    printf '%s\n' "$v" >"$tmp/src/build/version/version.txt"
    log "ferretdb: go build ./cmd/ferretdb ($v)"
    (cd "$tmp/src" && go build -trimpath -o "$tmp/ferretdb" ./cmd/ferretdb >&2)
    mv -f "$tmp/ferretdb" "$BIN/ferretdb"
    printf 'github.com/FerretDB/FerretDB@%s\n' "$v" >"$BIN/ferretdb.version"
    log "ferretdb: done in $(elapsed $t0)"
}

peers=("$@")
[[ ${#peers[@]} -gt 0 ]] || peers=(minio mongotools ferretdb)
for p in "${peers[@]}"; do
    case "$p" in
        minio | mongotools | ferretdb) ;;
        *) log "error: unknown peer '$p' (want minio, mongotools, ferretdb)"; exit 2 ;;
    esac
done
for p in "${peers[@]}"; do
    "build_$p"
done

printf '%s\n' "$BIN"
