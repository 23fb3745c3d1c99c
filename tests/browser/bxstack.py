"""bxstack: the whole pipeline for the browser tests, on the running PostgreSQL, Redis and Kafka.

A database of its own (made, migrated with bxctl, dropped at the end), a small registry whose ids
carry the run's tag (so bx-score's Redis keys of one run never meet another's; they are deleted at
the end), consumer groups of its own set at the shared topics' current ends (as
tests/integration/test_scenario_ladder.c and test_sim.c do), a Redis database apart from the
other tests' (REDIS_DB), a driven clock (BX_CLOCK=file:..., moved with `bxctl clock set`), and
bx-ingest, bx-score, bx-escalate, bx-notify (file provider) and bx-console (HTTPS with a
self-signed certificate made with openssl) on free loopback ports. Every service is told to die
with the test process (PR_SET_PDEATHSIG), so a killed run leaves nothing behind but its database.

Also what the browser tests share: start_for_module (their setUpModule), Phone (one person's
headless Chromium at a phone's size, with the checks every page must pass and screenshots),
Stack.phone (a signed-in Phone), SchoolKey (the school's system posting to bx-ingest), Stack.sql,
plain_get, and pdf_pages (a printed page's PDF read back).
"""

import base64
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
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

CHROMIUM = os.environ.get("BX_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BX_CHROMEDRIVER", "/usr/bin/chromedriver")
WIDTH, HEIGHT = 360, 740  # a phone's viewport, CSS pixels
A4_POINTS = (595.3, 841.9)  # 210 x 297 mm


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


def national_id(region, birth_date, sequence):
    """An 18-character id number with its check digit (GB 11643), as the registry holds them."""
    body = f"{region}{birth_date.replace('-', '')}{sequence:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights)) % 11]


