#!/usr/bin/env bash
# bx-console on the simulated county that deploy/local/main.sh (demo.sh) leaves behind: open the
# printed https address on a phone-sized browser and sign in as one of the demo accounts.
#
# What it does, in order:
#   1. `bxctl migrate` on the county's database (baoxue_sim), for the console's tables;
#   2. picks four people of the county: the homeroom teacher with the most open tasks, the principal
#      of that teacher's school, the officer of its township and the county officer;
#   3. starts, in the foreground until Ctrl-C, on the county's database, Redis database and clock:
#      bx-score, bx-escalate and bx-notify (file provider: SMS land in $STATE/sms.jsonl) on consumer
#      groups of their own that start at the topics' current ends, so what people record in the
#      console flows on (a roll call reaches bx-score, an action bx-escalate; `bx-ingest` is not
#      needed: the console validates and writes to Kafka itself), and bx-console over HTTPS with a
#      self-signed certificate (made once with openssl, kept in $STATE/tls);
#   4. makes the four accounts as an operator does (`bxctl staff invite --print`, or `reset` when
#      the account exists from an earlier run) and activates each through the console's own
#      /activate form with curl, with a new random password each run, kept in
#      $STATE/accounts.txt (mode 600) and printed with the address.
#
# The county's clock is the simulation's (BX_CLOCK=file:$BX_RUN_DIR/sim/clock): the evening of the
# term's last simulated day, whose roll calls were taken at 09:00, so a roll call taken now is that
# day's correction. BX_CONSOLE_AT="2027-01-22 08:00" moves the county's clock first (any school
# day of the term). The browser will warn about the self-signed certificate: accept it.
#
# Knobs (environment): BX_SIM_DB (baoxue_sim), BX_SIM_REDIS_DB (5), BX_BUILD_DIR (build/),
# BX_CONSOLE_LISTEN (127.0.0.1:8443; 0.0.0.0:8443 to reach it from a phone on the same network),
# BX_CONSOLE_AT (unset: the clock stays where the simulation left it).
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
SCORE="$BUILD/services/bx-score/bx-score"
ESCALATE="$BUILD/services/bx-escalate/bx-escalate"
NOTIFY="$BUILD/services/bx-notify/bx-notify"
CONSOLE="$BUILD/services/bx-console/bx-console"
for b in "$BXCTL" "$SIM" "$SCORE" "$ESCALATE" "$NOTIFY" "$CONSOLE"; do
    [ -x "$b" ] || { echo "console.sh: $b is not built (cmake --build build)" >&2; exit 1; }
done
DB="${BX_SIM_DB:-baoxue_sim}"
REDIS_DB="${BX_SIM_REDIS_DB:-5}"
LISTEN="${BX_CONSOLE_LISTEN:-127.0.0.1:8443}"
STATE="$RUN/console"
mkdir -p "$STATE"

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
url_with_db() {
    python3 - "$1" "$2" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + sys.argv[2], u.query, u.fragment)))
PY
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

export BX_PG_URL="$(url_with_db "$BX_PG_URL" "$DB")"
REDIS_BASE="${BX_REDIS_URL%/*}"
[ "$REDIS_BASE" = "redis:/" ] && REDIS_BASE="$BX_REDIS_URL"
export BX_REDIS_URL="$REDIS_BASE/$REDIS_DB"
export BX_CLOCK="file:$RUN/sim/clock"
if ! psql -qAt "$BX_PG_URL" -c "SELECT 1 FROM registry.school LIMIT 1" 2>/dev/null | grep -q 1; then
    echo "console.sh: no simulated county in database $DB: run deploy/local/main.sh first" >&2
    exit 1
fi
[ -f "$RUN/sim/clock" ] || { echo "console.sh: no clock in $RUN/sim (run main.sh)" >&2; exit 1; }

