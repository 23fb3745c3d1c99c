#!/usr/bin/env bash
# bench/e2e/run.sh: one school day of a simulated county's roll calls through the whole pipeline
# (bx-ingest -> bx-score -> bx-escalate -> notification requests), at a county's scale and at a
# province-day's (1,000,000 roll-call records), each in a database of its own: records per second
# until the pipeline settled, when each stage caught up, the latency from a roll call's acceptance
# to the guardian's notification request (p50, p99); and in the same run the raw building blocks:
# the run's own attendance messages produced again by a bare producer (Kafka), bx-score's
# per-fact Redis script pipelined by redis-benchmark (Redis), COPY of attendance rows (PostgreSQL).
#
# Then bx-score alone drains the same day's messages (copied to a topic of their own) on an empty
# Redis, timed as bench/score times it, beside redis-benchmark running the same Redis command mix
# (its calls per record by kind from bx-score's own counters), and each stage's CPU per record.
#
#   bash bench/e2e/run.sh                 # both scales
#   bash bench/e2e/run.sh county          # one: county | province
#   BENCH_CLUSTER=1 bash bench/e2e/run.sh # on bx-infra's cluster layout (3 brokers, Redis Cluster)
#
# Needs the local infrastructure: bash deploy/local/bx-infra up (and up --cluster for
# BENCH_CLUSTER=1: Kafka and Redis are then the cluster's, PostgreSQL the single one).
# Knobs (environment): BENCH_COUNTY_STUDENTS (50000), BENCH_PROVINCE_STUDENTS (1000000),
# BENCH_DAY (2026-10-08, the day after National Day), BENCH_CONNECTIONS (32), BENCH_REDIS_DB (6,
# emptied; a Redis Cluster has no databases: the bench's own keys, bx:[sc]:{E*, are deleted
# instead), BENCH_SKIP_BUILD=1, BENCH_KEEP=1 (keep the databases), BENCH_SCORE_BIN (another
# bx-score build, for an A/B of bx-score alone), BENCH_SCORE_ENV (extra environment for bx-score,
# e.g. "BX_SCORE_BATCH=2000"), BENCH_ESCALATE_BIN and BENCH_ESCALATE_ENV (the same for bx-escalate), BENCH_DRAIN=0 (no drain, no same-mix rates), BENCH_SETTLE_AFTER
# (300: seconds the later stages may take after bx-score caught up; then the run goes on, marked
# not settled), BENCH_WAIT_DUTIES=0 (post the day at once, while bx-escalate's calendar duties due
# at start are still running: their reports then compete with the absent children's path),
# BENCH_RATE (records a second posted on average, the roll calls evenly spaced, as a morning's
# come in over its hours; default 0: the whole day at once, as fast as bx-ingest takes it),
# BENCH_LATENCY_DUMP (a file: one line per absent child, "student accepted_epoch_ms
# case_event_ms request_ms", to see which children waited and when), BENCH_WARMUP (0; N: the
# scale's day N times first, in a database of its own and not reported, so a broker started
# moments ago has compiled its hot paths before the measured day: its JIT took half its CPU in
# the first county runs after a start), BENCH_SCORE_REPLICAS (1; 2: two bx-score processes in
# its group, as a province runs them), BENCH_INGEST_NICE (0; bx-ingest's nice value: on one
# machine, the stages after it then get the cores first).
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

CLUSTER="${BENCH_CLUSTER:-0}"
if [ "$CLUSTER" = 1 ]; then
    [ -f "$RUN_DIR/cluster/env" ] || die "$RUN_DIR/cluster/env not found; start the cluster: bash deploy/local/bx-infra up --cluster"
    # shellcheck disable=SC1091
    source "$RUN_DIR/cluster/env" # the brokers and the Redis Cluster; PostgreSQL as before
fi

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
ESCALATE="${BENCH_ESCALATE_BIN:-$BUILD/services/bx-escalate/bx-escalate}"
for b in "$BXCTL" "$SIM" "$BENCH" "$SCORE_BENCH" "$INGEST" "$SCORE" "$ESCALATE"; do
    [ -x "$b" ] || die "$b not built"
done
for t in psql redis-cli redis-benchmark python3; do command -v "$t" >/dev/null || die "$t not found"; done

