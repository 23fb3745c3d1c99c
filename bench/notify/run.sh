#!/usr/bin/env bash
# bench/notify/run.sh: sustained SMS sends per second through bx-notify against bx-fakesms: one
# round with the provider-wide rate cap (BX_NOTIFY_RATE, GCRA in Redis) and one with it off (the
# dispatcher's own ceiling), in a scratch database of its own (dropped at the end, also on failure).
# Every send is the real path: intent committed, webhook call with its HMAC, outcome committed,
# status message through the outbox; the fake counts double sends, which must stay 0.
#
#   bash bench/notify/run.sh
#
# Needs the local infrastructure: bash deploy/local/bx-infra up
# Knobs (environment): BENCH_CAP (sends per second with the cap on, default 50),
# BENCH_CAP_REQUESTS (default 60 x the cap), BENCH_NOCAP_REQUESTS (default 10000),
# BENCH_WORKERS (bx-notify's BX_NOTIFY_WORKERS, default 8), BENCH_BUILD (default build/),
# BENCH_TAKE_RATE (requests a second bx-notify is assumed to take at least: the requests fall due
# 10 s + requests / this after they are produced, default 150), BENCH_NOTIFY_BIN (another
# bx-notify build, for an A/B of bx-notify alone), BENCH_LOG_LEVEL (bx-notify's, default warn; its
# logs are in .run/bench-notify), BENCH_ROUNDS (default "cap nocap"; one of them alone for a quick
# look), BENCH_RECEIPT_BATCH (receipts the fake posts together at most, default 100),
# BENCH_SKIP_BUILD=1, BENCH_KEEP_DB=1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${BX_RUN_DIR:-$REPO/.run}"
say() { printf 'bench/notify: %s\n' "$*" >&2; }
die() { printf 'bench/notify: error: %s\n' "$*" >&2; exit 1; }

[ -f "$RUN_DIR/env" ] || die "$RUN_DIR/env not found; start the infrastructure: bash deploy/local/bx-infra up"
# shellcheck disable=SC1091
source "$RUN_DIR/env"

CAP="${BENCH_CAP:-50}"
CAP_REQUESTS="${BENCH_CAP_REQUESTS:-$((CAP * 60))}"
NOCAP_REQUESTS="${BENCH_NOCAP_REQUESTS:-10000}"
WORKERS="${BENCH_WORKERS:-8}"
STUDENTS=$(( CAP_REQUESTS > NOCAP_REQUESTS ? CAP_REQUESTS : NOCAP_REQUESTS ))

BUILD="${BENCH_BUILD:-$REPO/build}"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building in $BUILD"
    cmake -S "$REPO" -B "$BUILD" -G Ninja >/dev/null
    ninja -C "$BUILD" bxctl bx-notify bx-fakesms bench-notify >/dev/null
fi
BXCTL="$BUILD/tools/bxctl/bxctl"
NOTIFY="${BENCH_NOTIFY_BIN:-$BUILD/services/bx-notify/bx-notify}"
FAKE="$BUILD/tools/bx-fakesms/bx-fakesms"
BENCH="$BUILD/bench/notify/bench-notify"
for b in "$BXCTL" "$NOTIFY" "$FAKE" "$BENCH"; do [ -x "$b" ] || die "$b not built"; done

url_with_db() {
    python3 - "$1" "$2" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_healthy() {
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$2 did not become healthy (log: $3)"
}

DB="bx_bench_notify_$$"
ADMIN_URL="$(url_with_db "$BX_PG_URL" postgres)"
DB_URL="$(url_with_db "$BX_PG_URL" "$DB")"
WORK="$RUN_DIR/bench-notify"
mkdir -p "$WORK"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${BENCH_KEEP_DB:-0}" = 1 ]; then
        say "kept database $DB ($DB_URL)"
    else
        psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 \
            || say "could not drop database $DB"
    fi
}
trap cleanup EXIT

say "scratch database $DB; a registry of $STUDENTS students, one guardian phone each"
psql -q "$ADMIN_URL" -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB" >/dev/null
BX_PG_URL="$DB_URL" "$BXCTL" migrate >/dev/null
REG="$WORK/registry"
rm -rf "$REG" && mkdir -p "$REG"
printf 'code,name\n990091,基准县\n' >"$REG/counties.csv"
printf 'code,county_code,name\n990091100,990091,基准镇\n' >"$REG/townships.csv"
printf 'calendar_id,entry,first_day,last_day,name\nbench-2026,term,2026-09-01,2027-01-22,2026-autumn\n' >"$REG/calendar.csv"
printf 'school_id,name,township_code,stage,calendar_id\nBNS1,基准小学,990091100,primary,bench-2026\n' >"$REG/schools.csv"
printf 'staff_id,name,role,school_id,township_code,county_code,phone\nBNT1,陈老师,homeroom_teacher,BNS1,,,13100000000\n' >"$REG/staff.csv"
printf 'class_id,school_id,grade,name,homeroom_staff_id\nBNC1,BNS1,3,三年级1班,BNT1\n' >"$REG/classes.csv"
python3 - "$REG" "$STUDENTS" <<'PY'
import sys
reg, n = sys.argv[1], int(sys.argv[2])
with open(reg + "/students.csv", "w") as s, open(reg + "/guardians.csv", "w") as g:
    s.write("student_id,school_id,class_id,name\n")
    g.write("student_id,name,relation,phone,address,is_primary\n")
    for i in range(1, n + 1):
        s.write(f"BN{i:06d},BNS1,BNC1,学生{i}\n")
        g.write(f"BN{i:06d},家长{i},mother,131{i:08d},,true\n")