say "the county's database $DB: the console's tables (bxctl migrate)"
"$BXCTL" migrate >/dev/null 2>"$STATE/migrate.log" || { cat "$STATE/migrate.log" >&2; exit 1; }
[ -n "${BX_CONSOLE_AT:-}" ] && "$BXCTL" clock set "$BX_CONSOLE_AT" >/dev/null
NOW="$("$BXCTL" clock 2>/dev/null | head -n 1)"

# ---- the demo people ----
q() { psql -qAt -F ' ' "$BX_PG_URL" -v ON_ERROR_STOP=1 -c "$1"; }
TEACHER="$(q "SELECT st.id FROM registry.staff st
              LEFT JOIN cases.task k ON k.owner_staff_id = st.id AND k.done_at IS NULL
              WHERE st.role = 'homeroom_teacher'
              GROUP BY st.id ORDER BY count(k.id) DESC, st.id LIMIT 1")"
SCHOOL="$(q "SELECT school_id FROM registry.staff WHERE id = '$TEACHER'")"
TOWNSHIP="$(q "SELECT township_code FROM registry.school WHERE id = '$SCHOOL'")"
PRINCIPAL="$(q "SELECT id FROM registry.staff WHERE role = 'principal' AND school_id = '$SCHOOL'
                ORDER BY id LIMIT 1")"
OFFICER="$(q "SELECT id FROM registry.staff WHERE role = 'township_officer'
              AND township_code = '$TOWNSHIP' ORDER BY id LIMIT 1")"
COUNTY="$(q "SELECT id FROM registry.staff WHERE role = 'county_officer' ORDER BY id LIMIT 1")"
for who in TEACHER PRINCIPAL OFFICER COUNTY; do
    [ -n "${!who}" ] || { echo "console.sh: the county has no ${who,,} to sign in as" >&2; exit 1; }
done

# ---- the services ----
TLS="$STATE/tls"
if [ ! -s "$TLS/cert.pem" ] || [ ! -s "$TLS/key.pem" ]; then
    mkdir -p "$TLS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
        -subj "/CN=baoxue-console-local" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$TLS/key.pem" -out "$TLS/cert.pem" 2>/dev/null
    chmod 600 "$TLS/key.pem"
fi
RUNID="$(date +%Y%m%d%H%M%S)"
G_SCORE="bx-score-console-$RUNID" G_ESC="bx-escalate-console-$RUNID" G_NOTIFY="bx-notify-console-$RUNID"
"$SIM" group-at-end --group "$G_SCORE" --topics bx.attendance.v1
"$SIM" group-at-end --group "$G_ESC" --topics bx.risk.v1,bx.actions.v1
"$SIM" group-at-end --group "$G_NOTIFY" --topics bx.notify.requests.v1

PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 0' INT TERM
# start NAME BINARY [VAR=value...]: in the background, logging to $STATE/NAME.log, healthy or fail.
start() {
    local name="$1" bin="$2" metrics
    shift 2
    metrics="$(free_port)"
    BX_LOG_LEVEL=warn BX_METRICS_LISTEN="127.0.0.1:$metrics" svc "$name" env "$@" "$bin" \
        >"$STATE/$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 150); do
        curl -fsS "http://127.0.0.1:$metrics/healthz" >/dev/null 2>&1 && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 20 "$STATE/$name.log" >&2
    echo "console.sh: $name did not start (log: $STATE/$name.log)" >&2
    exit 1
}
say "services on $DB (Redis database $REDIS_DB, clock $NOW); logs in $STATE"
start bx-score "$SCORE" BX_CONSUMER_GROUP="$G_SCORE" BX_SCORE_POLICY="$REPO/deploy/policy/score.policy"
start bx-escalate "$ESCALATE" BX_CONSUMER_GROUP="$G_ESC"
start bx-notify "$NOTIFY" BX_CONSUMER_GROUP="$G_NOTIFY" BX_NOTIFY_PROVIDER=file \
    BX_NOTIFY_PROVIDER_FILE="$STATE/sms.jsonl" BX_NOTIFY_RECEIPT_LISTEN="127.0.0.1:$(free_port)"
