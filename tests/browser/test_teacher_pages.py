#!/usr/bin/python3
"""Browser tests of bx-console's homeroom-teacher pages in Debian's Chromium at a 360x740 phone.

Driven by selenium (Debian's python3-selenium) through /usr/bin/chromedriver, headless, against
the real services started by bxstack.py on the running PostgreSQL, Redis and Kafka. Accounts are
made as an operator makes them (`bxctl staff invite --print`) and activated through the console's
/activate form, as the person would. Screenshots of every step are written to BX_BROWSER_SCREENS
(default build/tests/browser-screens), with the services' logs, and kept. The phone, the stack and
the checks every page passes (no sideways scrolling, under 60 KB, no id number) are bxstack.py's.

  1. A homeroom teacher signs in, takes a roll call with one child absent, sees (after
     `bxctl settle`) the case's contact task on 我的任务, records the contact; the next school day
     the child is absent again and a home visit is due: the teacher records it with a note, sees
     the task done and the history on the child's page, signs out, and the old session cookie no
     longer opens a page.
  2. The teacher of another class gets 404 for that child, the same answer as for no child at all.
  3. A registry name `<script>alert(1)</script>` is shown as text: no alert, no script, the text
     visible.

Chromium, chromedriver or selenium missing is a failure, never a skip.
"""

import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bxstack  # noqa: E402

SCREENS = bxstack.screens_dir("browser-screens")
DAY1 = "2026-11-24 08:05"  # a Tuesday of the autumn term
DAY2 = "2026-11-25 08:05"
VISIT_NOTE = "母亲说孩子这两天在外婆家帮忙，已讲清义务教育的规定，家长同意明天送孩子返校。"

stack = None


def setUpModule():
    global stack
    stack = bxstack.start_for_module(SCREENS, DAY1)


def tearDownModule():
    if stack:
        stack.stop()


