#!/usr/bin/env python3
"""bench/console/client.py: signed-in clients against bx-console, each page's time at p50/p95.

  client.py --port 8443 --clients 32 --requests 20 --staff BK970101,BK970102,... --area BCITY

Every client signs in (GET /login for the CSRF token and pre-session cookie, POST the form), then
requests each page of the county bureau's (or the area officer's) in turn, on one keep-alive
connection: --warmup passes first, unmeasured (their slowest time is printed: the first visit of a
period computes its per-class counts), then the measured rounds; times are measured around each
request on the client (loopback), so they are the server's time plus the client's few hundred
microseconds. A failed request (status, timeout, closed connection) is counted and the client
signs in again. The export is timed apart, --exports times in each format one at a time, for the
county with the 10,000-row dropout list.
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


def sign_in(port, staff, attempts=5):
    """sign_in_once, again on a new connection after a closed connection or a timeout (32
    argon2 sign-ins at once on a loaded machine can outlast the server's deadlines): a client that
    gave up here would leave the others waiting at the start forever."""
    for n in range(attempts):
        try:
            return sign_in_once(port, staff)
        except (OSError, http.client.HTTPException):
            if n == attempts - 1:
                raise
            time.sleep(1 + n)


def sign_in_once(port, staff):
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


def run_client(port, staff, pages, rounds, warmup, times, cold, errors, lock, start, measured):
    """warmup unmeasured passes over the pages first (their times go to cold), then, once every
    client has done its own, rounds measured ones; a request that fails (status, timeout, closed
    connection) is an error, and the client signs in again on a new connection."""
    try:
        c, cookie = sign_in(port, staff)
    except BaseException:
        start.abort()  # the others and main stop waiting instead of hanging
        measured.abort()
        raise
    start.wait()
    for n in range(warmup + rounds):
        if n == warmup:
            try:
                measured.wait(timeout=900)
            except threading.BrokenBarrierError:
                pass
            # a new connection, the same session: the kept-alive one idled at the barrier past the
            # server's header deadline (BX_HTTP_HEADER_TIMEOUT_MS), which closes it
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for p in pages:
            t0 = time.perf_counter()
            try:
                c.request("GET", p, headers={"Cookie": cookie})
                r = c.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
            dt = (time.perf_counter() - t0) * 1000.0
            with lock:
                if status != 200:
                    errors.append((p, status, n < warmup))
                (cold if n < warmup else times).setdefault(p, []).append(dt)
            if status != 200 and not isinstance(status, int):
                c.close()
                c, cookie = sign_in(port, staff)
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
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured passes over the pages before the measured rounds")
    a = ap.parse_args()
    staff = a.staff.split(",")
    area = a.area.split(",")
    times, cold, errors, lock = {}, {}, [], threading.Lock()
    start = threading.Barrier(a.clients + 1)
    measured = threading.Barrier(a.clients + 1)
    threads = []
    for i in range(a.clients):
        if i % 8 == 7:  # one client in eight is a city or province officer
            t = threading.Thread(target=run_client, args=(
                a.port, area[i % len(area)], AREA_PAGES, a.rounds * 3, a.warmup, times, cold,
                errors, lock, start, measured))
        else:
            t = threading.Thread(target=run_client, args=(
                a.port, staff[i % len(staff)], COUNTY_PAGES, a.rounds, a.warmup, times, cold,
                errors, lock, start, measured))
        threads.append(t)
    for t in threads:
        t.start()
    start.wait()  # every client signed in
    t0 = time.perf_counter()
    try:
        measured.wait(timeout=900)  # every client through its warm-up
    except threading.BrokenBarrierError:
        pass
    t1 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t1
    nwarm = sum(len(v) for v in cold.values())
    print("bench/console: %d clients; warm-up: %d requests in %.1f s; measured: %d requests in "
          "%.1f s; %d failed (%d of them in the warm-up)" % (
              a.clients, nwarm, t1 - t0, sum(len(v) for v in times.values()), wall,
              len(errors), sum(1 for e in errors if e[2])))
    print("%-48s %6s %9s %9s %9s   %s" % ("page", "n", "p50 ms", "p95 ms", "max ms",
                                          "warm-up max ms"))
    for p, xs in sorted(times.items()):
        print("%-48s %6d %9.1f %9.1f %9.1f   %9.1f" % (
            p, len(xs), statistics.median(xs), pct(xs, 0.95), max(xs),
            max(cold.get(p, [0.0]))))
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
        print("failed (first 5):", errors[:5])


if __name__ == "__main__":
    main()