class Registry:
    """The run's registry: one school, two classes of two homeroom teachers, in 永靖镇 of 息烽县.
    Students, classes and schools carry the run's tag: bx-score keeps students and classes in
    Redis by id. Every student has a sex, a birth date and an id number, which no page may show.

    county=True adds what the county bureau's pages need: a second township (温泉镇) with a junior
    school of one class (its homeroom teacher and principal), that township's officer and the
    county officer (staff.csv), and a city and a province officer (no registry file holds them:
    Stack.start inserts them)."""

    def __init__(self, tag, county=False):
        self.tag = tag
        self.county = county
        self.county_code, self.county_name = "520122", "息烽县"
        self.township, self.township_name = "520122100", "永靖镇"
        self.school = tag + "S"
        self.school_name = "永靖镇中心小学"
        # Staff ids need no tag (they live in the run's own database only); they show on pages.
        self.teacher = "T1001031"           # 李老师, class 1
        self.other_teacher = "T1001041"     # 王老师, class 2
        self.principal = "T1001P"
        self.township_officer = "W520122100"
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
        # (staff_id, name, role, school, township, county, phone)
        self.staff = [
            (self.teacher, "李老师", "homeroom_teacher", self.school, "", "", "13910000011"),
            (self.other_teacher, "王老师", "homeroom_teacher", self.school, "", "", "13910000012"),
            (self.principal, "徐校长", "principal", self.school, "", "", "13910000010"),
            (self.township_officer, "周干事", "township_officer", "", self.township, "",
             "13910000020"),
        ]
        self.schools = [(self.school, self.school_name, self.township, "primary")]
        self.townships = [(self.township, self.township_name)]
        # (class_id, school_id, grade, name, homeroom teacher, students)
        self.classes = [(self.class1, self.school, 3, "三年级1班", self.teacher,
                         self.class1_students),
                        (self.class2, self.school, 4, "四年级1班", self.other_teacher,
                         self.class2_students)]
        self.officers = []  # (staff_id, name, role, area_code, phone): inserted by SQL
        if county:
            self.township2, self.township2_name = "520122101", "温泉镇"
            self.school2 = tag + "M"
            self.school2_name = "温泉镇中学"
            self.class3 = tag + "C3"
            self.teacher3 = "T2001071"
            self.principal2 = "T2001P"
            self.township2_officer = "W520122101"
            self.county_officer = "K520122"
            self.city_officer = "Y5201"
            self.province_officer = "P52"
            self.class3_students = [(tag + "S21", "孙浩然"), (tag + "S22", "马晓东"),
                                    (tag + "S23", "朱雨桐"), (tag + "S24", "胡一鸣"),
                                    (tag + "S25", "郭佳怡")]
            self.townships.append((self.township2, self.township2_name))
            self.schools.append((self.school2, self.school2_name, self.township2, "junior"))
            self.classes.append((self.class3, self.school2, 7, "七年级1班", self.teacher3,
                                 self.class3_students))
            self.staff += [
                (self.teacher3, "陈老师", "homeroom_teacher", self.school2, "", "", "13910000014"),
                (self.principal2, "钱校长", "principal", self.school2, "", "", "13910000015"),
                (self.township2_officer, "吴干事", "township_officer", "", self.township2, "",
                 "13910000021"),
                (self.county_officer, "县局郑科长", "county_officer", "", "", self.county_code,
                 "13910000030"),
            ]
            self.officers = [(self.city_officer, "市局冯处长", "city_officer", "5201",
                              "13910000040"),
                             (self.province_officer, "省厅何处长", "province_officer", "52",
                              "13910000050")]
        # Each student's private columns and primary guardian, numbered across the registry.
        self.private = {}   # student_id -> (sex, birth_date, id number)
        self.guardians = {}  # student_id -> (name, phone)
        n = 0
        for class_id, school, grade, _, _, students in self.classes:
            for sid, name in students:
                n += 1
                birth = "%04d-%02d-%02d" % (2026 - 6 - grade, 1 + n % 12, 1 + n % 28)
                self.private[sid] = ("M" if n % 2 else "F", birth,
                                     national_id(self.county_code, birth, 100 + n))
                self.guardians[sid] = (("家" if sid == self.script else name[:1]) + "家长",
                                       "1391002%04d" % n)

    def students(self):
        """(student_id, name, class_id, school_id) of every student."""
        return [(sid, name, cls, school) for cls, school, _, _, _, students in self.classes
                for sid, name in students]

    def names(self):
        """Every person's name in the registry: students, guardians and staff."""
        return ([name for _, name, _, _ in self.students()] +
                [g for g, _ in self.guardians.values()] +
                [s[1] for s in self.staff] + [o[1] for o in self.officers])

    def phones(self):
        return ([p for _, p in self.guardians.values()] + [s[6] for s in self.staff] +
                [o[4] for o in self.officers])

    def id_numbers(self):
        return [p[2] for p in self.private.values()]

    def write(self, folder):
        files = {
            "counties.csv": f"code,name\n{self.county_code},{self.county_name}\n",
            "townships.csv": "code,county_code,name\n" + "".join(
                f"{code},{self.county_code},{name}\n" for code, name in self.townships),
            "calendar.csv": "calendar_id,entry,first_day,last_day,name\n"
                            "br-2026,term,2026-03-02,2026-07-10,2026-spring\n"
                            "br-2026,term,2026-09-01,2027-01-22,2026-autumn\n",
            "schools.csv": "school_id,name,township_code,stage,calendar_id\n" + "".join(
                f"{sid},{name},{township},{stage},br-2026\n"
                for sid, name, township, stage in self.schools),
            "staff.csv": "staff_id,name,role,school_id,township_code,county_code,phone\n" +
                         "".join(",".join(row) + "\n" for row in self.staff),
            "classes.csv": "class_id,school_id,grade,name,homeroom_staff_id\n" + "".join(
                f"{cid},{school},{grade},{name},{teacher}\n"
                for cid, school, grade, name, teacher, _ in self.classes),
        }
        rows = ["student_id,school_id,class_id,name,sex,birth_date,national_id"]
        guardians = ["student_id,name,relation,phone,address,is_primary"]
        for sid, name, cls, school in self.students():
            # A name holding a comma or quote would need CSV quoting; the markup has neither.
            sex, birth, idn = self.private[sid]
            rows.append(f"{sid},{school},{cls},{name},{sex},{birth},{idn}")
            g_name, g_phone = self.guardians[sid]
            guardians.append(f"{sid},{g_name},mother,{g_phone},永靖镇某村,true")
        files["students.csv"] = "\n".join(rows) + "\n"
        files["guardians.csv"] = "\n".join(guardians) + "\n"
        for name, text in files.items():
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                f.write(text)