# BENCH_STATE: another directory for the run's files; the lock stays the infrastructure's (two
# runs would read each other's messages on the shared topics)
STATE="${BENCH_STATE:-$RUN_DIR/bench-e2e}"
mkdir -p "$STATE" "$RUN_DIR/bench-e2e"
exec 9>"$RUN_DIR/bench-e2e/lock"
flock -n 9 || die "another bench/e2e/run.sh is running (lock $RUN_DIR/bench-e2e/lock)"
DAY="${BENCH_DAY:-2026-10-08}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
REDIS_DB="${BENCH_REDIS_DB:-6}"
if [ "$CLUSTER" = 1 ]; then
    # The seeds of redis+cluster://h1:p1,h2:p2,...; the masters from the first that answers.
    SEED="$(sed -E 's#^redis\+cluster://([^,/]+).*#\1#' <<<"$BX_REDIS_URL")"
    REDIS_HOST="${SEED%:*}" REDIS_PORT="${SEED##*:}"
    REDIS_URL_RUN="$BX_REDIS_URL"
    RCLI=(rcli -c -h "$REDIS_HOST" -p "$REDIS_PORT")
    mapfile -t MASTERS < <(rcli -h "$REDIS_HOST" -p "$REDIS_PORT" CLUSTER NODES |
        awk '$3 ~ /master/ && $3 !~ /fail/ {split($2, a, "@"); print a[1]}')
    mapfile -t NODES < <(rcli -h "$REDIS_HOST" -p "$REDIS_PORT" CLUSTER NODES |
        awk '$3 !~ /fail/ {split($2, a, "@"); print a[1]}')
    [ "${#MASTERS[@]}" -gt 0 ] || die "no Redis Cluster master answers at $SEED"
    # redis-benchmark asks a master for the map (a replica would do, but needs the user too)
    REDIS_HOST="${MASTERS[0]%:*}" REDIS_PORT="${MASTERS[0]##*:}"
    REDIS_PIDS="$(cat "$RUN_DIR"/cluster/redis[0-9].pid 2>/dev/null | paste -sd+)"
    KAFKA_PIDS="$(cat "$RUN_DIR"/cluster/kafka[0-9].pid 2>/dev/null | paste -sd+)"
