#!/usr/bin/env bash
# bench/ingest/run.sh: builds, prepares a synthetic registry (BENCH* ids), starts bx-ingest on a
# free loopback port and runs bench-ingest (HTTP roll calls vs a raw producer, same messages).
#
#   bash bench/ingest/run.sh [bench-ingest run options, e.g. --days 9 --connections 32]
#
# Needs the local infrastructure: bash deploy/local/bx-infra up
# Knobs (environment): BENCH_MAX_CONNECTIONS (bx-ingest's BX_HTTP_MAX_CONNECTIONS, default 512),
# BENCH_SCHOOLS / BENCH_CLASSES / BENCH_STUDENTS (registry size, default 20 x 25 x 40),
# BENCH_SKIP_BUILD=1, BENCH_INGEST_BIN (another bx-ingest build, to compare a change),
# BENCH_INGEST_WRAPPER (e.g. "valgrind --tool=callgrind", for profiling).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${BX_RUN_DIR:-$REPO/.run}"
say() { printf 'bench/ingest: %s\n' "$*" >&2; }
die() { printf 'bench/ingest: error: %s\n' "$*" >&2; exit 1; }

[ -f "$RUN_DIR/env" ] || die "$RUN_DIR/env not found; start the infrastructure: bash deploy/local/bx-infra up"
# shellcheck disable=SC1091
source "$RUN_DIR/env"

BUILD="$REPO/build"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building in $BUILD (RelWithDebInfo)"
    cmake -S "$REPO" -B "$BUILD" -G Ninja >/dev/null
    ninja -C "$BUILD" >/dev/null
fi
BXCTL="$BUILD/tools/bxctl/bxctl"
INGEST="${BENCH_INGEST_BIN:-$BUILD/services/bx-ingest/bx-ingest}"
BENCH="$BUILD/bench/ingest/bench-ingest"
for b in "$BXCTL" "$INGEST" "$BENCH"; do [ -x "$b" ] || die "$b not built"; done

STATE="$RUN_DIR/bench-ingest"
mkdir -p "$STATE"
SIZE=(--schools "${BENCH_SCHOOLS:-20}" --classes "${BENCH_CLASSES:-25}" --students "${BENCH_STUDENTS:-40}")

say "migrate, topics"
"$BXCTL" migrate >/dev/null
"$BXCTL" topics create >/dev/null

say "synthetic registry: ${SIZE[*]}"
rm -rf "$STATE/registry"
mkdir -p "$STATE/registry"
"$BENCH" gen "$STATE/registry" "${SIZE[@]}" >"$STATE/schools"
"$BXCTL" import holidays "$REPO/deploy/policy/cn-public-holidays-2026.csv" >/dev/null
"$BXCTL" import --dir "$STATE/registry" >/dev/null

# One credential per school; the previous run's credentials are revoked first.
if [ -f "$STATE/keys" ]; then
    while read -r _school token; do
        id="${token#bxk_}"
        "$BXCTL" key revoke "${id%%_*}" >/dev/null 2>&1 || true
    done <"$STATE/keys"
fi
: >"$STATE/keys.new"
while read -r school; do
    token="$("$BXCTL" key create "$school" bench 2>/dev/null | grep '^bxk_')" \
        || die "bxctl key create $school failed"
    printf '%s %s\n' "$school" "$token" >>"$STATE/keys.new"
done <"$STATE/schools"
mv "$STATE/keys.new" "$STATE/keys"

export BX_CLOCK="file:$STATE/clock"
"$BXCTL" clock set "2026-11-27 18:00" >/dev/null

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
THREADS="${BENCH_MAX_CONNECTIONS:-512}"
say "starting bx-ingest on 127.0.0.1:$PORT with BX_HTTP_MAX_CONNECTIONS=$THREADS (log: $STATE/bx-ingest.log)"
# shellcheck disable=SC2086
BX_HTTP_LISTEN="127.0.0.1:$PORT" BX_LOG_LEVEL=warn BX_HTTP_MAX_CONNECTIONS="$THREADS" \
    ${BENCH_INGEST_WRAPPER:-} "$INGEST" >"$STATE/bx-ingest.log" 2>&1 &
INGEST_PID=$!
stop_ingest() {
    if kill -0 "$INGEST_PID" 2>/dev/null; then
        kill -TERM "$INGEST_PID"
        wait "$INGEST_PID" 2>/dev/null || true
    fi
}
trap stop_ingest EXIT

for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
        break
    fi
    kill -0 "$INGEST_PID" 2>/dev/null || { cat "$STATE/bx-ingest.log" >&2; die "bx-ingest exited"; }
    sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || die "bx-ingest did not become healthy"

say "running bench-ingest (bx-ingest max connections $THREADS; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg))"
rc=0
"$BENCH" run --url "http://127.0.0.1:$PORT" --keys "$STATE/keys" "${SIZE[@]}" "$@" || rc=$?
if grep -q . "$STATE/bx-ingest.log"; then
    say "bx-ingest logged (first lines of $STATE/bx-ingest.log):"
    head -n 5 "$STATE/bx-ingest.log" >&2
fi
exit "$rc"
