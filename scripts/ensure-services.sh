#!/usr/bin/env bash
# Start what the integration tests need (Mosquitto on 1883, PostgreSQL on 5432) when it is
# not already running; install it from Debian's packages when it is missing. Idempotent.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "ensure-services: apt-get not available, cannot install $*" >&2
    return 1
  fi
  [ -n "${CW_APT_UPDATED:-}" ] || { apt-get update -qq >/dev/null; export CW_APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_port() {
  for _ in $(seq 1 50); do listening "$1" && return 0; sleep 0.2; done
  echo "ensure-services: nothing listens on 127.0.0.1:$1 after starting $2" >&2
  return 1
}

if ! listening 1883; then
  command -v mosquitto >/dev/null || apt_install mosquitto
  conf=/etc/mosquitto/mosquitto.conf
  if [ -f "$conf" ]; then mosquitto -d -c "$conf"; else mosquitto -d -p 1883; fi
  wait_port 1883 mosquitto
fi

if ! listening 5432; then
  if ! ls /etc/postgresql >/dev/null 2>&1; then apt_install postgresql; fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 5432 postgresql
fi

# the tests use database `test` as user postgres with trust auth on 127.0.0.1
if command -v psql >/dev/null; then
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" postgres \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" postgres >/dev/null
fi
# optional: a real Alertmanager for the notifier test (skipped when it cannot be installed)
command -v prometheus-alertmanager >/dev/null || apt_install prometheus-alertmanager \
  || echo "ensure-services: prometheus-alertmanager not installable; its test will skip" >&2
echo "ensure-services: mosquitto and postgresql are up"
