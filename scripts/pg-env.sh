# A private PostgreSQL cluster on loopback for the tests and benchmarks (sourced by bash
# scripts). Everything lives in $PGDIR (data/, sock/, server.log); the server listens on
# 127.0.0.1:$PGPORT only and is started and stopped with pg_ctl, never the system service.
# Ports stay below 32768, outside Linux's ephemeral range (ip_local_port_range 32768-60999):
# a port in that range can be taken at any moment as the local end of one of the many
# loopback connections the other suites make, and the server then cannot bind (a CI run
# failed that way on 55442). pg_fresh also moves to the next free port when the chosen one is
# taken, and exports the port it used.
# Loopback connections are trusted (a throwaway cluster); the role `dlp` owns the database
# `dlp`. initdb refuses root: as root the cluster belongs to the `postgres` user.
#
#   PGDIR=/tmp/x/pg PGPORT=25432 . scripts/pg-env.sh
#   pg_need                      # installs Debian's postgresql when missing (root), sets PGBIN
#   pg_fresh                     # stop a cluster left by an interrupted run, init, start, create dlp
#   pg_url                       # postgres://dlp@127.0.0.1:$PGPORT/dlp
#   pg_sql dlp "SELECT 1"
#   pg_stop / pg_start

PGDIR=${PGDIR:-/tmp/ping32dlp-pg}
PGPORT=${PGPORT:-25432}
PGBIN=${PGBIN:-}

_pg_die() { echo "FATAL: $*" >&2; exit 1; }

_pg_owner() {
  if [ "$(id -u)" != 0 ]; then id -un
  elif getent passwd postgres >/dev/null; then echo postgres
  else echo nobody; fi
}

_pg_as() {
  if [ "$(id -u)" = 0 ]; then
    (cd "$PGDIR" && runuser -u "$(_pg_owner)" -- "$@")
  else
    (cd "$PGDIR" && "$@")
  fi
}

_pg_find_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ] && { echo "$d"; return 0; }
  done
  return 1
}

pg_need() {
  [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] && return 0
  if ! PGBIN=$(_pg_find_bin); then
    [ "$(id -u)" = 0 ] || _pg_die "PostgreSQL is not installed; installing it needs root (apt-get install postgresql)"
    local made=0
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1; }
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
      --no-install-recommends postgresql >/dev/null 2>&1 || true
    [ "$made" = 1 ] && rm -f /usr/sbin/policy-rc.d
    PGBIN=$(_pg_find_bin) || _pg_die "could not install postgresql with apt-get"
  fi
}

pg_running() {
  [ -f "$PGDIR/data/postmaster.pid" ] || return 1
  [ -n "$PGBIN" ] || PGBIN=$(_pg_find_bin) || return 1
  _pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1
}

pg_stop() {
  [ -n "$PGBIN" ] || PGBIN=$(_pg_find_bin) || return 0
  [ -d "$PGDIR/data" ] || return 0
  pg_running || return 0
  _pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
    || _pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1
  return 0
}

pg_start() {
  pg_need
  _pg_as "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 30 start >/dev/null 2>&1 \
    || _pg_die "pg_ctl start failed: $(tail -n 6 "$PGDIR/server.log" 2>/dev/null)"
  local i
  for i in $(seq 1 100); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && return 0
    sleep 0.1
  done
  _pg_die "PostgreSQL does not answer on 127.0.0.1:$PGPORT"
}

pg_sql() {
  "$PGBIN/psql" -X -A -t -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$1" -c "$2"
}

pg_url() { echo "postgres://dlp@127.0.0.1:$PGPORT/${1:-dlp}"; }

# _pg_port_free PORT: nothing is bound to 127.0.0.1:PORT (listening or as a connection's end)
_pg_port_free() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# pg_fresh [SETTINGS]: a new cluster (extra postgresql.conf lines in SETTINGS), started, with
# the role and database `dlp`. When $PGPORT is taken, the next free port up to +50 is used.
pg_fresh() {
  pg_need
  pg_stop
  local want=$PGPORT
  while ! _pg_port_free "$PGPORT"; do
    PGPORT=$((PGPORT + 1))
    [ "$PGPORT" -le $((want + 50)) ] || _pg_die "no free port in 127.0.0.1:$want-$((want + 50))"
  done
  [ "$PGPORT" = "$want" ] || echo "note: 127.0.0.1:$want is taken; PostgreSQL uses $PGPORT" >&2
  export PGPORT
  rm -rf "$PGDIR"; mkdir -p "$PGDIR/sock"
  [ "$(id -u)" = 0 ] && chown -R "$(_pg_owner)" "$PGDIR"
  chmod 700 "$PGDIR/sock"
  _pg_as "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$PGDIR/initdb.log" 2>&1 || _pg_die "initdb failed: $(tail -n 3 "$PGDIR/initdb.log")"
  cat >> "$PGDIR/data/postgresql.conf" <<EOF

# a private loopback cluster for tests
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGDIR/sock'
max_connections = 300
logging_collector = off
${1:-}
EOF
  pg_start
  pg_sql postgres "CREATE ROLE dlp LOGIN" >/dev/null
  pg_sql postgres "CREATE DATABASE dlp OWNER dlp" >/dev/null
}

# pg_new_db NAME: another database owned by dlp (a clean store for one test)
pg_new_db() {
  pg_sql postgres "DROP DATABASE IF EXISTS \"$1\"" >/dev/null
  pg_sql postgres "CREATE DATABASE \"$1\" OWNER dlp" >/dev/null
}