start bx-console "$CONSOLE" BX_CONSOLE_LISTEN="$LISTEN" BX_TLS_CERT="$TLS/cert.pem" \
    BX_TLS_KEY="$TLS/key.pem" BX_CONSOLE_TEMPLATES="$REPO/services/bx-console/templates" \
    BX_SCORE_POLICY="$REPO/deploy/policy/score.policy"
PORT="${LISTEN##*:}"
HOST="${LISTEN%:*}"
[ "$HOST" = "0.0.0.0" ] && HOST="$(hostname -I 2>/dev/null | awk '{print $1}')"
LOCAL="https://127.0.0.1:$PORT"

# ---- the accounts, activated through /activate as a person would ----
JAR="$(mktemp)"
trap 'rm -f "$JAR"; stop_all' EXIT
form_value() { sed -n "s/.*name=\"$1\" value=\"\\([^\"]*\\)\".*/\\1/p" | head -n 1; }
activate() {
    local id="$1" password="$2" code csrf page
    code="$("$BXCTL" staff invite "$id" --print 2>/dev/null)" ||
        code="$("$BXCTL" staff reset "$id" --print 2>/dev/null)" ||
        { echo "console.sh: bxctl staff invite|reset $id failed" >&2; return 1; }
    : >"$JAR"
    csrf="$(curl -ksS -c "$JAR" -b "$JAR" "$LOCAL/activate" | form_value csrf)"
    page="$(curl -ksS -o /dev/null -w '%{http_code} %{redirect_url}' -c "$JAR" -b "$JAR" \
        --data-urlencode "csrf=$csrf" --data-urlencode "staff_id=$id" --data-urlencode "code=$code" \
        --data-urlencode "password=$password" --data-urlencode "password_again=$password" \
        "$LOCAL/activate")"
    case "$page" in
    "303 "*"/login?activated=1") ;;
    *) echo "console.sh: activating $id answered $page" >&2; return 1 ;;
    esac
    # and the password works
    : >"$JAR"
    csrf="$(curl -ksS -c "$JAR" -b "$JAR" "$LOCAL/login" | form_value csrf)"
    page="$(curl -ksS -o /dev/null -w '%{http_code}' -c "$JAR" -b "$JAR" \
        --data-urlencode "csrf=$csrf" --data-urlencode "login=$id" \
        --data-urlencode "password=$password" "$LOCAL/login")"
    [ "$page" = 303 ] || { echo "console.sh: $id cannot sign in ($page)" >&2; return 1; }
}
ACCOUNTS="$STATE/accounts.txt"
umask 077
{
    echo "# bx-console demo accounts ($LOCAL), made $(date -Iseconds) by deploy/local/console.sh"
    printf '%-18s %-14s %-16s %s\n' "# role" "staff id" "password" "name"
} >"$ACCOUNTS"
say "demo accounts: invited with bxctl staff invite --print, activated through $LOCAL/activate"
for who in TEACHER PRINCIPAL OFFICER COUNTY; do
    id="${!who}"
    password="bx-$(openssl rand -hex 6)"
    activate "$id" "$password"
    read -r role name < <(q "SELECT role, name FROM registry.staff WHERE id = '$id'")
    printf '%-18s %-14s %-16s %s\n' "$role" "$id" "$password" "$name" >>"$ACCOUNTS"
done
umask 022

say "bx-console: https://$HOST:$PORT  (self-signed certificate: accept the browser's warning)"
cat "$ACCOUNTS" >&2
cat >&2 <<EOF

Sign in as the homeroom teacher $TEACHER (the one with the most open tasks); the county's clock
is $NOW.
The principal, the township officer and the county officer sign in the same way. Accounts are
kept in $ACCOUNTS; SMS that bx-notify would send land in $STATE/sms.jsonl.
Ctrl-C stops the console and the services.
EOF
wait -n
echo "console.sh: a service stopped; its log is in $STATE" >&2
exit 1
