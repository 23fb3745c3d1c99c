#!/usr/bin/python3
"""Browser tests of bx-console's county, city and province pages (issue 13) in Debian's Chromium at
a 360x740 phone, against the real services started by bxstack.py with its county registry: two
townships of 息烽县 (永靖镇: a primary school of 2 classes, 8 children; 温泉镇: a junior school of
1 class, 5 children), their officers, the county officer, a city and a province officer.

The term the test itself makes, through the real pipeline: ten school days (2026-11-09 to 11-20,
the driven clock moved day by day), each with the school systems' roll calls posted to bx-ingest.
张小明 is absent all ten days (on the dropout roster from the sixth, the township's return notice
from the tenth), 刘小雨 one day and back the next (closed as returned), 孙浩然 of 温泉镇 the last
three (suspected). Class 2 misses one day's roll call; 温泉镇's class sends only the last three.
From that alone the test computes what the county's pages must show.

  1. The county dashboard's charts (server-built SVG): the schools' and townships' dropout rates
     for the term and the month (bars: category, series, value and height; the school over 3 %
     flagged), the roll-call reporting rate per school over its last 20 school days, the overdue
     tasks per township, the cases opened and closed per week. Screenshot kept at a phone's size.
  2. The county officer downloads the dropout roster and the suspected and returned lists as .xlsx
     through Chromium (its download folder set in the profile's prefs), read back with openpyxl:
     title row (county, period, date), the bureau's columns in order, and the rows of
     `bxctl ledger --json` for the same county and list, no id number; every export audited.
  3. The township officer prints the return notice (复学通知书) from 要发的通知书: one A4 page.
  4. Scope: each township officer gets 404 for the other township's case on every page that takes
     a case or a child (the same page as for no case at all), and their lists hold only their own
     township's children; township officers get 404 on the county's pages and exports.
  5. The city and province officers see the rates by county (the SVG's bars) and nothing personal:
     every page and export of the test (each case, child, class, task, list and export) answers
     404 except their own (home and /area: they hold no class and no task, so /teacher and /tasks
     answer 404 as any page outside their scope), and none holds a registry name,
     phone or id number.

Screenshots, the PDF and the downloaded workbooks are kept in BX_BROWSER_SCREENS (README-size
copies in its docs/ folder), with the services' logs.
"""

import glob
import json
import os
import re
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bxstack  # noqa: E402

SCREENS = bxstack.screens_dir("browser-screens-county")
DAYS = ["2026-11-%02d" % d for d in (9, 10, 11, 12, 13, 16, 17, 18, 19, 20)]  # Mon..Fri twice
TERM, MONTH, TODAY = "2026-autumn", "2026-11", DAYS[-1]
ROLLCALL_WINDOW = 20  # school days of the dashboard's reporting rate (all of DAYS inside it)
PLOT_HEIGHT = 200.0   # svg.h SVG_PLOT_HEIGHT

# The stage and event labels the bureau reads (bx-console's page_build.c), for the expected rows.
STAGE_LABELS = {"contact_family": "联系家长", "home_visit": "家访", "school_report": "报告学校",
                "academic_office": "报告教务处", "dropout_roster": "辍学生花名册",
                "township_notice": "乡镇复学通知", "deadline_notice": "限期复学通知",
                "legal_referral": "依法处理"}
EVENT_LABELS = {"opened": "立案", "stage_entered": "进入阶段", "task_created": "新任务",
                "task_done": "任务完成", "task_overdue": "任务逾期", "escalated": "上报",
                "note": "备注", "closed": "结案", "reopened": "重新立案", "visit_note": "家访记录"}
LEDGER_HEADERS = ("学校", "乡镇", "班级", "学生姓名", "性别", "出生日期", "首次缺勤日期", "阶段",
                  "原因", "劝返记录", "责任人")
ROLE_LABELS = ("班主任", "科任教师", "校长", "教务处", "乡镇教育干部", "县教体局")

stack = None
term = None


