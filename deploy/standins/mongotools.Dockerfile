# mongodump and mongorestore built elsewhere (scripts/peers.sh), for Dockerfile.worker's
# MONGO_TOOLS=image: the binaries in /out, nothing else.
FROM scratch
COPY mongodump mongorestore /out/
