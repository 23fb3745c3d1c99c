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
and the services' logs. The phone, the stack and the school's key are bxstack.py's.
"""

import json
import os
import re
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bxstack  # noqa: E402

SCREENS = bxstack.screens_dir("browser-screens-officer")
DAY = "2026-11-24 08:05"  # a Tuesday of the autumn term, before any roll call
TEACHER_PHONE = "139****0011"  # class 1's homeroom teacher (bxstack), as the provider's file masks it

stack = None


def setUpModule():
    global stack
    stack = bxstack.start_for_module(SCREENS, DAY)


def tearDownModule():
    if stack:
        stack.stop()


def reminders_sent():
    """The roll-call reminders bx-notify's file provider has received for the teacher."""
    if not os.path.exists(stack.sms_file):
        return []
    with open(stack.sms_file, encoding="utf-8") as f:
        lines = [line for line in f if line.endswith("\n")]  # a line being written waits
    return [m for m in map(json.loads, lines) if m.get("phone") == TEACHER_PHONE and
            m.get("template") == "rollcall_reminder"]


class OfficerPages(unittest.TestCase):
    maxDiff = None

    def test_1_principal_reminds_the_class_that_has_not_reported(self):
        reg = stack.reg
        phone = stack.phone(self, reg.principal)
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
        sms = bxstack.wait_until(f"the reminder SMS in {stack.sms_file}", reminders_sent,
                                 timeout=90)
        self.assertEqual(len(sms), 1, sms)
        self.assertIn("三年级1班", sms[0]["text"])
        self.assertIn("点名", sms[0]["text"])
        stack.check_running()

    def test_2_township_officer_signs_off_and_the_case_closes(self):
        reg = stack.reg
        school = bxstack.SchoolKey(stack, reg.school, "browser-officer")
        returned, printed = reg.class1_students[1][0], reg.class1_students[3][0]
        school.rollcall(reg.class1, DAY[:10], [returned, printed], "br-rc-" + stack.tag)
        stack.settle()
        case = stack.case_of(returned)
        self.assertTrue(case, "no case for the absent child")
        self.assertTrue(stack.case_of(printed))
        # The school reports the child back; the township has not signed yet.
        school.post("/v1/actions", {"records": [{
            "student_id": returned, "action": "returned", "date": DAY[:10],
            "staff_id": reg.teacher, "event_id": "br-ret-" + stack.tag,
            "details": {"return_date": DAY[:10], "township_signoff_staff_id": None}}]})
        stack.settle()
        self.assertEqual(stack.sql("SELECT closed_at IS NULL FROM cases.case WHERE id = :'p0'",
                                   case), "t")
        officer = "W520122100"
        phone = stack.phone(self, officer)
        phone.open("/township")
        self.assertIn(reg.class1_students[1][1], phone.text())
        phone.xpath(f"//a[@href='/township/cases/{case}']").click()
        phone.check_page()
        self.assertEqual(phone.path(), f"/township/cases/{case}")
        phone.shot("43-township-signoff", "township-signoff", 1100)
        phone.submit(phone.find(f"form[action='/township/cases/{case}'] button[type=submit]"))
        self.assertIn("已签署", phone.text())
        stack.settle()
        row = stack.sql("SELECT closed_at IS NOT NULL, ending FROM cases.case WHERE id = :'p0'",
                        case)
        self.assertEqual(row, "t|returned")
        phone.open(f"/township/cases/{case}")
        self.assertIn("结案", phone.text())
        phone.shot("44-township-signed-closed")
        stack.check_running()

    def test_3_printed_notice_is_one_a4_page(self):
        reg = stack.reg
        student, name = reg.class1_students[3]
        case = stack.case_of(student)
        self.assertTrue(case, "test_2 makes the case")
        phone = stack.phone(self, reg.principal)
        phone.open(f"/print/{case}/persuasion_letter")
        self.assertIn("劝学书", phone.text())
        self.assertIn(name, phone.text())
        phone.shot("45-print-notice", "print-notice", 1400)
        pdf = phone.print_pdf("print-notice")
        pages, boxes = bxstack.pdf_pages(pdf)
        self.assertEqual(pages, 1, "the notice prints on more than one page")
        self.assertTrue(boxes, "no page size in the PDF")
        for size, a4 in zip(boxes[0], bxstack.A4_POINTS):
            self.assertAlmostEqual(size, a4, delta=2)
        text = bxstack.pdf_text(pdf)
        if text:
            self.assertIn(name, text)
            self.assertIsNone(re.search(r"\d{17}[\dXx]", text), "an id number is printed")

    def test_9_no_browser_errors(self):
        report = bxstack.browser_error_report(stack)
        if report:
            self.fail(report)


if __name__ == "__main__":
    unittest.main(verbosity=2)
