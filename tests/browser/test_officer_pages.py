#!/usr/bin/python3
"""Browser tests of bx-console's school and township pages (issue 13) in Debian's Chromium at a
360x740 phone, against the real services started by bxstack.py (its own database, registry,
consumer groups, Redis keys and driven clock; bx-notify with the file provider).

  1. The principal signs in on a school day before any roll call, sees both classes on the
     workbench as not reported, and presses the SMS reminder for class 1: the reminder reaches the
     fake provider (bx-notify's file) addressed to the homeroom teacher's phone.
  2. The school's system (bx-ingest, the school's key) sends class 1's roll call with two children
     absent; after `bxctl settle` both have a case. The school reports one child back without the
     township's sign-off; the township officer signs in, finds the case on 复学报告书签署, signs it,
     and after `bxctl settle` the case is closed as returned by bx-escalate.
  3. The principal opens the other child's 劝学书 (/print/:case/persuasion_letter); Chromium's print
     to PDF (DevTools Page.printToPDF with the page's own @page size) is one A4 page, and the
     printed text has the child's name and no id number.

Screenshots are kept in BX_BROWSER_SCREENS (README-size copies in its docs/ folder), with the PDF
and the services' logs. The helpers of a phone are test_teacher_pages.py's.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bxstack  # noqa: E402
import test_teacher_pages as kit  # noqa: E402  (Phone, signed_in_phone, the page checks)

SCREENS = os.environ.get("BX_BROWSER_SCREENS") or os.path.join(bxstack.BUILD_DIR, "tests",
                                                                "browser-screens-officer")
DAY = "2026-11-24 08:05"  # a Tuesday of the autumn term, before any roll call
TEACHER_PHONE = "139****0011"  # class 1's homeroom teacher (bxstack), as the provider's file masks it

stack = None


def setUpModule():
    global stack
    for path in (kit.CHROMIUM, kit.CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing: install Debian's chromium and chromium-driver "
                               "(deploy/local/bx-infra deps)")
    import selenium  # noqa: F401  (python3-selenium; a missing module fails here, not skips)
    shutil.rmtree(SCREENS, ignore_errors=True)
    os.makedirs(SCREENS)
    kit.SCREENS = SCREENS  # the phone's screenshots go to this test's folder
    stack = bxstack.Stack(SCREENS, DAY)
    kit.stack = stack
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise


def tearDownModule():
    if stack:
        stack.stop()


def sql(query, *params):
    """Rows of a query on the run's database, one per line, columns separated by '|'."""
    args = ["psql", "-At", "-v", "ON_ERROR_STOP=1", stack.pg_url]
    for i, p in enumerate(params):
        args += ["-v", f"p{i}={p}"]
    p = subprocess.run(args, input=query, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60, check=True)
    return p.stdout.strip()


def case_of(student_id):
    return sql("SELECT id FROM cases.case WHERE student_id = :'p0' ORDER BY id DESC LIMIT 1",
               student_id)


class SchoolKey:
    """The school's system: a bx-ingest key of the run's school (bxctl key create)."""

    def __init__(self):
        out = stack.bxctl("key", "create", stack.reg.school, "browser-officer").stdout
        self.key = next(w for w in out.split() if w.startswith("bxk_"))
        # bx-ingest loads credentials with the registry, when its revision moves
        sql("UPDATE registry.revision SET revision = revision + 1, changed_at = now()")

    def post(self, path, body):
        req = urllib.request.Request(stack.ingest_url + path, data=json.dumps(body).encode(),
                                     method="POST",
                                     headers={"Authorization": "Bearer " + self.key,
                                              "Content-Type": "application/json"})
        for attempt in range(50):
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    answer = json.loads(r.read().decode())
                break
            except urllib.error.HTTPError as e:
                if e.code != 401 or attempt == 49:
                    raise
                time.sleep(0.2)  # the new key is not loaded yet
        if answer.get("rejected"):
            raise AssertionError(f"{path} refused: {answer}")
        return answer


