#!/usr/bin/env python3
"""bench/score/mix.py: the Redis command mix bx-score sends per event, and the arithmetic that turns
redis-benchmark rates into events/s.

    mix.py calls CALLS_FILE EVENTS                                      > mix   (one "kind calls per-event" a line)
    mix.py classify MONITOR_FILE EVENTS SHA_APPLY SHA_SUMMARY           > mix   (from a redis-cli MONITOR capture)
    mix.py events MIX RATES                                             (events/s of a mix)

bench/score/run.sh uses `calls`: bx-score counts its own Redis calls by kind
(bx_score_redis_calls_total, services/bx-score/store.c), which sees what MONITOR cannot (whether a
read found the hash) and nothing of other work on the same server. Kinds:
    apply_fact_write   EVALSHA apply on bx:s:{S}:facts that stored (an HSET inside)
    apply_fact_nowrite EVALSHA apply on bx:s:{S}:facts that stored nothing
    apply_report       EVALSHA apply on bx:c:{C}:reported
    hgetall_facts      HGETALL bx:s:{S}:facts that found the hash
    hgetall_sum        HGETALL bx:s:{S}:sum that found the hash (the previous summary)
    hgetall_reported   HGETALL bx:c:{C}:reported that found the hash
    hgetall_empty      HGETALL of a hash that does not exist (most students have no facts)
    hmget              HMGET bx:s:{S}:facts of the fields of implied presences (is one held?)
    summary_write      EVALSHA summary (bx-score sends only summaries that changed)
`classify` (MONITOR; top-level commands of the bench's connections, commands inside a script shown
as "[0 lua]" decide the variant) is the earlier way, kept for captures of older builds; it cannot
tell hgetall_empty from the others.
"""
import re
import sys

LINE = re.compile(r'^\d+\.\d+ \[(\d+) ([^\]]+)\] (.*)$')
ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def bench_clients(path):
    """The client addresses that touched the bench's keys ({BSC...}): the capture is server-wide
    and other work on the same Redis is not counted."""
    clients = set()
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            m = LINE.match(line.rstrip('\n'))
            if m and m.group(2) != 'lua' and '{BSC' in m.group(3):
                clients.add(m.group(2))
    return clients


def classify(path, events, sha_apply, sha_summary):
    clients = bench_clients(path)
    counts = {}
    quads = 0
    pending = None  # the top-level script call whose inner commands follow

    def close():
        nonlocal pending
        if pending is None:
            return
        kind, wrote = pending
        if kind == 'apply_fact':
            kind = 'apply_fact_write' if wrote else 'apply_fact_nowrite'
        elif kind == 'summary':
            kind = 'summary_write' if wrote else 'summary_same'
        counts[kind] = counts.get(kind, 0) + 1
        pending = None

    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            m = LINE.match(line.rstrip('\n'))
            if not m:
                continue
            who, rest = m.group(2), m.group(3)
            args = ARG.findall(rest)
            if not args:
                continue
            name = args[0].upper()
            if who == 'lua':
                if pending is not None and name in ('HSET', 'DEL'):
                    pending = (pending[0], True)
                continue
            close()
            if who not in clients:
                continue
            key = args[3] if len(args) > 3 else (args[1] if len(args) > 1 else '')
            if name == 'EVALSHA' and len(args) > 3 and args[1] == sha_apply:
                if key.endswith(':facts'):
                    pending = ('apply_fact', False)
                    quads += (len(args) - 4) // 4
                else:
                    counts['apply_report'] = counts.get('apply_report', 0) + 1
            elif name == 'EVALSHA' and len(args) > 3 and args[1] == sha_summary:
                pending = ('summary', False)
            elif name == 'HGETALL':
                key = args[1]
                kind = ('hgetall_facts' if key.endswith(':facts') else
                        'hgetall_sum' if key.endswith(':sum') else
                        'hgetall_reported' if key.endswith(':reported') else 'other:HGETALL')
                counts[kind] = counts.get(kind, 0) + 1
            else:
                counts['other:' + name] = counts.get('other:' + name, 0) + 1
    close()
    for kind in sorted(counts):
        print(f'{kind} {counts[kind]} {counts[kind] / events:.4f}')
    print(f'# facts per apply_fact call: '
          f'{quads / max(1, counts.get("apply_fact_write", 0) + counts.get("apply_fact_nowrite", 0)):.3f}')


def events(mix_path, rates_path):
    """Seconds per event = sum over kinds of calls per event / calls per second."""
    per_event = {}
    with open(mix_path) as f:
        for line in f:
            if line.startswith('#'):
                continue
            kind, _, per = line.split()
            if not kind.startswith('other:'):
                per_event[kind] = float(per)
    rates = {}
    with open(rates_path) as f:
        for line in f:
            kind, rate = line.split()
            rates[kind] = float(rate)
    secs = sum(per / rates[kind] for kind, per in per_event.items())
    calls = sum(per_event.values())
    print(f'{1 / secs:.0f} {calls * (1 / secs):.0f} {calls:.3f}')


def calls(calls_path, events):
    """The mix from bx-score's own counters (bx_score_redis_calls_total, one "kind count" a line)."""
    counts = {}
    with open(calls_path) as f:
        for line in f:
            kind, count = line.split()
            counts[kind] = int(count)
    for kind in sorted(counts):
        if counts[kind]:
            print(f'{kind} {counts[kind]} {counts[kind] / events:.4f}')


if __name__ == '__main__':
    if len(sys.argv) == 6 and sys.argv[1] == 'classify':
        classify(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif len(sys.argv) == 4 and sys.argv[1] == 'calls':
        calls(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == 'events':
        events(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
