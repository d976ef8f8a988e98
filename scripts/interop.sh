#!/usr/bin/env bash
# The real-peer suite (make test-interop): installs Apache Kafka and Apicurio
# Registry from Maven Central, PostgreSQL 15 from Debian's packages
# (scripts/postgres.sh: apt-get, into the system, not the cache) and the
# analyst's Python consumer from PyPI into
# $HL7BUS_INTEROP_CACHE (default ~/.cache/hl7bus/interop: outside the
# checkout, because CI runs in a fresh clone and a cache inside it is always
# empty there; later runs reuse it), starts them on loopback, runs the
# end-to-end suites against them, and stops every process it started,
# whatever happens.
#
# Needs Java 17, Maven, Python 3 and Go (and root or sudo the first time,
# for apt-get); reaches only Maven Central, PyPI, the Debian archive and
# the Go proxy.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache="${HL7BUS_INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hl7bus/interop}"
work=$(mktemp -d)
pids=()
# pg_install, pg_start, pg_stop, postgres_suites and PG_SUITES.
. "$top/scripts/postgres.sh"
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

APICURIO_VERSION=3.0.9 # 3.1+ needs Java 21; the CI machine promises Java 17
KAFKA_PORT=${KAFKA_PORT:-19092}
CONTROLLER_PORT=${CONTROLLER_PORT:-19093}
REGISTRY_PORT=${REGISTRY_PORT:-18081}
start=$(date +%s)
log() { echo "=== interop: $* ($(( $(date +%s) - start ))s)"; }

install() {
  mkdir -p "$cache"
  pg_install
  if [ ! -f "$cache/kafka/.done" ]; then
    log "installing Kafka from Maven Central"
    rm -rf "$cache/kafka"
    mvn -q -B -f "$top/interop/peers/pom.xml" dependency:copy-dependencies -DoutputDirectory="$cache/kafka/libs"
    touch "$cache/kafka/.done"
  fi
  local want
  want=$(sha256sum "$top/interop/analyst/requirements.txt" | cut -c1-16)
  if [ "$(cat "$cache/venv/.done" 2>/dev/null)" != "$want" ]; then
    log "installing the analyst's consumer (confluent-kafka) from PyPI"
    rm -rf "$cache/venv"
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install -q --disable-pip-version-check -r "$top/interop/analyst/requirements.txt"
    echo "$want" > "$cache/venv/.done"
  fi
  local hapi_want
  hapi_want=$(cat "$top/interop/hapi/pom.xml" "$top/interop/hapi/src/main/java/org/hl7bus/interop/HapiPeer.java" | sha256sum | cut -c1-16)
  if [ "$(cat "$cache/hapi/.done" 2>/dev/null)" != "$hapi_want" ]; then
    log "installing HAPI HL7v2 from Maven Central and building the HAPI peer"
    rm -rf "$cache/hapi"
    mvn -q -B -f "$top/interop/hapi/pom.xml" dependency:copy-dependencies -DoutputDirectory="$cache/hapi/libs"
    javac -d "$cache/hapi/classes" -cp "$cache/hapi/libs/*" "$top/interop/hapi/src/main/java/org/hl7bus/interop/HapiPeer.java"
    echo "$hapi_want" > "$cache/hapi/.done"
  fi
  if [ ! -f "$cache/apicurio/.done" ]; then
    log "installing Apicurio Registry $APICURIO_VERSION from Maven Central"
    rm -rf "$cache/apicurio" && mkdir -p "$cache/apicurio"
    mvn -q -B dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" -DoutputDirectory="$cache/apicurio"
    tar xzf "$cache/apicurio/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$cache/apicurio"
    rm "$cache/apicurio/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
    touch "$cache/apicurio/.done"
  fi
}

wait_for() { # name, timeout seconds, command...
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if [ $(( $(date +%s) - t0 )) -ge "$limit" ]; then
      echo "$name did not come up within ${limit}s" >&2
      return 1
    fi
    sleep 0.2
  done
}

