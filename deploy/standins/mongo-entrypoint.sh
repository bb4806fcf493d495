#!/bin/sh
# FerretDB as the mongo image's stand-in (mongo.Dockerfile). Its "new authentication"
# checks SCRAM credentials of users it stores, and the setup flags create the root user
# in `admin` when the storage is new, as MONGO_INITDB_ROOT_* do in the mongo image.
set -eu
: "${MONGO_INITDB_ROOT_USERNAME:?the stand-in, like the mongo image, needs a root user}"
: "${MONGO_INITDB_ROOT_PASSWORD:?the stand-in needs MONGO_INITDB_ROOT_PASSWORD}"
export FERRETDB_SETUP_USERNAME="$MONGO_INITDB_ROOT_USERNAME"
export FERRETDB_SETUP_PASSWORD="$MONGO_INITDB_ROOT_PASSWORD"
exec /usr/local/bin/ferretdb --handler=sqlite --sqlite-url=file:/data/db/ \
    --state-dir=/data/db --listen-addr=:27017 --debug-addr=- --telemetry=disable \
    --test-enable-new-auth --setup-database=admin --log-level=warn "$@"