def setUpModule():
    global stack, term
    stack = bxstack.start_for_module(SCREENS, f"{DAYS[0]} 08:05", county=True)
    try:
        term = Term(stack)
    except BaseException:
        stack.stop()
        raise


def tearDownModule():
    if stack:
        stack.stop()


def policy_streak(stage):
    """stage.<stage>.open_streak of the ladder policy the services run."""
    with open(os.path.join(bxstack.SOURCE_DIR, "deploy/policy/ladder.policy")) as f:
        m = re.search(rf"^stage\.{stage}\.open_streak\s*=\s*(\d+)", f.read(), re.M)
    return int(m.group(1))


class Term:
    """The ten school days, posted through bx-ingest as the schools' systems would, and what they
    must add up to."""

    def __init__(self, stack):
        reg = stack.reg
        self.absent_all = reg.absent                    # 张小明: every day
        self.back_next_day = reg.class2_students[0][0]  # 刘小雨: day 1 only
        self.late_absent = reg.class3_students[0][0]    # 孙浩然: the last three days
        self.absences = {}  # (class, day) -> absent ids
        for n, day in enumerate(DAYS):
            self.absences[(reg.class1, day)] = [self.absent_all]
            if n != 3:  # class 2 misses the fourth day's roll call
                self.absences[(reg.class2, day)] = [self.back_next_day] if n == 0 else []
            if n >= len(DAYS) - 3:
                self.absences[(reg.class3, day)] = [self.late_absent]
        keys = {reg.school: bxstack.SchoolKey(stack, reg.school, "browser-county"),
                reg.school2: bxstack.SchoolKey(stack, reg.school2, "browser-county")}
        school_of = {c[0]: c[1] for c in reg.classes}
        for n, day in enumerate(DAYS):
            if n:  # the pipeline settled on the day before: the next morning, deadlines fired
                stack.clock_set(f"{day} 08:05")
                stack.settle()
            for (class_id, d), absent in sorted(self.absences.items()):
                if d == day:
                    keys[school_of[class_id]].rollcall(class_id, day, absent,
                                                       f"br-{stack.tag}-{class_id}-{day}")
            stack.settle()
        self.cases = {sid: stack.case_of(sid) for sid in
                      (self.absent_all, self.back_next_day, self.late_absent)}

    # ---- what the pages must show, from the registry and the roll calls alone ----

    def streak(self, student):
        """The student's days absent in a row up to the last day."""
        n = 0
        for day in reversed(DAYS):
            if any(student in a for (c, d), a in self.absences.items() if d == day):
                n += 1
            else:
                break
        return n

    def dropouts(self, school):
        reg = stack.reg
        roster = policy_streak("dropout_roster")
        return sum(1 for sid, _, _, s in reg.students() if s == school and
                   self.streak(sid) >= roster)

    @staticmethod
    def enrolled(school):
        return sum(1 for _, _, _, s in stack.reg.students() if s == school)

    def reporting_rate(self, school):
        classes = [c[0] for c in stack.reg.classes if c[1] == school]
        reported = sum(1 for (c, _) in self.absences if c in classes)
        return reported * 100.0 / (len(classes) * ROLLCALL_WINDOW)


def axis_top(largest):
    """svg.c's svg_axis_top: 1, 2, 2.5, 5 or 10 times a power of ten, at least largest."""
    if largest <= 0:
        return 1.0
    import math
    p = 10 ** math.floor(math.log10(largest))
    return next(s * p for s in (1, 2, 2.5, 5, 10) if s * p >= largest - 1e-12)


def charts(phone):
    """Every chart of the page: its title, bars and points with their data attributes."""
    return phone.driver.execute_script("""
        const attrs = e => ({cls: e.getAttribute('class'), category: e.dataset.category,
            series: e.dataset.series, value: parseFloat(e.dataset.value),
            height: parseFloat(e.getAttribute('height'))});
        return Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
            title: svg.getAttribute('aria-label'),
            width: svg.getBoundingClientRect().width,
            bars: Array.from(svg.querySelectorAll('rect.bar')).map(attrs),
            points: Array.from(svg.querySelectorAll('circle.point')).map(attrs),
            threshold: svg.querySelectorAll('line.threshold').length}));""")


