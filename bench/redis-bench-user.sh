# bench/redis-bench-user.sh: redis-benchmark signs in without the run's secrets on a command line.
# Sourced by the benches after $BX_RUN_DIR/env and deploy/local/creds.sh (rcli).
#
# redis-benchmark (7.0) takes a password only as `-a PASSWORD` on its command line, where anyone on
# the machine can read it (ps, /proc/<pid>/cmdline), and reads neither REDISCLI_AUTH nor a file. So
# the administrator's password never goes there: a bench makes a Redis user of its own for the
# run, with a random password and only the key patterns it names, hands redis-benchmark that, and
# drops the user when it ends (ACL SETUSER/DELUSER in memory only; a Redis restart forgets it too).
# The password reaches Redis through redis-cli's standard input (-x), never an argument; it is
# never printed.
#
#   rbench_user_begin HOST PORT PATTERN...   makes the user (keys matching the patterns, every
#                                            command but the dangerous ones); sets RBENCH_AUTH
#   rbench_user_end                          drops it (call it from the bench's EXIT trap)
#   redis-benchmark ... "${RBENCH_AUTH[@]}" ...
#
# Without credentials (an installation made before them: no BX_REDIS_USERNAME) RBENCH_AUTH is
# empty and nothing is made.

RBENCH_AUTH=()
RBENCH_USER=""
RBENCH_HOST=""
RBENCH_PORT=""

rbench_user_begin() {
    local host="$1" port="$2" pass pattern keys=()
    shift 2
    RBENCH_AUTH=()
    [ -n "${BX_REDIS_USERNAME:-}" ] || return 0
    for pattern in "$@"; do keys+=("~$pattern"); done
    [ "${#keys[@]}" -gt 0 ] || { echo "rbench_user_begin: no key pattern" >&2; return 1; }
    RBENCH_USER="bench-$(hostname -s)-$$"
    RBENCH_HOST="$host" RBENCH_PORT="$port"
    pass="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
    printf '>%s' "$pass" | rcli -h "$host" -p "$port" -x ACL SETUSER "$RBENCH_USER" reset on \
        "${keys[@]}" +@all -@dangerous >/dev/null ||
        { echo "rbench_user_begin: could not make Redis user $RBENCH_USER" >&2; return 1; }
    RBENCH_AUTH=(--user "$RBENCH_USER" -a "$pass")
}

rbench_user_end() {
    [ -n "$RBENCH_USER" ] || return 0
    rcli -h "$RBENCH_HOST" -p "$RBENCH_PORT" ACL DELUSER "$RBENCH_USER" >/dev/null 2>&1 || true
    RBENCH_USER=""
    RBENCH_AUTH=()
}
