#!/usr/bin/env python3
"""baoxue for analysts: follow the three pseudonymised streams and keep a live picture.

Subscribes to bx.analytics.attendance.v1, bx.analytics.cases.v1 and bx.analytics.risk.v1 (read
only, as the analyst principal that `bxctl analyst create <name>` makes), keeps

  - the latest daily attendance aggregate of every place (a day republished after late facts
    replaces the earlier message: the last one per level, place and date counts),
  - every case's life (open or closed, stage, stages reached, school days to return),
  - the latest risk tier of every pseudonymous subject,

prints a live table of the county's attendance and the open cases by stage, and writes a PNG
chart: the daily absence rate per township over the term, and the median school days to return
per stage reached. With --json it also writes the figures it shows, for checking.

    python3 analyst.py --config analyst-alice.properties --group analyst.alice.example \
        --chart term.png

The consumer group must be named analyst.<name>.<purpose>: the analyst principal may use no other.
"""
import argparse
import json
import signal
import statistics
import sys
import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError

ROSTER_STAGES = ("dropout_roster", "township_notice", "deadline_notice", "legal_referral")
STAGE_ORDER = ("contact_family", "home_visit", "school_report", "academic_office") + ROSTER_STAGES
COUNTS = ("enrolled", "reported", "present", "late", "absent", "sick_leave", "personal_leave",
          "not_reported", "unexcused_periods")


def read_properties(path):
    """A librdkafka properties file (as bxctl analyst create prints it) as a dict."""
    conf = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                conf[key.strip()] = value.strip()
    return conf


class Picture:
    """What the three streams say, as of the messages seen so far."""

    def __init__(self):
        self.attendance = {}  # (level, place, date) -> message
        self.cases = {}  # case pseudonym -> dict
        self.tiers = {}  # subject -> tier
        self.messages = defaultdict(int)

    def take(self, topic_kind, msg):
        self.messages[topic_kind] += 1
        if topic_kind == "attendance":
            key = (msg["level"], msg["place_code"], msg["date"])
            old = self.attendance.get(key)
            if old is None or old["computed_at"] <= msg["computed_at"]:
                self.attendance[key] = msg
        elif topic_kind == "cases":
            self.take_case(msg)
        elif topic_kind == "risk":
            self.tiers[msg["subject"]] = msg["tier"]

    def take_case(self, m):
        c = self.cases.setdefault(m["case"], {
            "open": True, "stage": None, "reached": set(), "ending": None, "days": None,
            "county": m["county_code"], "township": m["township_code"], "events": set()})
        if m["event_id"] in c["events"]:
            return  # relayed twice: the same event
        c["events"].add(m["event_id"])
        if m["event"] == "opened":
            c["open"] = True
            c["trigger"] = m["trigger"]
        if m["stage"]:
            c["stage"] = m["stage"]
            c["reached"].add(m["stage"])
        if m["event"] == "closed":
            c["open"] = False
            c["ending"] = m["ending"]
            c["days"] = m["school_days_to_return"]

    # ---- figures ----

    def places(self, level):
        return sorted({k[1] for k in self.attendance if k[0] == level})

    def dates(self):
        return sorted({k[2] for k in self.attendance})

    def row(self, level, place, date):
        return self.attendance.get((level, place, date))

    @staticmethod
    def absence_rate(row):
        """Absent for any reason (unexcused, sick or personal leave) over reported students."""
        if row is None or not row["reported"]:
            return None
        return (row["absent"] + row["sick_leave"] + row["personal_leave"]) / row["reported"]

    def open_by_stage(self, county=None):
        out = defaultdict(int)
        for c in self.cases.values():
            if c["open"] and (county is None or c["county"] == county):
                out[c["stage"] or "(none)"] += 1
        return dict(out)

    def on_roster_now(self, county=None):
        return sum(1 for c in self.cases.values()
                   if c["open"] and c["stage"] in ROSTER_STAGES
                   and (county is None or c["county"] == county))

    def entered_roster(self, county=None):
        """Cases that reached the dropout roster and did not end returned or transferred."""
        return sum(1 for c in self.cases.values()
                   if c["reached"] & set(ROSTER_STAGES)
                   and c["ending"] not in ("returned", "transferred")
                   and (county is None or c["county"] == county))

    def median_days_by_stage(self):
        """Median school days to return of the cases closed as returned, by the stage reached."""
        days = defaultdict(list)
        for c in self.cases.values():
            if c["ending"] == "returned" and c["days"] is not None:
                days[c["stage"] or "(none)"].append(c["days"])
        return {s: statistics.median(v) for s, v in days.items()}

    def summary(self):
        out = {"messages": dict(self.messages), "counties": {}, "townships": {},
               "open_cases_by_stage": self.open_by_stage(),
               "cases": len(self.cases),
               "closed": sum(1 for c in self.cases.values() if not c["open"]),
               "median_days_to_return_by_stage": self.median_days_by_stage(),
               "tiers": dict(sorted(defaultdict(int, {t: list(self.tiers.values()).count(t)
                                                       for t in set(self.tiers.values())}).items()))}
        for county in self.places("county"):
            days = {d: self.row("county", county, d) for d in self.dates()
                    if self.row("county", county, d)}
            last = days[max(days)] if days else None
            out["counties"][county] = {
                "days": {d: {k: r[k] for k in COUNTS} for d, r in days.items()},
                "last_date": max(days) if days else None,
                "enrolled": last["enrolled"] if last else None,
                "on_roster_now": self.on_roster_now(county),
                "entered_roster": self.entered_roster(county),
                "open_cases_by_stage": self.open_by_stage(county),
            }
        for township in self.places("township"):
            out["townships"][township] = {
                d: self.absence_rate(self.row("township", township, d)) for d in self.dates()
                if self.row("township", township, d)}
        return out

    def table(self):
        lines = []
        for county in self.places("county"):
            dates = [d for d in self.dates() if self.row("county", county, d)]
            if not dates:
                continue
            r = self.row("county", county, dates[-1])
            rate = self.absence_rate(r)
            lines.append(f"county {county}, {dates[-1]}: enrolled {r['enrolled']}, reported "
                         f"{r['reported']}, absent {r['absent']}, leave "
                         f"{r['sick_leave']}+{r['personal_leave']}, not reported "
                         f"{r['not_reported']}, absence rate "
                         f"{'-' if rate is None else f'{100 * rate:.1f}%'}")
        stages = self.open_by_stage()
        lines.append("open cases by stage: " + (", ".join(
            f"{s} {stages[s]}" for s in sorted(stages, key=stage_rank)) or "none"))
        lines.append(f"messages: {dict(self.messages)}")
        return "\n".join(lines)


