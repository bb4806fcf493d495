#!/bin/sh
# The postgres image's first-start behaviour, for the stand-in (postgres.Dockerfile):
# initdb with POSTGRES_USER/POSTGRES_PASSWORD, create POSTGRES_DB, run the init scripts,
# then serve on every interface with password (SCRAM) authentication.
set -eu
bin=/usr/lib/postgresql/15/bin
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
: "${POSTGRES_PASSWORD:?the stand-in, like the postgres image, needs POSTGRES_PASSWORD}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # A private socket only while the init scripts run: nobody connects, and pg_isready
    # (the healthcheck) does not answer, before they are done.
    init_socket=$(mktemp -d)
    export PGHOST="$init_socket"
    "$bin/pg_ctl" -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$init_socket" \
        start >/dev/null
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sql) echo "docker-entrypoint: running $f"
                   psql -v ON_ERROR_STOP=1 -q -U "$user" -d "$db" -f "$f" ;;
            *.sh) echo "docker-entrypoint: running $f"; . "$f" ;;
            *) [ -e "$f" ] && echo "docker-entrypoint: ignoring $f" ;;
        esac
    done
    "$bin/pg_ctl" -D "$PGDATA" -w -m fast stop >/dev/null
    unset PGHOST
    rmdir "$init_socket"
    echo "docker-entrypoint: init done"
fi

if [ "${1:-postgres}" = postgres ]; then
    [ $# -gt 0 ] && shift
    exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
