#!/usr/bin/env bash
# bench/score/run.sh: attendance events per second through bx-score (real Kafka, Redis,
# PostgreSQL), beside redis-benchmark running the same Redis command mix against the same Redis,
# pipelined as deep as bx-score pipelines and unpipelined, in the same run.
#
#   bash bench/score/run.sh
#
# Needs the local infrastructure: bash deploy/local/bx-infra up
# Knobs (environment): BENCH_DAYS (school days of roll calls timed, default 8 = 205,000 events with
# the default registry), BENCH_SCHOOLS / BENCH_CLASSES / BENCH_STUDENTS (default 25 x 25 x 40),
# BENCH_PARTITIONS (of the bench topics, default 4 like bxctl topics create), BENCH_PIPELINE
# (redis-benchmark -P, default 256 = bx-score's pipelined window, WINDOW_CALLS in store.c),
# BENCH_RB_N / BENCH_RB_N1 (redis-benchmark requests per kind, pipelined / unpipelined),
# BENCH_SKIP_BUILD=1, BENCH_SCORE_BIN (another bx-score build), BENCH_SCORE_ENV (extra environment
# for bx-score, e.g. "BX_SCORE_BATCH=1000"), BENCH_KEEP=1 (leave keys, rows and topics),
# BENCH_QUICK=1 (bx-score's rate and CPU only: no redis-benchmark, no memory), BENCH_MEMORY=0 (no
# Redis bytes per student after a term).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${BX_RUN_DIR:-$REPO/.run}"
say() { printf 'bench/score: %s\n' "$*" >&2; }
die() { printf 'bench/score: error: %s\n' "$*" >&2; exit 1; }

[ -f "$RUN_DIR/env" ] || die "$RUN_DIR/env not found; start the infrastructure: bash deploy/local/bx-infra up"
# shellcheck disable=SC1091
source "$RUN_DIR/env"
# shellcheck source=deploy/local/creds.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/creds.sh"   # rcli: redis-cli as the administrator
# shellcheck source=bench/redis-bench-user.sh
source "$(dirname "${BASH_SOURCE[0]}")/../redis-bench-user.sh"   # redis-benchmark's own user
# bx-score needs the analysts' pseudonym key; a bench that has none uses one of its own.
export BX_PSEUDONYM_KEY="${BX_PSEUDONYM_KEY:-$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')}"

BUILD="${BX_BUILD_DIR:-$REPO/build}"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building in $BUILD (RelWithDebInfo)"
    cmake -S "$REPO" -B "$BUILD" -G Ninja >/dev/null
    ninja -C "$BUILD" >/dev/null
fi
BXCTL="$BUILD/tools/bxctl/bxctl"
SCORE="${BENCH_SCORE_BIN:-$BUILD/services/bx-score/bx-score}"
BENCH="$BUILD/bench/score/bench-score"
MIX="$REPO/bench/score/mix.py"
for b in "$BXCTL" "$SCORE" "$BENCH"; do [ -x "$b" ] || die "$b not built"; done
command -v redis-benchmark >/dev/null || die "redis-benchmark not found"
command -v redis-cli >/dev/null || die "redis-cli not found"
command -v psql >/dev/null || die "psql not found"

REDIS_HOST="$(sed -E 's#^redis://([^:/]+).*#\1#' <<<"$BX_REDIS_URL")"
REDIS_PORT="$(sed -E 's#^redis://[^:/]+:([0-9]+).*#\1#' <<<"$BX_REDIS_URL")"
RCLI=(rcli -h "$REDIS_HOST" -p "$REDIS_PORT")

STATE="$RUN_DIR/bench-score"
mkdir -p "$STATE"
# One run at a time: a second one would delete the first one's keys and share its cores.
exec 9>"$STATE/lock"
flock -n 9 || die "another bench/score/run.sh is running (lock $STATE/lock)"
SCHOOLS="${BENCH_SCHOOLS:-25}" CLASSES="${BENCH_CLASSES:-25}" STUDENTS="${BENCH_STUDENTS:-40}"
SIZE=(--schools "$SCHOOLS" --classes "$CLASSES" --students "$STUDENTS")
NSTUDENTS=$((SCHOOLS * CLASSES * STUDENTS))
DAYS="${BENCH_DAYS:-8}"
PARTS="${BENCH_PARTITIONS:-4}"
DEPTH="${BENCH_PIPELINE:-256}"
RB_N="${BENCH_RB_N:-200000}"
RB_N1="${BENCH_RB_N1:-30000}"
RUN_ID="$(date +%Y%m%d%H%M%S)"
WARM_TOPIC="bx.bench.score.$RUN_ID.warmup"
TOPIC="bx.bench.score.$RUN_ID"