class TeacherPages(unittest.TestCase):
    maxDiff = None

    def take_rollcall(self, phone, absent_id, shot_marked, shot_done, docs=(None, None)):
        reg = stack.reg
        phone.open("/teacher")
        phone.xpath(f"//a[@href='/rollcall/{reg.class1}']").click()
        phone.check_page()
        self.assertEqual(phone.path(), f"/rollcall/{reg.class1}")
        # Everyone starts present: one tap marks the child absent.
        phone.find(f"input[name='m.{absent_id}'][value='a']").click()
        phone.shot(shot_marked, docs[0])
        phone.submit(phone.find("form[action='/rollcall/%s'] button.big" % reg.class1))
        self.assertIn("1 人缺勤", phone.text())
        phone.shot(shot_done, docs[1])

    @staticmethod
    def tasks(phone, start):
        """The entries of 我的任务 that start with start ("家访：张小明")."""
        return [li.text for li in phone.find_all("ul.tk li") if li.text.startswith(start)]

    def open_task(self, phone, kind_label, student_name):
        link = phone.xpath(f"//ul[@class='tk']//a[contains(., '{kind_label}') and "
                           f"contains(., '{student_name}')]")
        link.click()
        phone.check_page()
        self.assertTrue(phone.path().startswith("/tasks/"), phone.path())

    def test_1_homeroom_teacher_day(self):
        reg = stack.reg
        phone = stack.phone(self, reg.teacher,
                                {"activate": "01-activate", "login": "02-login"})
        phone.open("/teacher")
        self.assertIn("三年级1班", phone.text())
        phone.shot("03-teacher-home", "teacher-home")

        # Day 1: the roll call, one child absent.
        self.take_rollcall(phone, reg.absent, "04-rollcall-one-absent", "05-rollcall-submitted",
                           ("teacher-rollcall", "teacher-rollcall-submitted"))
        stack.settle()
        phone.open("/tasks")
        contact = self.tasks(phone, "联系家长：张小明")
        self.assertEqual(len(contact), 1, phone.text())
        self.assertRegex(contact[0], r"截止 11-24 17:00\s+个案 #\d+ · 联系家长")
        phone.shot("06-tasks-contact-due", "teacher-tasks")

        # The contact: a phone call that reached the mother.
        self.open_task(phone, "联系", "张小明")
        phone.find("input[name=channel][value=phone]").click()
        phone.find("input[name=reached][value=yes]").click()
        phone.shot("07-task-contact-form")
        phone.submit(phone.xpath("//form[.//input[@name='action' and @value='contact_made']]"
                                 "//button[@type='submit']"))
        self.assertEqual(phone.path().split("?")[0], "/tasks")
        stack.settle()
        phone.open("/tasks")
        self.assertEqual(self.tasks(phone, "联系家长：张小明"), [])
        phone.shot("08-tasks-contact-done")

        # Day 2: still away; the ladder asks for a home visit.
        stack.at(DAY2)
        # Yesterday's session ended (absolute expiry, 12 h): the teacher signs in again.
        phone.open("/teacher")
        self.assertTrue(phone.path().startswith("/login"), phone.path())
        phone.sign_in(reg.teacher)
        self.take_rollcall(phone, reg.absent, "09-rollcall-day2", "10-rollcall-day2-submitted")
        stack.settle()
        phone.open("/tasks")
        self.assertEqual(len(self.tasks(phone, "家访：张小明")), 1)
        phone.shot("11-tasks-home-visit-due")
        self.open_task(phone, "家访", "张小明")
        visit = "//form[.//input[@name='action' and @value='home_visit']]"
        phone.xpath(visit + "//input[@name='outcome' and @value='will_return']").click()
        from selenium.webdriver.support.ui import Select
        Select(phone.xpath(visit + "//select[@name='reason']")).select_by_value("family")
        phone.xpath(visit + "//textarea[@name='note']").send_keys(VISIT_NOTE)
        phone.shot("12-task-home-visit-form", "teacher-home-visit", 1200)
        phone.submit(phone.xpath(visit + "//button[@type='submit']"))
        self.assertEqual(phone.path().split("?")[0], "/tasks")
        stack.settle()

        # The task is done; the child's page has the case and who did what.
        phone.open("/tasks")
        self.assertEqual(self.tasks(phone, "家访：张小明"), [])
        phone.shot("13-tasks-done")
        phone.open(f"/class/{reg.class1}")
        phone.shot("14-my-class")
        phone.xpath("//a[contains(., '张小明')]").click()
        phone.check_page()
        self.assertEqual(phone.path(), f"/students/{reg.absent}")
        page = phone.text()
        self.assertRegex(page, r"个案 #\d+")
        self.assertIn(VISIT_NOTE, page)
        self.assertIn("李老师", page)
        history = phone.find("ul.hs").text
        self.assertGreaterEqual(len(history.splitlines()), 4, history)
        phone.shot("15-student-page", "teacher-student-page", 1800)

        # Sign out: the session ends, and its cookie opens nothing any more.
        cookie = phone.session_cookie()
        self.assertTrue(cookie)
        phone.submit(phone.find("form.out button"))
        self.assertTrue(phone.path().startswith("/login"), phone.path())
        phone.shot("16-signed-out")
        status, location = bxstack.plain_get(stack.console_url + "/tasks", "bx_session=" + cookie)
        self.assertEqual((status, location), (303, "/login"))
        phone.driver.add_cookie({"name": "bx_session", "value": cookie, "path": "/",
                                 "secure": True, "httpOnly": True, "sameSite": "Strict"})
        phone.open("/tasks")
        self.assertTrue(phone.path().startswith("/login"), phone.path())
        stack.check_running()

    def test_2_other_class_teacher_gets_404(self):
        reg = stack.reg
        phone = stack.phone(self, reg.other_teacher)
        path = f"/students/{reg.absent}"
        phone.open(path)
        self.assertEqual(phone.status(path), 404)
        self.assertNotIn("张小明", phone.text())
        phone.shot("21-other-teacher-404", "other-class-404", 400)
        not_there = phone.text()
        nobody = f"/students/{reg.tag}NOBODY"
        phone.open(nobody)
        self.assertEqual(phone.status(nobody), 404)
        self.assertEqual(phone.text(), not_there)  # the same answer: ids cannot be probed
        # Their own child opens.
        own = f"/students/{reg.class2_students[0][0]}"
        phone.open(own)
        self.assertEqual(phone.status(own), 200)
        self.assertIn(reg.class2_students[0][1], phone.text())

    def test_3_markup_name_is_text(self):
        from selenium.common.exceptions import NoAlertPresentException
        reg = stack.reg
        phone = stack.phone(self, reg.teacher)
        for n, path in enumerate((f"/class/{reg.class1}", f"/students/{reg.script}",
                                  f"/rollcall/{reg.class1}")):
            # driver.get returns once the page has loaded: a script of the page (one that the
            # name injected) would have run, and its alert would be open now
            phone.open(path)
            with self.assertRaises(NoAlertPresentException, msg=path):
                phone.driver.switch_to.alert.text
            shown = phone.xpath(f"//*[contains(text(), '{reg.script_name}')]")
            self.assertTrue(shown.is_displayed(), path)
            self.assertIn(reg.script_name, phone.text())
            scripts = phone.driver.execute_script(
                "return Array.from(document.scripts).filter("
                "s => s.textContent.includes('alert(1)')).length")
            self.assertEqual(scripts, 0, path)
            phone.shot(f"3{n + 1}-markup-name-{path.split('/')[1]}")

    def test_9_no_browser_errors(self):
        """Nothing the pages asked for was refused: no style or script against the
        Content-Security-Policy, no failed load."""
        report = bxstack.browser_error_report(stack)
        if report:
            self.fail(report)


if __name__ == "__main__":
    unittest.main(verbosity=2)
