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
# A peer that cannot be had is reported, never fatal: registries withdraw
# versions (the proxy answers 403 for mongo-tools and MinIO release tags, at
# times for every mongo-tools version), and the tests that need such a peer
# skip with the reason (tests/peers.py).
# Each peer ends in one state, logged and written to $BIN/peers.status as
#   NAME<TAB>STATE<TAB>DETAIL
# with STATE built or cached (DETAIL: the version) or unavailable (DETAIL:
# the registry's answer, e.g. "go module proxy: 403 Forbidden for ...").
# Exit status: 0 whatever became of the peers; 2 for an unknown peer name.
#
# Cache layout (override the root with BACKUP_API_CACHE):
#   $CACHE/bin/        minio, mongodump, mongorestore, ferretdb (+ NAME.version),
#                      peers.status
#   $CACHE/go/         private GOPATH, GOMODCACHE and GOCACHE
#   $CACHE/tmp/        scratch space for builds (removed on exit)
#
# Versions: the Go module proxy reachable here refuses some tags, so each
# peer tries the wanted version first and falls back to one it serves.
set -euo pipefail

MINIO_VERSIONS=(RELEASE.2025-10-15T17-29-55Z latest)
MC_VERSIONS=(v0.0.0-20250313080218-cf909e1063a9 latest)
MONGOTOOLS_VERSIONS=(100.13.0 v0.0.0-20260702221138-e4f25276abe9 master)
FERRETDB_VERSION=v1.24.2
ALL_PEERS=(minio mc mongotools ferretdb)

log() { printf '[peers] %s\n' "$*" >&2; }