class Stack:
    """The pipeline of one run. start() brings it up; stop() takes it down and drops the database."""

    def __init__(self, out_dir, local_time, county=False):
        for name, path in BINS.items():
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{name} is not built: {path}")
        self.out_dir = out_dir
        self.tag = "BR%d%03d" % (os.getpid() % 100000, int(time.time() * 1000) % 1000)
        self.reg = Registry(self.tag, county)
        self.activated = set()     # staff ids whose account this run activated
        self.browser_errors = []   # "page: message" of every SEVERE browser log entry
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

    def sql(self, query, *params):
        """Rows of a query on the run's database, one a line, columns separated by '|';
        params are psql variables :'p0', :'p1'..."""
        args = ["psql", "-At", "-v", "ON_ERROR_STOP=1", self.pg_url]
        for i, p in enumerate(params):
            args += ["-v", f"p{i}={p}"]
        p = subprocess.run(args, input=query, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60, check=True)
        return p.stdout.strip()

    def case_of(self, student_id):
        """The student's latest case id, or ""."""
        return self.sql("SELECT id FROM cases.case WHERE student_id = :'p0' "
                        "ORDER BY id DESC LIMIT 1", student_id)

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

    def phone(self, testcase, staff_id, shots=None, downloads=None):
        """A new browser (closed at the test's end), the account activated (once per run) and
        signed in. shots: screenshot names for the "activate" and "login" forms."""
        shots = shots or {}
        phone = Phone(self, staff_id, downloads)
        testcase.addCleanup(phone.quit)
        if staff_id not in self.activated:
            phone.activate(staff_id, self.invite(staff_id), shots.get("activate"))
            self.activated.add(staff_id)
        phone.sign_in(staff_id, shots.get("login"))
        return phone

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
        for staff_id, name, role, area, phone in self.reg.officers:
            # city and province officers: no registry file has them (as an operator adds them)
            self.sql("INSERT INTO registry.staff (id, name, role, area_code, phone) VALUES "
                     "(:'p0', :'p1', :'p2', :'p3', :'p4'); UPDATE registry.revision SET "
                     "revision = revision + 1, changed_at = now()",
                     staff_id, name, role, area, phone)
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


# ---- what the browser tests share ----

def screens_dir(default_name):
    """Where a test keeps its screenshots: BX_BROWSER_SCREENS (set by ctest), else the build's
    tests/<default_name>."""
    return os.environ.get("BX_BROWSER_SCREENS") or os.path.join(BUILD_DIR, "tests", default_name)


def start_for_module(screens, local_time, county=False):
    """A test module's setUpModule: Chromium, chromedriver and selenium must be there (missing is
    a failure, never a skip), a clean screenshots folder, the stack started (and stopped again if
    it did not start)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing: install Debian's chromium and chromium-driver "
                               "(deploy/local/bx-infra deps)")
    import selenium  # noqa: F401  (python3-selenium; a missing module fails here, not skips)
    shutil.rmtree(screens, ignore_errors=True)
    os.makedirs(screens)
    stack = Stack(screens, local_time, county)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    return stack


def browser_error_report(stack):
    """The browser's refusals of the run (a style or script against the Content-Security-Policy,
    a failed load), one kind a line; "" when there were none."""
    kinds = sorted({e.replace(stack.tag, "") for e in stack.browser_errors})
    return f"{len(stack.browser_errors)} browser errors:\n" + "\n".join(kinds) if kinds else ""


def wait_until(what, condition, timeout=60, poll=0.2):
    """Polls condition() until it returns something true (returned) or timeout seconds pass
    (AssertionError naming what was awaited)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(poll)