# Bench state in Redis (BSC* ids, BSCRB* for redis-benchmark's keys) and PostgreSQL.
clean_state() {
    # rcli is a shell function (it signs in), which xargs cannot run: batches of 1000 by hand
    local keys=()
    while mapfile -t -n 1000 keys && [ "${#keys[@]}" -gt 0 ]; do
        "${RCLI[@]}" UNLINK "${keys[@]}" >/dev/null
    done < <("${RCLI[@]}" --scan --pattern 'bx:[sc]:{BSC*')
    psql -q "$BX_PG_URL" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DELETE FROM attendance.fact WHERE student_id LIKE 'BSC%';
DELETE FROM attendance.class_report WHERE class_id LIKE 'BSC%';
SQL
}

SCORE_PID=""
stop_score() {
    if [ -n "$SCORE_PID" ] && kill -0 "$SCORE_PID" 2>/dev/null; then
        kill -TERM "$SCORE_PID"
        wait "$SCORE_PID" 2>/dev/null || true
    fi
    SCORE_PID=""
}
finish() {
    stop_score
    rbench_user_end
    if [ "${BENCH_KEEP:-0}" != 1 ]; then
        say "cleaning up: bench topics, BSC* Redis keys and attendance rows"
        "$BENCH" drop "$WARM_TOPIC" "$TOPIC" 2>/dev/null || say "could not drop the bench topics"
        clean_state || say "could not clean the bench state"
    fi
}
trap finish EXIT

say "migrate, topics, synthetic registry (${SIZE[*]})"
"$BXCTL" migrate >/dev/null
"$BXCTL" topics create >/dev/null
rm -rf "$STATE/registry"
mkdir -p "$STATE/registry"
"$BENCH" gen "$STATE/registry" "${SIZE[@]}"
"$BXCTL" import holidays "$REPO/deploy/policy/cn-public-holidays-2026.csv" >/dev/null
"$BXCTL" import --dir "$STATE/registry" >/dev/null
clean_state

export BX_CLOCK="file:$STATE/clock"
"$BXCTL" clock set "2026-11-27 18:00" >/dev/null

say "pre-producing roll calls: warm-up day to $WARM_TOPIC, $DAYS days to $TOPIC ($PARTS partitions)"
WARM_N="$("$BENCH" produce --topic "$WARM_TOPIC" --partitions "$PARTS" --first-day 0 --days 1 \
    --run-id "$RUN_ID" "${SIZE[@]}")"
N="$("$BENCH" produce --topic "$TOPIC" --partitions "$PARTS" --first-day 1 --days "$DAYS" \
    --run-id "$RUN_ID" "${SIZE[@]}")"
say "$WARM_N warm-up events, $N timed events"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts bx-score on topic $1 as group $2 and waits for $3 events applied; prints bench-score
# wait's line (events seconds events/s machine-cpu-s). It runs in a command substitution, whose
# SCORE_PID the EXIT trap does not see: it stops its bx-score itself, on failure too.
run_score() {
    local topic="$1" group="$2" count="$3" log="$4" port
    port="$(free_port)"
    # shellcheck disable=SC2086
    env BX_ATTENDANCE_TOPIC="$topic" BX_CONSUMER_GROUP="$group" BX_CONSUMER_OFFSET_RESET=earliest \
        BX_LOG_LEVEL=warn \
        BX_METRICS_LISTEN="127.0.0.1:$port" ${BENCH_SCORE_ENV:-} "$SCORE" >"$log" 2>&1 &
    SCORE_PID=$!
    local line
    line="$("$BENCH" wait --url "http://127.0.0.1:$port" --count "$count" --timeout 900 \
        --pids "$SCORE_PID,$REDIS_PID")" \
        || { tail -n 5 "$log" >&2; stop_score; die "bx-score did not apply $count events"; }
    # bx-score's own count of its Redis calls by kind (store.c), for the command mix
    curl -sf "http://127.0.0.1:$port/metrics" |
        sed -nE 's/^bx_score_redis_calls_total\{kind="([a-z_]+)"\} ([0-9]+)$/\1 \2/p' >"$log.calls"
    stop_score
    printf '%s\n' "$line"
}