def chart(all_charts, title_start):
    found = [c for c in all_charts if c["title"].startswith(title_start)]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} charts titled {title_start}…: "
                             f"{[c['title'] for c in all_charts]}")
    return found[0]


def ledger_json(kind):
    out = stack.bxctl("ledger", "--county", stack.reg.county_code, "--kind", kind, "--names",
                      "--json").stdout
    return json.loads(out)[kind]


def history_text(events):
    """The persuasion history as the export writes it (export.c history_text)."""
    parts = []
    for e in events:
        if e["kind"] == "task_created":
            continue
        text = f"{e['occurred_at'][5:10]} {EVENT_LABELS.get(e['kind'], e['kind'])}"
        if e.get("stage"):
            text += " " + STAGE_LABELS.get(e["stage"], e["stage"])
        if e.get("reason") and e["kind"] != "stage_entered":
            text += f"（{e['reason']}）"
        parts.append(text)
    return "；".join(parts)


class CountyPages(unittest.TestCase):
    maxDiff = None

    def rate_row(self, phone, name):
        """The cells of the rates table row of a school or township."""
        row = phone.xpath(f"//table//tr[td[1][normalize-space(.)='{name}']]")
        return [td.text.strip() for td in row.find_elements("xpath", "./td")]

    def test_1_county_dashboard_draws_the_expected_charts(self):
        reg = stack.reg
        phone = stack.phone(self, reg.county_officer)
        phone.open("/county")
        self.assertEqual(phone.status("/county"), 200)
        page = phone.text()
        self.assertIn(f"{reg.county_name} 控辍保学", page)
        self.assertIn(f"学期 {TERM} · {MONTH} 月 · 截至 {TODAY}", page)
        phone.shot("51-county-dashboard", "county-dashboard", 2100)
        all_charts = charts(phone)
        self.assertEqual(len(all_charts), 5, [c["title"] for c in all_charts])
        for c in all_charts:
            self.assertLessEqual(c["width"], bxstack.WIDTH, c["title"])

        # Dropout rates by school and by township, term and month: the same here (every dropout
        # entered the roster in November), two bars a place, the schools' over 3 % flagged.
        schools = [(reg.school, reg.school_name, reg.township_name),
                   (reg.school2, reg.school2_name, reg.township2_name)]
        townships = {reg.school: reg.township, reg.school2: reg.township2}
        rates = {sid: self.to_pct(term.dropouts(sid), term.enrolled(sid)) for sid, _, _ in schools}
        self.assertEqual(rates[reg.school], 12.5)  # 1 of 8: the registry and roll calls agree
        self.assertEqual(rates[reg.school2], 0.0)
        # the places in the order of their ids (one school a township here)
        for title, label_of, key, threshold in (
                ("各校辍学率", lambda s: s[1], lambda s: s[0], 3.0),
                ("各乡镇辍学率", lambda s: s[2], lambda s: townships[s[0]], 0.0)):
            c = chart(all_charts, title)
            top = axis_top(max(max(rates.values()), threshold))
            expected = [(label_of(s), series, rates[s[0]]) for s in sorted(schools, key=key)
                        for series in ("本学期", "本月")]
            self.assertEqual([(b["category"], b["series"], b["value"]) for b in c["bars"]],
                             expected, title)
            for b in c["bars"]:
                self.assertAlmostEqual(b["height"], b["value"] / top * PLOT_HEIGHT, delta=0.1)
                over = threshold > 0 and b["value"] > threshold
                self.assertEqual(b["cls"], "bar over" if over else "bar", b)
            self.assertEqual(c["threshold"], 1 if threshold else 0, title)
        # the tables beside them: enrolled, dropped out, rates, the flag
        cells = self.rate_row(phone, reg.school_name)
        self.assertEqual(cells[1:5], ["8", "1", "12.50%", "87.50%"], cells)
        self.assertIn("学校超过3%", cells[5])
        self.assertEqual(self.rate_row(phone, reg.school2_name)[1:], ["5", "0", "0.00%",
                                                                      "100.00%", ""])

        # The roll-call reporting rate per school: class-days reported of its last 20 school days.
        c = chart(all_charts, "各校点名上报率")
        expected = [(name, term.reporting_rate(sid)) for sid, name, _ in sorted(schools)]
        self.assertEqual([(b["category"], round(b["value"], 4)) for b in c["bars"]],
                         [(n, round(v, 4)) for n, v in expected])
        self.assertEqual(sorted(round(v, 4) for _, v in expected), [15.0, 47.5])
        top = axis_top(max(v for _, v in expected))
        for b in c["bars"]:
            self.assertAlmostEqual(b["height"], b["value"] / top * PLOT_HEIGHT, delta=0.1)

        # Overdue tasks per township: the open tasks past their deadline at the clock's now.
        counts = stack.sql(
            "SELECT s.township_code, count(*) FROM cases.task k JOIN cases.case c ON c.id = "
            "k.case_id JOIN registry.school s ON s.id = c.school_id WHERE k.outcome IS NULL AND "
            "(k.overdue_at IS NOT NULL OR k.due_at <= :'p0'::timestamptz) GROUP BY 1 ORDER BY 1",
            f"{TODAY} 08:05+08")
        overdue = {t: int(n) for t, n in (line.split("|") for line in counts.splitlines())}
        self.assertEqual(set(overdue), {reg.township, reg.township2})  # both have cases behind
        names = dict(reg.townships)
        c = chart(all_charts, "各乡镇逾期未办任务")
        self.assertEqual([(b["category"], b["value"]) for b in c["bars"]],
                         [(names[t], n) for t, n in sorted(overdue.items())])

        # Cases opened and closed per week (Mondays): two opened and one closed (刘小雨 back the
        # next day) in the first week, one opened (孙浩然) in the second.
        c = chart(all_charts, "每周立案与结案")
        weeks = {(p["series"], p["category"]): p["value"] for p in c["points"]}
        self.assertEqual(len(c["points"]), 24)  # 12 weeks, two lines
        self.assertEqual([weeks[("新立案", "11-09")], weeks[("结案", "11-09")],
                          weeks[("新立案", "11-16")], weeks[("结案", "11-16")]], [2, 1, 1, 0])
        self.assertEqual(sum(weeks.values()), 4)

        # Aggregates only: no child's name on the dashboard.
        source = phone.driver.page_source
        for _, name, _, _ in reg.students():
            self.assertNotIn(name, page)
            self.assertNotIn(name, source)

        # The standing lists: the three children, with links to their pages.
        phone.open("/county/ledger?list=dropout")
        self.assertIn("张小明", phone.text())
        self.assertTrue(phone.find_all(f"a[href='/students/{reg.absent}']"))
        self.assertNotIn("孙浩然", phone.text())
        phone.shot("52-county-ledger-dropout", "county-ledger", 1400)
        phone.open("/county/reports")
        self.assertEqual(phone.status("/county/reports"), 200)
        self.assertIn("四个一", phone.text())  # the reports upward's table, empty or not
        stack.check_running()

    @staticmethod
    def to_pct(part, whole):
        return part * 100.0 / whole if whole else 0.0

    def download(self, phone, folder, link_css):
        """Clicks an export link and waits for Chromium's finished download (the only file)."""
        before = set(os.listdir(folder))
        phone.find(link_css).click()

        def finished():
            # while it downloads, Chromium writes .org.chromium.Chromium.* or *.crdownload
            new = [f for f in os.listdir(folder) if f not in before]
            done = [f for f in new if not f.startswith(".") and not f.endswith(".crdownload")]
            return done if len(done) == 1 and len(new) == 1 else None
        name = bxstack.wait_until(f"the download of {link_css}", finished, timeout=90)[0]
        return os.path.join(folder, name)

    def test_2_xlsx_exports_match_bxctl_ledger(self):
        import openpyxl  # Debian's python3-openpyxl (deploy/local/bx-infra deps): missing fails
        reg = stack.reg
        folder = os.path.join(SCREENS, "downloads")
        os.makedirs(folder, exist_ok=True)
        for f in glob.glob(os.path.join(folder, "*")):
            os.unlink(f)
        phone = stack.phone(self, reg.county_officer, downloads=folder)
        phone.open("/county")
        county_name = reg.county_name
        private = reg.private
        classes = {sid: (cls, school) for sid, _, cls, school in reg.students()}
        class_names = {c[0]: c[3] for c in reg.classes}
        school_names = {s[0]: s[1] for s in reg.schools}
        township_names = dict(reg.townships)
        staff_names = {s[1] for s in reg.staff}
        audited_before = int(stack.sql("SELECT count(*) FROM console.audit WHERE staff_id = "
                                       ":'p0' AND action = 'export'", reg.county_officer))
        exports = (("roster", "dropout", "辍学生花名册"), ("suspected", "suspected", "疑似辍学学生台账"),
                   ("returned", "returned", "复学学生台账"))
        for what, kind, title in exports:
            path = self.download(phone, folder, f"a[href='/county/export/{what}?format=xlsx']")
            self.assertEqual(os.path.basename(path), f"{what}-{reg.county_code}-{TODAY}.xlsx")
            wb = openpyxl.load_workbook(path, read_only=True)
            rows = [["" if v is None else str(v) for v in r] for r in wb.active.iter_rows(
                values_only=True)]
            # no id number in any cell of any sheet
            for ws in wb.worksheets:
                for r in ws.iter_rows(values_only=True):
                    for v in r:
                        self.assertIsNone(re.search(r"\d{17}[\dXx]", str(v or "")), (what, v))
            wb.close()
            # title row: county, list, term, month and the day of the export; then the headers
            self.assertEqual(rows[0][0], f"{county_name} {title}（学期 {TERM}，{MONTH}月）"
                                         f"导出日期 {TODAY}")
            self.assertEqual(tuple(rows[1][:len(LEDGER_HEADERS)]), LEDGER_HEADERS)
            entries = ledger_json(kind)
            self.assertEqual(len(rows) - 2, len(entries), (what, rows))
            self.assertGreaterEqual(len(entries), 1, what)
            for row, e in zip(rows[2:], entries):
                sid = e["student_id"]
                cls, school = classes[sid]
                sex, birth, _ = private[sid]
                opened = next(h for h in e["history"] if h["kind"] == "opened")
                history = history_text(e["history"])
                # 首次缺勤日期: the first day of the child's absences in the roll calls, in every
                # list, the returned one too (the child's return does not clear it)
                first_absent = self.first_absent(sid)
                expected = [school_names[e["school_id"]], township_names[e["township"]],
                            class_names[cls], e["name"], {"M": "男", "F": "女"}[sex], birth,
                            first_absent, STAGE_LABELS.get(e["stage"] or "", ""),
                            opened["reason"] or ""]
                self.assertEqual(row[:9], expected, (what, sid))
                if row[9].endswith("；…"):  # a long history is cut at an event's start
                    self.assertTrue(history.startswith(row[9][:-2] + "；"), (what, row[9]))
                else:
                    self.assertEqual(row[9], history, (what, sid))
                self.assertEqual(school, e["school_id"])
                owner = row[10]
                if kind == "returned":
                    self.assertEqual(owner, "", "a closed case has no responsible staff")
                else:
                    self.assertIn(owner, staff_names | set(ROLE_LABELS), (what, sid))
        # which children each list holds, from the roll calls
        self.assertEqual([e["student_id"] for e in ledger_json("dropout")], [term.absent_all])
        self.assertEqual([e["student_id"] for e in ledger_json("suspected")], [term.late_absent])
        self.assertEqual([e["student_id"] for e in ledger_json("returned")], [term.back_next_day])
        audited = int(stack.sql("SELECT count(*) FROM console.audit WHERE staff_id = :'p0' AND "
                                "action = 'export'", reg.county_officer))
        self.assertEqual(audited - audited_before, len(exports))

    @staticmethod
    def first_absent(student):
        """The first day of the student's absences in a row (the roll calls the test sent)."""
        days = [d for d in DAYS if any(student in a for (c, dd), a in term.absences.items()
                                       if dd == d)]
        return days[0]

    def test_3_township_prints_the_return_notice_on_one_a4_page(self):
        reg = stack.reg
        phone = stack.phone(self, reg.township_officer)
        phone.open("/township/notices")
        case = term.cases[term.absent_all]
        self.assertIn("张小明", phone.text())
        link = phone.find(f"a[href='/print/{case}/return_notice']")
        phone.shot("53-township-notices", "township-notices", 1200)
        phone.follow(link)
        self.assertEqual(phone.path(), f"/print/{case}/return_notice")
        self.assertIn("复学通知书", phone.text())
        self.assertIn("张小明", phone.text())
        phone.shot("54-print-return-notice", "print-return-notice", 1400)
        pdf = phone.print_pdf("print-return-notice")
        pages, boxes = bxstack.pdf_pages(pdf)
        self.assertEqual(pages, 1, "the return notice prints on more than one page")
        self.assertEqual(len(boxes), 1)
        for size, a4 in zip(boxes[0], bxstack.A4_POINTS):
            self.assertAlmostEqual(size, a4, delta=2)
        text = bxstack.pdf_text(pdf)
        if text is not None:
            self.assertIn("张小明", text)
            self.assertIsNone(re.search(r"\d{17}[\dXx]", text), "an id number is printed")
        phone.open("/township/children")
        phone.shot("55-township-children", "township-children", 1400)

    def assert_404_as_no_case(self, phone, paths, nobody_text):
        for path in paths:
            phone.open(path)
            self.assertEqual(phone.status(path), 404, f"{phone.who}: {path}")
            self.assertEqual(phone.text(), nobody_text, f"{phone.who}: {path}")

    def test_4_township_officers_get_404_for_the_other_township(self):
        reg = stack.reg
        own_case, other_case = term.cases[term.absent_all], term.cases[term.late_absent]
        for officer, case, student, own_name, other_name in (
                (reg.township2_officer, own_case, term.absent_all, "孙浩然", "张小明"),
                (reg.township_officer, other_case, term.late_absent, "张小明", "孙浩然")):
            phone = stack.phone(self, officer)
            nobody = "/township/cases/99999999"
            phone.open(nobody)
            self.assertEqual(phone.status(nobody), 404)
            nobody_text = phone.text()
            paths = [f"/township/cases/{case}", f"/school/cases/{case}", f"/students/{student}",
                     f"/students/{student}/leave"] + \
                [f"/print/{case}/{k}" for k in ("return_notice", "deadline_notice",
                                                "persuasion_letter", "dropout_report")]
            self.assert_404_as_no_case(phone, paths, nobody_text)
            # the lists hold their own township's children only
            for path in ("/township", "/township/notices", "/township/children",
                         "/township/children?list=suspected"):
                phone.open(path)
                self.assertEqual(phone.status(path), 200, path)
                self.assertNotIn(other_name, phone.driver.page_source, f"{officer}: {path}")
                self.assertNotIn(f"/students/{student}", phone.driver.page_source, path)
            phone.open("/township/children?list=" +
                       ("suspected" if own_name == "孙浩然" else "dropout"))
            self.assertIn(own_name, phone.text())
            # the county's pages and exports are not a township's
            county_paths = ["/county", "/county/ledger", "/county/reports", "/area"] + \
                [f"/county/export/{w}?format={f}" for w in ("roster", "rates") for f in
                 ("xlsx", "csv")]
            for path in county_paths:
                phone.open(path)
                self.assertEqual(phone.status(path), 404, f"{officer}: {path}")
                self.assertNotIn(own_name, phone.driver.page_source, path)
        phone.shot("56-other-township-404")

    def all_paths(self):
        """Every page and export of the test, with every id it made: the children, classes,
        cases, their tasks, the lists with their filters, each export in both formats."""
        reg = stack.reg
        tasks = stack.sql("SELECT min(id) FROM cases.task GROUP BY case_id ORDER BY 1").split()
        paths = ["/", "/area", "/teacher", "/tasks", "/school", "/township", "/township/notices",
                 "/township/children", "/township/children?list=suspected", "/county",
                 "/county/ledger", "/county/ledger?list=dropout", "/county/ledger?list=returned",
                 "/county/ledger?overdue=1", f"/county/ledger?township={reg.township}",
                 "/county/reports"]
        paths += [f"/county/export/{w}?format={f}" for w in
                  ("roster", "suspected", "dropout", "returned", "rates") for f in ("xlsx", "csv")]
        for class_id, *_ in reg.classes:
            paths += [f"/class/{class_id}", f"/rollcall/{class_id}"]
        for sid in term.cases:
            paths += [f"/students/{sid}", f"/students/{sid}/leave"]
        for case in term.cases.values():
            paths += [f"/school/cases/{case}", f"/township/cases/{case}"]
            paths += [f"/print/{case}/{k}" for k in ("persuasion_letter", "dropout_report",
                                                     "return_notice", "deadline_notice")]
        paths += [f"/tasks/{t}" for t in tasks]
        return paths

    def test_5_city_and_province_officers_see_rates_and_nothing_personal(self):
        reg = stack.reg
        students = reg.students()
        n_dropouts = sum(term.dropouts(s[0]) for s in reg.schools)
        county_rate = self.to_pct(n_dropouts, len(students))
        self.assertAlmostEqual(county_rate, 100 / 13)
        for officer, levels in ((reg.city_officer, ("各县辍学率", "各市辍学率")),
                                (reg.province_officer, ("各县辍学率", "各市辍学率"))):
            phone = stack.phone(self, officer)
            phone.open("/area")
            self.assertEqual(phone.status("/area"), 200)
            all_charts = charts(phone)
            self.assertEqual(len(all_charts), 5)
            c = chart(all_charts, levels[0])
            self.assertEqual([(b["category"], b["series"]) for b in c["bars"]],
                             [(reg.county_name, "本学期"), (reg.county_name, "本月")])
            for b in c["bars"]:
                self.assertAlmostEqual(b["value"], county_rate, places=4)
            c = chart(all_charts, levels[1])
            # the registry names no city: it is labelled as one, never a bare code
            self.assertEqual([b["category"] for b in c["bars"]], ["市（5201）", "市（5201）"])
            for b in c["bars"]:
                self.assertAlmostEqual(b["value"], county_rate, places=4)
            c = chart(all_charts, "各县点名上报率")
            reported = sum(1 for _ in term.absences) * 100.0 / (len(reg.classes) *
                                                                 ROLLCALL_WINDOW)
            self.assertEqual([(b["category"], round(b["value"], 4)) for b in c["bars"]],
                             [(reg.county_name, round(reported, 4))])
            if officer == reg.city_officer:
                phone.shot("57-city-area", "city-area", 1180)
            me = next(o[1] for o in reg.officers if o[0] == officer)
            names = [n for n in reg.names() if n != me]
            phones = reg.phones()
            checked = 0
            for path in self.all_paths():
                phone.open(path)
                status = phone.status(path)
                own = path in ("/", "/area")  # no class, no task: /teacher and /tasks are 404
                self.assertEqual(status, 200 if own else 404, f"{officer}: {path}")
                html, text = phone.driver.page_source, phone.text()
                for name in names:
                    if name in text or name in html or \
                            name.replace("<", "&lt;").replace(">", "&gt;") in html:
                        self.fail(f"{officer}: {path} shows the name {name}")
                for p in phones:
                    for form in (p, p[:3] + "****" + p[-4:]):
                        self.assertNotIn(form, html, f"{officer}: {path} shows a phone")
                checked += 1
            self.assertGreater(checked, 50)

    def test_9_no_browser_errors(self):
        report = bxstack.browser_error_report(stack)
        if report:
            self.fail(report)


if __name__ == "__main__":
    unittest.main(verbosity=2)
