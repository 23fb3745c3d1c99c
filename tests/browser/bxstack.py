"""bxstack: the whole pipeline for the browser tests, on the running PostgreSQL, Redis and Kafka.

A database of its own (made, migrated with bxctl, dropped at the end), a small registry whose ids
carry the run's tag (so bx-score's Redis keys of one run never meet another's; they are deleted at
the end), consumer groups of its own set at the shared topics' current ends (as
tests/integration/test_scenario_ladder.c and test_sim.c do), a Redis database apart from the
other tests' (REDIS_DB), a driven clock (BX_CLOCK=file:..., moved with `bxctl clock set`), and
bx-ingest, bx-score, bx-escalate, bx-notify (file provider) and bx-console (HTTPS with a
self-signed certificate made with openssl) on free loopback ports. Every service is told to die
with the test process (PR_SET_PDEATHSIG), so a killed run leaves nothing behind but its database.
"""

import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

# bx-score's state of these runs, apart from bx-sim (5), bench/e2e (6), test_sim (8) and the
# ladder scenario (13); never flushed: only this run's keys (named by its tag) are deleted.
REDIS_DB = 12

SOURCE_DIR = os.environ.get("BX_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("BX_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")


def binary(env_name, rel):
    return os.environ.get(env_name) or os.path.join(BUILD_DIR, rel)


BINS = {
    "bxctl": binary("BXCTL_BIN", "tools/bxctl/bxctl"),
    "bx-sim": binary("BX_SIM_BIN", "tools/bx-sim/bx-sim"),
    "bx-ingest": binary("BX_INGEST_BIN", "services/bx-ingest/bx-ingest"),
    "bx-score": binary("BX_SCORE_BIN", "services/bx-score/bx-score"),
    "bx-escalate": binary("BX_ESCALATE_BIN", "services/bx-escalate/bx-escalate"),
    "bx-notify": binary("BX_NOTIFY_BIN", "services/bx-notify/bx-notify"),
    "bx-console": binary("BX_CONSOLE_BIN", "services/bx-console/bx-console"),
}

PASSWORD = "Baoxue-Phone-2026"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def url_with_db(url, name):
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def service_credentials(name):
    """A service's own credentials as deploy/local/bx-infra wrote them
    ($BX_RUN_DIR/secrets/<name>.env: its PostgreSQL login and Redis user, files not passwords);
    empty for an infrastructure made without credentials."""
    path = os.path.join(os.environ.get("BX_RUN_DIR", ""), "secrets", name + ".env")
    creds = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("export "):
                    line = line[len("export "):]
                if line and not line.startswith("#") and "=" in line:
                    key, value = line.split("=", 1)
                    creds[key] = value
    return creds


def redis_cli_admin():
    """redis-cli as the administrator of $BX_RUN_DIR/env: argv prefix and environment (the
    password through REDISCLI_AUTH, never on the command line)."""
    env = dict(os.environ)
    argv = ["redis-cli"]
    user, pwfile = os.environ.get("BX_REDIS_USERNAME"), os.environ.get("BX_REDIS_PASSWORD_FILE")
    if user and pwfile:
        with open(pwfile) as f:
            env["REDISCLI_AUTH"] = f.read().strip()
        argv += ["--no-auth-warning", "--user", user]
    return argv, env


def _die_with_parent():
    """Runs in the child before exec: SIGTERM when the test process goes away."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Registry:
    """The run's registry: one school, two classes of two homeroom teachers. Students, classes
    and the school carry the run's tag: bx-score keeps students and classes in Redis by id."""

    def __init__(self, tag):
        self.tag = tag
        self.school = tag + "S"
        # Staff ids need no tag (they live in the run's own database only); they show on pages.
        self.teacher = "T1001031"           # 李老师, class 1
        self.other_teacher = "T1001041"     # 王老师, class 2
        self.principal = "T1001P"
        self.class1 = tag + "C1"
        self.class2 = tag + "C2"
        self.absent = tag + "S01"           # 张小明, the child who stays away
        self.script = tag + "S03"           # the name that is markup
        self.script_name = "<script>alert(1)</script>"
        self.class1_students = [
            (tag + "S01", "张小明"), (tag + "S02", "李小红"), (self.script, self.script_name),
            (tag + "S04", "王小刚"), (tag + "S05", "赵小燕"), (tag + "S06", "陈思远"),
        ]
        self.class2_students = [(tag + "S11", "刘小雨"), (tag + "S12", "周子涵")]

    def write(self, folder):
        files = {
            "counties.csv": "code,name\n520122,息烽县\n",
            "townships.csv": "code,county_code,name\n520122100,520122,永靖镇\n",
            "calendar.csv": "calendar_id,entry,first_day,last_day,name\n"
                            "br-2026,term,2026-03-02,2026-07-10,2026-spring\n"
                            "br-2026,term,2026-09-01,2027-01-22,2026-autumn\n",
            "schools.csv": "school_id,name,township_code,stage,calendar_id\n"
                           f"{self.school},永靖镇中心小学,520122100,primary,br-2026\n",
            "staff.csv": "staff_id,name,role,school_id,township_code,county_code,phone\n"
                         f"{self.teacher},李老师,homeroom_teacher,{self.school},,,13910000011\n"
                         f"{self.other_teacher},王老师,homeroom_teacher,{self.school},,,13910000012\n"
                         f"{self.principal},徐校长,principal,{self.school},,,13910000010\n"
                         "W520122100,周干事,township_officer,,520122100,,13910000020\n",
            "classes.csv": "class_id,school_id,grade,name,homeroom_staff_id\n"
                           f"{self.class1},{self.school},3,三年级1班,{self.teacher}\n"
                           f"{self.class2},{self.school},4,四年级1班,{self.other_teacher}\n",
        }
        rows = ["student_id,school_id,class_id,name"]
        guardians = ["student_id,name,relation,phone,address,is_primary"]
        for cls, students in ((self.class1, self.class1_students),
                              (self.class2, self.class2_students)):
            for i, (sid, name) in enumerate(students):
                # A name holding a comma or quote would need CSV quoting; the markup has neither.
                rows.append(f"{sid},{self.school},{cls},{name}")
                guardians.append(f"{sid},{name[:1] if sid != self.script else '家'}家长,mother,"
                                 f"1391002{i:04d},永靖镇某村,true")
        files["students.csv"] = "\n".join(rows) + "\n"
        files["guardians.csv"] = "\n".join(guardians) + "\n"
        for name, text in files.items():
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                f.write(text)


class Stack:
    """The pipeline of one run. start() brings it up; stop() takes it down and drops the database."""

    def __init__(self, out_dir, local_time):
        for name, path in BINS.items():
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{name} is not built: {path}")
        self.out_dir = out_dir
        self.tag = "BR%d%03d" % (os.getpid() % 100000, int(time.time() * 1000) % 1000)
        self.reg = Registry(self.tag)
        self.tmp = tempfile.mkdtemp(prefix="bx-browser-")
        self.clock = os.path.join(self.tmp, "clock")
        base_pg = os.environ.get("BX_PG_URL", "postgresql://bx@127.0.0.1:54329/baoxue")
        self.db = "bx_browser_" + self.tag.lower()
        self.admin_url = url_with_db(base_pg, "postgres")
        self.pg_url = url_with_db(base_pg, self.db)
        redis = os.environ.get("BX_REDIS_URL", "redis://127.0.0.1:63799")
        u = urllib.parse.urlsplit(redis)
        self.redis_host, self.redis_port = u.hostname, u.port or 6379
        self.redis_url = f"{u.scheme}://{u.netloc}/{REDIS_DB}"
        self.groups = {
            "score": ("bx-score-browser-" + self.tag, "bx.attendance.v1"),
            "escalate": ("bx-escalate-browser-" + self.tag, "bx.risk.v1,bx.actions.v1"),
            "notify": ("bx-notify-browser-" + self.tag, "bx.notify.requests.v1"),
        }
        self.procs = []
        self.db_made = False
        self.local_time = local_time
        self.console_url = None
        self.ingest_url = None
        self.sms_file = os.path.join(out_dir, "sms.jsonl")
        # bx-escalate and bx-score need the analysts' pseudonym key; a run's own when none is set
        self.pseudonym_key = os.environ.get("BX_PSEUDONYM_KEY") or os.urandom(24).hex()

    # ---- environment and tools ----

    def env(self, **extra):
        e = dict(os.environ)
        e.update(BX_PG_URL=self.pg_url, BX_REDIS_URL=self.redis_url, BX_CLOCK="file:" + self.clock,
                 BX_PSEUDONYM_KEY=self.pseudonym_key)
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def run(self, *argv, check=True, **extra):
        p = subprocess.run(list(argv), env=self.env(**extra), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=180)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        return p

    def bxctl(self, *args, check=True):
        return self.run(BINS["bxctl"], *args, check=check)

    def psql_admin(self, sql):
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.admin_url, "-c", sql],
                       check=True, stdout=subprocess.DEVNULL, timeout=60)

    def clock_set(self, local_time):
        self.bxctl("clock", "set", local_time)

    def settle(self):
        """Waits until bx-score and bx-escalate have handled everything on their topics."""
        args = ["settle", "--timeout", "120"]
        for name in ("score", "escalate"):
            args += ["--group", "%s:%s" % self.groups[name]]
        self.bxctl(*args)

    def at(self, local_time):
        """Moves the clock once the pipeline is idle, then lets the deadlines that came due fire."""
        self.settle()
        self.clock_set(local_time)
        self.settle()

    def invite(self, staff_id):
        """bxctl staff invite --print: the one-time activation code."""
        out = self.bxctl("staff", "invite", staff_id, "--print").stdout.strip()
        if len(out) != 8 or not out.isdigit():
            raise RuntimeError(f"bxctl staff invite {staff_id} printed {out!r}")
        return out

    # ---- start and stop ----

    def start(self):
        self.psql_admin(f"CREATE DATABASE {self.db}")
        self.db_made = True
        self.bxctl("migrate")
        self.bxctl("topics", "create")
        self.clock_set(self.local_time)
        reg_dir = os.path.join(self.tmp, "registry")
        os.mkdir(reg_dir)
        self.reg.write(reg_dir)
        self.bxctl("import", "holidays",
                   os.path.join(SOURCE_DIR, "deploy/policy/cn-public-holidays-2026.csv"))
        self.bxctl("import", "--dir", reg_dir)
        for group, topics in self.groups.values():
            self.run(BINS["bx-sim"], "group-at-end", "--group", group, "--topics", topics)
        self.make_certificate()
        policy = os.path.join(SOURCE_DIR, "deploy/policy")
        ingest_port = free_port()
        self.service("bx-ingest", BX_HTTP_LISTEN=f"127.0.0.1:{ingest_port}",
                     BX_REGISTRY_REFRESH_MS=200)
        self.ingest_url = f"http://127.0.0.1:{ingest_port}"
        self.service("bx-score", BX_CONSUMER_GROUP=self.groups["score"][0],
                     BX_REGISTRY_REFRESH_MS=200, BX_SCORE_BATCH_MS=10,
                     BX_SCORE_POLICY=os.path.join(policy, "score.policy"))
        self.service("bx-escalate", BX_CONSUMER_GROUP=self.groups["escalate"][0],
                     BX_REGISTRY_REFRESH_MS=200, BX_TIMER_LEASE_MS=2000)
        self.service("bx-notify", BX_CONSUMER_GROUP=self.groups["notify"][0],
                     BX_NOTIFY_PROVIDER="file", BX_NOTIFY_PROVIDER_FILE=self.sms_file,
                     BX_NOTIFY_RECEIPT_LISTEN=f"127.0.0.1:{free_port()}")
        port = free_port()
        self.service("bx-console", BX_CONSOLE_LISTEN=f"127.0.0.1:{port}",
                     BX_TLS_CERT=self.cert, BX_TLS_KEY=self.key,
                     BX_CONSOLE_TEMPLATES=os.path.join(SOURCE_DIR, "services/bx-console/templates"),
                     BX_SCORE_POLICY=os.path.join(policy, "score.policy"), BX_CONSOLE_THREADS=2)
        self.console_url = f"https://127.0.0.1:{port}"
        self.wait_https(self.console_url + "/login")
        self.settle()

    def make_certificate(self):
        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", self.key, "-out", self.cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def service(self, name, **extra):
        """Starts a service with a metrics port of its own and waits for its /healthz."""
        metrics = free_port()
        log = open(os.path.join(self.out_dir, name + ".log"), "w")
        p = subprocess.Popen([BINS[name]], env=self.env(BX_METRICS_LISTEN=f"127.0.0.1:{metrics}",
                                                        **{**service_credentials(name), **extra}),
                             stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()
        self.procs.append((name, p))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited during start ({p.returncode}); "
                                   f"see {self.out_dir}/{name}.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not become healthy in 30 s")

    def wait_https(self, url):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer in 30 s")

    def check_running(self):
        for name, p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} stopped ({p.returncode}); see {self.out_dir}/{name}.log")

    def stop(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        self.forget_redis_keys()
        if self.db_made:
            try:
                self.psql_admin(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
            except subprocess.CalledProcessError:
                pass
            self.db_made = False
        shutil.rmtree(self.tmp, ignore_errors=True)

    def forget_redis_keys(self):
        """Deletes bx-score's keys of this run's students and classes (they carry the tag)."""
        cli, cli_env = redis_cli_admin()
        base = cli + ["-h", self.redis_host, "-p", str(self.redis_port), "-n", str(REDIS_DB)]
        try:
            keys = subprocess.run(base + ["--scan", "--pattern", f"*{self.tag}*"], check=True, env=cli_env,
                                  stdout=subprocess.PIPE, text=True, timeout=30).stdout.split()
            for i in range(0, len(keys), 200):
                subprocess.run(base + ["DEL"] + keys[i:i + 200], check=True, env=cli_env,
                               stdout=subprocess.DEVNULL, timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass  # leftovers are harmless: the next run's ids are different
