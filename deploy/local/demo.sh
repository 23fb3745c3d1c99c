#!/usr/bin/env bash
# baoxue's main job: a simulated county through the whole pipeline. Generates the county with
# bx-sim (deterministic for a seed), imports it into a database of its own, starts bx-ingest,
# bx-score, bx-escalate and bx-notify (file provider) against it, drives a term of roll calls,
# leave, late fixes and staff actions through bx-ingest in accelerated simulated time with a
# progress line per school day, and prints the summary. Run by deploy/local/main.sh after the
# infrastructure is up and the tree is built.
#
# Knobs (environment): BX_SIM_SEED (42), BX_SIM_TOWNSHIPS (3), BX_SIM_SCHOOLS (6),
# BX_SIM_STUDENTS (2000), BX_SIM_DAYS (school days; default the whole term), BX_SIM_DB (the
# database, default baoxue_sim, dropped and made again), BX_SIM_REDIS_DB (Redis database number
# for bx-score's state, default 5, emptied first), BX_BUILD_DIR (default build/).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
RUN="${BX_RUN_DIR:-$REPO/.run}"
# shellcheck disable=SC1091
source "$RUN/env"
# shellcheck source=deploy/local/creds.sh
source "$REPO/deploy/local/creds.sh"
BUILD="${BX_BUILD_DIR:-$REPO/build}"
BXCTL="$BUILD/tools/bxctl/bxctl"
SIM="$BUILD/tools/bx-sim/bx-sim"
INGEST="$BUILD/services/bx-ingest/bx-ingest"
SCORE="$BUILD/services/bx-score/bx-score"
ESCALATE="$BUILD/services/bx-escalate/bx-escalate"
NOTIFY="$BUILD/services/bx-notify/bx-notify"
for b in "$BXCTL" "$SIM" "$INGEST" "$SCORE" "$ESCALATE"; do
    [ -x "$b" ] || { echo "demo.sh: $b is not built" >&2; exit 1; }
done
SIZE=(--seed "${BX_SIM_SEED:-42}" --townships "${BX_SIM_TOWNSHIPS:-3}"
      --schools "${BX_SIM_SCHOOLS:-6}" --students "${BX_SIM_STUDENTS:-2000}")