start_kafka() {
  local data="$work/kafka-data"
  sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@DATA@#$data#g" \
    "$top/interop/peers/kafka.properties" > "$work/kafka.properties"
  local cp="$cache/kafka/libs/*"
  local cluster
  cluster=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  java -cp "$cp" kafka.tools.StorageTool format --standalone -t "$cluster" -c "$work/kafka.properties" >/dev/null
  local t0=$(date +%s%N)
  java -Xmx512m -Dlog4j2.configurationFile="$top/interop/peers/log4j2.yaml" -cp "$cp" kafka.Kafka "$work/kafka.properties" \
    > "$work/kafka.log" 2>&1 &
  pids+=($!)
  KAFKA_PID=$!
  wait_for kafka 60 bash -c "echo > /dev/tcp/127.0.0.1/$KAFKA_PORT" || { tail -20 "$work/kafka.log"; exit 1; }
  log "Kafka 4.1.1 listening on 127.0.0.1:$KAFKA_PORT after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

start_registry() {
  local t0=$(date +%s%N)
  APICURIO_STORAGE_KIND=kafkasql APICURIO_KAFKASQL_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT" \
    QUARKUS_HTTP_HOST=127.0.0.1 QUARKUS_HTTP_PORT="$REGISTRY_PORT" \
    java -Xmx512m -jar "$cache/apicurio/apicurio-registry-app-$APICURIO_VERSION-runner.jar" > "$work/registry.log" 2>&1 &
  pids+=($!)
  wait_for registry 120 curl -sf "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/subjects" || { tail -20 "$work/registry.log"; exit 1; }
  log "Apicurio Registry $APICURIO_VERSION ready after $(( ($(date +%s%N) - t0) / 1000000 )) ms (schemas stored in Kafka)"
}

rss() { ps -o rss= -p "$1" 2>/dev/null | awk '{printf "%d MiB", $1/1024}'; }

install
if [ "${1:-}" = "install" ]; then
  # scripts/interop.sh install: fill the cache only (e.g. ahead of a run).
  log "peers installed in $cache"
  exit 0
fi
start_kafka
start_registry
log "memory: Kafka $(rss "${pids[0]}"), Apicurio $(rss "${pids[1]}")"

if [ "${1:-}" = "loadtest" ]; then
  # scripts/interop.sh loadtest SCENARIO: the five stages as separate
  # processes against this Kafka and registry, measured by hl7load.
  scenario=${2:?usage: scripts/interop.sh loadtest SCENARIO.yaml}
  (cd "$top" && make build >/dev/null)
  cat > "$work/hl7bus.yaml" <<CFG
log: {level: warn, format: text}
http: {address: "off"}
kafka: {brokers: ["127.0.0.1:$KAFKA_PORT"], partitions: 6}
registry: {url: "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"}
interfaces: [{name: hospital-in, protocol: mllp, address: "127.0.0.1:2575"}]
destinations: [{name: lis, protocol: mllp, address: "127.0.0.1:2576", retry: {initial_backoff: 500ms, max_backoff: 1m}}]
routes: [{name: everything-to-lis, destinations: [lis]}]
CFG
  for st in ingress parse transform route egress; do
    "$top/bin/hl7bus" "$st" --config "$work/hl7bus.yaml" --instance lt0 > "$work/$st.log" 2>&1 &
    pids+=($!)
  done
  wait_for ingress 60 bash -c "echo > /dev/tcp/127.0.0.1/2575"
  sleep 5 # let every stage join its group before the clock starts
  mkdir -p "$top/.cache/loadtest"
  name=$(basename "$scenario" .yaml)
  log "load: $scenario on Apache Kafka, each stage its own process"
  "$top/bin/hl7load" run --scenario "$scenario" --corpus "$top/loadtest/corpus" --json "$top/.cache/loadtest/$name-kafka.json"
  log "report: $top/.cache/loadtest/$name-kafka.json"
  exit 0
fi

# One PostgreSQL for the whole run (each test makes a schema of its own):
# first the suites that need only it, then every later suite sees
# HL7BUS_TEST_POSTGRES_DSN too.
pg_start
postgres_suites

export HL7BUS_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export HL7BUS_TEST_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
export HL7BUS_TEST_ANALYST="$cache/venv/bin/python"
export HL7BUS_TEST_HAPI_CP="$cache/hapi/classes:$cache/hapi/libs/*"
# The fault test starts (and restarts) a broker of its own from these jars.
export HL7BUS_TEST_KAFKA_LIBS="$cache/kafka/libs"
export HL7BUS_TEST_CROSSCHECK_REPORT="$cache/crosscheck.txt"

log "end-to-end suites, HAPI round trip, analyst's consumer and faults on Apache Kafka + Apicurio"
# 20m: the e2e suite on a real broker under -race takes several minutes,
# and a stuck test should fail with its stacks, not hang CI. The
# analyst's day on PostgreSQL ran already (PG_FOCUSED): not twice.
(cd "$top" && go test -tags interop -count=1 -race -timeout 20m -skip '^TestAnalystDayEndToEnd$/^postgres$' ./libs/kafka/... ./libs/pipeline/... ./services/hl7bus/e2e/... ./services/hl7bus/internal/cli/...)

if [ -d "$top/../shared/corpus" ]; then
  log "parser cross-check: HAPI HL7v2 and libs/hl7v2 on the shared corpus"
  (cd "$top" && go test -tags interop -count=1 -run TestCrossCheckWithHAPI ./libs/hl7v2)
  head -1 "$HL7BUS_TEST_CROSSCHECK_REPORT"
else
  log "no ../shared/corpus: the HAPI round trip and the parser cross-check need it"
fi
log "done"
