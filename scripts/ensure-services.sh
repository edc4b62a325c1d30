#!/usr/bin/env bash
# Make sure the services the test suite needs are reachable: MariaDB and Redis (and, with
# --browser, Debian's Chromium). Starts an installed service that is stopped; installs a missing
# one with apt-get when running as root; otherwise stops with the command to run.
set -euo pipefail

want_browser=0
[ "${1:-}" = "--browser" ] && want_browser=1

say() { printf '[services] %s\n' "$*"; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_updated=0
apt_install() {
  if ! is_root; then
    say "$1 is missing. Install it with: sudo apt-get install -y $*"
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  say "installing $* with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # wait_for NAME COMMAND...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "$name did not come up"; return 1
}

mariadb_tcp() { mariadb -uroot -h127.0.0.1 -P3306 -e 'SELECT 1'; }

ensure_mariadb() {
  if command -v mariadb >/dev/null && mariadb_tcp >/dev/null 2>&1; then
    say "MariaDB is up on 127.0.0.1:3306"; return
  fi
  [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server mariadb-client
  if ! mariadb_tcp >/dev/null 2>&1; then
    say "starting MariaDB"
    if is_root; then
      mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
      start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
        || service mariadb start
    else
      say "MariaDB is stopped. Start it with: sudo service mariadb start"; exit 1
    fi
    wait_for "MariaDB" mariadb -uroot -e 'SELECT 1' || true
  fi
  if ! mariadb_tcp >/dev/null 2>&1 && is_root && mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    # A fresh Debian install lets root in only through the socket; the tests connect over TCP.
    say "allowing root@localhost over TCP with an empty password (test machine only)"
    mariadb -uroot -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;"
  fi
  wait_for "MariaDB over TCP" mariadb_tcp
  say "MariaDB is up on 127.0.0.1:3306"
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "Redis is up on 127.0.0.1:6379"; return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis"
  mkdir -p /tmp/stagepass-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/stagepass-redis --logfile /tmp/stagepass-redis/redis.log
  wait_for "Redis" redis-cli -h 127.0.0.1 -p 6379 ping
  say "Redis is up on 127.0.0.1:6379"
}

ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then say "Chromium is at /usr/bin/chromium"; return; fi
  apt_install chromium
  say "Chromium is at /usr/bin/chromium"
}

ensure_mariadb
ensure_redis
[ "$want_browser" = 1 ] && ensure_chromium
exit 0
