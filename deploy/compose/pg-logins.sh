#!/usr/bin/env bash
# postgres's first start (/docker-entrypoint-initdb.d): each service's login, member of its role
# (the roles as migration 0002 makes them; the migrations grant to the roles), with the password
# of its secret /run/secrets/pg_<service>. Passwords through stdin, never on a command line.
set -euo pipefail
sql=""
for svc in ingest score escalate notify console; do
    pw="$(cat "/run/secrets/pg_bx_$svc")"
    sql+="
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bx_$svc') THEN CREATE ROLE bx_$svc NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bx_${svc}_svc') THEN CREATE ROLE bx_${svc}_svc LOGIN; END IF;
END \$\$;
ALTER ROLE bx_${svc}_svc WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$pw';
GRANT bx_$svc TO bx_${svc}_svc;"
done
psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<<"$sql"
