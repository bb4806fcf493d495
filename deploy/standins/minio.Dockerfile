# Stand-in for the minio/minio image where no registry serves it: the MinIO server that
# scripts/peers.sh builds from the Go module proxy, on the local base. The build context
# is a directory holding that `minio` binary (scripts/docker-build.sh makes it).
ARG BASE_IMAGE=backup-api-base:bookworm
FROM ${BASE_IMAGE}
COPY minio /usr/bin/minio
EXPOSE 9000 9001
VOLUME ["/data"]
ENTRYPOINT ["/usr/bin/minio"]
CMD ["server", "/data"]
