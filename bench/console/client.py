#!/usr/bin/env python3
"""bench/console/client.py: signed-in clients against bx-console, each page's time at p50/p95.

  client.py --port 8443 --clients 32 --requests 20 --staff BK970101,BK970102,... --area BCITY

Every client signs in (GET /login for the CSRF token and pre-session cookie, POST the form), then
requests each page of the county bureau's (or the area officer's) in turn, on one keep-alive
connection; times are measured around each request on the client (loopback), so they are the
server's time plus the client's few hundred microseconds. The export is timed separately, once per
client, for the county with the 10,000-row dropout list.
"""
import argparse
import http.client
import re
import statistics
import threading
import time
import urllib.parse

PASSWORD = "pages-Test-2026"
COUNTY_PAGES = [
    "/county",
    "/county/ledger",
    "/county/ledger?list=dropout&sort=opened&page=3",
    "/county/ledger?overdue=1&sort=school",
    "/county/reports",
]
AREA_PAGES = ["/area"]


def sign_in(port, staff):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("GET", "/login")
    r = c.getresponse()
    body = r.read().decode()
    pre = re.search(r"bx_pre=([^;]+)", r.getheader("Set-Cookie") or "").group(1)
    csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
    form = urllib.parse.urlencode({"csrf": csrf, "login": staff, "password": PASSWORD})
    c.request("POST", "/login", body=form, headers={
        "Cookie": "bx_pre=" + pre, "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    cookies = r.getheader("Set-Cookie") or ""
    m = re.search(r"bx_session=([^;]+)", cookies)
    if r.status != 303 or not m:
        raise SystemExit("sign-in of %s failed: %d" % (staff, r.status))
    return c, "bx_session=" + m.group(1)


def run_client(port, staff, pages, rounds, times, errors, lock):
    c, cookie = sign_in(port, staff)
    for _ in range(rounds):
        for p in pages:
            t0 = time.perf_counter()
            c.request("GET", p, headers={"Cookie": cookie})
            r = c.getresponse()
            r.read()
            dt = (time.perf_counter() - t0) * 1000.0
            with lock:
                if r.status != 200:
                    errors.append((p, r.status))
                times.setdefault(p.split("?")[0] + ("?" + p.split("?")[1] if "?" in p else ""), []).append(dt)
    c.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--staff", required=True, help="county officers, comma-separated")
    ap.add_argument("--area", default="BCITY,BPROV", help="city and province officers")
    ap.add_argument("--export-staff", default="BK970101")
    ap.add_argument("--exports", type=int, default=5)
    a = ap.parse_args()
    staff = a.staff.split(",")
    area = a.area.split(",")
    times, errors, lock = {}, [], threading.Lock()
    threads = []
    for i in range(a.clients):
        if i % 8 == 7:  # one client in eight is a city or province officer
            t = threading.Thread(target=run_client, args=(a.port, area[i % len(area)], AREA_PAGES,
                                                          a.rounds * 3, times, errors, lock))
        else:
            t = threading.Thread(target=run_client, args=(a.port, staff[i % len(staff)],
                                                          COUNTY_PAGES, a.rounds, times, errors, lock))
        threads.append(t)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    print("bench/console: %d clients, %.1f s, %d requests, %d not 200" % (
        a.clients, wall, sum(len(v) for v in times.values()), len(errors)))
    print("%-48s %6s %9s %9s %9s" % ("page", "n", "p50 ms", "p95 ms", "max ms"))
    for p, xs in sorted(times.items()):
        print("%-48s %6d %9.1f %9.1f %9.1f" % (p, len(xs), statistics.median(xs), pct(xs, 0.95), max(xs)))
    # the export of the 10,000-row dropout list, one at a time
    c, cookie = sign_in(a.port, a.export_staff)
    ex = []
    size = 0
    rows = 0
    for fmt in ["xlsx"] * a.exports + ["csv"] * a.exports:
        t0 = time.perf_counter()
        c.request("GET", "/county/export/dropout?format=" + fmt, headers={"Cookie": cookie})
        r = c.getresponse()
        body = r.read()
        ex.append((fmt, (time.perf_counter() - t0) * 1000.0, r.status))
        if fmt == "csv":
            rows = body.count(b"\r\n") - 2
        else:
            size = len(body)
    for fmt in ("xlsx", "csv"):
        xs = [t for f, t, s in ex if f == fmt]
        bad = [s for f, t, s in ex if f == fmt and s != 200]
        print("export dropout list (%s, %d rows%s): p50 %.1f ms, max %.1f ms%s" % (
            fmt, rows, ", %d bytes" % size if fmt == "xlsx" else "", statistics.median(xs), max(xs),
            ", %d not 200" % len(bad) if bad else ""))
    if errors:
        print("errors (first 5):", errors[:5])


if __name__ == "__main__":
    main()
