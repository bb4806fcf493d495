# Stand-in for the postgres image (metadata-db, sample-postgres) where no registry serves
# it: Debian 12's postgresql-15 on the local base, with the official image's interface
# (POSTGRES_USER/PASSWORD/DB, /docker-entrypoint-initdb.d/*.sql and *.sh on first start,
# data in /var/lib/postgresql/data, pg_isready on PATH). Built by scripts/docker-build.sh.
ARG BASE_IMAGE=backup-api-base:bookworm
FROM ${BASE_IMAGE}
# As the official image does: no cluster made at install, the data directory is ours.
# hadolint ignore=DL3008
RUN install -d /etc/postgresql-common \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 2775 /var/run/postgresql \
    && install -d /docker-entrypoint-initdb.d
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
