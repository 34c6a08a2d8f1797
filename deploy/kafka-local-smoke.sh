#!/usr/bin/env bash
# kafka-local-smoke.sh — proves the broker from kafka-local.sh works end to end:
# a 3-partition topic, produce + consume, SASL/PLAIN with the right and a wrong
# password, and a restart that keeps the topic and its records.
#
# Uses the same environment as kafka-local.sh (GOALPOST_KAFKA_HOME, KAFKA_PORT,
# KAFKA_SASL_PORT, ...). Leaves the broker as it found it: stopped if it was
# stopped, running if it was running. Its topic is deleted at the end.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K="$HERE/kafka-local.sh"

eval "$("$K" env)"
: "${KAFKA_SASL_BOOTSTRAP:?the SASL listener is disabled (KAFKA_SASL_PORT=0); this smoke test needs it}"

passed=0 failed=0
ok()   { passed=$((passed + 1)); printf 'ok   %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
kt()   { "$K" run-class "$@"; }

was_running=0
"$K" status 2>/dev/null && was_running=1

work="$(mktemp -d)"
topic="goalpost-smoke-$$-$RANDOM"
cleanup() {
  kt org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --delete --topic "$topic" >/dev/null 2>&1 || true
  if [[ "$was_running" == 0 ]]; then "$K" stop || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

t0=$SECONDS
"$K" start >/dev/null
ok "start (${KAFKA_BOOTSTRAP}, $((SECONDS - t0))s)"

if kt org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
     --create --topic "$topic" --partitions 3 --replication-factor 1 >/dev/null \
   && kt org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
     --describe --topic "$topic" | grep -q 'PartitionCount: 3'; then
  ok "create a topic with 3 partitions"
else
  fail "create a topic with 3 partitions"
fi

consume_count() {   # consume_count BOOTSTRAP [extra args] -> number of records read
  kt org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$1" "${@:2}" \
    --topic "$topic" --from-beginning --max-messages 6 --timeout-ms 30000 2>/dev/null | grep -c '^rec-' || true
}

printf 'k1:rec-1\nk2:rec-2\nk3:rec-3\nk4:rec-4\nk5:rec-5\n' >"$work/records"
if kt org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_BOOTSTRAP" --topic "$topic" \
     --reader-property parse.key=true --reader-property key.separator=: <"$work/records"; then
  ok "produce 5 records over PLAINTEXT"
else
  fail "produce 5 records over PLAINTEXT"
fi

cat >"$work/sasl-good.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_SASL_USERNAME" password="$KAFKA_SASL_PASSWORD";
EOF
sed 's/password="[^"]*"/password="not-the-password"/' "$work/sasl-good.properties" >"$work/sasl-bad.properties"

if echo "k6:rec-6" | kt org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$KAFKA_SASL_BOOTSTRAP" \
     --topic "$topic" --command-config "$work/sasl-good.properties" \
     --reader-property parse.key=true --reader-property key.separator=: ; then
  ok "produce 1 record over SASL_PLAINTEXT with the right password"
else
  fail "produce 1 record over SASL_PLAINTEXT with the right password"
fi

n="$(consume_count "$KAFKA_BOOTSTRAP")"
if [[ "$n" == 6 ]]; then ok "consume 6 records over PLAINTEXT"; else fail "consume 6 records over PLAINTEXT (got $n)"; fi

n="$(consume_count "$KAFKA_SASL_BOOTSTRAP" --consumer.config "$work/sasl-good.properties")"
if [[ "$n" == 6 ]]; then ok "consume 6 records over SASL_PLAINTEXT"; else fail "consume 6 records over SASL_PLAINTEXT (got $n)"; fi

if out="$(kt org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_SASL_BOOTSTRAP" \
            --command-config "$work/sasl-bad.properties" --list 2>&1)"; then
  fail "a wrong SASL password is refused (the command succeeded)"
elif grep -q 'Authentication failed' <<<"$out"; then
  ok "a wrong SASL password is refused"
else
  fail "a wrong SASL password is refused (failed, but not with an authentication error)"
fi

t0=$SECONDS
"$K" restart >/dev/null
ok "restart ($((SECONDS - t0))s)"

if kt org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" --list | grep -qx "$topic"; then
  ok "the topic survives the restart"
else
  fail "the topic survives the restart"
fi
n="$(consume_count "$KAFKA_BOOTSTRAP")"
if [[ "$n" == 6 ]]; then ok "its 6 records survive the restart"; else fail "its 6 records survive the restart (got $n)"; fi

printf '%d passed, %d failed\n' "$passed" "$failed"
[[ "$failed" == 0 ]]
