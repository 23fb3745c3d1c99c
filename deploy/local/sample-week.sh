#!/usr/bin/env bash
# baoxue sample week: imports the small sample county (deploy/sample), starts bx-ingest, posts a
# school week of roll calls the way teachers would, and shows what landed in Kafka and bx-score's
# streaks. Run by hand (bash deploy/local/sample-week.sh) after deploy/local/main.sh, which brings
# the infrastructure up, builds, migrates and creates the topics.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
RUN="${BX_RUN_DIR:-$REPO/.run}"
# shellcheck disable=SC1091
source "$RUN/env"
# shellcheck source=deploy/local/creds.sh
source "$REPO/deploy/local/creds.sh"
BXCTL=build/tools/bxctl/bxctl
INGEST=build/services/bx-ingest/bx-ingest
SCORE=build/services/bx-score/bx-score
PORT="${BX_DEMO_PORT:-18080}"
API="http://127.0.0.1:$PORT"
mkdir -p "$RUN/demo" "$RUN/log"

# Each run's roll calls and records get ids of their own, so a re-run publishes them again.
RUNID="$(date +%s)"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "registry: the sample county 息烽县 (3 schools, 6 classes, 72 students)"
"$BXCTL" import --dir deploy/sample

# The demo runs in simulated time: Friday 2026-11-27, 18:00 in Shanghai.
export BX_CLOCK="file:$RUN/demo/clock"
"$BXCTL" clock set "2026-11-27 18:00" >/dev/null
echo "simulated clock: $("$BXCTL" clock show)"

say "credentials: one per school (the secret is shown once and kept in $RUN/demo/keys)"
: >"$RUN/demo/keys"
for school in 5201221001 5201221002 5201222001; do
    key=$("$BXCTL" key create "$school" demo 2>/dev/null)
    echo "$school $key" >>"$RUN/demo/keys"
    echo "school $school: credential ${key:0:21}… created"
done
key_of() { awk -v s="$1" '$1 == s { print $2 }' "$RUN/demo/keys"; }

say "bx-ingest on $API"
if [ -f "$RUN/demo/ingest.pid" ] && kill -0 "$(cat "$RUN/demo/ingest.pid")" 2>/dev/null; then
    kill "$(cat "$RUN/demo/ingest.pid")"
    sleep 1
fi
BX_HTTP_LISTEN="127.0.0.1:$PORT" BX_LOG_LEVEL=info svc bx-ingest "$INGEST" >"$RUN/log/demo-ingest.log" 2>&1 &
echo $! >"$RUN/demo/ingest.pid"
for _ in $(seq 1 100); do
    curl -fsS "$API/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$API/healthz"

say "bx-score, a fresh consumer group starting at the newest facts"
if [ -f "$RUN/demo/score.pid" ] && kill -0 "$(cat "$RUN/demo/score.pid")" 2>/dev/null; then
    kill "$(cat "$RUN/demo/score.pid")"
    sleep 1
fi
BX_CONSUMER_GROUP="bx-score-demo-$(date +%s)" BX_CONSUMER_OFFSET_RESET=latest BX_LOG_LEVEL=info \
    svc bx-score "$SCORE" >"$RUN/log/demo-score.log" 2>&1 &
echo $! >"$RUN/demo/score.pid"
trap 'kill "$(cat "$RUN/demo/ingest.pid")" "$(cat "$RUN/demo/score.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    grep -q "assigned" "$RUN/log/demo-score.log" 2>/dev/null && break
    sleep 0.1
done
grep -m1 "assigned" "$RUN/log/demo-score.log" || echo "(bx-score has not joined its group yet)"

# Offsets before the demo, so only its own messages are shown.
declare -A before
for topic in bx.attendance.v1 bx.actions.v1 bx.dlq.v1; do
    before[$topic]=$(kcat -b "$BX_KAFKA_BROKERS" -Q -t "$topic:0:-1" -t "$topic:1:-1" \
        -t "$topic:2:-1" -t "$topic:3:-1" 2>/dev/null | awk '{s += $NF} END {print s + 0}')
done

post() { # school path body
    curl -sS -X POST "$API$2" -H "Authorization: Bearer $(key_of "$1")" \
        -H 'Content-Type: application/json' --data-binary "$3"
}

