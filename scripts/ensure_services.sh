#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379) answer for the
# integration tier: start them where they are installed but down, install them with apt where
# missing. Idempotent. Exits non-zero with a clear message when one is still down, so an
# unreachable service fails the run instead of skipping tests.
set -euo pipefail

sudo=$([[ $(id -u) -eq 0 ]] || echo sudo)
apt_updated=

apt_install() {
  echo "ensure_services: installing $*"
  if [[ -z $apt_updated ]]; then
    $sudo apt-get update
    apt_updated=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
redis_up() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

wait_for() {
  local name=$1 check=$2
  for _ in $(seq 30); do
    if $check; then
      echo "ensure_services: $name is up"
      return 0
    fi
    sleep 1
  done
  echo "ensure_services: $name is still not answering on 127.0.0.1 after 30 s" >&2
  return 1
}

if ! postgres_up; then
  fresh=
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql
    fresh=1
  fi
  if [[ -z $(pg_lsclusters -h) ]]; then
    $sudo pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main
    fresh=1
  fi
  version=$(pg_lsclusters -h | awk '{print $1; exit}')
  if [[ -n $fresh ]]; then
    # Only a cluster this script made is changed: it gets the loopback trust auth the tests use.
    $sudo sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' \
      "/etc/postgresql/$version/main/pg_hba.conf"
  fi
  echo "ensure_services: starting PostgreSQL $version"
  # Fails harmlessly when the cluster is already starting; wait_for decides.
  $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  if [[ -n $fresh ]]; then
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  fi
  wait_for PostgreSQL postgres_up
fi

if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server
  echo "ensure_services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  wait_for Redis redis_up
fi

database_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if ! psql -w "$database_url" -Atqc "select 1" >/dev/null; then
  echo "ensure_services: PostgreSQL answers but $database_url does not log in" \
    "(the tests expect trust auth for user postgres on 127.0.0.1, or set TEST_DATABASE_URL)" >&2
  exit 1
fi
echo "ensure_services: PostgreSQL and Redis are ready"