class OfficerPages(unittest.TestCase):
    maxDiff = None

    def test_1_principal_reminds_the_class_that_has_not_reported(self):
        reg = stack.reg
        phone = kit.signed_in_phone(self, reg.principal)
        phone.open("/school")
        page = phone.text()
        self.assertIn("三年级1班", page)
        self.assertIn("四年级1班", page)
        remind = phone.find(f"form[action='/school/remind/{reg.class1}'] button")
        self.assertTrue(phone.find_all(f"form[action='/school/remind/{reg.class2}']"))
        phone.shot("41-school-home", "school-home", 1100)
        phone.submit(remind)
        self.assertEqual(phone.path().split("?")[0], "/school")
        self.assertIn("已于", phone.text())  # 已于 08:05 短信提醒
        phone.shot("42-school-reminded")
        # bx-notify sends it through the file provider: one SMS to the teacher's phone.
        deadline = time.monotonic() + 60
        sms = []
        while time.monotonic() < deadline and not sms:
            if os.path.exists(stack.sms_file):
                with open(stack.sms_file, encoding="utf-8") as f:
                    sms = [m for m in map(json.loads, f) if m.get("phone") == TEACHER_PHONE and
                           m.get("template") == "rollcall_reminder"]
            time.sleep(0.3)
        self.assertEqual(len(sms), 1, f"no reminder SMS in {stack.sms_file}")
        self.assertIn("三年级1班", sms[0]["text"])
        self.assertIn("点名", sms[0]["text"])
        stack.check_running()

    def test_2_township_officer_signs_off_and_the_case_closes(self):
        reg = stack.reg
        school = SchoolKey()
        returned, printed = reg.class1_students[1][0], reg.class1_students[3][0]
        school.post("/v1/rollcall", {"class_id": reg.class1, "date": DAY[:10],
                                     "rollcall_id": "br-rc-" + stack.tag,
                                     "absent": [returned, printed]})
        stack.settle()
        case = case_of(returned)
        self.assertTrue(case, "no case for the absent child")
        self.assertTrue(case_of(printed))
        # The school reports the child back; the township has not signed yet.
        school.post("/v1/actions", {"records": [{
            "student_id": returned, "action": "returned", "date": DAY[:10],
            "staff_id": reg.teacher, "event_id": "br-ret-" + stack.tag,
            "details": {"return_date": DAY[:10], "township_signoff_staff_id": None}}]})
        stack.settle()
        self.assertEqual(sql("SELECT closed_at IS NULL FROM cases.case WHERE id = :'p0'", case),
                         "t")
        officer = "W520122100"
        phone = kit.signed_in_phone(self, officer)
        phone.open("/township")
        self.assertIn(reg.class1_students[1][1], phone.text())
        phone.xpath(f"//a[@href='/township/cases/{case}']").click()
        phone.check_page()
        self.assertEqual(phone.path(), f"/township/cases/{case}")
        phone.shot("43-township-signoff", "township-signoff", 1100)
        phone.submit(phone.find(f"form[action='/township/cases/{case}'] button[type=submit]"))
        self.assertIn("已签署", phone.text())
        stack.settle()
        row = sql("SELECT closed_at IS NOT NULL, ending FROM cases.case WHERE id = :'p0'", case)
        self.assertEqual(row, "t|returned")
        phone.open(f"/township/cases/{case}")
        self.assertIn("结案", phone.text())
        phone.shot("44-township-signed-closed")
        stack.check_running()

    def test_3_printed_notice_is_one_a4_page(self):
        reg = stack.reg
        student, name = reg.class1_students[3]
        case = case_of(student)
        self.assertTrue(case, "test_2 makes the case")
        phone = kit.signed_in_phone(self, reg.principal)
        phone.open(f"/print/{case}/persuasion_letter")
        self.assertIn("劝学书", phone.text())
        self.assertIn(name, phone.text())
        phone.shot("45-print-notice", "print-notice", 1400)
        pdf = base64.b64decode(phone.driver.execute_cdp_cmd("Page.printToPDF", {
            "preferCSSPageSize": True, "printBackground": False})["data"])
        with open(os.path.join(SCREENS, "print-notice.pdf"), "wb") as f:
            f.write(pdf)
        pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
        self.assertEqual(pages, 1, "the notice prints on more than one page")
        boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
        self.assertTrue(boxes, "no page size in the PDF")
        w, h = (float(v) for v in boxes[0])
        self.assertAlmostEqual(w, 595.3, delta=2)  # A4: 210 x 297 mm in points
        self.assertAlmostEqual(h, 841.9, delta=2)
        text = subprocess.run(["pdftotext", "-", "-"], input=pdf, stdout=subprocess.PIPE,
                              check=False).stdout.decode("utf-8", "replace") \
            if shutil.which("pdftotext") else ""
        if text:
            self.assertIn(name, text)
            self.assertIsNone(re.search(r"\d{17}[\dXx]", text), "an id number is printed")

    def test_9_no_browser_errors(self):
        kinds = sorted({e.replace(stack.tag, "") for e in kit.browser_errors})
        if kinds:
            self.fail(f"{len(kit.browser_errors)} browser errors:\n" + "\n".join(kinds))


if __name__ == "__main__":
    unittest.main(verbosity=2)
