# Stand-in for the minio/mc image (minio-init) where no registry serves it: MinIO's client
# that scripts/peers.sh builds, on the local base (minio-init.sh needs only mc and sh).
ARG BASE_IMAGE=backup-api-base:bookworm
FROM ${BASE_IMAGE}
COPY mc /usr/bin/mc
ENTRYPOINT ["/usr/bin/mc"]
