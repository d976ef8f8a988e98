#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for the suites that run against it (the message
# index, later the admin API): Debian's postgresql-15 package (installed
# with apt-get when missing; nothing is cached in the checkout), a cluster
# initialised in a temporary directory, run as a non-root user (the
# package's "postgres" user when this runs as root), listening on a free
# port of 127.0.0.1 only, stopped and deleted at the end.
#
# scripts/interop.sh sources this file (pg_install, pg_start, pg_stop,
# postgres_suites) and starts PostgreSQL once per run. Alone:
#
#   scripts/postgres.sh             install, start, run the suites, stop
#   scripts/postgres.sh install     install only
#   scripts/postgres.sh run CMD...  start, run CMD with the DSN set, stop
#
# While it runs, HL7BUS_TEST_POSTGRES_DSN is the DSN of a superuser (each
# test makes a schema of its own), and HL7BUS_TEST_POSTGRES_BIN the
# directory of pg_dump, psql and the rest. PG_FSYNC=on keeps fsync on (the
# benchmarks); the default is off, because the cluster is thrown away.

PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
PG_DIR=""

# PG_SUITES are the packages whose tests run against this PostgreSQL.
# Append to it (PG_SUITES+=(./services/admin/...)) for the tests that
# read HL7BUS_TEST_POSTGRES_DSN.
PG_SUITES=(./services/index/...)

# PG_FOCUSED are "PATTERN PACKAGE" pairs: a package of which only the
# tests matching -run PATTERN need this PostgreSQL (the rest of it runs,
# on SQLite, in the ordinary suite, so running it all again here would
# only add CI time). The admin API's index adapter over a real store;
# the analyst's day end to end on an index in PostgreSQL (its SQLite
# twin runs in the ordinary suite), whose pg_dump must hold no PHI.
PG_FOCUSED=(
  '^TestAdminIndex ./services/hl7bus/internal/modules/'
  '^TestAnalystDayEndToEnd$/^postgres$ ./services/hl7bus/e2e/'
)

pg_log() { echo "=== postgres: $*"; }

# pg_install installs postgresql-15 from the Debian archive unless it is
# there; a no-op (and instant) once installed.
pg_install() {
  [ -x "$PG_BIN/postgres" ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  pg_log "installing postgresql-$PG_VERSION from Debian's packages"
  # Debian's package would create and start a "main" cluster on port 5432;
  # the suites make their own, so ask it not to (the file is the package's
  # documented switch; --force-confold keeps it).
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
    -o Dpkg::Options::=--force-confold "postgresql-$PG_VERSION")
  $sudo "${apt[@]}" >/dev/null || { $sudo apt-get update -q >/dev/null && $sudo "${apt[@]}" >/dev/null; }
  [ -x "$PG_BIN/postgres" ] || { echo "postgresql-$PG_VERSION installed no $PG_BIN/postgres" >&2; return 1; }
}

# pg_as runs a command as the cluster's owner: PostgreSQL refuses to run as
# root.
pg_as() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$PG_USER" -- "$@"
  else
    "$@"
  fi
}

pg_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pg_start initialises a cluster in a temporary directory, starts it and
# exports HL7BUS_TEST_POSTGRES_DSN.
pg_start() {
  local t0
  t0=$(date +%s%N)
  PG_USER=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    PG_USER=postgres
    getent passwd postgres >/dev/null || PG_USER=nobody
  fi
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hl7bus-pg.XXXXXX")
  [ "$(id -u)" -eq 0 ] && chown "$PG_USER" "$PG_DIR"
  # Run from a directory the owner can read (initdb checks its cwd).
  (cd "$PG_DIR" && pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U hl7bus --auth=trust -E UTF8 --locale=C --no-sync) \
    > "$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  local port tries=0
  port=${PG_PORT:-$(( 20000 + RANDOM % 20000 ))}
  until pg_port_free "$port" && (cd "$PG_DIR" && pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$PG_DIR -c fsync=${PG_FSYNC:-off}" start) >/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ]; then
      tail -20 "$PG_DIR/server.log" >&2
      return 1
    fi
    port=$(( 20000 + RANDOM % 20000 ))
  done
  export HL7BUS_TEST_POSTGRES_DSN="postgres://hl7bus@127.0.0.1:$port/postgres?sslmode=disable"
  export HL7BUS_TEST_POSTGRES_BIN="$PG_BIN"
  pg_log "PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') as $PG_USER on 127.0.0.1:$port (fsync=${PG_FSYNC:-off}) after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

# pg_stop stops the cluster and deletes it; safe to call twice or before
# pg_start.
pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then
    (cd "$PG_DIR" && pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop) >/dev/null 2>&1 || true
  fi
  rm -rf "$PG_DIR"
  PG_DIR=""
}

# postgres_suites runs the PG_SUITES tests, then the PG_FOCUSED ones,
# against the running cluster.
postgres_suites() {
  local top entry
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  pg_log "suites against PostgreSQL: ${PG_SUITES[*]}"
  (cd "$top" && go test -count=1 -race -timeout 10m "${PG_SUITES[@]}") || return
  for entry in "${PG_FOCUSED[@]}"; do
    pg_log "against PostgreSQL: -run '${entry%% *}' ${entry#* }"
    (cd "$top" && go test -count=1 -race -timeout 10m -run "${entry%% *}" "${entry#* }") || return
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  trap pg_stop EXIT INT TERM
  pg_install
  case "${1:-}" in
  install) exit 0 ;;
  run)
    shift
    pg_start
    "$@"
    ;;
  "")
    pg_start
    postgres_suites
    ;;
  *)
    echo "usage: scripts/postgres.sh [install | run CMD...]" >&2
    exit 2
    ;;
  esac
fi
