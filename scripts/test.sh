#!/usr/bin/env bash
# The test command: install what the tests need, build the real peers (cached under
# ~/.cache/backup-api), then run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
command -v redis-server >/dev/null || apt_packages+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || apt_packages+=(postgresql-15 postgresql-client-15)
command -v runuser >/dev/null || apt_packages+=(util-linux)
command -v promtool >/dev/null || apt_packages+=(prometheus)  # real Prometheus + promtool
command -v npm >/dev/null || apt_packages+=(npm)               # for dclint
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)         # real browser for /docs
command -v zstd >/dev/null || apt_packages+=(zstd)               # checks zstd artifacts as a user would
command -v age >/dev/null || apt_packages+=(age)                 # decrypts encrypted downloads as a user would
command -v dockerd >/dev/null || apt_packages+=(docker.io)       # the compose test's engine (started by the test)
command -v debootstrap >/dev/null || apt_packages+=(debootstrap) # the compose test's local Debian base image
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "test.sh: installing ${apt_packages[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  # One at a time: a package apt cannot resolve next to another (npm beside a Node.js
  # that ships its own) then names itself instead of failing the whole list.
  for package in "${apt_packages[@]}"; do
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "$package" >/dev/null || { echo "test.sh: apt-get could not install $package" >&2; exit 1; }
  done
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# dclint lints docker-compose.yml (tests/deploy); cached outside the checkout.
dclint_dir="${BACKUP_API_CACHE:-$HOME/.cache/backup-api}/node"
[ -x "$dclint_dir/node_modules/.bin/dclint" ] || npm install --prefix "$dclint_dir" \
  --no-audit --no-fund --loglevel=error dclint@3.1.0 >&2

if [ -f scripts/peers.sh ]; then
  # A peer the registries no longer serve is not fatal: its tests skip with the reason.
  # Say which peers this run has now, before pytest's output buries it.
  BACKUP_API_PEERS_BIN="$(bash scripts/peers.sh)"
  export BACKUP_API_PEERS_BIN
  export PATH="$BACKUP_API_PEERS_BIN:$PATH"
  if [ -f "$BACKUP_API_PEERS_BIN/peers.status" ]; then
    while IFS=$'\t' read -r name state detail; do
      echo "test.sh: peer $name: $state ($detail)" >&2
    done <"$BACKUP_API_PEERS_BIN/peers.status"
  fi
fi

python3 -m ruff check .
python3 -m mypy api worker shared cli.py
lint-imports --no-logo  # the import contract in pyproject.toml
exec python3 -m pytest "$@"
