#!/usr/bin/env bash
# A real Apache Kafka 4.x broker for CI and for local runs against "the real thing":
# one node in KRaft combined mode (broker + controller), on loopback, data in a temp dir.
# The jars come from Maven Central through pom.xml beside this script; nothing is committed.
#
#   bash .ci/kafka/kafka.sh fetch          # jars into $KAFKA_HOME_DIR/libs (cached)
#   bootstrap=$(bash .ci/kafka/kafka.sh start)   # prints host:port on stdout, logs on stderr
#   bash .ci/kafka/kafka.sh status         # prints host:port if running, exits 1 if not
#   bash .ci/kafka/kafka.sh stop           # stops it and removes its data
#   bash .ci/kafka/kafka.sh stop --keep-data   # stops it (SIGTERM), keeps data dir and ports
#   bash .ci/kafka/kafka.sh restart        # starts a stopped broker again on the same data and
#                                          # ports (a broker outage, as the fault tests need)
#   bash .ci/kafka/kafka.sh stop-all       # stops every broker recorded here, named ones too
#
# Environment:
#   KAFKA_BROKER_NAME  a name for a second, independent broker with its own state file, data and
#                      ports (default: the one CI shares between the tests); e.g. a test that
#                      restarts "its" broker leaves the shared one alone
#   KAFKA_HOME_DIR     where libs/ goes (default .ci/kafka/target; may be shared between clones)
#   KAFKA_VERSION      override the Kafka version pinned in pom.xml
#   KAFKA_HEAP_OPTS    JVM heap flags (default -Xms256m -Xmx512m: the CI machine has 2 cores and
#                      runs the tests and Faust workers beside the broker)
#   KAFKA_START_TIMEOUT seconds to wait for the broker to answer (default 60)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home_dir="${KAFKA_HOME_DIR:-$here/target}"
libs="$home_dir/libs"
# Per checkout, not per KAFKA_HOME_DIR: two clones sharing a jar cache must not share a broker.
broker_name="${KAFKA_BROKER_NAME:-}"
[[ "$broker_name" =~ ^[A-Za-z0-9_.-]*$ ]] || { echo "kafka.sh: bad KAFKA_BROKER_NAME" >&2; exit 2; }
state_file="$here/target/broker${broker_name:+-$broker_name}.env"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"