STATE="$RUN/sim"
DB="${BX_SIM_DB:-baoxue_sim}"
REDIS_DB="${BX_SIM_REDIS_DB:-5}"

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# The same server, another database: postgresql://user@host:port/<name>[?query]
url_with_db() {
    python3 - "$1" "$2" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

rm -rf "$STATE"
mkdir -p "$STATE"
say "a county of its own: database $DB, Redis database $REDIS_DB, state in $STATE"
ADMIN_URL="$(url_with_db "$BX_PG_URL" postgres)"
export BX_PG_URL="$(url_with_db "$BX_PG_URL" "$DB")"
psql -q "$ADMIN_URL" -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
psql -q "$ADMIN_URL" -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB" >/dev/null
REDIS_BASE="${BX_REDIS_URL%/*}"
[ "$REDIS_BASE" = "redis:/" ] && REDIS_BASE="$BX_REDIS_URL"
export BX_REDIS_URL="$REDIS_BASE/$REDIS_DB"
REDIS_HOST="$(sed -E 's#^redis://([^:/]+).*#\1#' <<<"$BX_REDIS_URL")"
REDIS_PORT="$(sed -E 's#^redis://[^:/]+:([0-9]+).*#\1#' <<<"$BX_REDIS_URL")"
rcli -h "$REDIS_HOST" -p "$REDIS_PORT" -n "$REDIS_DB" FLUSHDB >/dev/null
"$BXCTL" migrate >/dev/null
"$BXCTL" topics create >/dev/null

say "the simulated county: ${SIZE[*]}"
"$SIM" generate --out "$STATE/registry" "${SIZE[@]}"
"$BXCTL" import holidays deploy/policy/cn-public-holidays-2026.csv
"$BXCTL" import --dir "$STATE/registry"

# One credential per school, kept in the state folder (the secret is shown once).
: >"$STATE/keys"
while read -r school; do
    token="$("$BXCTL" key create "$school" simulation 2>/dev/null | grep '^bxk_')"
    printf '%s %s\n' "$school" "$token" >>"$STATE/keys"
done <"$STATE/registry/schools.txt"
echo "$(wc -l <"$STATE/keys") school credentials in $STATE/keys" >&2

export BX_CLOCK="file:$STATE/clock"
"$BXCTL" clock set "2026-09-01 07:00" >/dev/null

# 四查三比对 before the term: the county's household register of school-age children and its
# registered-poor list, matched against the registry. The three ledgers go to $STATE/match.txt; each
# child in no school becomes a suspected case with the township's task once bx-escalate runs.
"$BXCTL" import household "$STATE/registry/household/household.csv"
"$BXCTL" import poverty "$STATE/registry/household/poverty.csv"
"$BXCTL" match --county 520121 >"$STATE/match.txt"
sed -n '1,/^ledger:/p' "$STATE/match.txt" | sed '$d' >&2

# Consumer groups of this run, starting at the topics' current ends: earlier messages on the
# shared topics (other runs, tests, benchmarks) are not this county's.
RUNID="$(date +%Y%m%d%H%M%S)"
G_SCORE="bx-score-sim-$RUNID" G_ESC="bx-escalate-sim-$RUNID" G_NOTIFY="bx-notify-sim-$RUNID"
"$SIM" group-at-end --group "$G_SCORE" --topics bx.attendance.v1
"$SIM" group-at-end --group "$G_ESC" --topics bx.risk.v1,bx.actions.v1
SIM_GROUPS=(--group "$G_SCORE:bx.attendance.v1" --group "$G_ESC:bx.risk.v1,bx.actions.v1")

PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
PORT="$(free_port)"
API="http://127.0.0.1:$PORT"
say "services: bx-ingest on $API, bx-score, bx-escalate$([ -x "$NOTIFY" ] && echo ", bx-notify (SMS to $STATE/sms.jsonl)"); logs in $STATE"
BX_HTTP_LISTEN="127.0.0.1:$PORT" BX_LOG_LEVEL=warn svc bx-ingest "$INGEST" >"$STATE/bx-ingest.log" 2>&1 &
PIDS+=($!)
BX_CONSUMER_GROUP="$G_SCORE" BX_LOG_LEVEL=warn svc bx-score "$SCORE" >"$STATE/bx-score.log" 2>&1 &
PIDS+=($!)
BX_CONSUMER_GROUP="$G_ESC" BX_LOG_LEVEL=warn svc bx-escalate "$ESCALATE" >"$STATE/bx-escalate.log" 2>&1 &
PIDS+=($!)
if [ -x "$NOTIFY" ]; then
    "$SIM" group-at-end --group "$G_NOTIFY" --topics bx.notify.requests.v1
    SIM_GROUPS+=(--group "$G_NOTIFY:bx.notify.requests.v1")
    BX_CONSUMER_GROUP="$G_NOTIFY" BX_LOG_LEVEL=warn BX_NOTIFY_PROVIDER=file \
        BX_NOTIFY_PROVIDER_FILE="$STATE/sms.jsonl" BX_NOTIFY_RECEIPT_LISTEN="127.0.0.1:$(free_port)" \
        svc bx-notify "$NOTIFY" >"$STATE/bx-notify.log" 2>&1 &
    PIDS+=($!)
fi
for _ in $(seq 1 100); do
    curl -fsS "$API/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$API/healthz" >/dev/null || { cat "$STATE/bx-ingest.log" >&2; exit 1; }
for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$STATE"/*.log >&2; echo "demo.sh: a service exited" >&2; exit 1; }
done

# bx-console, where the township officers sign the return reports (复学报告书) as persons: a
# school's key cannot sign for the township. HTTPS with a certificate made for this run; each
# officer is invited with bxctl staff invite (the code goes by SMS through bx-notify, whose file
# provider writes it to $STATE/sms.jsonl) and activated through the console's form with a password
# made for this run, kept in $STATE/console-accounts (mode 600) for bx-sim.
CONSOLE="$BUILD/services/bx-console/bx-console"
if [ ! -x "$CONSOLE" ] || [ ! -x "$NOTIFY" ]; then
    echo "demo.sh: $CONSOLE and $NOTIFY must be built: the township officers sign off in bx-console, activated by SMS" >&2
    exit 1
fi
CONSOLE_PORT="$(free_port)"
CONSOLE_URL="https://127.0.0.1:$CONSOLE_PORT"
CONSOLE_CA="$STATE/console-cert.pem"
(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$STATE/console-key.pem" -out "$CONSOLE_CA" 2>"$STATE/openssl.log")
BX_CONSOLE_LISTEN="127.0.0.1:$CONSOLE_PORT" BX_TLS_CERT="$CONSOLE_CA" BX_TLS_KEY="$STATE/console-key.pem" \
    BX_LOG_LEVEL=warn svc bx-console "$CONSOLE" >"$STATE/bx-console.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    curl -fsS --cacert "$CONSOLE_CA" "$CONSOLE_URL/login" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS --cacert "$CONSOLE_CA" "$CONSOLE_URL/login" >/dev/null || { cat "$STATE/bx-console.log" >&2; exit 1; }

# The activation code of an officer from the SMS bx-notify sent (phone masked as 138****1234).
sms_code() {
    python3 - "$STATE/sms.jsonl" "$1" <<'PY'
import json, re, sys
path, phone = sys.argv[1], sys.argv[2]
masked = phone[:3] + "****" + phone[-4:]
code = ""
try:
    for line in open(path, encoding="utf-8"):
        m = json.loads(line)
        if m.get("template") == "staff_activation" and m.get("phone") == masked:
            found = re.search(r"激活码(\d{8})", m.get("text", ""))
            code = found.group(1) if found else code
except FileNotFoundError:
    pass
print(code)
PY
}
: >"$STATE/console-accounts"
chmod 600 "$STATE/console-accounts"
while IFS=, read -r staff_id _ role _ _ _ phone; do
    [ "$role" = township_officer ] || continue
    "$BXCTL" staff invite "$staff_id" >/dev/null </dev/null
    code=""
    for _ in $(seq 1 300); do
        code="$(sms_code "$phone")"
        [ -n "$code" ] && break
        sleep 0.2
    done
    [ -n "$code" ] || { echo "demo.sh: no activation SMS for $staff_id in $STATE/sms.jsonl" >&2; tail -n 5 "$STATE/bx-notify.log" >&2; exit 1; }
    password="$(openssl rand -base64 24 | tr -d '/+=\n')"
    jar="$STATE/console-cookies"
    csrf="$(curl -fsS --cacert "$CONSOLE_CA" -c "$jar" "$CONSOLE_URL/activate" |
        sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n 1)"
    answer="$(curl -sS --cacert "$CONSOLE_CA" -b "$jar" -o /dev/null -w '%{http_code} %{redirect_url}' \
        --data-urlencode "csrf=$csrf" --data-urlencode "staff_id=$staff_id" --data-urlencode "code=$code" \
        --data-urlencode "password=$password" --data-urlencode "password_again=$password" \
        "$CONSOLE_URL/activate")"
    rm -f "$jar"
    case "$answer" in
    "303 "*"/login?activated=1") ;;
    *) echo "demo.sh: activating $staff_id in bx-console answered $answer" >&2; exit 1 ;;
    esac
    printf '%s %s\n' "$staff_id" "$password" >>"$STATE/console-accounts"
