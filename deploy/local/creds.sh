# baoxue launchers' credentials (sourced after $BX_RUN_DIR/env, which holds the administrator's).
# deploy/local/bx-infra writes each service's own to $BX_RUN_DIR/secrets/<service>.env: its
# PostgreSQL login (PGUSER, PGPASSFILE) and Redis user; none of them a password itself.
#
#   creds_env SERVICE   the service's settings as NAME=value lines, for `env` (nothing when the
#                       infrastructure was made without credentials)
#   svc SERVICE CMD...  execs CMD with them over the environment, so only in the background:
#                       `VAR=x svc bx-score "$SCORE" >log &` ($! is the service's pid)
#   rcli ARGS...        redis-cli as the administrator (password through REDISCLI_AUTH, not argv)

creds_env() {
    local f="${BX_RUN_DIR:?source the env of bx-infra first}/secrets/$1.env"
    [ -f "$f" ] || return 0
    sed -n 's/^export \([A-Z_][A-Z0-9_]*=.*\)$/\1/p' "$f"
}

svc() {
    local name="$1" creds=()
    shift
    mapfile -t creds < <(creds_env "$name")
    exec env "${creds[@]}" "$@"
}

rcli() {
    if [ -n "${BX_REDIS_USERNAME:-}" ] && [ -n "${BX_REDIS_PASSWORD_FILE:-}" ]; then
        REDISCLI_AUTH="$(cat "$BX_REDIS_PASSWORD_FILE")" redis-cli --no-auth-warning \
            --user "$BX_REDIS_USERNAME" "$@"
    else
        redis-cli "$@"
    fi
}
