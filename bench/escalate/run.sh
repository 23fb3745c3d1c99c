#!/usr/bin/env bash
# bench/escalate/run.sh: bx-escalate's durable timers with 1,000,000 open timers: due timers fired
# per second and case events per second (the `case` rounds: real cases' deadlines fired as the
# service fires them, escalate_store_fire_deadline; the others: the rows an overdue task writes),
# beside PostgreSQL's COPY rates, measured in the same run, in a scratch database of its own
# (dropped at the end, also on failure). Two baselines:
#   COPY cases.timer rows: one 84-byte timer row a timer (`/COPY tmr` = fired timers/s / that rate);
#   COPY of a firing's rows: after the run's first `case` (or `case1`) round, the rows that round
#     wrote, read back (untimed) and COPYed into scratch tables made LIKE cases.event, cases.outbox,
#     cases.task, cases.case and cases.timer INCLUDING ALL (cases.event's foreign key added; no
#     triggers): per firing 2 events and 4 outbox rows inserted, and the new versions of the task,
#     case and timer rows it updated, an UPDATE counted as one row write (9 rows). Its "firings/s
#     equivalent" is the due timers / the seconds of those COPYs (each to its commit, after a
#     checkpoint); `/COPY same` = a case round's fired timers/s / that. Scratch tables dropped after.
#
#   bash bench/escalate/run.sh [bench-escalate options, e.g. --due 50000 --rounds 2:case1,2:case]
#
# Needs the local PostgreSQL: bash deploy/local/bx-infra up
# Knobs (environment): BENCH_BUILD (build directory, default build/), BENCH_SKIP_BUILD=1,
# BENCH_KEEP_DB=1 (keep the scratch database).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${BX_RUN_DIR:-$REPO/.run}"
say() { printf 'bench/escalate: %s\n' "$*" >&2; }
die() { printf 'bench/escalate: error: %s\n' "$*" >&2; exit 1; }

[ -f "$RUN_DIR/env" ] || die "$RUN_DIR/env not found; start the infrastructure: bash deploy/local/bx-infra up"
# shellcheck disable=SC1091
source "$RUN_DIR/env"

BUILD="${BENCH_BUILD:-$REPO/build}"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building in $BUILD (RelWithDebInfo)"
    cmake -S "$REPO" -B "$BUILD" -G Ninja >/dev/null
    ninja -C "$BUILD" >/dev/null
fi
BXCTL="$BUILD/tools/bxctl/bxctl"
BENCH="$BUILD/bench/escalate/bench-escalate"
for b in "$BXCTL" "$BENCH"; do [ -x "$b" ] || die "$b not built"; done
command -v psql >/dev/null || die "psql not found"

# The same server, another database: postgresql://user@host:port/<name>[?query]
url_with_db() {
    python3 - "$1" "$2" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
}
DB="bx_bench_escalate_$$"
ADMIN_URL="$(url_with_db "$BX_PG_URL" postgres)"
DB_URL="$(url_with_db "$BX_PG_URL" "$DB")"

drop_db() {
    if [ "${BENCH_KEEP_DB:-0}" = 1 ]; then
        say "kept database $DB ($DB_URL)"
        return
    fi
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 \
        || say "could not drop database $DB"
}
trap drop_db EXIT

say "scratch database $DB"
psql -q "$ADMIN_URL" -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB" >/dev/null
BX_PG_URL="$DB_URL" "$BXCTL" migrate >/dev/null

say "PostgreSQL: $(psql -tA "$DB_URL" -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'commit_delay', 'max_wal_size')")"
say "running bench-escalate ($(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg))"
"$BENCH" --url "$DB_URL" "$@"
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