else
    REDIS_HOST="$(sed -E 's#^redis://([^:/]+).*#\1#' <<<"$BX_REDIS_URL")"
    REDIS_PORT="$(sed -E 's#^redis://[^:/]+:([0-9]+).*#\1#' <<<"$BX_REDIS_URL")"
    REDIS_URL_RUN="redis://$REDIS_HOST:$REDIS_PORT/$REDIS_DB"
    RCLI=(rcli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$REDIS_DB")
    MASTERS=("$REDIS_HOST:$REDIS_PORT")
    NODES=("${MASTERS[@]}")
    REDIS_PIDS="$(cat "$RUN_DIR/redis.pid" 2>/dev/null || true)"
    KAFKA_PIDS="$(cat "$RUN_DIR/kafka.pid" 2>/dev/null || true)"
fi
BASE_PG_URL="$BX_PG_URL"

# The bench's Redis keys gone: its own database emptied, or on a cluster every key of its ids
# (bx:s:{E...}, bx:c:{E...}, redis-benchmark's {E...} too) deleted on the master that holds it.
flush_bench() {
    if [ "$CLUSTER" != 1 ]; then
        "${RCLI[@]}" FLUSHDB >/dev/null
        return
    fi
    local node pattern
    for node in "${MASTERS[@]}"; do
        for pattern in 'bx:[sc]:{E*' 'bx:[sc]:E{*'; do
            rcli -h "${node%:*}" -p "${node##*:}" --scan --pattern "$pattern" |
                sed 's/^/UNLINK /' | rcli -h "${node%:*}" -p "${node##*:}" >/dev/null
        done
    done
}

# redis-benchmark's own user (bench/redis-bench-user.sh) on one server; on a cluster one of the
# same kind on every node (each has its own users), dropped at the end.
CL_USER=""
bench_user_begin() {
    if [ "$CLUSTER" != 1 ]; then
        rbench_user_begin "$REDIS_HOST" "$REDIS_PORT" 'bx:s:{E*' 'bx:c:{E*'
        return
    fi
    RBENCH_AUTH=()
    [ -n "${BX_REDIS_USERNAME:-}" ] || return 0
    local pass node
    CL_USER="bench-$(hostname -s)-$$"
    pass="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
    for node in "${NODES[@]}"; do
        printf '>%s' "$pass" | rcli -h "${node%:*}" -p "${node##*:}" -x ACL SETUSER "$CL_USER" \
            reset on '~bx:s:{E*' '~bx:c:{E*' '~bx:s:E{*' '~bx:c:E{*' +@all -@dangerous +cluster \
            >/dev/null ||
            die "could not make Redis user $CL_USER on $node"
    done
    RBENCH_AUTH=(--user "$CL_USER" -a "$pass")
}
bench_user_end() {
    if [ "$CLUSTER" != 1 ]; then
        rbench_user_end
        return
    fi
    [ -n "$CL_USER" ] || return 0
    local node
    for node in "${NODES[@]}"; do
        rcli -h "${node%:*}" -p "${node##*:}" ACL DELUSER "$CL_USER" >/dev/null 2>&1 || true
    done
    CL_USER=""
    RBENCH_AUTH=()
}

# A script's sha, loaded on every master (redis-benchmark sends EVALSHA where the key lives).
load_script() {
    local node sha=""
    for node in "${MASTERS[@]}"; do
        sha="$("$SCORE_BENCH" lua "$1" | rcli -h "${node%:*}" -p "${node##*:}" -x SCRIPT LOAD)"
    done
    printf '%s\n' "$sha"
}

# rb KIND N KEYSPACE COMMAND...: redis-benchmark's requests per second of one kind, pipelined as
# deep as bx-score (-P 256), one connection per master (bx-score has one handle).
# On a cluster, redis-benchmark sends each node keys whose hash tag it makes itself from a literal
# "{tag}": bx:s:{ERB__rand_int__}:facts becomes bx:s:ERB{tag}__rand_int__:facts (still the bench's:
# flush_bench deletes bx:[sc]:E{* too).
rb() {
    local kind="$1" n="$2" keys="$3" rate
    shift 3
    local where=(--dbnum "$REDIS_DB" -c 1) args=("$@") i
    if [ "$CLUSTER" = 1 ]; then
        where=(--cluster -c "${#MASTERS[@]}")
        for i in "${!args[@]}"; do
            [[ "${args[i]}" =~ ^(bx:[sc]:)\{(E[^}]*)\}(.*)$ ]] &&
                args[i]="${BASH_REMATCH[1]}E{tag}${BASH_REMATCH[2]#E}${BASH_REMATCH[3]}"
        done
    fi
    rate="$(redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" "${RBENCH_AUTH[@]}" "${where[@]}" \
        -P 256 -n "$n" -r "$keys" -q "${args[@]}" 2>&1 | tr '\r' '\n' |
        grep -oE '[0-9.]+ requests per second' | tail -n 1 | cut -d' ' -f1)"
    [ -n "$rate" ] || die "redis-benchmark $kind gave no rate"
    printf '%s %s\n' "$kind" "$rate"
}

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
    local pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # a service that has not stopped 30 s after SIGTERM is killed (and said so)
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid did not stop within 30 s of SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
DROP_TOPICS=()
finish() {
    stop_services
    bench_user_end
    flush_bench 2>/dev/null || true
    [ "${#DROP_TOPICS[@]}" -eq 0 ] || "$SCORE_BENCH" drop "${DROP_TOPICS[@]}" 2>/dev/null || true
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
    local dir="$STATE/$name" db="bx_bench_e2e_$name${BENCH_DB_SUFFIX:-}" # two benches side by side
    local size=(--seed 42 --townships "$townships" --schools "$schools" --students "$students" --id-prefix E)
    rm -rf "$dir"
    mkdir -p "$dir"
    DBS+=("$db")
    say "$name: $students students in $schools schools; database $db"
    PGOPTIONS="-c client_min_messages=warning" psql -q "$ADMIN_URL" -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    PGOPTIONS="-c client_min_messages=warning" psql -q "$ADMIN_URL" -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" >/dev/null
    export BX_PG_URL
    BX_PG_URL="$(url_with_db "$BASE_PG_URL" "$db")"
    export BX_REDIS_URL="$REDIS_URL_RUN"
    flush_bench
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
    BX_HTTP_LISTEN="127.0.0.1:$port" BX_LOG_LEVEL=warn nice -n "${BENCH_INGEST_NICE:-0}" "$INGEST" >"$dir/bx-ingest.log" 2>&1 &
    PIDS+=($!)
    local score_pids="" r
    for r in $(seq 1 "${BENCH_SCORE_REPLICAS:-1}"); do
        # shellcheck disable=SC2086
        env BX_CONSUMER_GROUP="$g_score" BX_LOG_LEVEL=warn ${BENCH_SCORE_ENV:-} "$SCORE" >"$dir/bx-score-$r.log" 2>&1 &
        PIDS+=($!)
        score_pids="${score_pids:+$score_pids+}$!"
    done
    # shellcheck disable=SC2086
    env BX_CONSUMER_GROUP="$g_esc" BX_LOG_LEVEL=warn ${BENCH_ESCALATE_ENV:-} "$ESCALATE" >"$dir/bx-escalate.log" 2>&1 &
    PIDS+=($!)
    local escalate_pid=$!
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || die "bx-ingest did not become healthy"
    sleep $((2 + 2 * (${BENCH_SCORE_REPLICAS:-1} - 1))) # bx-score and bx-escalate join their groups (a second replica: one more rebalance)
    # bx-escalate fires the calendar duties due at start (the month's and the quarter's reports,
    # seconds of queries; on its duty worker since migration 0032, before that in its loop) and
    # relays their rows; the day's roll calls start after, so the latency is the absent
    # children's and not the reports'.
    local t_duties=$SECONDS left=-
    for _ in $(seq 1 1200); do
        [ "${BENCH_WAIT_DUTIES:-1}" = 0 ] && break
        left="$(psql -tA "$BX_PG_URL" -c "SELECT (SELECT count(*) FROM cases.timer WHERE fired_at IS NULL AND due_at <= '$DAY 09:00+08') + (SELECT count(*) FROM cases.outbox WHERE sent_at IS NULL) + (SELECT count(*) FROM cases.duty_run WHERE done_at IS NULL)")"
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    if [ "${BENCH_WAIT_DUTIES:-1}" = 0 ]; then
        say "$name: the day posted without waiting for bx-escalate's duties due at start (BENCH_WAIT_DUTIES=0)"
    else
        say "$name: bx-escalate's duties due at start fired and relayed in $((SECONDS - t_duties)) s (left: $left)"
    fi
    # CPU per record of each stage: the services, the brokers, the Redis servers, and the
    # PostgreSQL backends of this database (the services' connections, made by now).
    local pg_pids
    pg_pids="$(psql -tA "$BX_PG_URL" -c "SELECT string_agg(pid::text, '+') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")"
    local cpu=(--cpu "ingest=${PIDS[0]}" --cpu "score=$score_pids" --cpu "escalate=$escalate_pid"
        --cpu "kafka=$KAFKA_PIDS" --cpu "redis=$REDIS_PIDS" --cpu "pg=$pg_pids")
    say "$name: the day's roll calls through the pipeline ($(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$BENCH" run --api "http://127.0.0.1:$port" --keys "$dir/keys" --state "$dir" --day "$DAY" \
        --connections "$CONNECTIONS" --group "$g_score:bx.attendance.v1" \
        --group "$g_esc:bx.risk.v1,bx.actions.v1" --settle-after "${BENCH_SETTLE_AFTER:-300}" \
        --rate "${BENCH_RATE:-0}" "${cpu[@]}" "${size[@]}" >"$STATE/$name.out"
    stop_services
    if [ "${WARMUP_RUN:-0}" = 1 ]; then
        say "$name: a warm-up day, not reported ($(grep -o 'e2e_records_per_s=[0-9]*' "$STATE/$name.out"))"
        return 0
    fi
    [ "${BENCH_DRAIN:-1}" = 1 ] && drain_run "$name" "$dir" "$runid"
    local records
    records="$(sed -nE 's/.*records=([0-9]+).*/\1/p' "$STATE/$name.out" | head -n 1)"
    say "$name: raw Kafka: the run's attendance messages again through a bare producer"
    # (a cluster's brokers may still be loading their coordinators: one more try)
    "$BENCH" raw-kafka --mark "$dir/attendance.mark" --topic "bx.bench.e2e.raw" >>"$STATE/$name.out" ||
        "$BENCH" raw-kafka --mark "$dir/attendance.mark" --topic "bx.bench.e2e.raw" >>"$STATE/$name.out"
    say "$name: raw PostgreSQL: COPY of $records attendance rows"
    "$BENCH" raw-copy --rows "$records" >>"$STATE/$name.out"
    say "$name: raw Redis: bx-score's per-fact script, redis-benchmark -P 256"
    local sha
    sha="$(load_script apply)"
    bench_user_begin
    rb apply 300000 100000 EVALSHA "$sha" 1 'bx:s:{E__rand_int__}:facts' '2026-10-08|0' \
        '1791000000000|rc-__rand_int__' a 0 | sed -E 's/^apply /raw_redis_per_s=/' >>"$STATE/$name.out"
    [ "${BENCH_DRAIN:-1}" = 1 ] && same_mix "$name"
    bench_user_end
    flush_bench
}

