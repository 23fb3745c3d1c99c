#!/usr/bin/python3
"""docker-compose.yml's credentials, read statically (issue 14, defect 5): no Docker engine is
needed or used. Every baoxue service signs in to PostgreSQL, Kafka and Redis as itself with
passwords from its own secret files; nothing has a default password; bx-notify's receipt endpoint
is not published; Redis asks for a user (the default one off, protected mode, the ACL file) and
Kafka for SASL/SCRAM with an ACL per principal. deploy/compose/make-secrets makes every secret file
the compose file names, and the Redis users and Kafka ACLs are those of deploy/local/bx-infra (the
local installation's, minus its test topics). Run by ctest (label unit) with Debian's python3 and
python3-yaml."""

import os
import re
import subprocess
import sys
import tempfile

import yaml

SRC = os.environ.get("BX_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
SERVICES = ["bx-ingest", "bx-score", "bx-escalate", "bx-notify", "bx-console"]
# Which of them use Redis (their code connects to it) and what each publishes to the world.
REDIS_USERS = {"bx-score", "bx-notify", "bx-console"}
PUBLISHED = {"bx-ingest": {"8080"}, "bx-console": {"8443"}}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def read(path):
    with open(os.path.join(SRC, path), encoding="utf-8") as f:
        return f.read()


def secret_files(compose):
    """compose secret name -> file path with ${VAR:-default} resolved to the default."""
    out = {}
    for name, spec in compose["secrets"].items():
        check(set(spec) == {"file"}, f"secret {name}: only a file, got {sorted(spec)}")
        path = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", spec.get("file", ""))
        out[name] = path
    return out


def mounted(service):
    """/run/secrets target -> compose secret name, for one service."""
    out = {}
    for s in service.get("secrets", []):
        if isinstance(s, str):
            out[s] = s
        else:
            out[s.get("target", s["source"])] = s["source"]
    return out


def secret_of(service, env_value):
    """The compose secret a /run/secrets/<target> path names in this service, or None."""
    m = re.fullmatch(r"/run/secrets/([A-Za-z0-9_.-]+)", env_value or "")
    return mounted(service).get(m.group(1)) if m else None


def check_no_default_secrets(name, env):
    for key, value in env.items():
        value = "" if value is None else str(value)
        secretish = re.search(r"PASSWORD|SECRET|TOKEN|PSEUDONYM_KEY|_KEY$", key)
        if key.endswith("_FILE") or key in ("BX_TLS_KEY",) or not secretish:
            continue
        # a secret may come from the site's environment, but never with a value of its own
        literal = re.sub(r"\$\{[A-Z_]+:-\}", "", re.sub(r"\$\{[A-Z_]+\}", "", value))
        check(literal == "", f"{name}: {key} has a default value in the compose file")
    for key, value in env.items():
        if re.search(r"postgres(ql)?://[^/@]*:[^/@]*@", str(value)):
            failures.append(f"{name}: {key} carries a password in its URL")


def check_services(compose, files):
    services = compose["services"]
    seen_secrets = {}
    for name in SERVICES:
        check(name in services, f"{name} is not in docker-compose.yml")
        if name not in services:
            continue
        svc = services[name]
        env = svc.get("environment", {})
        check_no_default_secrets(name, env)
        role = name.replace("-", "_")
        # PostgreSQL: its own login, member of its role, its own password file
        url = env.get("BX_PG_URL", "")
        check(re.fullmatch(rf"postgresql://{role}_svc@postgres:5432/baoxue", url) is not None,
              f"{name}: BX_PG_URL logs in as {url!r}, not as {role}_svc")
        check("BX_PG_PASSWORD" not in env, f"{name}: BX_PG_PASSWORD in the environment")
        pg = secret_of(svc, env.get("BX_PG_PASSWORD_FILE"))
        check(pg == f"pg_{role}", f"{name}: BX_PG_PASSWORD_FILE is not its own secret ({pg})")
        # Kafka: its own principal
        check(env.get("BX_KAFKA_USERNAME") == name, f"{name}: BX_KAFKA_USERNAME is not {name}")
        kafka = secret_of(svc, env.get("BX_KAFKA_PASSWORD_FILE"))
        check(kafka == f"kafka_{role}", f"{name}: BX_KAFKA_PASSWORD_FILE is not its own ({kafka})")
        # Redis: its own user where it uses Redis
        if name in REDIS_USERS:
            check(env.get("BX_REDIS_USERNAME") == name, f"{name}: BX_REDIS_USERNAME is not {name}")
            redis = secret_of(svc, env.get("BX_REDIS_PASSWORD_FILE"))
            check(redis == f"redis_{role}",
                  f"{name}: BX_REDIS_PASSWORD_FILE is not its own ({redis})")
        else:
            check("BX_REDIS_USERNAME" not in env, f"{name}: a Redis user it has no use for")
        # what it mounts exists, and nobody else mounts its passwords
        for target, source in mounted(svc).items():
            check(source in files, f"{name}: secret {source} is not declared")
            if source.startswith(("pg_", "kafka_", "redis_")):
                check(source not in seen_secrets,
                      f"{name} and {seen_secrets.get(source)} share the secret {source}")
                seen_secrets[source] = name
        # published ports: only the two doors for people and schools
        ports = {str(p).split(":")[-2] if str(p).count(":") else str(p)
                 for p in svc.get("ports", [])}
        check(ports <= PUBLISHED.get(name, set()), f"{name}: publishes {sorted(ports)}")
    # bx-notify's receipts: reachable on the compose network only
    notify = services.get("bx-notify", {})
    check("ports" not in notify, "bx-notify publishes ports (its receipt endpoint must not be)")
    listen = notify.get("environment", {}).get("BX_NOTIFY_RECEIPT_LISTEN", "")
    port = listen.rsplit(":", 1)[-1]
    check(port in [str(p) for p in notify.get("expose", [])],
          f"bx-notify: receipt port {port} not among its exposed (internal) ports")
    check(notify.get("environment", {}).get("BX_NOTIFY_RECEIPT_TOKEN_FILE", "").startswith(
        "/run/secrets/"), "bx-notify: the receipt token is not a secret file")
    for name, svc in services.items():
        for p in svc.get("ports", []):
            check("8091" not in str(p), f"{name} publishes 8091 (bx-notify's receipts)")
    # the infrastructure publishes nothing
    for name in ("postgres", "redis", "kafka"):
        check("ports" not in services.get(name, {}), f"{name} publishes ports")


def check_infrastructure(compose):
    services = compose["services"]
    # PostgreSQL: scram-sha-256 on every TCP connection, the superuser's password from a file
    pg = services["postgres"]
    env = pg.get("environment", {})
    check("POSTGRES_PASSWORD" not in env, "postgres: POSTGRES_PASSWORD in the environment")
    check(secret_of(pg, env.get("POSTGRES_PASSWORD_FILE")) == "pg_bx_postgres",
          "postgres: the superuser's password is not its secret file")
    check("--auth-host=scram-sha-256" in env.get("POSTGRES_INITDB_ARGS", ""),
          "postgres: TCP connections not scram-sha-256")
    check("trust" not in str(env), "postgres: trust authentication")
    logins = read("deploy/compose/pg-logins.sh")
    m = re.search(r"for svc in ([a-z ]+); do", logins)
    check(m is not None and m.group(1).split() == [s[3:] for s in SERVICES],
          "pg-logins.sh does not make a login for every service")
    for s in SERVICES:
        check(f"pg_{s.replace('-', '_')}" in mounted(pg),
              f"postgres: {s}'s login password not mounted for pg-logins.sh")
    # Redis: the ACL file, protected mode, no password on the command line
    cmd = " ".join(str(c) for c in services["redis"].get("command", []))
    check("--aclfile /run/secrets/redis_users_acl" in cmd, "redis: no ACL file")
    check("--protected-mode yes" in cmd, "redis: protected mode off")
    check("requirepass" not in cmd, "redis: a password on its command line")
    # Kafka: SASL/SCRAM, ACLs, no anonymous access
    start = read("deploy/compose/kafka-start.sh")
    for want in ("listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
                 "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-256",
                 "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                 "allow.everyone.if.no.acl.found=false"):
        check(want in start, f"kafka-start.sh lacks {want}")
    check(not re.search(r"PLAINTEXT://|:PLAINTEXT\b", start), "kafka: a PLAINTEXT listener")
    users = re.search(r"^USERS=\(([^)]*)\)", start, re.M)
    users = users.group(1).split() if users else []
    kafka = mounted(services["kafka"])
    for s in SERVICES:
        check(s in users, f"kafka-start.sh makes no SCRAM user {s}")
        check(f"kafka_{s}" in kafka, f"kafka: {s}'s password not mounted")
    # the migration job is the only one that signs in as the administrators
    for name, svc in services.items():
        env = svc.get("environment", {})
        if name != "migrate":
            check(env.get("BX_KAFKA_USERNAME") != "bx-admin", f"{name} signs in to Kafka as bx-admin")
            check(env.get("BX_REDIS_USERNAME") != "bx-admin", f"{name} signs in to Redis as bx-admin")
            check(not re.match(r"postgresql://bx@", str(env.get("BX_PG_URL", ""))),
                  f"{name} connects to PostgreSQL as the superuser")


def acl_tuples_infra(text):
    """(principal, operation, kind, name) of deploy/local/bx-infra's kafka_acl_spec, without the
    test suite's scratch topics."""
    spec = re.search(r"kafka_acl_spec\(\) \{\n    cat <<'EOF'\n(.*?)\nEOF", text, re.S)
    out = set()
    for line in (spec.group(1).splitlines() if spec else []):
        principals, ops, resources = line.split("|")
        for p in principals.split():
            for o in ops.split():
                for r in resources.split():
                    kind, name = r.split(":", 1)
                    if name != "bx.itest.":
                        out.add((p, o, kind, name))
    return out


def acl_tuples_compose(text):
    out = set()
    for line in re.findall(r"^\s*acl (--allow-principal .*)$", text, re.M):
        words = line.split()
        principals = [words[i + 1][5:] for i, w in enumerate(words) if w == "--allow-principal"]
        ops = [words[i + 1] for i, w in enumerate(words) if w == "--operation"]
        res = [(w[2:], words[i + 1]) for i, w in enumerate(words) if w in ("--topic", "--group")]
        for p in principals:
            for o in ops:
                for kind, name in res:
                    out.add((p, o, kind, name))
    return out


def redis_users_infra(text):
    """user name -> its ACL rules after the password, from bx-infra's ACL file heredoc."""
    cmds = re.search(r'svc_cmds="([^"]*)"', text)
    out = {}
    for m in re.finditer(r"^user (\S+) (on|off)(?: #\$\([^)]*\))?(.*)$", text, re.M):
        rules = m.group(3).replace("$svc_cmds", cmds.group(1) if cmds else "").split()
        out[m.group(1)] = (m.group(2), rules)
    return out


def redis_users_file(text):
    out = {}
    for m in re.finditer(r"^user (\S+) (on|off)(?: #[0-9a-f]{64})?(.*)$", text, re.M):
        out[m.group(1)] = (m.group(2), m.group(3).split())
    return out


def check_same_model_as_bx_infra(compose, files):
    infra = read("deploy/local/bx-infra")
    want, got = acl_tuples_infra(infra), acl_tuples_compose(read("deploy/compose/kafka-start.sh"))
    check(len(want) > 20, "could not read bx-infra's Kafka ACLs")
    check(want == got, f"Kafka ACLs differ from bx-infra's: only there {sorted(want - got)}, "
                       f"only in compose {sorted(got - want)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["bash", os.path.join(SRC, "deploy/compose/make-secrets"), tmp],
                             capture_output=True, text=True)
        check(out.returncode == 0, f"make-secrets failed: {out.stderr}")
        made = set(os.listdir(tmp))
        for name, path in files.items():
            base = os.path.basename(path)
            if name.startswith("bx_tls_"):
                continue  # the site's certificate: the operator's own
            check(base in made, f"make-secrets does not make {base} (secret {name})")
        for f in made:
            if f == "redis-users.acl":
                continue
            with open(os.path.join(tmp, f), encoding="utf-8") as fh:
                value = fh.read()
            check(len(value) >= 24 and "\n" not in value, f"{f}: not a random one-line secret")
            check(value not in out.stdout + out.stderr, f"make-secrets printed {f}")
        with open(os.path.join(tmp, "redis-users.acl"), encoding="utf-8") as fh:
            acl = redis_users_file(fh.read())
    users = redis_users_infra(infra)
    check(users.get("default", ("on",))[0] == "off", "bx-infra: the default Redis user is on")
    check(acl.get("default", ("on",))[0] == "off", "compose: the default Redis user is on")
    check(users == acl, f"Redis users differ from bx-infra's: {users} vs {acl}")
    for s in REDIS_USERS:
        check(s in acl and acl[s][0] == "on", f"compose: no Redis user {s}")


def main():
    compose = yaml.safe_load(read("docker-compose.yml"))
    files = secret_files(compose)
    check_services(compose, files)
    check_infrastructure(compose)
    check_same_model_as_bx_infra(compose, files)
    for f in failures:
        print("FAIL:", f)
    print("docker-compose.yml: %s (%d services, %d secrets; read statically, no Docker engine)"
          % ("ok" if not failures else f"{len(failures)} failures", len(compose["services"]),
             len(files)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