# Usage errors are the only failures: check the names before any work.
peers=("$@")
[[ ${#peers[@]} -gt 0 ]] || peers=("${ALL_PEERS[@]}")
for p in "${peers[@]}"; do
    case "$p" in
        minio | mc | mongotools | ferretdb) ;;
        *) log "error: unknown peer '$p' (want minio, mc, mongotools, ferretdb)"; exit 2 ;;
    esac
done

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

# outcome STATE DETAIL: what became of the peer being obtained (read by obtain).
outcome() { printf '%s\t%s\n' "$1" "$2" >"$OUTCOME"; }

# version_of TOOL: the version recorded next to a cached binary.
version_of() {
    local line
    line=$(cat "$BIN/$1.version" 2>/dev/null || true)
    printf '%s\n' "${line##*@}"
}

# cached TOOL: the peer whose binary TOOL is already in $BIN.
cached() { outcome cached "$(version_of "$1")"; }

need_go() {
    command -v go >/dev/null && return 0
    outcome unavailable "go is not on PATH: install Go to build it"
    return 1
}

# logged FILE CMD...: run CMD with its output on stderr and in FILE; keep its status.
logged() {
    local file=$1
    shift
    "$@" 2>&1 | tee "$file" >&2
}

# answer < GO-OUTPUT: the registry's answer in go's error output
# ("go module proxy: 403 Forbidden"), else go's first error line.
answer() {
    local text status
    text=$(grep -v '^go: downloading' || true)
    status=$(grep -o -m1 -E '\b[45][0-9]{2} [A-Z][A-Za-z ]*[a-z]' <<<"$text" || true)
    if [[ -n "$status" ]]; then
        printf 'go module proxy: %s\n' "$status"
    else
        head -n1 <<<"$text" | cut -c1-200
    fi
}

# refusal MODULE VERSION<TAB>ANSWER...: one line saying what was answered for
# each version tried, grouped when every version got the same answer.
refusal() {
    local mod=$1 first=${2#*$'\t'} same=1 pair versions="" each=""
    shift
    for pair in "$@"; do
        [[ "${pair#*$'\t'}" == "$first" ]] || same=0
        versions+="${versions:+, }${pair%%$'\t'*}"
        each+="${each:+; }${pair%%$'\t'*}: ${pair#*$'\t'}"
    done
    if ((same)); then
        printf '%s for %s@%s\n' "$first" "$mod" "$versions"
    else
        printf '%s: %s\n' "$mod" "$each"
    fi
}

# go install PKG@one-of-VERSIONS into GOBIN=$1; prints the version that worked.
# When none builds, records the peer as unavailable with each answer.
install_first() {
    local gobin=$1 pkg=$2
    shift 2
    local v answers=()
    for v in "$@"; do
        log "go install $pkg@$v"
        if (cd "$gobin" && GOBIN="$gobin" logged "$gobin/install.log" go install "$pkg@$v"); then
            printf '%s\n' "$v"
            return 0
        fi
        answers+=("$v"$'\t'"$(answer <"$gobin/install.log")")
        log "  $pkg@$v failed"
    done
    outcome unavailable "$(refusal "$pkg" "${answers[@]}")"
    return 1
}

# json_field NAME < go-json: value of a top-level string field.
json_field() { sed -n 's/^[[:space:]]*"'"$1"'": "\(.*\)",\{0,1\}$/\1/p' | head -n1; }

# Download MODULE at the first of VERSIONS the proxy serves and copy its
# source to the writable directory $1/src.  Prints the resolved version.
# When none is served, records the peer as unavailable with each answer.
fetch_source() {
    local tmp=$1 mod=$2
    shift 2
    local v json dir error answers=()
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
        error=$(json_field Error <<<"${json:-}")
        log "  not served: ${error:-no error given}"
        answers+=("$v"$'\t'"$(answer <<<"${error:-no error given}")")
    done
    outcome unavailable "$(refusal "$mod" "${answers[@]}")"
    return 1
}

# go_build LOG DIR ARGS...: go build in DIR; a failure (a dependency the proxy
# refuses, say) records the peer as unavailable with go's answer.
go_build() {
    local buildlog=$1 dir=$2
    shift 2
    if (cd "$dir" && logged "$buildlog" go build "$@"); then
        return 0
    fi
    outcome unavailable "go build $*: $(answer <"$buildlog")"
    return 1
}

build_minio() {
    if have minio; then cached minio; return; fi
    need_go
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
    outcome built "$v"
}

build_mc() {
    if have mc; then cached mc; return; fi
    need_go
    local t0=$SECONDS tmp v
    mktmp mc
    tmp=$TMP
    log "mc: building"
    v=$(install_first "$tmp" github.com/minio/mc "${MC_VERSIONS[@]}")
    v=$(go version -m "$tmp/mc" | awk '$1 == "mod" { print $3; exit }')
    mv -f "$tmp/mc" "$BIN/mc"
    printf 'github.com/minio/mc@%s\n' "$v" >"$BIN/mc.version"
    log "mc: done in $(elapsed $t0) ($v)"
    outcome built "$v"
}

build_mongotools() {
    if have mongodump && have mongorestore; then cached mongodump; return; fi
    need_go
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
        go_build "$tmp/build.log" "$tmp/src" -trimpath \
            -ldflags "-X main.VersionStr=$v -X main.GitCommit=$commit" \
            -o "$tmp/$tool" "./$tool/main"
        mv -f "$tmp/$tool" "$BIN/$tool"
        printf 'github.com/mongodb/mongo-tools@%s\n' "$v" >"$BIN/$tool.version"
    done
    log "mongotools: done in $(elapsed $t0) ($v)"
    outcome built "$v"
}

build_ferretdb() {
    if have ferretdb; then cached ferretdb; return; fi
    need_go
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
    go_build "$tmp/build.log" "$tmp/src" -trimpath -o "$tmp/ferretdb" ./cmd/ferretdb
    mv -f "$tmp/ferretdb" "$BIN/ferretdb"
    printf 'github.com/FerretDB/FerretDB@%s\n' "$v" >"$BIN/ferretdb.version"
    log "ferretdb: done in $(elapsed $t0)"
    outcome built "$v"
}

declare -A STATE=() DETAIL=()

# obtain NAME: run build_NAME in its own subshell, so that a peer which cannot
# be had stops that peer only, and record its state.
obtain() {
    local p=$1 rc line
    export OUTCOME="$CACHE/tmp/$p.outcome"
    rm -f "$OUTCOME"
    set +e
    (set -e; trap cleanup EXIT; "build_$p") >&2
    rc=$?
    set -e
    if [[ -s "$OUTCOME" ]]; then
        line=$(<"$OUTCOME")
    else
        line="unavailable"$'\t'"build failed (exit $rc); see the log above"
    fi
    rm -f "$OUTCOME"
    if [[ $rc -ne 0 && "$line" != unavailable$'\t'* ]]; then
        line="unavailable"$'\t'"build failed (exit $rc); see the log above"
    fi
    STATE[$p]=${line%%$'\t'*}
    DETAIL[$p]=${line#*$'\t'}
    log "$p: ${STATE[$p]} (${DETAIL[$p]})"
}

# write_status: this run's states in $BIN/peers.status; peers not asked for
# this time keep their earlier line.
write_status() {
    local file="$BIN/peers.status" tmp p
    tmp=$(mktemp "$BIN/.peers.status.XXXXXX")
    for p in "${ALL_PEERS[@]}"; do
        if [[ -v "STATE[$p]" ]]; then
            printf '%s\t%s\t%s\n' "$p" "${STATE[$p]}" "${DETAIL[$p]}"
        elif [[ -f "$file" ]]; then
            grep "^$p"$'\t' "$file" || true
        fi
    done >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$file"
}

for p in "${peers[@]}"; do
    obtain "$p"
done
write_status

printf '%s\n' "$BIN"
