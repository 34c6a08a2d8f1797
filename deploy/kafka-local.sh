#!/usr/bin/env bash
# kafka-local.sh — a single-node Apache Kafka 4.x broker (KRaft, no ZooKeeper)
# on loopback, for goalpost's integration tests.
#
# No Docker and no Kafka .tgz are needed: the broker is assembled from the
# Kafka jars published to Maven Central (kafka_2.13 + kafka-tools and their
# dependencies, plus a log4j2 binding), resolved with `mvn` into a cache.
#
#   deploy/kafka-local.sh install    resolve the jars into the cache (idempotent)
#   deploy/kafka-local.sh start      install if needed, format storage if new,
#                                    start in the background, wait until serving
#   deploy/kafka-local.sh stop       SIGTERM, wait, then SIGKILL (idempotent)
#   deploy/kafka-local.sh restart    stop + start, keeping the data
#   deploy/kafka-local.sh fresh      stop, delete the data, start from empty storage
#                                    (what the test command uses: topics never pile up)
#   deploy/kafka-local.sh status     exit 0 if the broker is serving
#   deploy/kafka-local.sh env        print `export KAFKA_BOOTSTRAP=...` lines
#   deploy/kafka-local.sh pid        print the broker's process id (exit 1 if not running)
#   deploy/kafka-local.sh reset      stop and delete the data (topics, offsets)
#   deploy/kafka-local.sh run-class CLASS [ARGS...]
#                                    run a Kafka tool class on the cached
#                                    classpath, e.g. org.apache.kafka.tools.TopicCommand
#
# See deploy/README.md for the environment variables.
set -euo pipefail

# ---------------------------------------------------------------- settings
KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"
# log4j2 binding for Kafka's slf4j 1.7 API; the same line as Kafka 4.3's log4j-core.
KAFKA_LOG4J_VERSION="${KAFKA_LOG4J_VERSION:-2.25.4}"
KAFKA_DEPENDENCY_PLUGIN="${KAFKA_DEPENDENCY_PLUGIN:-org.apache.maven.plugins:maven-dependency-plugin:3.8.1}"

KAFKA_HOST="127.0.0.1"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_SASL_PORT="${KAFKA_SASL_PORT-19094}"          # 0 or empty: no SASL listener
KAFKA_SASL_USER="${KAFKA_SASL_USER:-goalpost}"
KAFKA_SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-goalpost-secret}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx1g}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
# Open-file limit asked for the broker (each partition keeps several segment and index files
# open); raised as far as the hard limit allows, and further when running as root.
KAFKA_NOFILE="${KAFKA_NOFILE:-1048576}"
KAFKA_NODE_ID=1

if [[ -z "${GOALPOST_KAFKA_HOME:-}" ]]; then
  if [[ -n "${XDG_CACHE_HOME:-}" ]]; then
    GOALPOST_KAFKA_HOME="$XDG_CACHE_HOME/goalpost/kafka"
  else
    GOALPOST_KAFKA_HOME="${HOME:?HOME is not set}/.cache/goalpost/kafka"
  fi
fi

DIST_DIR="$GOALPOST_KAFKA_HOME/dist/$KAFKA_VERSION"
LIB_DIR="$DIST_DIR/lib"
INSTALL_MARKER="$LIB_DIR/.installed"
DATA_DIR="$GOALPOST_KAFKA_HOME/data"
LOG_DIR="$DATA_DIR/logs"
KRAFT_DIR="$DATA_DIR/kraft-logs"
CONF_DIR="$DATA_DIR/config"
PID_FILE="$GOALPOST_KAFKA_HOME/kafka.pid"
LOCK_FILE="$GOALPOST_KAFKA_HOME/.lock"
SERVER_LOG="$LOG_DIR/server.log"
CONSOLE_LOG="$LOG_DIR/console.log"

# ---------------------------------------------------------------- helpers
say() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { printf 'kafka-local: error: %s\n' "$*" >&2; exit 1; }

