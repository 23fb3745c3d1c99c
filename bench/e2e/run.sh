#!/usr/bin/env bash
# bench/e2e/run.sh: one school day of a simulated county's roll calls through the whole pipeline
# (bx-ingest -> bx-score -> bx-escalate -> notification requests), at a county's scale and at a
# province-day's (1,000,000 roll-call records), each in a database of its own: records per second
# until the pipeline settled, when each stage caught up, the latency from a roll call's acceptance
# to the guardian's notification request (p50, p99); and in the same run the raw building blocks:
# the run's own attendance messages produced again by a bare producer (Kafka), bx-score's
# per-fact Redis script pipelined by redis-benchmark (Redis), COPY of attendance rows (PostgreSQL).
#
#   bash bench/e2e/run.sh                 # both scales
#   bash bench/e2e/run.sh county          # one: county | province
#
# Needs the local infrastructure: bash deploy/local/bx-infra up
# Knobs (environment): BENCH_COUNTY_STUDENTS (50000), BENCH_PROVINCE_STUDENTS (1000000),
# BENCH_DAY (2026-10-08, the day after National Day), BENCH_CONNECTIONS (32), BENCH_REDIS_DB (6,
# emptied), BENCH_SKIP_BUILD=1, BENCH_KEEP=1 (keep the databases), BENCH_SCORE_BIN (another
# bx-score build, for an A/B of bx-score alone).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${BX_RUN_DIR:-$REPO/.run}"
say() { printf 'bench/e2e: %s\n' "$*" >&2; }
die() { printf 'bench/e2e: error: %s\n' "$*" >&2; exit 1; }

[ -f "$RUN_DIR/env" ] || die "$RUN_DIR/env not found; start the infrastructure: bash deploy/local/bx-infra up"
# shellcheck disable=SC1091
source "$RUN_DIR/env"
# shellcheck source=deploy/local/creds.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/creds.sh"   # rcli: redis-cli as the administrator
# shellcheck source=bench/redis-bench-user.sh
source "$(dirname "${BASH_SOURCE[0]}")/../redis-bench-user.sh"   # redis-benchmark's own user

# The services need the analysts' pseudonym key; a bench that has none uses one of its own.
export BX_PSEUDONYM_KEY="${BX_PSEUDONYM_KEY:-$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')}"
BUILD="${BX_BUILD_DIR:-$REPO/build}"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building in $BUILD (RelWithDebInfo)"
    cmake -S "$REPO" -B "$BUILD" -G Ninja >/dev/null
    ninja -C "$BUILD" >/dev/null
fi
BXCTL="$BUILD/tools/bxctl/bxctl"
SIM="$BUILD/tools/bx-sim/bx-sim"
BENCH="$BUILD/bench/e2e/bench-e2e"
SCORE_BENCH="$BUILD/bench/score/bench-score"
INGEST="$BUILD/services/bx-ingest/bx-ingest"
SCORE="${BENCH_SCORE_BIN:-$BUILD/services/bx-score/bx-score}"
ESCALATE="$BUILD/services/bx-escalate/bx-escalate"
for b in "$BXCTL" "$SIM" "$BENCH" "$SCORE_BENCH" "$INGEST" "$SCORE" "$ESCALATE"; do
    [ -x "$b" ] || die "$b not built"
done
for t in psql redis-cli redis-benchmark python3; do command -v "$t" >/dev/null || die "$t not found"; done

