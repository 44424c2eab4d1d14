#!/usr/bin/env python3
"""bench/report.py RESULTS.jsonl — the table of bench/run.sh.

For every workload and system: the median over repetitions (min-max), the
FUSE daemon's CPU seconds and peak RSS (medians), and the ratio of the
median against gocryptfs and against the plain FUSE passthrough, oriented
so that > 1.00 means faster than the reference.
"""
import json
import statistics
import sys
from collections import defaultdict

ORDER = ["native", "passthrough", "cmkfs", "cmkfs-cmk", "cmkfs-noxattr", "gocryptfs",
         "securefs", "cryfs", "encfs"]


def main(path):
    rows = defaultdict(list)
    units = {}
    for line in open(path):
        r = json.loads(line)
        rows[(r["workload"], r["system"])].append(r)
        units[r["workload"]] = r["unit"]
    workloads = []
    for (w, _) in rows:
        if w not in workloads:
            workloads.append(w)
    med = {k: statistics.median(x["value"] for x in v) for k, v in rows.items()}

    def ratio(w, s, ref):
        if (w, ref) not in med or med[(w, ref)] == 0 or med[(w, s)] == 0:
            return "-"
        a, b = med[(w, s)], med[(w, ref)]
        # higher is better for rates, lower for seconds
        r = a / b if units[w] != "s" else b / a
        return "%.2f" % r

    print("| workload | system | median (min-max) | unit | daemon CPU s | peak RSS MiB | vs gocryptfs | vs passthrough |")
    print("|---|---|---|---|---|---|---|---|")
    for w in workloads:
        for s in ORDER:
            v = rows.get((w, s))
            if not v:
                continue
            vals = [x["value"] for x in v]
            fmt = "%.2f" if units[w] == "s" else "%.0f"
            cell = (fmt % statistics.median(vals)) + " (" + (fmt % min(vals)) + "-" + (fmt % max(vals)) + ")"
            cpu = statistics.median(x["cpu"] for x in v)
            rss = statistics.median(x["rss_mib"] for x in v)
            print("| %s | %s | %s | %s | %.2f | %.0f | %s | %s |" % (
                w, s, cell, units[w], cpu, rss, ratio(w, s, "gocryptfs"),
                ratio(w, s, "passthrough")))
    # The target: cmkfs against the best single-layer peer of the
    # same run, workload by workload (medians; > 1.00: cmkfs faster).
    peers = ["gocryptfs", "securefs", "cryfs", "encfs"]
    ours = [s for s in ("cmkfs", "cmkfs-cmk", "cmkfs-noxattr")
            if any((w, s) in med for w in workloads)]
    if ours and any((w, p) in med for w in workloads for p in peers):
        print()
        print("| workload | best peer | " + " | ".join(
            "%s vs best" % s for s in ours) + " |")
        print("|---|---|" + "---|" * len(ours))
        for w in workloads:
            have = [p for p in peers if (w, p) in med]
            if not have:
                continue
            pick = min if units[w] == "s" else max
            best = pick(have, key=lambda p: med[(w, p)])
            print("| %s | %s | %s |" % (w, best, " | ".join(
                ratio(w, s, best) if (w, s) in med else "-" for s in ours)))
    # CPU seconds per GiB written, for the sequential write
    for s in ORDER:
        v = rows.get(("seqwrite", s))
        if v:
            gib = v[0]["value"] * v[0]["seconds"] / 1024
            print("# %s: %.2f daemon CPU s per GiB written" % (
                s, statistics.median(x["cpu"] for x in v) / gib))


if __name__ == "__main__":
    main(sys.argv[1])
