#!/usr/bin/env bash
# bench/console/run.sh: bx-console's county and area pages at province size. Loads a province of
# BENCH_STUDENTS students (1,000,000) with BENCH_CASES cases (50,000) and BENCH_TASKS tasks
# (200,000) into a database of its own (bench/console/load.sql), starts bx-console on it with the
# clock at Friday 2026-11-27 08:12, and runs BENCH_CLIENTS (32) signed-in clients
# (bench/console/client.py): each page's time at p50 and p95, and the export of county 970101's
# 10,000-row dropout list. It prints figures; it is not a test.
#
#   bash bench/console/run.sh
#   BENCH_STUDENTS=200000 BENCH_CASES=10000 BENCH_TASKS=40000 bash bench/console/run.sh
#
# Knobs: BENCH_ROUNDS (10 rounds of every page a client), BENCH_WARMUP (1 unmeasured pass first,
# its slowest time printed apart: the first visit of a period computes its counts), BENCH_KEEP=1
# (keep the database), BENCH_SKIP_LOAD=1 with BENCH_DB=<name> (reuse a kept one), BX_BUILD_DIR
# (build).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${BX_RUN_DIR:-$REPO/.run}"
say() { printf 'bench/console: %s\n' "$*" >&2; }
die() { printf 'bench/console: error: %s\n' "$*" >&2; exit 1; }
[ -f "$RUN_DIR/env" ] || die "$RUN_DIR/env not found; start the infrastructure: bash deploy/local/bx-infra up"
# shellcheck disable=SC1091
source "$RUN_DIR/env"
BUILD="${BX_BUILD_DIR:-$REPO/build}"
BXCTL="$BUILD/tools/bxctl/bxctl"
CONSOLE="$BUILD/services/bx-console/bx-console"
[ -x "$BXCTL" ] && [ -x "$CONSOLE" ] || die "build bxctl and bx-console in $BUILD first"
STUDENTS="${BENCH_STUDENTS:-1000000}"
CASES="${BENCH_CASES:-50000}"
TASKS="${BENCH_TASKS:-200000}"
DB="${BENCH_DB:-bx_bench_console_$$}"
BASE="${BX_PG_URL%/*}"
URL="$BASE/$DB"
PWHASH='$argon2id$v=19$m=65536,t=2,p=1$782mBQ1hjBtyj594HOWCfA$JA+onWjza4kEg9VgdiK+G2rZ+JtJOLk/kplECy3/G2E'
WORK="$(mktemp -d)"
CONSOLE_PID=""
cleanup() {
    [ -n "$CONSOLE_PID" ] && kill "$CONSOLE_PID" 2>/dev/null && wait "$CONSOLE_PID" 2>/dev/null
    if [ "${BENCH_KEEP:-0}" != 1 ] && [ "${BENCH_SKIP_LOAD:-0}" != 1 ]; then
        psql -q "$BX_PG_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
if [ "${BENCH_SKIP_LOAD:-0}" != 1 ]; then
    say "database $DB: $STUDENTS students, $CASES cases, $TASKS tasks"
    psql -q "$BX_PG_URL" -c "CREATE DATABASE $DB" >/dev/null
    BX_PG_URL="$URL" "$BXCTL" migrate >/dev/null
    t0=$(date +%s)
    psql -q "$URL" -v students="$STUDENTS" -v cases="$CASES" -v tasks="$TASKS" \
        -f "$REPO/bench/console/load.sql" >/dev/null
    psql -q "$URL" -c "INSERT INTO console.account (staff_id, password_hash, state, created_at, changed_at)
        SELECT id, '$PWHASH', 'active', now(), now() FROM registry.staff WHERE id LIKE 'B%'" >/dev/null
    say "loaded in $(( $(date +%s) - t0 )) s: $(psql -Atq "$URL" -c "SELECT (SELECT count(*) FROM registry.student) || ' students, ' || (SELECT count(*) FROM cases.case) || ' cases, ' || (SELECT count(*) FROM cases.task) || ' tasks, ' || (SELECT count(*) FROM cases.event) || ' events'")"
fi
BX_CLOCK="file:$WORK/clock" "$BXCTL" clock set "2026-11-27 08:12" >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BX_PG_URL="$URL" BX_CLOCK="file:$WORK/clock" BX_CONSOLE_LISTEN="127.0.0.1:$PORT" \
    BX_METRICS_LISTEN="127.0.0.1:$MPORT" BX_CONSOLE_THREADS="${BENCH_THREADS:-8}" \
    BX_CONSOLE_TEMPLATES="$REPO/services/bx-console/templates" \
    BX_SCORE_POLICY="$REPO/deploy/policy/score.policy" "$CONSOLE" >"$WORK/console.log" 2>&1 &
CONSOLE_PID=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$MPORT/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fs "http://127.0.0.1:$MPORT/healthz" >/dev/null || { cat "$WORK/console.log" >&2; die "bx-console did not start"; }
STAFF=$(psql -Atq "$URL" -c "SELECT string_agg(id, ',' ORDER BY id) FROM registry.staff WHERE role = 'county_officer' AND id LIKE 'BK%'")
say "load before: $(uptime | sed 's/.*load/load/')"
python3 "$REPO/bench/console/client.py" --port "$PORT" --clients "${BENCH_CLIENTS:-32}" \
    --rounds "${BENCH_ROUNDS:-10}" --warmup "${BENCH_WARMUP:-1}" --staff "$STAFF"
say "load after: $(uptime | sed 's/.*load/load/')"
