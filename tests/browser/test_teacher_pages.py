#!/usr/bin/python3
"""Browser tests of bx-console's homeroom-teacher pages in Debian's Chromium at a 360x740 phone.

Driven by selenium (Debian's python3-selenium) through /usr/bin/chromedriver, headless, against
the real services started by bxstack.py on the running PostgreSQL, Redis and Kafka. Accounts are
made as an operator makes them (`bxctl staff invite --print`) and activated through the console's
/activate form, as the person would. Screenshots of every step are written to BX_BROWSER_SCREENS
(default build/tests/browser-screens), with the services' logs, and kept.

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

import json
import os
import shutil
import ssl
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bxstack  # noqa: E402

CHROMIUM = os.environ.get("BX_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BX_CHROMEDRIVER", "/usr/bin/chromedriver")
WIDTH, HEIGHT = 360, 740
SCREENS = os.environ.get("BX_BROWSER_SCREENS") or os.path.join(bxstack.BUILD_DIR, "tests",
                                                                "browser-screens")
DAY1 = "2026-11-24 08:05"  # a Tuesday of the autumn term
DAY2 = "2026-11-25 08:05"
VISIT_NOTE = "母亲说孩子这两天在外婆家帮忙，已讲清义务教育的规定，家长同意明天送孩子返校。"

stack = None


def setUpModule():
    global stack
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is missing: install Debian's chromium and chromium-driver "
                               "(deploy/local/bx-infra deps)")
    import selenium  # noqa: F401  (python3-selenium; a missing module fails here, not skips)
    shutil.rmtree(SCREENS, ignore_errors=True)
    os.makedirs(SCREENS)
    stack = bxstack.Stack(SCREENS, DAY1)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise


def tearDownModule():
    if stack:
        stack.stop()


class Phone:
    """One person's Chromium at a phone's size: pages, forms, screenshots, answers' status codes."""

    def __init__(self, base_url, who):
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
        options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
        # Chromium takes its own language (dates in forms) from the environment.
        env = dict(os.environ, LANGUAGE="zh_CN", LANG="zh_CN.UTF-8")
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=options)
        self.driver.set_page_load_timeout(30)
        self.base = base_url
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

    def submit(self, button):
        """Presses a form's button and waits for the next page (every POST answers 303)."""
        from selenium.webdriver.support.ui import WebDriverWait
        # A mark on this page's window: the next page's window has none.
        self.driver.execute_script("window.bxLeaving = true")
        button.click()
        WebDriverWait(self.driver, 30).until(lambda d: d.execute_script(
            "return !window.bxLeaving && document.readyState === 'complete'"))
        self.check_page()

    def fill(self, css, text):
        field = self.find(css)
        field.clear()
        field.send_keys(text)

    def text(self):
        return self.find("body").text

    # ---- what every page must be ----

    def check_page(self):
        """The viewport is the phone's, nothing is wider than it, the page is under 60 KB; the
        browser's errors (a refused style or script, a failed load) are kept for test_9."""
        for entry in self.driver.get_log("browser"):
            message = entry.get("message", "")
            if entry.get("level") != "SEVERE" or "/favicon.ico" in message:
                continue  # Chromium asks for a favicon by itself; the console serves none
            if message.startswith(self.driver.current_url + " - Failed to load resource"):
                continue  # the page's own status (a 404 asked for); checked where it matters
            # "<url> <line> Applying inline style violates ...": the page and the reason suffice
            reason = message.split(" ", 2)[-1] if message.startswith("http") else message
            browser_errors.append(f"{self.path().split('?')[0]}: {reason[:110]}")
        inner, doc, body = self.driver.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth,"
            " document.body ? document.body.scrollWidth : 0]")
        if inner != WIDTH:
            raise AssertionError(f"the viewport is {inner} px wide, not {WIDTH}")
        if max(doc, body) > WIDTH:
            raise AssertionError(f"{self.path()} is {max(doc, body)} px wide on a {WIDTH} px "
                                 "phone (it scrolls sideways)")
        size = len(self.driver.page_source.encode())
        if size > 60 * 1024:
            raise AssertionError(f"{self.path()} is {size} bytes, over 60 KB")

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
        import base64
        d = self.driver
        height = d.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
        shots = [(os.path.join(SCREENS, f"{name}.png"), max(height, HEIGHT), 1)]
        if docs:
            os.makedirs(os.path.join(SCREENS, "docs"), exist_ok=True)
            shots.append((os.path.join(SCREENS, "docs", f"{docs}.png"), min(height, docs_height),
                          0.5))
        for path, h, scale in shots:
            data = d.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": WIDTH, "height": h, "scale": scale}})
            with open(path, "wb") as f:
                f.write(base64.b64decode(data["data"]))
        if docs:
            shrink_png(shots[1][0])

    # ---- accounts ----

    def activate(self, staff_id, code, shot=None):
        self.open("/activate")
        self.fill("input[name=staff_id]", staff_id)
        self.fill("input[name=code]", code)
        self.fill("input[name=password]", bxstack.PASSWORD)
        self.fill("input[name=password_again]", bxstack.PASSWORD)
        if shot:
            self.shot(shot)
        self.submit(self.find("form[action='/activate'] button[type=submit]"))
        if not self.path().startswith("/login"):
            raise AssertionError(f"activation of {staff_id} ended on {self.path()}: {self.text()}")

    def sign_in(self, staff_id, shot=None):
        if not self.path().startswith("/login"):
            self.open("/login")
        self.fill("input[name=login]", staff_id)
        self.fill("input[name=password]", bxstack.PASSWORD)
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


activated = set()
browser_errors = []  # "page: message" of every SEVERE browser log entry, for test_9


def signed_in_phone(testcase, staff_id, shots=None):
    """A new browser, the account activated (once per run) and signed in."""
    shots = shots or {}
    phone = Phone(stack.console_url, staff_id)
    testcase.addCleanup(phone.quit)
    if staff_id not in activated:
        phone.activate(staff_id, stack.invite(staff_id), shots.get("activate"))
        activated.add(staff_id)
    phone.sign_in(staff_id, shots.get("login"))
    return phone


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
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers.get("Location")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location")


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
        phone = signed_in_phone(self, reg.teacher,
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
        status, location = plain_get(stack.console_url + "/tasks", "bx_session=" + cookie)
        self.assertEqual((status, location), (303, "/login"))
        phone.driver.add_cookie({"name": "bx_session", "value": cookie, "path": "/",
                                 "secure": True, "httpOnly": True, "sameSite": "Strict"})
        phone.open("/tasks")
        self.assertTrue(phone.path().startswith("/login"), phone.path())
        stack.check_running()

    def test_2_other_class_teacher_gets_404(self):
        reg = stack.reg
        phone = signed_in_phone(self, reg.other_teacher)
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
        phone = signed_in_phone(self, reg.teacher)
        for n, path in enumerate((f"/class/{reg.class1}", f"/students/{reg.script}",
                                  f"/rollcall/{reg.class1}")):
            phone.open(path)
            time.sleep(0.2)  # an injected script would have run by now
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
        kinds = sorted({e.replace(stack.tag, "") for e in browser_errors})
        if kinds:
            self.fail(f"{len(browser_errors)} browser errors:\n" + "\n".join(kinds))


if __name__ == "__main__":
    unittest.main(verbosity=2)