STATE="$RUN_DIR/bench-e2e"
mkdir -p "$STATE"
exec 9>"$STATE/lock"
flock -n 9 || die "another bench/e2e/run.sh is running (lock $STATE/lock)"
DAY="${BENCH_DAY:-2026-10-08}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
REDIS_DB="${BENCH_REDIS_DB:-6}"
REDIS_HOST="$(sed -E 's#^redis://([^:/]+).*#\1#' <<<"$BX_REDIS_URL")"
REDIS_PORT="$(sed -E 's#^redis://[^:/]+:([0-9]+).*#\1#' <<<"$BX_REDIS_URL")"
REDIS_BASE="redis://$REDIS_HOST:$REDIS_PORT"
RCLI=(rcli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$REDIS_DB")
BASE_PG_URL="$BX_PG_URL"

url_with_db() {
    python3 - "$1" "$2" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ADMIN_URL="$(url_with_db "$BASE_PG_URL" postgres)"

PIDS=()
DBS=()
stop_services() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
finish() {
    stop_services
    rbench_user_end
    "${RCLI[@]}" FLUSHDB >/dev/null 2>&1 || true
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        for db in "${DBS[@]}"; do
            PGOPTIONS="-c client_min_messages=warning" psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
        done
    fi
}
trap finish EXIT

# scale_run NAME STUDENTS TOWNSHIPS SCHOOLS: prints "key=value" lines of bench-e2e into $STATE/NAME.out
scale_run() {
    local name="$1" students="$2" townships="$3" schools="$4"
    local dir="$STATE/$name" db="bx_bench_e2e_$name"
    local size=(--seed 42 --townships "$townships" --schools "$schools" --students "$students" --id-prefix E)
    rm -rf "$dir"
    mkdir -p "$dir"
    DBS+=("$db")
    say "$name: $students students in $schools schools; database $db"
    PGOPTIONS="-c client_min_messages=warning" psql -q "$ADMIN_URL" -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    PGOPTIONS="-c client_min_messages=warning" psql -q "$ADMIN_URL" -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
    export BX_PG_URL
    BX_PG_URL="$(url_with_db "$BASE_PG_URL" "$db")"
    export BX_REDIS_URL="$REDIS_BASE/$REDIS_DB"
    "${RCLI[@]}" FLUSHDB >/dev/null
    "$BXCTL" migrate >/dev/null
    "$BXCTL" topics create >/dev/null
    "$SIM" generate --out "$dir/registry" "${size[@]}"
    "$BXCTL" import holidays "$REPO/deploy/policy/cn-public-holidays-2026.csv" >/dev/null
    local t0=$SECONDS
    "$BXCTL" import --dir "$dir/registry" >/dev/null
    say "$name: registry imported in $((SECONDS - t0)) s"
    : >"$dir/keys"
    while read -r school; do
        printf '%s %s\n' "$school" "$("$BXCTL" key create "$school" bench 2>/dev/null | grep '^bxk_')" >>"$dir/keys"
    done <"$dir/registry/schools.txt"
    export BX_CLOCK="file:$dir/clock"
    "$BXCTL" clock set "$DAY 09:00" >/dev/null
    local runid g_score g_esc
    runid="$(date +%Y%m%d%H%M%S)"
    g_score="bx-score-bench-e2e-$runid" g_esc="bx-escalate-bench-e2e-$runid"
    "$SIM" group-at-end --group "$g_score" --topics bx.attendance.v1
    "$SIM" group-at-end --group "$g_esc" --topics bx.risk.v1,bx.actions.v1
    local port
    port="$(free_port)"
    BX_HTTP_LISTEN="127.0.0.1:$port" BX_LOG_LEVEL=warn "$INGEST" >"$dir/bx-ingest.log" 2>&1 &
    PIDS+=($!)
    BX_CONSUMER_GROUP="$g_score" BX_LOG_LEVEL=warn "$SCORE" >"$dir/bx-score.log" 2>&1 &
    PIDS+=($!)
    BX_CONSUMER_GROUP="$g_esc" BX_LOG_LEVEL=warn "$ESCALATE" >"$dir/bx-escalate.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || die "bx-ingest did not become healthy"
    sleep 2 # bx-score and bx-escalate join their groups
    say "$name: the day's roll calls through the pipeline ($(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$BENCH" run --api "http://127.0.0.1:$port" --keys "$dir/keys" --state "$dir" --day "$DAY" \
        --connections "$CONNECTIONS" --group "$g_score:bx.attendance.v1" \
        --group "$g_esc:bx.risk.v1,bx.actions.v1" "${size[@]}" >"$STATE/$name.out"
    stop_services
    local records
    records="$(sed -nE 's/.*records=([0-9]+).*/\1/p' "$STATE/$name.out" | head -n 1)"
    say "$name: raw Kafka: the run's attendance messages again through a bare producer"
    "$BENCH" raw-kafka --mark "$dir/attendance.mark" --topic "bx.bench.e2e.raw" >>"$STATE/$name.out"
    say "$name: raw PostgreSQL: COPY of $records attendance rows"
    "$BENCH" raw-copy --rows "$records" >>"$STATE/$name.out"
    say "$name: raw Redis: bx-score's per-fact script, redis-benchmark -c 1 -P 256"
    local sha rate
    sha="$("$SCORE_BENCH" lua apply | "${RCLI[@]}" -x SCRIPT LOAD)"
    rbench_user_begin "$REDIS_HOST" "$REDIS_PORT" 'bx:s:{E*'
    rate="$(redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" "${RBENCH_AUTH[@]}" \
        --dbnum "$REDIS_DB" -c 1 -P 256 -n 300000 -r 100000 -q \
        EVALSHA "$sha" 1 'bx:s:{E__rand_int__}:facts' '2026-10-08|0' \
        '1791000000000|rc-__rand_int__' a 0 2>&1 | tr '\r' '\n' \
        | grep -oE '[0-9.]+ requests per second' | tail -n 1 | cut -d' ' -f1)"
    rbench_user_end
    [ -n "$rate" ] || die "redis-benchmark gave no rate"
    echo "raw_redis_per_s=$rate" >>"$STATE/$name.out"
    "${RCLI[@]}" FLUSHDB >/dev/null
}

SCALES=("${@:-county province}")
# shellcheck disable=SC2206
SCALES=(${SCALES[*]})
for s in "${SCALES[@]}"; do
    case "$s" in
    county) scale_run county "${BENCH_COUNTY_STUDENTS:-50000}" 10 120 ;;
    province) scale_run province "${BENCH_PROVINCE_STUDENTS:-1000000}" 20 400 ;;
    *) die "unknown scale $s (county or province)" ;;
    esac