say() { echo "kafka.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# The pom's hash (plus any version override) names what the cached libs were fetched from,
# so editing the pom or KAFKA_VERSION refetches, and an unchanged pom costs no Maven run.
fetch_key() { { cat "$here/pom.xml"; echo "${KAFKA_VERSION:-}"; } | sha256sum | cut -d' ' -f1; }

cmd_fetch() {
    local key
    key="$(fetch_key)"
    if [[ -f "$libs/.fetched" && "$(cat "$libs/.fetched")" == "$key" ]]; then
        say "libs up to date in $libs"
        return
    fi
    command -v mvn >/dev/null || die "mvn not found: Maven is needed to fetch Kafka"
    mkdir -p "$home_dir"
    # Copy into a fresh dir and swap it in, so an interrupted fetch never leaves half the jars
    # behind a valid-looking marker.
    local tmp
    tmp="$(mktemp -d "$home_dir/libs.tmp.XXXXXX")"
    local -a version_arg=()
    [[ -n "${KAFKA_VERSION:-}" ]] && version_arg=("-Dkafka.version=$KAFKA_VERSION")
    say "fetching Kafka jars with Maven into $libs"
    # Maven's output is kept for a failure only: even -q -B leaves terminal escape codes.
    if ! mvn -q -B -f "$here/pom.xml" "${version_arg[@]}" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
        cat "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        die "Maven could not fetch the Kafka jars"
    fi
    rm -f "$tmp.log"
    echo "$key" >"$tmp/.fetched"
    rm -rf "$libs"
    mv "$tmp" "$libs"
    say "fetched $(find "$libs" -name '*.jar' | wc -l) jars, Apache Kafka $(kafka_version)"
}

# The version of the fetched broker jar, e.g. 4.4.0 (from kafka_2.13-4.4.0.jar).
kafka_version() {
    local jar
    for jar in "$libs"/kafka_2.13-*.jar; do
        jar="${jar##*/kafka_2.13-}"
        echo "${jar%.jar}"
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# True once the port speaks Kafka: an ApiVersions v0 request gets a response with our
# correlation id. An open port is not enough (the socket server binds before it serves).
kafka_answers() {
    python3 - "$1" <<'PY'
import socket, sys
body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (7).to_bytes(4, "big")
body += (2).to_bytes(2, "big") + b"ci"
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1.0) as s:
        s.sendall(len(body).to_bytes(4, "big") + body)
        head = s.recv(8)
except OSError:
    sys.exit(1)
sys.exit(0 if len(head) == 8 and int.from_bytes(head[4:8], "big") == 7 else 1)
PY
}

running_pid() {
    [[ -f "$state_file" ]] || return 1
    # shellcheck disable=SC1090
    source "$state_file"
    [[ -n "${KAFKA_CI_PID:-}" ]] && kill -0 "$KAFKA_CI_PID" 2>/dev/null
}

cmd_start() {
    if running_pid; then
        die "a broker is already running (pid $KAFKA_CI_PID, $KAFKA_CI_BOOTSTRAP); run stop first"
    fi
    [[ -f "$libs/.fetched" ]] || cmd_fetch
    command -v "$java" >/dev/null || die "java not found (Kafka 4 needs Java 17+)"

    local run port cport
    run="$(mktemp -d "${TMPDIR:-/tmp}/fw-kafka.XXXXXX")"
    port="$(free_port)"
    cport="$(free_port)"
    while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done

    cat >"$run/server.properties" <<EOF
# Single-node KRaft: this process is the only broker and the only controller.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$run/data
# One broker, so every internal topic must live with one replica or it is never created.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Kafka's default 3 s delay before the first rebalance of a new group would add 3 s to every
# test that starts a worker; production keeps it, tests do not need it.
group.initial.rebalance.delay.ms=0
# Test helpers read topics a worker has not written yet; Kafka's default, stated because
# the tests rely on it.
auto.create.topics.enable=true
num.partitions=1
EOF

    local cluster_id
    local -a jvm=(-cp "$libs/*" -Dlog4j2.configurationFile="$here/log4j2.properties"
                  -Dkafka.ci.log.file="$run/kafka.log" -Djava.awt.headless=true)
    cluster_id="$("$java" "${jvm[@]}" -Xmx128m kafka.tools.StorageTool random-uuid)"
    # --standalone: this node is the whole controller quorum (KIP-853 dynamic quorum).
    if ! "$java" "${jvm[@]}" -Xmx128m kafka.tools.StorageTool format --standalone \
            -t "$cluster_id" -c "$run/server.properties" >"$run/format.out" 2>&1; then
        cat "$run/format.out" >&2
        rm -rf "$run"
        die "formatting the KRaft storage failed"
    fi

    launch "$run" "$port"
}

# Start the JVM on an already formatted $1 (run dir) listening on port $2, record it in the state
# file, and wait until it answers. Used by start, and by restart on the same dir and ports.
launch() {
    local run="$1" port="$2"
    local -a jvm=(-cp "$libs/*" -Dlog4j2.configurationFile="$here/log4j2.properties"
                  -Dkafka.ci.log.file="$run/kafka.log" -Djava.awt.headless=true)
    # shellcheck disable=SC2086  # heap flags are a word list on purpose
    setsid "$java" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+ExitOnOutOfMemoryError "${jvm[@]}" \
        kafka.Kafka "$run/server.properties" >>"$run/stdout.log" 2>&1 </dev/null &
    local pid=$!
    mkdir -p "$(dirname "$state_file")"
    cat >"$state_file" <<EOF
KAFKA_CI_PID=$pid
KAFKA_CI_RUN_DIR=$run
KAFKA_CI_BOOTSTRAP=127.0.0.1:$port
KAFKA_CI_PORT=$port
EOF

    local timeout="${KAFKA_START_TIMEOUT:-60}" started=$SECONDS
    until kafka_answers "$port"; do
        if ! kill -0 "$pid" 2>/dev/null || (( SECONDS - started >= timeout )); then
            if kill -0 "$pid" 2>/dev/null; then
                say "broker did not answer on 127.0.0.1:$port within ${timeout}s"
            else
                say "broker exited during startup"
            fi
            tail -n 60 "$run/stdout.log" "$run/kafka.log" >&2 2>/dev/null || true
            cmd_stop
            exit 1
        fi
        sleep 0.5
    done
    say "Apache Kafka $(kafka_version) up on 127.0.0.1:$port in $((SECONDS - started))s (pid $pid, dir $run)"
    echo "127.0.0.1:$port"
}

cmd_stop() {
    local keep=0
    [[ "${1:-}" == "--keep-data" ]] && keep=1
    [[ -f "$state_file" ]] || { say "no broker recorded; nothing to stop"; return 0; }
    # shellcheck disable=SC1090
    source "$state_file"
    local pid="${KAFKA_CI_PID:-}"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        # SIGTERM: a clean KRaft shutdown takes a second or two. A broker that hangs is killed
        # rather than waited for (with --keep-data, restart then recovers its logs).
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$pid" 2>/dev/null; then
            say "broker did not stop in 15s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped broker (pid $pid)"
    fi
    if (( keep )); then
        # The record stays, without a pid, so restart finds the data dir and the ports.
        sed -i 's/^KAFKA_CI_PID=.*/KAFKA_CI_PID=/' "$state_file"
        return 0
    fi
    [[ -n "${KAFKA_CI_RUN_DIR:-}" && -d "$KAFKA_CI_RUN_DIR" ]] && rm -rf "$KAFKA_CI_RUN_DIR"
    rm -f "$state_file"
}

# Every broker this checkout recorded, the shared one and the named ones (CI's clean-up: a test
# killed mid-run cannot stop its own).
cmd_stop_all() {
    local f name
    for f in "$here"/target/broker.env "$here"/target/broker-*.env; do
        [[ -f "$f" ]] || continue
        name="${f##*/broker}"
        name="${name#-}"
        KAFKA_BROKER_NAME="${name%.env}" bash "${BASH_SOURCE[0]}" stop
    done
}

cmd_restart() {
    [[ -f "$state_file" ]] || die "no broker recorded; run start first"
    if running_pid; then
        die "the broker is running (pid $KAFKA_CI_PID); run stop --keep-data first"
    fi
    [[ -n "${KAFKA_CI_RUN_DIR:-}" && -d "$KAFKA_CI_RUN_DIR/data" && -n "${KAFKA_CI_PORT:-}" ]] \
        || die "the recorded broker has no data dir or port to restart on"
    launch "$KAFKA_CI_RUN_DIR" "$KAFKA_CI_PORT"
}

cmd_status() {
    running_pid || { say "not running"; exit 1; }
    echo "$KAFKA_CI_BOOTSTRAP"
}

cmd_logs() {
    [[ -f "$state_file" ]] || die "no broker recorded"
    # shellcheck disable=SC1090
    source "$state_file"
    tail -n "${1:-100}" "$KAFKA_CI_RUN_DIR/kafka.log"
}

case "${1:-}" in
    fetch) cmd_fetch ;;
    start) cmd_start ;;
    stop) cmd_stop "${2:-}" ;;
    stop-all) cmd_stop_all ;;
    restart) cmd_restart ;;
    status) cmd_status ;;
    logs) cmd_logs "${2:-100}" ;;
    *) echo "usage: $0 fetch|start|stop [--keep-data]|stop-all|restart|status|logs [lines]" >&2; exit 2 ;;
esac