# redis-server's process, for its CPU over the timed window (when it runs on this machine).
REDIS_PID="$(cat "$RUN_DIR/redis.pid" 2>/dev/null || echo 0)"

cmdstat() { "${RCLI[@]}" INFO commandstats | tr -d '\r' | sed -nE "s/^cmdstat_$1:calls=([0-9]+),.*/\1/p"; }

# 1. Warm-up: one school day through bx-score, untimed.
QUICK="${BENCH_QUICK:-0}"
say "warm-up: bx-score on $WARM_TOPIC"
WARM="$(run_score "$WARM_TOPIC" "bench-score-$RUN_ID-warmup" "$WARM_N" "$STATE/bx-score-warmup.log")"
SHA_APPLY="$("$BENCH" lua apply | "${RCLI[@]}" -x SCRIPT LOAD)"
SHA_SUM="$("$BENCH" lua summary | "${RCLI[@]}" -x SCRIPT LOAD)"

# 2. Timed: the pre-produced days through a fresh bx-score (new group), from the first event it
# applied to the last; its Redis calls by kind (its own counters) are the command mix.
say "timed: bx-score on $TOPIC ($N events; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg))"
EV0="$(cmdstat evalsha)" HG0="$(cmdstat hgetall)" HM0="$(cmdstat hmget)"
read -r S_EVENTS S_SECS S_RATE S_CPU S_CPU_SCORE S_CPU_REDIS < <(run_score "$TOPIC" "bench-score-$RUN_ID" "$N" "$STATE/bx-score.log")
EV1="$(cmdstat evalsha)" HG1="$(cmdstat hgetall)" HM1="$(cmdstat hmget)"
python3 "$MIX" calls "$STATE/bx-score.log.calls" "$N" >"$STATE/mix"
if [ ! -s "$STATE/mix" ] && [ "$QUICK" != 1 ]; then
    say "this bx-score does not count its Redis calls (a build before them): no same-mix rates"
    QUICK=1
fi
FACT_ROWS="$(psql -tA "$BX_PG_URL" -c "SELECT count(*) FROM attendance.fact WHERE student_id LIKE 'BSC%'")"
if [ "$QUICK" = 1 ]; then
    read -r W_EVENTS W_SECS W_RATE _ <<<"$WARM"
    echo "bx-score: $S_EVENTS events in $S_SECS s ($S_RATE events/s), machine CPU $S_CPU s" \
        "($(python3 -c "print(f'{$S_CPU * 1e6 / $S_EVENTS:.1f}')") us per event; bx-score" \
        "$(python3 -c "print(f'{$S_CPU_SCORE * 1e6 / $S_EVENTS:.1f}')"), redis-server" \
        "$(python3 -c "print(f'{$S_CPU_REDIS * 1e6 / $S_EVENTS:.1f}')"));" \
        "per 1000 events: EVALSHA $(((EV1 - EV0) * 1000 / N)), HGETALL $(((HG1 - HG0) * 1000 / N))," \
        "HMGET $(((${HM1:-0} - ${HM0:-0}) * 1000 / N));" \
        "warm-up $W_EVENTS events in $W_SECS s"
    exit 0
fi

# 3. redis-benchmark, same Redis, same command mix (kinds of mix.py), one connection like bx-score.
ORDER="1794998765000|BSC-$RUN_ID-2026-11-27-BSC01-C01:BSC01-C01-S01"
# The summary of the median size among 101 bench students' (one with a factor's long detail is
# stored as a hashtable and costs Redis several times a short one's: not the common case).
SUM_OF="$(for k in $("${RCLI[@]}" --scan --pattern 'bx:s:{BSC*}:sum' | head -n 101 || true); do
    printf '%s %s\n' "$("${RCLI[@]}" MEMORY USAGE "$k")" "$k"