class Phone:
    """One person's headless Chromium at a phone's size (360x740, Debian's chromium through
    /usr/bin/chromedriver): pages, forms, screenshots, the answers' status codes, downloads into
    downloads (a folder) when given."""

    def __init__(self, stack, who, downloads=None):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--ignore-certificate-errors", f"--window-size={WIDTH},{HEIGHT}",
                    "--lang=zh-CN", "--disable-gpu", "--no-first-run"):
            options.add_argument(arg)
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": WIDTH, "height": HEIGHT, "pixelRatio": 2.0},
            "userAgent": "Mozilla/5.0 (Linux; Android 13; Phone) AppleWebKit/537.36 "
                         "(KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"})
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        prefs = {"intl.accept_languages": "zh-CN,zh"}
        if downloads:
            prefs.update({"download.default_directory": downloads,
                          "download.prompt_for_download": False,
                          "download.directory_upgrade": True})
        options.add_experimental_option("prefs", prefs)
        # Chromium takes its own language (dates in forms) from the environment.
        env = dict(os.environ, LANGUAGE="zh_CN", LANG="zh_CN.UTF-8")
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=options)
        self.driver.set_page_load_timeout(60)
        self.stack = stack
        self.base = stack.console_url
        self.who = who
        self.statuses = {}

    def quit(self):
        self.driver.quit()

    # ---- navigation ----

    def open(self, path):
        self.driver.get(self.base + path)
        self.check_page()

    def path(self):
        url = self.driver.current_url
        return url[len(self.base):] if url.startswith(self.base) else url

    def find(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def xpath(self, expr):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.XPATH, expr)

    def wait_loaded(self):
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(self.driver, 60).until(
            lambda d: d.execute_script("return document.readyState === 'complete'"))

    def submit(self, button):
        """Presses a form's button and waits for the next page (every POST answers 303)."""
        from selenium.webdriver.support.ui import WebDriverWait
        # A mark on this page's window: the next page's window has none.
        self.driver.execute_script("window.bxLeaving = true")
        button.click()
        WebDriverWait(self.driver, 60).until(lambda d: d.execute_script(
            "return !window.bxLeaving && document.readyState === 'complete'"))
        self.check_page()

    def follow(self, link):
        """Clicks a link to another page and waits for it."""
        self.submit(link)

    def fill(self, css, text):
        field = self.find(css)
        field.clear()
        field.send_keys(text)

    def text(self):
        return self.find("body").text

    # ---- what every page must be ----

    def check_page(self):
        """The viewport is the phone's, nothing is wider than it, the page is under 60 KB, no id
        number of the registry is anywhere in it; the browser's errors (a refused style or
        script, a failed load) are kept for browser_error_report."""
        for entry in self.driver.get_log("browser"):
            message = entry.get("message", "")
            if entry.get("level") != "SEVERE" or "/favicon.ico" in message:
                continue  # Chromium asks for a favicon by itself; the console serves none
            if message.startswith(self.driver.current_url + " - Failed to load resource"):
                continue  # the page's own status (a 404 asked for); checked where it matters
            # "<url> <line> Applying inline style violates ...": the page and the reason suffice
            reason = message.split(" ", 2)[-1] if message.startswith("http") else message
            self.stack.browser_errors.append(f"{self.path().split('?')[0]}: {reason[:110]}")
        inner, doc, body = self.driver.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth,"
            " document.body ? document.body.scrollWidth : 0]")
        if inner != WIDTH:
            raise AssertionError(f"the viewport is {inner} px wide, not {WIDTH}")
        if max(doc, body) > WIDTH:
            raise AssertionError(f"{self.path()} is {max(doc, body)} px wide on a {WIDTH} px "
                                 "phone (it scrolls sideways)")
        source = self.driver.page_source
        size = len(source.encode())
        if size > 60 * 1024:
            raise AssertionError(f"{self.path()} is {size} bytes, over 60 KB")
        for idn in self.stack.reg.id_numbers():
            if idn in source or idn[:6] + "********" + idn[14:] in source:
                raise AssertionError(f"{self.path()} shows an id number of the registry")

    def status(self, path):
        """The HTTP status of the last document answer for path, from Chromium's network log."""
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") != "Network.responseReceived":
                continue
            p = msg["params"]
            if p.get("type") == "Document":
                self.statuses[p["response"]["url"]] = p["response"]["status"]
        return self.statuses.get(self.base + path)

    def shot(self, name, docs=None, docs_height=HEIGHT):
        """The whole page at the phone's width (what scrolling shows), as PNG at the phone's pixel
        ratio. docs: also a copy for the README, 360 pixels wide and at most docs_height high, in
        docs/ of the screenshots folder (copied to docs/screenshots/ by hand)."""
        d = self.driver
        height = d.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
        screens = self.stack.out_dir
        shots = [(os.path.join(screens, f"{name}.png"), max(height, HEIGHT), 1)]
        if docs:
            os.makedirs(os.path.join(screens, "docs"), exist_ok=True)
            shots.append((os.path.join(screens, "docs", f"{docs}.png"), min(height, docs_height),
                          0.5))
        for path, h, scale in shots:
            data = d.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": WIDTH, "height": h, "scale": scale}})
            with open(path, "wb") as f:
                f.write(base64.b64decode(data["data"]))
        if docs:
            shrink_png(shots[1][0])

    def print_pdf(self, name):
        """The page as Chromium prints it (DevTools Page.printToPDF with the page's own @page
        size), kept as <name>.pdf beside the screenshots; the PDF's bytes."""
        pdf = base64.b64decode(self.driver.execute_cdp_cmd("Page.printToPDF", {
            "preferCSSPageSize": True, "printBackground": False})["data"])
        with open(os.path.join(self.stack.out_dir, name + ".pdf"), "wb") as f:
            f.write(pdf)
        return pdf

    # ---- accounts ----

    def activate(self, staff_id, code, shot=None):
        self.open("/activate")
        self.fill("input[name=staff_id]", staff_id)
        self.fill("input[name=code]", code)
        self.fill("input[name=password]", PASSWORD)
        self.fill("input[name=password_again]", PASSWORD)
        if shot:
            self.shot(shot)
        self.submit(self.find("form[action='/activate'] button[type=submit]"))
        if not self.path().startswith("/login"):
            raise AssertionError(f"activation of {staff_id} ended on {self.path()}: {self.text()}")

    def sign_in(self, staff_id, shot=None):
        if not self.path().startswith("/login"):
            self.open("/login")
        self.fill("input[name=login]", staff_id)
        self.fill("input[name=password]", PASSWORD)
        if shot:
            self.shot(shot)
        self.submit(self.find("form[action='/login'] button[type=submit]"))
        if self.path().startswith("/login"):
            raise AssertionError(f"sign-in of {staff_id} failed: {self.text()}")

    def session_cookie(self):
        c = self.driver.get_cookie("bx_session")
        return c["value"] if c else None


