# Stand-in for the redis image where no registry serves it: Debian 12's redis-server on
# the local base, run as the redis user in /data like the official image (compose gives
# the command line: --appendonly, --requirepass). redis-cli is on PATH for the healthcheck.
ARG BASE_IMAGE=backup-api-base:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o redis -g redis -m 0750 /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
