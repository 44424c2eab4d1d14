#!/usr/bin/env python3
"""bench/report.py RESULTS.jsonl — the tables of bench/run.sh.

1. Every workload and system: the median over repetitions (min-max), the
   number of repetitions, the FUSE daemon's CPU seconds and peak RSS
   (VmHWM during that workload; medians), the ratio of the median against
   the best single-layer peer of the run (gocryptfs, securefs,
   securefs-full, cryfs, encfs: whichever ran) and against libfuse's
   passthrough_hp.
2. For every cmkfs system, the table of issue #19: cmkfs, the best peer and
   passthrough_hp side by side, with the targets (>= 1.00 x the best peer
   on every workload, sequential write and read >= 0.80 x passthrough_hp,
   daemon peak RSS < 64 MiB in every workload).
3. Daemon CPU seconds per GiB for the sequential rows, highest peak RSS.

Ratios are ratios of medians, oriented so that above 1.00 means faster
than the reference (rate / rate, or seconds of the reference / seconds).
Rows recorded as failed (a command of the workload failed) are counted
and shown, never averaged in. Old results files (randrw, no
passthrough_hp) are read as they are; what is missing prints as "-".
"""
import json
import statistics
import sys
from collections import defaultdict

ORDER = ["native", "passthrough", "passthrough_hp", "cmkfs", "cmkfs-cmk", "cmkfs-noxattr",
         "gocryptfs", "securefs", "securefs-full", "cryfs", "encfs"]
PEERS = ["gocryptfs", "securefs", "securefs-full", "cryfs", "encfs"]
PHD = "passthrough_hp"
SEQ = ("seqwrite", "seqread")
RSS_MAX = 64.0


def main(path):
    rows = defaultdict(list)
    failed = defaultdict(int)
    units = {}
    workloads, systems = [], []
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        w, s = r["workload"], r["system"]
        if w not in workloads:
            workloads.append(w)
        if s not in systems:
            systems.append(s)
        if r.get("failed"):
            failed[(w, s)] += 1
            continue
        rows[(w, s)].append(r)
        units[w] = r["unit"]
    order = [s for s in ORDER if s in systems] + [s for s in systems if s not in ORDER]
    ours = [s for s in order if s.startswith("cmkfs")]
    med = {k: statistics.median(x["value"] for x in v) for k, v in rows.items()}
    cpu = {k: statistics.median(x["cpu"] for x in v) for k, v in rows.items()}
    rss = {k: statistics.median(x["rss_mib"] for x in v) for k, v in rows.items()}

    def fmt(w, v):
        return ("%.2f" if units[w] == "s" else "%.0f") % v

    def rnum(w, s, ref):
        if (w, ref) not in med or (w, s) not in med or not med[(w, ref)] or not med[(w, s)]:
            return None
        a, b = med[(w, s)], med[(w, ref)]
        return a / b if units.get(w) != "s" else b / a

    def ratio(w, s, ref):
        r = rnum(w, s, ref)
        return "-" if r is None else "%.2f" % r

    def best_peer(w):
        have = [p for p in PEERS if (w, p) in med]
        if not have:
            return None
        pick = min if units[w] == "s" else max
        return pick(have, key=lambda p: med[(w, p)])

    def daemon(s, table, k, f="%.2f"):
        return "-" if s == "native" or k not in table else f % table[k]

    print("| workload | system | median (min-max) | unit | reps | daemon CPU s | peak RSS MiB "
          "| vs best peer | vs passthrough_hp |")
    print("|---|---|--:|---|--:|--:|--:|--:|--:|")
    for w in workloads:
        best = best_peer(w)
        for s in order:
            v = rows.get((w, s), [])
            nf = failed.get((w, s), 0)
            if not v and not nf:
                continue
            reps = "%d" % len(v) + (" (%d FAILED)" % nf if nf else "")
            if not v:
                print("| %s | %s | FAILED | | %s | | | | |" % (w, s, reps))
                continue
            vals = [x["value"] for x in v]
            cell = "%s (%s-%s)" % (fmt(w, statistics.median(vals)), fmt(w, min(vals)),
                                    fmt(w, max(vals)))
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w, s, cell, units[w], reps, daemon(s, cpu, (w, s)),
                daemon(s, rss, (w, s), "%.0f"),
                ratio(w, s, best) if best else "-", ratio(w, s, PHD)))

    for s in ours:
        if not any((w, s) in med or (w, s) in failed for w in workloads):
            continue
        print()
        print("%s against the best single-layer peer and passthrough_hp (medians; "
              "above 1.00: %s faster):" % (s, s))
        print()
        print("| workload | %s | best single-layer peer | %s / best | passthrough_hp "
              "| %s / passthrough_hp | daemon CPU s | peak RSS MiB | targets |" % (s, s, s))
        print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
        misses = []
        for w in workloads:
            if (w, s) not in med:
                if failed.get((w, s)):
                    print("| %s | FAILED | | | | | | | |" % w)
                    misses.append("%s failed" % w)
                continue
            u = " " + units[w]
            best = best_peer(w)
            rb, rp = (rnum(w, s, best) if best else None), rnum(w, s, PHD)
            t = []
            if rb is not None:
                t.append("peer ok" if rb >= 1.0 else "PEER")
                if rb < 1.0:
                    misses.append("%s %.2fx %s" % (w, rb, best))
            if w in SEQ and rp is not None:
                t.append("hp ok" if rp >= 0.8 else "HP")
                if rp < 0.8:
                    misses.append("%s %.2fx passthrough_hp" % (w, rp))
            t.append("rss ok" if rss[(w, s)] < RSS_MAX else "RSS")
            if rss[(w, s)] >= RSS_MAX:
                misses.append("%s peak RSS %.0f MiB" % (w, rss[(w, s)]))
            print("| %s | %s%s | %s | %s | %s | %s | %.2f | %.0f | %s |" % (
                w, fmt(w, med[(w, s)]), u,
                "%s (%s)" % (fmt(w, med[(w, best)]), best) if best else "-",
                "-" if rb is None else "%.2f" % rb,
                fmt(w, med[(w, PHD)]) if (w, PHD) in med else "-",
                "-" if rp is None else "%.2f" % rp,
                cpu[(w, s)], rss[(w, s)], " ".join(t)))
        print()
        print("# %s targets: %s" % (s, "all met in this run" if not misses
                                     else "missed: " + "; ".join(misses)))

    print()
    for w in SEQ:
        line = []
        for s in order:
            v = rows.get((w, s))
            if v and s != "native":
                gib = v[0]["value"] * v[0]["seconds"] / 1024
                line.append("%s %.2f" % (s, statistics.median(x["cpu"] for x in v) / gib))
        if line:
            print("# daemon CPU s per GiB (%s): %s" % (w, ", ".join(line)))
    line = []
    for s in order:
        have = [(rss[(w, s)], w) for w in workloads if (w, s) in rss]
        if have and s != "native":
            m, w = max(have)
            line.append("%s %.0f (%s)" % (s, m, w))
    if line:
        print("# highest daemon peak RSS MiB over the workloads: " + ", ".join(line))


if __name__ == "__main__":
    main(sys.argv[1])
