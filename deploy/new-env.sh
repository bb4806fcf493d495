#!/bin/sh
# Write the .env of docker-compose.yml from .env.example, giving every setting left empty
# there (the passwords and keys) a fresh random value: 32 bytes from /dev/urandom as 64
# hex digits, safe inside the URLs compose builds (and a valid BACKUP_API_SECRET_KEY).
# Never overwrites an existing file.
#
#   sh deploy/new-env.sh [PATH]        (default: .env next to docker-compose.yml)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.env}
if [ -e "$out" ]; then
    echo "new-env: $out exists; not overwriting it (the databases' volumes were created" \
        "with its passwords)" >&2
    exit 1
fi

random() {
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

umask 077  # the file holds every secret of the deployment
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        [A-Z]*=) printf '%s%s\n' "$line" "$(random)" ;;
        *) printf '%s\n' "$line" ;;
    esac
done <"$root/.env.example" >"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "new-env: wrote $out (keep it private: it holds every password of the deployment)" >&2