def stage_rank(stage):
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def chart(picture, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for township in picture.places("township"):
        points = [(d, picture.absence_rate(picture.row("township", township, d)))
                  for d in picture.dates()]
        points = [(d, 100 * r) for d, r in points if r is not None]
        if points:
            left.plot([d[5:] for d, _ in points], [r for _, r in points], marker="o",
                      label=f"township {township}")
    left.set_title("Daily absence rate per township (any reason)")
    left.set_ylabel("% of reported students")
    left.set_xlabel("school day")
    left.tick_params(axis="x", rotation=60, labelsize=7)
    left.grid(alpha=0.3)
    if picture.places("township"):
        left.legend(fontsize=7)
    medians = picture.median_days_by_stage()
    stages = sorted(medians, key=stage_rank)
    if stages:
        right.bar(stages, [medians[s] for s in stages], color="#4a7ab5")
        right.tick_params(axis="x", rotation=30, labelsize=8)
    else:
        right.text(0.5, 0.5, "no case has ended in a return yet", ha="center", va="center",
                   transform=right.transAxes)
    right.set_title("Median school days to return, by stage reached")
    right.set_ylabel("school days")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", default="127.0.0.1:19092")
    ap.add_argument("--config", help="client properties from bxctl analyst create (SASL)")
    ap.add_argument("--group", default="analyst.example.live",
                    help="consumer group: analyst.<name>.<purpose>")
    ap.add_argument("--attendance-topic", default="bx.analytics.attendance.v1")
    ap.add_argument("--cases-topic", default="bx.analytics.cases.v1")
    ap.add_argument("--risk-topic", default="bx.analytics.risk.v1")
    ap.add_argument("--chart", help="write the PNG chart here")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--idle-exit", type=float, default=0,
                    help="stop after this many seconds without a message (0: run until Ctrl-C)")
    ap.add_argument("--every", type=float, default=10, help="seconds between live tables")
    args = ap.parse_args(argv)

    conf = {"bootstrap.servers": args.brokers, "group.id": args.group,
            "auto.offset.reset": "earliest", "enable.auto.commit": True}
    if args.config:
        conf.update(read_properties(args.config))
        conf["group.id"] = args.group
    kinds = {args.attendance_topic: "attendance", args.cases_topic: "cases",
             args.risk_topic: "risk"}
    consumer = Consumer(conf)
    consumer.subscribe(list(kinds))
    picture = Picture()
    running = [True]
    signal.signal(signal.SIGINT, lambda *_: running.__setitem__(0, False))
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    last_message = last_table = time.monotonic()
    try:
        while running[0]:
            msg = consumer.poll(0.5)
            now = time.monotonic()
            if msg is None:
                if args.idle_exit and now - last_message > args.idle_exit:
                    break
            elif msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer: {msg.error()}", file=sys.stderr)
            else:
                last_message = now
                picture.take(kinds[msg.topic()], json.loads(msg.value()))
            if now - last_table >= args.every:
                print(picture.table(), flush=True)
                last_table = now
    finally:
        consumer.close()
    print(picture.table(), flush=True)
    if args.chart:
        chart(picture, args.chart)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(picture.summary(), f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
