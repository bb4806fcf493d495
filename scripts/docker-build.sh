#!/usr/bin/env bash
# Build the images of the compose test where no container registry is reachable: the
# stand-ins for the third-party images of docker-compose.yml (deploy/standins/) and our
# two images (Dockerfile.api, Dockerfile.worker) on the local bases that
# scripts/docker-base.sh makes. With a registry, build ours with plain `docker build`
# or `docker compose build`: the Dockerfiles' defaults are the production choices.
#
#   bash scripts/docker-build.sh [standins] [ours]     (no argument: both)
#
# Stand-ins (each FROM backup-api-base:bookworm; compose override deploy/compose.standins.yaml):
#   backup-api-standin-postgres:15   postgres image   Debian's postgresql-15
#   backup-api-standin-redis:7       redis image      Debian's redis-server
#   backup-api-standin-minio:local   minio/minio      MinIO from scripts/peers.sh
#   backup-api-standin-mc:local      minio/mc         mc from scripts/peers.sh
#   backup-api-standin-mongo:local   mongo            FerretDB v1 (SQLite) from scripts/peers.sh
# Ours: backup-api-api:local and backup-api-worker:local with BASE_IMAGE=Debian's python3,
# PG_CLIENT_SOURCE=debian, MONGO_TOOLS=image (the mongodump/mongorestore scripts/peers.sh
# built) or none when those are missing.
#
# Exit status: 0; 3 when no Docker engine can run here (scripts/docker-base.sh); 4 when a
# peer binary a stand-in needs is missing; 1 for any other failure.
# stdout: KEY=VALUE lines (API_IMAGE, WORKER_IMAGE, MONGO_TOOLS, MONGO_TOOLS_WHY);
# build logs go to $BACKUP_API_CACHE/docker/build-NAME.log, progress to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CACHE="${BACKUP_API_CACHE:-$HOME/.cache/backup-api}"
STATE="$CACHE/docker"
PEERS="${BACKUP_API_PEERS_BIN:-$CACHE/bin}"
log() { printf '[docker-build] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

base_env=$(bash scripts/docker-base.sh images) || exit $?
BASE_IMAGE=$(sed -n 's/^BASE_IMAGE=//p' <<<"$base_env")
PYTHON_IMAGE=$(sed -n 's/^PYTHON_IMAGE=//p' <<<"$base_env")
read -r -a BUILD <<<"$(sed -n 's/^BUILD=//p' <<<"$base_env")"
read -r -a PIP_SECRETS <<<"$(sed -n 's/^PIP_SECRETS=//p' <<<"$base_env")"

# build NAME TAG DOCKERFILE CONTEXT [ARGS...]: one image, its log kept apart.
build() {
    local name=$1 tag=$2 file=$3 context=$4 t0=$SECONDS
    shift 4
    log "building $tag"
    if ! "${BUILD[@]}" --network host --progress plain -t "$tag" -f "$file" "$@" "$context" \
            >"$STATE/build-$name.log" 2>&1; then
        tail -n 30 "$STATE/build-$name.log" >&2
        die "building $tag failed (log: $STATE/build-$name.log)"
    fi
    log "$tag built in $((SECONDS - t0))s"
}

# context NAME FILE...: a build context holding copies of FILE... (binaries and scripts).
context() {
    local dir="$STATE/context-$1" f
    shift
    rm -rf "$dir"
    mkdir -p "$dir"
    for f in "$@"; do
        [[ -f "$f" ]] || { log "$f is missing (build the peers: bash scripts/peers.sh)"; exit 4; }
        cp -p "$f" "$dir/"
    done
    echo "$dir"
}

standins() {
    local s=deploy/standins ctx
    build postgres backup-api-standin-postgres:15 "$s/postgres.Dockerfile" "$s" \
        --build-arg BASE_IMAGE="$BASE_IMAGE"
    build redis backup-api-standin-redis:7 "$s/redis.Dockerfile" "$s" \
        --build-arg BASE_IMAGE="$BASE_IMAGE"
    ctx=$(context minio "$PEERS/minio") || exit $?
    build minio backup-api-standin-minio:local "$s/minio.Dockerfile" "$ctx" \
        --build-arg BASE_IMAGE="$BASE_IMAGE"
    ctx=$(context mc "$PEERS/mc") || exit $?
    build mc backup-api-standin-mc:local "$s/mc.Dockerfile" "$ctx" \
        --build-arg BASE_IMAGE="$BASE_IMAGE"
    ctx=$(context mongo "$PEERS/ferretdb" "$s/mongo-entrypoint.sh") || exit $?
    build mongo backup-api-standin-mongo:local "$s/mongo.Dockerfile" "$ctx" \
        --build-arg BASE_IMAGE="$BASE_IMAGE"
}

ours() {
    local tools=none why ctx
    if [[ -x "$PEERS/mongodump" && -x "$PEERS/mongorestore" ]]; then
        ctx=$(context mongotools "$PEERS/mongodump" "$PEERS/mongorestore") || exit $?
        build mongotools backup-api-mongotools:local deploy/standins/mongotools.Dockerfile "$ctx"
        tools=image
        why="mongodump/mongorestore $(sed -n 's/.*@//p' "$PEERS/mongodump.version" 2>/dev/null) from $PEERS"
    else
        why="no mongodump/mongorestore in $PEERS (scripts/peers.sh could not build them)"
        log "worker image without the MongoDB tools: $why"
    fi
    local args=(--build-arg BASE_IMAGE="$PYTHON_IMAGE" "${PIP_SECRETS[@]}")
    build api backup-api-api:local Dockerfile.api "$repo" "${args[@]}"
    build worker backup-api-worker:local Dockerfile.worker "$repo" "${args[@]}" \
        --build-arg PG_CLIENT_SOURCE=debian --build-arg MONGO_TOOLS="$tools" \
        --build-arg MONGO_TOOLS_IMAGE=backup-api-mongotools:local
    echo "API_IMAGE=backup-api-api:local"
    echo "WORKER_IMAGE=backup-api-worker:local"
    echo "MONGO_TOOLS=$tools"
    echo "MONGO_TOOLS_WHY=$why"
}

what=("$@")
[[ ${#what[@]} -gt 0 ]] || what=(standins ours)
for w in "${what[@]}"; do
    case "$w" in
        standins) standins ;;
        ours) ours ;;
        *) die "unknown target $w (want standins, ours)" ;;
    esac
done