def shrink_png(path):
    """64 colours are plenty for a page of text: a README copy a third the size (with Debian's
    python3-pil when it is there; else the file stays as Chromium wrote it)."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def plain_get(url, cookie):
    """GET without following redirects: (status, Location)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url, headers={"Cookie": cookie})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.headers.get("Location")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location")


def pdf_pages(pdf):
    """The page count and each page's size in points ((width, height), from /MediaBox) of a PDF
    as Chromium writes it (uncompressed page objects; no PDF library needed)."""
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
    boxes = [(float(w), float(h)) for w, h in re.findall(
        rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)]
    return pages, boxes


def pdf_text(pdf):
    """The PDF's text through poppler's pdftotext when it is installed, else None."""
    if not shutil.which("pdftotext"):
        return None
    return subprocess.run(["pdftotext", "-", "-"], input=pdf, stdout=subprocess.PIPE,
                          check=False, timeout=60).stdout.decode("utf-8", "replace")


class SchoolKey:
    """A school's system: a bx-ingest key of the school (bxctl key create), posting roll calls
    and actions as the school's own software would."""

    def __init__(self, stack, school_id, label="browser"):
        self.stack = stack
        out = stack.bxctl("key", "create", school_id, label).stdout
        self.key = next(w for w in out.split() if w.startswith("bxk_"))
        # bx-ingest loads credentials with the registry, when its revision moves
        stack.sql("UPDATE registry.revision SET revision = revision + 1, changed_at = now()")

    def post(self, path, body):
        data = json.dumps(body).encode()
        headers = {"Authorization": "Bearer " + self.key, "Content-Type": "application/json"}

        def attempt():
            req = urllib.request.Request(self.stack.ingest_url + path, data=data, method="POST",
                                         headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return json.loads(r.read().decode())
            except urllib.error.HTTPError as e:
                if e.code != 401:
                    raise
                return None  # the new key is not loaded yet
        answer = wait_until(f"bx-ingest accepting the key for {path}", attempt, timeout=30)
        if answer.get("rejected"):
            raise AssertionError(f"{path} refused: {answer}")
        return answer

    def rollcall(self, class_id, day, absent, rollcall_id):
        """A whole-day roll call of class_id on day ("YYYY-MM-DD"): absent ids, the rest present."""
        return self.post("/v1/rollcall", {"class_id": class_id, "date": day,
                                          "rollcall_id": rollcall_id, "absent": list(absent)})