PY
BX_PG_URL="$DB_URL" "$BXCTL" import --dir "$REG" >/dev/null

RECEIPT_PORT="$(free_port)"
FAKE_PORT="$(free_port)"
SECRET="bench-notify-secret"
"$FAKE" --listen "127.0.0.1:$FAKE_PORT" --secret "$SECRET" \
    --receipt_url "http://127.0.0.1:$RECEIPT_PORT/v1/receipts" \
    --receipt_batch "${BENCH_RECEIPT_BATCH:-100}" >"$WORK/fakesms.log" 2>&1 &
PIDS+=($!)
wait_healthy "$FAKE_PORT" bx-fakesms "$WORK/fakesms.log"

# round LABEL RATE REQUESTS: bx-notify with BX_NOTIFY_RATE=RATE, then bench-notify.
round() {
    local label="$1" rate="$2" requests="$3" metrics_port topic log pid rc=0
    metrics_port="$(free_port)"
    topic="bx.bench.notify.$label.$$"
    log="$WORK/bx-notify-$label.log"
    BX_PG_URL="$DB_URL" BX_METRICS_LISTEN="127.0.0.1:$metrics_port" BX_LOG_LEVEL="${BENCH_LOG_LEVEL:-warn}" \
    BX_CONSUMER_GROUP="bx-notify-bench-$label-$$" BX_NOTIFY_REQUESTS_TOPIC="$topic" \
    BX_NOTIFY_STATUS_TOPIC="bx.bench.notify.status.$$" BX_NOTIFY_PROVIDER=webhook \
    BX_NOTIFY_PROVIDER_URL="http://127.0.0.1:$FAKE_PORT/webhook/send" \
    BX_NOTIFY_PROVIDER_STATUS_URL="http://127.0.0.1:$FAKE_PORT/webhook/status" \
    BX_NOTIFY_PROVIDER_SECRET="$SECRET" BX_NOTIFY_RECEIPT_LISTEN="127.0.0.1:$RECEIPT_PORT" \
    BX_NOTIFY_RATE="$rate" BX_NOTIFY_RATE_BURST=5 BX_NOTIFY_RATE_KEY="bx:bench:notify:$label:$$" \
    BX_NOTIFY_QUIET_HOURS=off BX_NOTIFY_DAILY_CAP=0 BX_NOTIFY_WORKERS="$WORKERS" \
        "$NOTIFY" >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_healthy "$metrics_port" bx-notify "$log"
    "$BENCH" --brokers "$BX_KAFKA_BROKERS" --topic "$topic" --status-topic "bx.bench.notify.status.$$" \
        --metrics-port "$metrics_port" \
        --fake-port "$FAKE_PORT" --students "$STUDENTS" --requests "$requests" --label "$label" \
        --take-rate "${BENCH_TAKE_RATE:-150}" \
        $( [ "$rate" != 0 ] && echo --cap "$rate" ) || rc=$?
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return "$rc"
}

say "running ($(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)); $WORKERS workers, webhook to bx-fakesms"
ROUNDS="${BENCH_ROUNDS:-cap nocap}"
case " $ROUNDS " in *" cap "*) round cap "$CAP" "$CAP_REQUESTS" | tee "$WORK/cap.txt" ;; esac
case " $ROUNDS " in *" nocap "*) round nocap 0 "$NOCAP_REQUESTS" | tee "$WORK/nocap.txt" ;; esac
[ "$ROUNDS" = "cap nocap" ] && python3 - "$WORK/cap.txt" "$WORK/nocap.txt" "$CAP" <<'PY'
import re, sys
def middle(path):
    m = re.search(r"middle-80% +([0-9.]+)/s", open(path).read())
    return float(m.group(1))
cap_rate, ceiling, cap = middle(sys.argv[1]), middle(sys.argv[2]), float(sys.argv[3])
print(f"summary: cap {cap:.0f}/s achieved {cap_rate:.1f}/s ({100 * (cap_rate - cap) / cap:+.1f}%); "
      f"ceiling without the cap {ceiling:.1f}/s = {ceiling / cap:.1f} x the cap")
PY
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