# drain_run NAME DIR RUNID: bx-score alone on the day's messages (copied from bx.attendance.v1 to
# a topic of their own), on an empty Redis and empty attendance tables, a fresh group from the
# topic's start; timed by bench-score wait (its applied counter, from the first batch it sees to
# the last), with bx-score's and the Redis servers' CPU and bx-score's Redis calls by kind.
drain_run() {
    local name="$1" dir="$2" runid="$3" topic="bx.bench.e2e.drain.$runid" n port pid line
    say "$name: bx-score alone on the day's messages (copied to $topic)"
    DROP_TOPICS+=("$topic")
    n="$("$BENCH" copy --mark "$dir/attendance.mark" --topic "$topic")"
    flush_bench
    psql -q "$BX_PG_URL" -v ON_ERROR_STOP=1 -c "TRUNCATE attendance.fact, attendance.class_report, attendance.analytics_dirty" >/dev/null
    port="$(free_port)"
    # shellcheck disable=SC2086
    env BX_ATTENDANCE_TOPIC="$topic" BX_CONSUMER_GROUP="bench-e2e-drain-$runid" \
        BX_CONSUMER_OFFSET_RESET=earliest BX_METRICS_LISTEN="127.0.0.1:$port" BX_LOG_LEVEL=warn \
        ${BENCH_SCORE_ENV:-} "$SCORE" >"$dir/bx-score-drain.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    line="$("$SCORE_BENCH" wait --url "http://127.0.0.1:$port" --count "$n" --timeout 3600 \
        --pids "$pid,${REDIS_PIDS//+/,}")" || { tail -n 5 "$dir/bx-score-drain.log" >&2; die "bx-score did not drain $n messages"; }
    curl -sf "http://127.0.0.1:$port/metrics" | sed -nE 's/^bx_score_redis_calls_total\{kind="([a-z_]+)"\} ([0-9]+)$/\1 \2/p' >"$dir/calls"
    stop_services
    python3 - "$line" "$n" "$dir/calls" >>"$STATE/$name.out" <<'PY'
import sys
f = sys.argv[1].split()
events, secs, rate = int(f[0]), float(f[1]), float(f[2])
score_cpu, redis_cpu = float(f[4]), sum(float(x) for x in f[5:])
n = int(sys.argv[2])
print(f"drain_messages={n} drain_s={secs:.3f} drain_per_s={rate:.0f} "
      f"drain_cpu_score_us={score_cpu * 1e6 / events:.1f} drain_cpu_redis_us={redis_cpu * 1e6 / events:.1f}")
calls = {}
for line in open(sys.argv[3]):
    k, v = line.split()
    calls[k] = int(v) / n
print(" ".join(f"calls_{k}={v:.4f}" for k, v in sorted(calls.items())))
PY
}

