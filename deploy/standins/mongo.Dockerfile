# Stand-in for the mongo image (sample-mongodb) where no registry serves it: FerretDB v1
# (the binary scripts/peers.sh builds) on the local base, storing in SQLite under
# /data/db and speaking the MongoDB wire protocol on 27017. Like the mongo image, it
# creates MONGO_INITDB_ROOT_USERNAME/PASSWORD in `admin` (SCRAM) on first start.
ARG BASE_IMAGE=backup-api-base:bookworm
FROM ${BASE_IMAGE}
COPY ferretdb /usr/local/bin/ferretdb
COPY mongo-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN install -d -m 0700 /data/db
EXPOSE 27017
VOLUME ["/data/db"]
ENTRYPOINT ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]