# Show a path with $HOME abbreviated to ~ (messages stay machine-neutral).
show() {
  local p="$1"
  if [[ -n "${HOME:-}" && "$p" == "$HOME"/* ]]; then p="~${p#"$HOME"}"; fi
  printf '%s' "$p"
}

valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && (( $1 > 0 && $1 < 65536 )); }

sasl_enabled() { [[ -n "$KAFKA_SASL_PORT" && "$KAFKA_SASL_PORT" != 0 ]]; }

check_settings() {
  valid_port "$KAFKA_PORT" || die "KAFKA_PORT must be a port number (got '$KAFKA_PORT')"
  valid_port "$KAFKA_CONTROLLER_PORT" || die "KAFKA_CONTROLLER_PORT must be a port number (got '$KAFKA_CONTROLLER_PORT')"
  if sasl_enabled; then
    valid_port "$KAFKA_SASL_PORT" || die "KAFKA_SASL_PORT must be a port number, or 0 to disable (got '$KAFKA_SASL_PORT')"
  fi
  [[ "$KAFKA_VERSION" =~ ^4\.[0-9]+\.[0-9]+$ ]] || die "KAFKA_VERSION must be a Kafka 4.x release like 4.3.1 (got '$KAFKA_VERSION')"
  [[ "$KAFKA_START_TIMEOUT" =~ ^[0-9]+$ ]] || die "KAFKA_START_TIMEOUT must be whole seconds"
  [[ "$KAFKA_STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "KAFKA_STOP_TIMEOUT must be whole seconds"
  [[ "$KAFKA_NOFILE" =~ ^[0-9]+$ ]] || die "KAFKA_NOFILE must be a whole number of files (got '$KAFKA_NOFILE')"
}

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    printf '%s' "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    printf 'java'
  else
    die "java not found (Kafka 4 needs Java 17 or newer; set JAVA_HOME or put java on PATH)"
  fi
}

check_java() {
  local java ver major
  java="$(java_bin)"
  ver="$("$java" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${ver%%.*}"
  [[ "$major" == 1 ]] && major="$(printf '%s' "$ver" | cut -d. -f2)"
  [[ "$major" =~ ^[0-9]+$ ]] || die "could not read the Java version ('$ver')"
  (( major >= 17 )) || die "Kafka 4 needs Java 17 or newer; found Java $ver"
}

# Serialise concurrent invocations (e.g. test binaries started in parallel).
take_lock() {
  mkdir -p "$GOALPOST_KAFKA_HOME"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK_FILE"
    if ! flock -w 600 9; then die "another kafka-local.sh is still running (lock held for 10 minutes)"; fi
  fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") >/dev/null 2>&1
}

read_pid() {
  local pid
  [[ -f "$PID_FILE" ]] || return 1
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  printf '%s' "$pid"
}

# True if the pid file names a live broker process started by this script.
broker_running() {
  local pid
  pid="$(read_pid)" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka' || return 1
  fi
  return 0
}

classpath() { printf '%s' "$LIB_DIR/*"; }

# ---------------------------------------------------------------- install
write_pom() {
  cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/kafka-local.sh: only used to resolve the broker's jars. -->
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.goalpost</groupId>
  <artifactId>kafka-local-classpath</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- broker (kafka.Kafka) and storage tool (kafka.tools.StorageTool) -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-server</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- command-line tools: TopicCommand, ConsoleProducer, ConsoleConsumer, ... -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- logging: log4j2 behind Kafka's slf4j 1.7 API -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
}

installed() {
  [[ -f "$INSTALL_MARKER" ]] && [[ "$(cat "$INSTALL_MARKER")" == "kafka=$KAFKA_VERSION log4j=$KAFKA_LOG4J_VERSION" ]]
}

do_install() {
  check_java
  if installed; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found: Maven is needed to fetch the Kafka jars"
  local build="$DIST_DIR/build" staging="$DIST_DIR/lib.tmp" start end
  rm -rf "$build" "$staging"
  mkdir -p "$build" "$staging"
  write_pom "$build/pom.xml"
  local mvn_args=(-B -q -ntp -f "$build/pom.xml")
  if [[ -n "${KAFKA_MVN_REPO:-}" ]]; then mvn_args+=("-Dmaven.repo.local=$KAFKA_MVN_REPO"); fi
  # shellcheck disable=SC2206  # KAFKA_MVN_ARGS is deliberately word-split
  if [[ -n "${KAFKA_MVN_ARGS:-}" ]]; then mvn_args+=($KAFKA_MVN_ARGS); fi
  say "installing Kafka $KAFKA_VERSION jars with Maven (first time only)..."
  start=$SECONDS
  if ! mvn "${mvn_args[@]}" "$KAFKA_DEPENDENCY_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$staging" >"$build/mvn.log" 2>&1; then
    tail -n 30 "$build/mvn.log" >&2 || true
    die "Maven could not resolve Kafka $KAFKA_VERSION (full output: $(show "$build/mvn.log"))"
  fi
  for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-server-$KAFKA_VERSION.jar" \
             "kafka-tools-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar" \
             "log4j-slf4j-impl-$KAFKA_LOG4J_VERSION.jar"; do
    [[ -f "$staging/$jar" ]] || die "Maven finished but $jar is missing (see $(show "$build/mvn.log"))"
  done
  rm -rf "$LIB_DIR"
  mv "$staging" "$LIB_DIR"
  printf 'kafka=%s log4j=%s\n' "$KAFKA_VERSION" "$KAFKA_LOG4J_VERSION" >"$INSTALL_MARKER"
  end=$SECONDS
  say "installed Kafka $KAFKA_VERSION ($(find "$LIB_DIR" -name '*.jar' | wc -l | tr -d ' ') jars, $((end - start))s)"
}

# ---------------------------------------------------------------- config
write_configs() {
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$KRAFT_DIR"
  local listeners advertised protomap
  listeners="PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT"
  advertised="PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT"
  protomap="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if sasl_enabled; then
    listeners+=",SASL_PLAINTEXT://$KAFKA_HOST:$KAFKA_SASL_PORT"
    advertised+=",SASL_PLAINTEXT://$KAFKA_HOST:$KAFKA_SASL_PORT"
    protomap+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
  fi

  # Static voter set (controller.quorum.voters): the storage is formatted without
  # --standalone, so changing KAFKA_CONTROLLER_PORT later keeps working.
  cat >"$CONF_DIR/server.properties" <<EOF
# Generated by deploy/kafka-local.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_NODE_ID@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protomap
log.dirs=$KRAFT_DIR

# one node, made for tests
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=33554432
EOF
  if sasl_enabled; then
    cat >>"$CONF_DIR/server.properties" <<EOF

# SASL_PLAINTEXT listener with the PLAIN mechanism (one user)
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_SASL_USER" password="$KAFKA_SASL_PASSWORD" user_$KAFKA_SASL_USER="$KAFKA_SASL_PASSWORD";
EOF
  fi

  # Broker logging: everything to data/logs/server.log (rolled), nothing on stdout.
  cat >"$CONF_DIR/log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/kafka-local.sh -->
<Configuration status="warn">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.authorizer.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="WARN"/>
    <Logger name="org.apache.kafka.common.config.AbstractConfig" level="WARN"/>
    <Logger name="kafka.server.KafkaConfig" level="WARN"/>
    <Logger name="org.apache.kafka.common.security.authenticator" level="INFO"/>
  </Loggers>
</Configuration>
EOF

  # Tool logging (storage tool, run-class): warnings to stderr only.
  cat >"$CONF_DIR/tools-log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/kafka-local.sh -->
<Configuration status="warn">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="stderr"/></Root>
  </Loggers>
</Configuration>
EOF
}

# Run a Kafka class (tool) on the cached classpath with quiet logging.
run_tool() {
  local java
  java="$(java_bin)"
  [[ -f "$CONF_DIR/tools-log4j2.xml" ]] || write_configs
  # shellcheck disable=SC2086  # KAFKA_TOOL_OPTS is deliberately word-split
  "$java" -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.xml" ${KAFKA_TOOL_OPTS:-} \
    -cp "$(classpath)" "$@"
}

format_storage_if_new() {
  if [[ -f "$KRAFT_DIR/meta.properties" ]]; then
    return 0
  fi
  local cluster_id
  if [[ -s "$DATA_DIR/cluster.id" ]]; then
    cluster_id="$(tr -d '[:space:]' <"$DATA_DIR/cluster.id")"
  else
    cluster_id="$(run_tool kafka.tools.StorageTool random-uuid | tail -n 1 | tr -d '[:space:]')"
    [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka.tools.StorageTool random-uuid gave no cluster id"
    printf '%s\n' "$cluster_id" >"$DATA_DIR/cluster.id"
  fi
  say "formatting new storage (cluster id $cluster_id)"
  if ! run_tool kafka.tools.StorageTool format --config "$CONF_DIR/server.properties" \
        --cluster-id "$cluster_id" --ignore-formatted >"$LOG_DIR/format.log" 2>&1; then
    cat "$LOG_DIR/format.log" >&2 || true
    die "formatting the storage failed"
  fi
}

# The open-file limit the broker gets: KAFKA_NOFILE if the system allows it (raising the hard
# limit needs root), else the hard limit, never less than the current soft limit.
nofile_limit() {
  local soft hard
  soft="$(ulimit -S -n)"
  hard="$(ulimit -H -n)"
  if (ulimit -n "$KAFKA_NOFILE") 2>/dev/null; then
    printf '%s' "$KAFKA_NOFILE"
  elif [[ "$hard" == unlimited ]] || (( hard > soft )); then
    printf '%s' "$hard"
  else
    printf '%s' "$soft"
  fi
}

# Number of topic partitions stored on disk (directories `topic-N` under kraft-logs/, the
# metadata log excluded).
partitions_on_disk() {
  [[ -d "$KRAFT_DIR" ]] || { echo 0; return; }
  find "$KRAFT_DIR" -mindepth 1 -maxdepth 1 -type d -regex '.*-[0-9]+$' \
    ! -name '__cluster_metadata-*' | wc -l | tr -d ' '
}

# ---------------------------------------------------------------- readiness
# A real Kafka request: Metadata v4 on the PLAINTEXT listener must list at
# least one (unfenced) broker. Uses python3 when present, else a Kafka tool.
probe_python() {
  python3 - "$KAFKA_HOST" "$1" <<'EOF'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf
try:
    with socket.create_connection((host, port), timeout=5) as s:
        s.settimeout(5)
        client = b"kafka-local-probe"
        # header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id
        # body v4: topics = [] (none), allow_auto_topic_creation = false
        req = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">ib", 0, 0)
        s.sendall(struct.pack(">i", len(req)) + req)
        size = struct.unpack(">i", recv_exact(s, 4))[0]
        resp = recv_exact(s, size)
        corr, _throttle, nbrokers = struct.unpack(">iii", resp[:12])
        sys.exit(0 if corr == 7 and nbrokers >= 1 else 1)
except Exception:
    sys.exit(1)
EOF
}

probe_java() {
  local limit=()
  command -v timeout >/dev/null 2>&1 && limit=(timeout 30)
  ${limit[@]+"${limit[@]}"} "$(java_bin)" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.xml" -cp "$(classpath)" \
    org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_HOST:$1" >/dev/null 2>&1
}

serving() {
  local port="$KAFKA_PORT"
  port_open "$port" || return 1
  if [[ "${KAFKA_READY_CHECK:-auto}" != java ]] && command -v python3 >/dev/null 2>&1; then
    probe_python "$port"
  else
    probe_java "$port"
  fi
}

# Size of server.log when this start launched the broker: the tail shows only
# what this run wrote.
LOG_OFFSET=0
file_size() { if [[ -f "$1" ]]; then wc -c <"$1" | tr -d ' '; else echo 0; fi; }

log_tail() {
  local size
  size="$(file_size "$SERVER_LOG")"
  if (( size > LOG_OFFSET )); then
    printf -- '---- last lines of %s ----\n' "$(show "$SERVER_LOG")" >&2
    tail -c "+$((LOG_OFFSET + 1))" "$SERVER_LOG" | tail -n 40 >&2 || true
  elif (( size > 0 && size < LOG_OFFSET )); then   # rolled over meanwhile
    printf -- '---- last lines of %s ----\n' "$(show "$SERVER_LOG")" >&2
    tail -n 40 "$SERVER_LOG" >&2 || true
  fi
  if [[ -s "$CONSOLE_LOG" ]]; then
    printf -- '---- %s ----\n' "$(show "$CONSOLE_LOG")" >&2
    tail -n 40 "$CONSOLE_LOG" >&2 || true
  fi
}

# ---------------------------------------------------------------- commands
cmd_install() {
  take_lock
  do_install
}

print_env() {
  printf 'export KAFKA_BOOTSTRAP=%s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT"
  if sasl_enabled; then
    printf 'export KAFKA_SASL_BOOTSTRAP=%s:%s\n' "$KAFKA_HOST" "$KAFKA_SASL_PORT"
    printf 'export KAFKA_SASL_USERNAME=%s\n' "$KAFKA_SASL_USER"
    printf 'export KAFKA_SASL_PASSWORD=%s\n' "$KAFKA_SASL_PASSWORD"
  fi
}

start_locked() {
  if broker_running; then
    if serving; then
      say "already running: $KAFKA_HOST:$KAFKA_PORT"
      return 0
    fi
    say "broker process is up but not serving yet; waiting"
  else
    rm -f "$PID_FILE"
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" ${KAFKA_SASL_PORT:+$KAFKA_SASL_PORT}; do
      [[ "$p" == 0 ]] && continue
      if port_open "$p"; then
        die "port $p on $KAFKA_HOST is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT / KAFKA_SASL_PORT, or point tests at that cluster with KAFKA_BOOTSTRAP)"
      fi
    done
    do_install
    write_configs
    format_storage_if_new

    local java nofile
    java="$(java_bin)"
    nofile="$(nofile_limit)"
    say "starting Kafka $KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT$(sasl_enabled && printf ' (SASL_PLAINTEXT/PLAIN on %s)' "$KAFKA_SASL_PORT")"
    say "$(partitions_on_disk) partitions on disk; open-file limit $nofile"
    : >"$CONSOLE_LOG"
    LOG_OFFSET="$(file_size "$SERVER_LOG")"
    local launcher=()
    command -v setsid >/dev/null 2>&1 && launcher=(setsid)
    # The wrapper shell sets the open-file limit, writes its own pid, then exec's java in its place.
    # shellcheck disable=SC2086,SC2016  # word-split KAFKA_HEAP / KAFKA_JVM_OPTS; $$ is the inner shell's
    # fd 9 (the lock) is closed so the broker does not hold it.
    ${launcher[@]+"${launcher[@]}"} bash -c 'ulimit -n "$2" 2>/dev/null; echo $$ >"$1"; shift 2; exec "$@"' kafka-local "$PID_FILE" "$nofile" \
      "$java" $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true $KAFKA_JVM_OPTS \
      -Dkafka.logs.dir="$LOG_DIR" -Dlog4j2.configurationFile="$CONF_DIR/log4j2.xml" \
      -cp "$(classpath)" kafka.Kafka "$CONF_DIR/server.properties" \
      </dev/null >>"$CONSOLE_LOG" 2>&1 9>&- &
    for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  fi

  local started=$SECONDS
  while :; do
    if ! broker_running; then
      log_tail
      rm -f "$PID_FILE"
      die "the broker exited during startup"
    fi
    if serving; then
      say "ready: $KAFKA_HOST:$KAFKA_PORT ($((SECONDS - started))s)"
      return 0
    fi
    if (( SECONDS - started >= KAFKA_START_TIMEOUT )); then
      log_tail
      say "the broker did not serve on $KAFKA_HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s; stopping it"
      stop_locked
      die "start timed out after ${KAFKA_START_TIMEOUT}s (KAFKA_START_TIMEOUT); the log tail is above"
    fi
    sleep 0.5
  done
}

stop_locked() {
  local pid
  if ! broker_running; then
    rm -f "$PID_FILE"
    say "not running"
    return 0
  fi
  pid="$(read_pid)"
  say "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= KAFKA_STOP_TIMEOUT * 10 )); then
      say "still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && die "pid $pid survived SIGKILL"
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$PID_FILE"
  say "stopped"
}

# start/restart print the bootstrap address on stdout (messages go to stderr).
cmd_start()   { take_lock; start_locked; printf '%s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT"; }
cmd_stop()    { take_lock; stop_locked; }
cmd_restart() { take_lock; stop_locked; start_locked; printf '%s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT"; }

cmd_status() {
  if serving; then
    if broker_running; then
      say "serving on $KAFKA_HOST:$KAFKA_PORT (pid $(read_pid))"
    else
      say "serving on $KAFKA_HOST:$KAFKA_PORT (not started by this script)"
    fi
    return 0
  fi
  if broker_running; then
    say "process running (pid $(read_pid)) but not serving on $KAFKA_HOST:$KAFKA_PORT"
  else
    say "not running"
  fi
  return 1
}

reset_locked() {
  stop_locked
  if [[ -d "$DATA_DIR" ]]; then
    rm -rf -- "${DATA_DIR:?}"
    say "deleted the broker data"
  fi
}

cmd_reset() { take_lock; reset_locked; }
cmd_fresh() { take_lock; reset_locked; start_locked; printf '%s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT"; }

cmd_run_class() {
  [[ $# -ge 1 ]] || die "usage: $0 run-class CLASS [ARGS...]"
  installed || { take_lock; do_install; exec 9>&-; }
  run_tool "$@"
}

usage() {
  cat >&2 <<EOF
usage: deploy/kafka-local.sh {install|start|stop|restart|fresh|status|env|pid|reset|run-class CLASS [ARGS...]}
A single-node Kafka $KAFKA_VERSION (KRaft) on $KAFKA_HOST:$KAFKA_PORT; see deploy/README.md.
EOF
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install)   check_settings; cmd_install ;;
    start)     check_settings; cmd_start ;;
    stop)      check_settings; cmd_stop ;;
    restart)   check_settings; cmd_restart ;;
    fresh)     check_settings; cmd_fresh ;;
    status)    check_settings; cmd_status ;;
    env)       check_settings; print_env ;;
    pid)       check_settings; broker_running && read_pid && echo ;;
    reset)     check_settings; cmd_reset ;;
    run-class) check_settings; cmd_run_class "$@" ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