done | sort -n | awk '{a[NR] = $2} END {print a[int((NR + 1) / 2)]}' | sed -E 's/^bx:s:\{(.*)\}:sum$/\1/')"
[ -n "$SUM_OF" ] || die "no summary of a bench student to copy"
mapfile -d '' SUMARGS < <("$BENCH" summary "$SUM_OF")
[ "${#SUMARGS[@]}" -ge 2 ] || die "no summary of $SUM_OF to copy"
SUMRAND=("${SUMARGS[@]}")
for ((i = 0; i < ${#SUMRAND[@]}; i += 2)); do
    [ "${SUMRAND[i]}" = as_of ] && SUMRAND[i + 1]="__rand_int__"
done
# Facts hashes as full as bx-score's were on average: keys for the writes so that each ends with
# about FACT_ROWS / NSTUDENTS fields.
FACT_KEYS=$(python3 -c "print(max(1000, int($RB_N * $NSTUDENTS / max(1, $FACT_ROWS))))")

rb() { # kind depth n keyspace command...
    local kind="$1" depth="$2" n="$3" keys="$4"
    shift 4
    local rate
    rate="$(redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" "${RBENCH_AUTH[@]}" -c 1 -P "$depth" \
        -n "$n" -r "$keys" -q "$@" 2>&1 \
        | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -n 1 | cut -d' ' -f1)"
    [ -n "$rate" ] || die "redis-benchmark $kind gave no rate"
    printf '%s %s\n' "$kind" "$rate"
}
rb_all() { # depth n
    local d="$1" n="$2"
    rb apply_fact_write "$d" "$n" "$FACT_KEYS" EVALSHA "$SHA_APPLY" 1 'bx:s:{BSCRB__rand_int__}:facts' \
        '2026-__rand_int__|0' "$ORDER" a 0
    rb apply_fact_nowrite "$d" "$n" "$FACT_KEYS" EVALSHA "$SHA_APPLY" 1 'bx:s:{BSCRB__rand_int__}:facts' \
        '2026-__rand_int__|0' "$ORDER" p 1
    rb hgetall_facts "$d" "$n" "$FACT_KEYS" HGETALL 'bx:s:{BSCRB__rand_int__}:facts'
    rb summary_write "$d" "$n" "$NSTUDENTS" EVALSHA "$SHA_SUM" 1 'bx:s:{BSCRB__rand_int__}:sum' "${SUMRAND[@]}"
    rb summary_same "$d" "$n" "$NSTUDENTS" EVALSHA "$SHA_SUM" 1 'bx:s:{BSCRB-same}:sum' "${SUMARGS[@]}"
    rb hgetall_sum "$d" "$n" "$NSTUDENTS" HGETALL 'bx:s:{BSCRB__rand_int__}:sum'
    rb apply_report "$d" "$n" 1000 EVALSHA "$SHA_APPLY" 1 'bx:c:{BSCRB__rand_int__}:reported' \
        '2026-__rand_int__|0' "$ORDER" 40,2,1,1,0,36 0
    rb hgetall_reported "$d" "$n" 1000 HGETALL 'bx:c:{BSC01-C01}:reported'
    rb hgetall_empty "$d" "$n" "$NSTUDENTS" HGETALL 'bx:s:{BSCRE__rand_int__}:facts'
    rb hmget "$d" "$n" "$FACT_KEYS" HMGET 'bx:s:{BSCRB__rand_int__}:facts' '2026-11-27|0'
}
say "redis-benchmark: the same mix, -c 1, -P $DEPTH (-n $RB_N per kind) and -P 1 (-n $RB_N1)"
rbench_user_begin "$REDIS_HOST" "$REDIS_PORT" 'bx:s:{BSC*' 'bx:c:{BSC*'
rb_all "$DEPTH" "$RB_N" >"$STATE/rates.pipelined"
rb_all 1 "$RB_N1" >"$STATE/rates.unpipelined"
rbench_user_end
read -r P_EVENTS P_OPS CALLS < <(python3 "$MIX" events "$STATE/mix" "$STATE/rates.pipelined")
read -r U_EVENTS U_OPS _ < <(python3 "$MIX" events "$STATE/mix" "$STATE/rates.unpipelined")

# 4. The figures.
echo
echo "bx-score: $N events ($DAYS school days x $((SCHOOLS * CLASSES)) classes x ($STUDENTS facts + 1 class report)),"
echo "topic $TOPIC ($PARTS partitions), BX_SCORE_BATCH default 2000 unless BENCH_SCORE_ENV says; $(nproc) cores"
echo
echo "Redis calls per event (the timed run, bx-score's bx_score_redis_calls_total by kind):"
printf '  %-20s %10s %10s %14s %14s\n' kind calls per-event "rb -P $DEPTH/s" "rb -P 1/s"
while read -r kind calls per; do
    [ "${kind:0:1}" = "#" ] && { echo "  ${kind} ${calls} ${per}"; continue; }
    p="$(awk -v k="$kind" '$1 == k {print $2}' "$STATE/rates.pipelined")"
    u="$(awk -v k="$kind" '$1 == k {print $2}' "$STATE/rates.unpipelined")"
    printf '  %-20s %10s %10s %14s %14s\n' "$kind" "$calls" "$per" "${p:--}" "${u:--}"
done <"$STATE/mix"
python3 - "$EV0" "$EV1" "$HG0" "$HG1" "$HM0" "$HM1" "$N" <<'PY'
import sys
ev0, ev1, hg0, hg1, hm0, hm1, n = map(int, sys.argv[1:])
print(f"  check, INFO commandstats over the timed run (the whole server): EVALSHA "
      f"{(ev1 - ev0) / n:.3f}, HGETALL {(hg1 - hg0) / n:.3f}, HMGET {(hm1 - hm0) / n:.3f} per event")
PY
echo
printf '%-44s %12s %12s\n' "" "events/s" "Redis ops/s"
printf '%-44s %12.0f %12s\n' "bx-score (Kafka -> Redis + PostgreSQL)" "$S_RATE" \
    "$(python3 -c "print(round($S_RATE * $CALLS))")"
printf '%-44s %12s %12s\n' "redis-benchmark same mix, -P $DEPTH" "$P_EVENTS" "$P_OPS"
printf '%-44s %12s %12s\n' "redis-benchmark same mix, -P 1" "$U_EVENTS" "$U_OPS"
echo
echo "bx-score: $S_EVENTS events in $S_SECS s, machine CPU $S_CPU s ($(python3 -c "print(f'{$S_CPU * 1e6 / $S_EVENTS:.1f}')") us per event;" \
    "of which bx-score $(python3 -c "print(f'{$S_CPU_SCORE * 1e6 / $S_EVENTS:.1f}')")," \
    "redis-server $(python3 -c "print(f'{$S_CPU_REDIS * 1e6 / $S_EVENTS:.1f}')"))"
read -r W_EVENTS W_SECS W_RATE _ <<<"$WARM"
echo "warm-up (untimed): $W_EVENTS events in $W_SECS s ($W_RATE events/s)"
python3 - "$S_RATE" "$P_EVENTS" "$U_EVENTS" "$DEPTH" <<'PY'
import sys
s, p, u, depth = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
r1, r2 = s / p, s / u
print(f"bx-score / redis-benchmark -P {depth}: {r1:.2f}  (target >= 0.50: {'met' if r1 >= 0.5 else 'not met'})")
print(f"bx-score / redis-benchmark -P 1:  {r2:.2f}  (target >= 3.00: {'met' if r2 >= 3 else 'not met'})")
PY

# 5. Redis bytes per student after a term (bench-score term): a term of roll calls of the bench's
# registry written by bx-score's store with bx-sim's daily chances, every summary computed and
# stored as bx-score does, MEMORY USAGE of every key. Once with roll call ids as bx-sim makes
# them, once with 36-character ones (a UUID, as a school's software may send).
if [ "${BENCH_MEMORY:-1}" = 1 ]; then
    echo
    echo "Redis memory after a term (2026-09-01..2027-01-22), $NSTUDENTS students, this server's settings"
    echo "(hash-max-listpack-entries $("${RCLI[@]}" CONFIG GET hash-max-listpack-entries | tail -n 1)," \
        "hash-max-listpack-value $("${RCLI[@]}" CONFIG GET hash-max-listpack-value | tail -n 1)):"
    for uuid in 0 1; do
        clean_state
        "$BENCH" term 2027-01-22 --uuid-rollcalls "$uuid" "${SIZE[@]}" >"$STATE/term.$uuid"
        python3 - "$STATE/term.$uuid" "$uuid" <<'PY'
import sys
kv = {}
for line in open(sys.argv[1]):
    for item in line.split():
        k, _, v = item.partition("=")
        kv[k] = v
ids = "36-character roll call ids" if sys.argv[2] == "1" else "bx-sim's roll call ids"
print(f"  {ids}: {kv['bytes_per_student']} bytes per student (facts {kv['facts_bytes_per_student']}, "
      f"summary {kv['sum_bytes_per_student']}, class roll calls {kv['reported_bytes_per_student']}); "
      f"{kv['facts_per_student']} facts per student over {kv['term_school_days']} school days; "
      f"listpack encoded: facts {kv['facts_listpack']}/{kv['facts_keys']}, "
      f"summaries {kv['sum_listpack']}/{kv['sum_keys']}, roll calls {kv['reported_listpack']}/{kv['reported_keys']}")
PY
    done
fi