done

python3 - "$STATE" "${SCALES[@]}" <<'PY'
import sys
state, scales = sys.argv[1], sys.argv[2:]
def load(name):
    kv = {}
    for line in open(f"{state}/{name}.out"):
        for item in line.split():
            k, _, v = item.partition("=")
            kv[k] = v
    return kv
rows = {s: load(s) for s in scales}
print()
print(f"{'':34}" + "".join(f"{s:>16}" for s in scales))
def row(label, fn):
    print(f"{label:34}" + "".join(f"{fn(rows[s]):>16}" for s in scales))
f = lambda k: (lambda r: r.get(k, "-"))
row("students / roll calls", lambda r: f"{r['students']}/{r['rollcalls']}")
row("records accepted (absent)", lambda r: f"{r['records']} ({r['absent']})")
row("all posted (s)", f("ingest_s"))
row("bx-score caught up (s)", f("caught_up_0_s"))
row("bx-escalate caught up (s)", f("caught_up_1_s"))
row("pipeline quiet (s)", f("quiet_s"))
row("e2e records/s", f("e2e_records_per_s"))
row("ingest records/s", f("ingest_records_per_s"))
row("to notify request p50 / p99 ms", lambda r: f"{r['notify_p50_ms']}/{r['notify_p99_ms']}")
row("  latency samples", f("latency_samples"))
row("raw Kafka produce msgs/s", f("raw_kafka_per_s"))
row("raw Redis script calls/s (-P 256)", lambda r: f"{float(r['raw_redis_per_s']):.0f}")
row("raw PostgreSQL COPY rows/s", f("raw_copy_per_s"))
ratio = lambda k: (lambda r: f"{float(r['e2e_records_per_s']) / float(r[k]):.3f}")
row("e2e / raw Kafka", ratio("raw_kafka_per_s"))
row("e2e / raw Redis", ratio("raw_redis_per_s"))
row("e2e / raw COPY", ratio("raw_copy_per_s"))
for s in scales:
    r = rows[s]
    stages = [("bx-ingest (all posted)", float(r["ingest_s"])),
              ("bx-score", float(r["caught_up_0_s"]) - float(r["ingest_s"])),
              ("bx-escalate and its outbox", float(r["quiet_s"]) - float(r["caught_up_0_s"]))]
    worst = max(stages, key=lambda x: x[1])
    print(f"{s}: " + ", ".join(f"{n} +{t:.2f} s" for n, t in stages) +
          f"; the stage that finishes last after the one before: {worst[0]}")
PY
