#!/usr/bin/env bash
# Starts PostgreSQL (127.0.0.1:5432, trust, database "test") and Redis (127.0.0.1:6379)
# when they are not running; on a fresh Debian machine, installs them first.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_postgres() {
  listening 5432 && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    local hba; hba=$(ls /etc/postgresql/*/main/pg_hba.conf)
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' >"$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 50); do listening 5432 && break; sleep 0.2; done
  psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
}

ensure_redis() {
  listening 6379 && return 0
  command -v redis-server >/dev/null || {
    echo "installing Redis ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ensu.log
  for _ in $(seq 50); do listening 6379 && break; sleep 0.2; done
}

ensure_postgres
ensure_redis