say "a school week of roll calls, 2026-11-23 .. 2026-11-27"
# 何俊杰 (S10010301) stops coming on Wednesday; 郭若曦 (S10010302) is sick on Tuesday with leave;
# class C1002061 forgets Thursday's roll call (not reported, which is not the same as present).
for day in 2026-11-23 2026-11-24 2026-11-25 2026-11-26 2026-11-27; do
    for class in C1001031 C1001041 C1002011 C1002061 C2001071 C2001081; do
        school="520122${class:1:4}"
        absent="[]"
        leave="[]"
        late="[]"
        if [ "$class" = C1001031 ]; then
            case "$day" in
            2026-11-24) leave='[{"student_id":"S10010302","leave_kind":"sick"}]' ;;
            2026-11-25 | 2026-11-26 | 2026-11-27) absent='["S10010301"]' ;;
            esac
            [ "$day" = 2026-11-23 ] && late='["S10010305"]'
        fi
        if [ "$class" = C2001081 ] && [ "$day" != 2026-11-23 ]; then absent='["S20010805"]'; fi
        if [ "$class" = C1002061 ] && [ "$day" = 2026-11-26 ]; then continue; fi
        reply=$(post "$school" /v1/rollcall \
            "{\"class_id\":\"$class\",\"date\":\"$day\",\"rollcall_id\":\"demo-$RUNID-$class-$day\",\"absent\":$absent,\"leave\":$leave,\"late\":$late}")
        summary=$(sed -E 's/.*"rollcall":\{([^}]*)\}.*/\1/' <<<"$reply")
        accepted=$(sed -E 's/^\{"accepted":([0-9]+),"duplicates":([0-9]+).*/accepted \1, duplicates \2/' <<<"$reply")
        echo "$day $class: $accepted; $summary"
    done
done

say "the same Friday roll call sent again (a teacher pressing the button twice): nothing changes"
post 5201221001 /v1/rollcall \
    "{\"class_id\":\"C1001031\",\"date\":\"2026-11-27\",\"rollcall_id\":\"demo-$RUNID-C1001031-2026-11-27\",\"absent\":[\"S10010301\"]}" |
    cut -c1-120
echo

say "a home visit recorded by the homeroom teacher, and leave phoned in by a parent"
post 5201221001 /v1/actions \
    '{"records":[{"student_id":"S10010301","action":"home_visit","date":"2026-11-25","staff_id":"T1001031","details":{"outcome":"refused","reason":"dislikes_school"},"event_id":"demo-visit-1-'"$RUNID"'"}]}'
post 5201221001 /v1/leave \
    '{"records":[{"student_id":"S10010306","first_date":"2026-11-30","last_date":"2026-12-01","leave_kind":"personal","requested_by":"guardian","phoned_in":true,"event_id":"demo-leave-1-'"$RUNID"'"}]}'

say "bad input is answered precisely and dead-lettered; the good record beside it is kept"
post 5201221001 /v1/attendance \
    '{"records":[{"student_id":"S10010307","date":"2026-11-27","status":"late","event_id":"demo-late-1-'"$RUNID"'"},{"student_id":"S20010701","date":"2026-11-27","status":"absent"},{"student_id":"S10010308","date":"2026-12-01","status":"absent"}]}'

say "what landed in Kafka"
for topic in bx.attendance.v1 bx.actions.v1 bx.dlq.v1; do
    after=$(kcat -b "$BX_KAFKA_BROKERS" -Q -t "$topic:0:-1" -t "$topic:1:-1" \
        -t "$topic:2:-1" -t "$topic:3:-1" 2>/dev/null | awk '{s += $NF} END {print s + 0}')
    echo "$topic: $((after - ${before[$topic]})) new messages"
done
echo
echo "one attendance fact (key: student id):"
kcat -C -b "$BX_KAFKA_BROKERS" -t bx.attendance.v1 -o -200 -e -q -f '%k %s\n' 2>/dev/null |
    grep '"student_id":"S10010301".*"date":"2026-11-27"' | tail -n 1 || true
echo "one dead letter:"
kcat -C -b "$BX_KAFKA_BROKERS" -t bx.dlq.v1 -o -20 -e -q -f '%s\n' 2>/dev/null |
    grep '"school_id":"5201221001"' | tail -n 1 || true
echo
echo "bx-ingest log: $RUN/log/demo-ingest.log; metrics: curl $API/healthz"

say "bx-score: streaks in school days and the risk score, with its reasons"
for _ in $(seq 1 100); do
    "$BXCTL" student show S10010301 --json 2>/dev/null | grep -q '"streak_days":3' && break
    sleep 0.2
done
"$BXCTL" student show S10010301 || true
echo
"$BXCTL" student show S20010805 || true
echo
echo "assessments published on bx.risk.v1 for the demo's students:"
kcat -C -b "$BX_KAFKA_BROKERS" -t bx.risk.v1 -o -50 -e -q -f '%s\n' 2>/dev/null |
    grep -E '"student_id":"S(10010301|20010805)"' | tail -n 2 | cut -c1-400 || true
echo "bx-score log: $RUN/log/demo-score.log"
say "done: roll calls in Kafka, streaks and risk in Redis; bx-escalate and bx-notify come next"