# same_mix NAME: redis-benchmark's rate of each kind bx-score called in the drain, on keys of the
# same shapes (a summary copied from a student of the run), and the records per second Redis
# could serve with that mix alone: 1 / sum over kinds of (calls per record / rate of the kind).
same_mix() {
    local name="$1" dir="$STATE/$1" sha_apply sha_sum key
    say "$name: raw Redis: bx-score's command mix, redis-benchmark -P 256 by kind"
    sha_apply="$(load_script apply)"
    sha_sum="$(load_script summary)"
    key="$("${RCLI[@]}" --scan --pattern 'bx:s:{E*}:sum' | head -n 1 || true)" # head ends the scan
    local sum=() rsum=()
    [ -n "$key" ] && mapfile -t sum < <("${RCLI[@]}" --raw HGETALL "$key")
    [ "${#sum[@]}" -ge 2 ] || sum=(as_of 2026-10-08 today absent)
    rsum=("${sum[@]}")
    local i
    for ((i = 0; i < ${#rsum[@]}; i += 2)); do [ "${rsum[i]}" = as_of ] && rsum[i + 1]="__rand_int__"; done
    local order='1791500000000|E520121-001-01-2026-10-08:E5201210010101'
    {
        rb apply_fact_write 200000 100000 EVALSHA "$sha_apply" 1 'bx:s:{ERB__rand_int__}:facts' \
            '2026-__rand_int__|0' "$order" a 0
        rb apply_fact_nowrite 200000 100000 EVALSHA "$sha_apply" 1 'bx:s:{ERN__rand_int__}:facts' \
            '2026-10-08|0' "$order" p 1
        rb apply_report 100000 100000 EVALSHA "$sha_apply" 1 'bx:c:{ERB__rand_int__}:reported' \
            '2026-__rand_int__|0' "$order" 40,2,1,1,0,36 0
        rb hgetall_facts 200000 100000 HGETALL 'bx:s:{ERB__rand_int__}:facts'
        rb hgetall_reported 100000 100000 HGETALL 'bx:c:{ERB__rand_int__}:reported'
        rb hgetall_empty 200000 100000 HGETALL 'bx:s:{ERE__rand_int__}:facts'
        rb hmget 200000 100000 HMGET 'bx:s:{ERB__rand_int__}:facts' '2026-10-08|0'
        rb summary_write 100000 100000 EVALSHA "$sha_sum" 1 'bx:s:{ERB__rand_int__}:sum' "${rsum[@]}"
        rb hgetall_sum 200000 100000 HGETALL 'bx:s:{ERB__rand_int__}:sum'
    } >"$dir/rates"
    python3 - "$STATE/$name.out" "$dir/rates" >>"$STATE/$name.out" <<'PY'
import sys
kv = {}
for line in open(sys.argv[1]):
    for item in line.split():
        k, _, v = item.partition("=")
        kv[k] = v
rates = dict((k, float(v)) for k, v in (l.split() for l in open(sys.argv[2])))
secs = 0.0
for k, v in kv.items():
    if k.startswith("calls_") and float(v) > 0:
        secs += float(v) / rates[k[6:]]
if secs > 0:  # an older bx-score counts no calls: no mix
    print(f"same_mix_per_s={1 / secs:.0f} " + " ".join(f"rb_{k}={v:.0f}" for k, v in rates.items()))
PY
}

SCALES=("${@:-county province}")
# shellcheck disable=SC2206
SCALES=(${SCALES[*]})
for s in "${SCALES[@]}"; do
    for _ in $(seq 1 "${BENCH_WARMUP:-0}"); do
        case "$s" in
        county) WARMUP_RUN=1 scale_run county_warmup "${BENCH_COUNTY_STUDENTS:-50000}" 10 120 ;;
        province) WARMUP_RUN=1 scale_run province_warmup "${BENCH_PROVINCE_STUDENTS:-1000000}" 20 400 ;;
        esac
    done
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
row("posting asked (records/s)", lambda r: "at once" if float(r.get("post_rate", 0)) == 0 else r["post_rate"])
row("all posted (s)", f("ingest_s"))
caught = lambda k: (lambda r: r[k] if float(r.get(k, 0)) > 0 else "not caught up")
row("bx-score caught up (s)", caught("caught_up_0_s"))
row("bx-escalate caught up (s)", caught("caught_up_1_s"))
row("pipeline quiet (s)", lambda r: r["quiet_s"] if r.get("settled", "1") == "1" else "not settled")
row("  settle checks (mean ms each)", lambda r: f"{r['settle_checks']} ({r['settle_check_ms']})" if "settle_checks" in r else "-")
settled = lambda r: r.get("settled", "1") == "1"
row("e2e records/s", lambda r: r["e2e_records_per_s"] if settled(r) else "not settled")
row("ingest records/s", f("ingest_records_per_s"))
row("to assessment (bx-score) p50/p99 ms", lambda r: f"{r.get('assessed_p50_ms', '-')}/{r.get('assessed_p99_ms', '-')}")
row("to case event (bx-escalate) p50/p99", lambda r: f"{r['created_p50_ms']}/{r['created_p99_ms']}")
row("to notify request p50 / p99 ms", lambda r: f"{r['notify_p50_ms']}/{r['notify_p99_ms']}")
row("  latency samples (of absent)", lambda r: f"{r['latency_samples']} of {r['absent']}")
row("raw Kafka produce msgs/s", f("raw_kafka_per_s"))
row("raw Redis script calls/s (-P 256)", lambda r: f"{float(r['raw_redis_per_s']):.0f}")
row("raw PostgreSQL COPY rows/s", f("raw_copy_per_s"))
ratio = lambda k: (lambda r: f"{float(r['e2e_records_per_s']) / float(r[k]):.3f}" if settled(r) else "-")
row("e2e / raw Kafka", ratio("raw_kafka_per_s"))
row("e2e / raw Redis", ratio("raw_redis_per_s"))
row("e2e / raw COPY", ratio("raw_copy_per_s"))
score_rate = lambda r: float(r["records"]) / float(r["caught_up_0_s"])
row("records / bx-score caught up, /s", lambda r: f"{score_rate(r):.0f}")
row("  / raw Redis script calls", lambda r: f"{score_rate(r) / float(r['raw_redis_per_s']):.3f}")
# CPU per record of each stage, and the same less what the stage burns idle (measured for 5 s
# before the run, as cores busy) over the run's length: its cost per record under load.
def net(k):
    def fn(r):
        if f"cpu_{k}_us" not in r:
            return "-"
        total = float(r[f"cpu_{k}_us"])
        idle = float(r.get(f"cpu_{k}_idle", 0)) * float(r["quiet_s"]) * 1e6 / float(r["records"])
        return f"{total:.1f} / {max(0.0, total - idle):.1f}"
    return fn
for k, label in (("ingest", "bx-ingest"), ("score", "bx-score"), ("escalate", "bx-escalate"),
                 ("kafka", "Kafka broker(s)"), ("redis", "Redis server(s)"),
                 ("pg", "PostgreSQL backends"), ("client", "bench-e2e itself (posting, checks)")):
    row(f"CPU us/record {label} (all/less idle)", net(k))
    row(f"  idle, cores busy", f(f"cpu_{k}_idle"))
if all("drain_per_s" in rows[s] for s in scales):
    row("bx-score alone (drain) records/s", f("drain_per_s"))
    row("  its CPU us/record: bx-score", f("drain_cpu_score_us"))
    row("  its CPU us/record: Redis", f("drain_cpu_redis_us"))
    calls = lambda r: sum(float(v) for k, v in r.items() if k.startswith("calls_"))
    row("  its Redis calls per record", lambda r: f"{calls(r):.3f}")
    row("raw Redis, the same mix, records/s", f("same_mix_per_s"))
    div = lambda a, b: (lambda r: f"{float(r[a]) / float(r[b]):.3f}" if a in r and b in r else "-")
    row("drain / raw same mix", div("drain_per_s", "same_mix_per_s"))
    row("drain / raw script calls", div("drain_per_s", "raw_redis_per_s"))
for s in scales:
    r = rows[s]
    if r.get("settled", "1") != "1":
        print(f"{s}: not settled; bx-score caught up {float(r['caught_up_0_s']) - float(r['ingest_s']):.2f} s "
              f"after the last record was accepted; still busy then: {r.get('stuck', '?')}")
        continue
    stages = [("bx-ingest (all posted)", float(r["ingest_s"])),
              ("bx-score", float(r["caught_up_0_s"]) - float(r["ingest_s"])),
              ("bx-escalate and its outbox", float(r["quiet_s"]) - float(r["caught_up_0_s"]))]
    worst = max(stages, key=lambda x: x[1])
    print(f"{s}: " + ", ".join(f"{n} +{t:.2f} s" for n, t in stages) +
          f"; the stage that finishes last after the one before: {worst[0]}")
PY