done <"$STATE/registry/staff.csv"
echo "bx-console on $CONSOLE_URL (CA $CONSOLE_CA): $(wc -l <"$STATE/console-accounts") township officers activated by SMS code, passwords in $STATE/console-accounts" >&2
export BX_SIM_CONSOLE="$CONSOLE_URL" BX_SIM_CONSOLE_CA="$CONSOLE_CA" BX_SIM_CONSOLE_ACCOUNTS="$STATE/console-accounts"

say "a term in accelerated time: each school day 08:30 leave, 08:45 late roll calls, 09:00 roll calls, 16:00 staff records, 17:30 deadlines; the pipeline settles after each step"
if ! "$SIM" run --state "$STATE" --api "$API" --keys "$STATE/keys" --bxctl "$BXCTL" "${SIM_GROUPS[@]}" \
    ${BX_SIM_DAYS:+--days "$BX_SIM_DAYS"} "${SIZE[@]}" | tee "$STATE/summary.txt"; then
    # What the services said (they log warnings and errors only here), for whoever reads this.
    for log in "$STATE"/bx-*.log; do
        echo "== last lines of $log" >&2
        tail -n 15 "$log" >&2
    done
    echo "demo.sh: the simulated term stopped early (see above)" >&2
    exit 1
fi
echo >&2
echo "summary kept in $STATE/summary.txt; the county stays in database $DB (BX_PG_URL=$BX_PG_URL):" >&2
echo "  BX_PG_URL=$BX_PG_URL BX_CLOCK=file:$STATE/clock $BXCTL ledger --county 520121" >&2
