#!/usr/bin/python3
"""bench/sqlite_hot.py — every libsqlite3 function probed on a hot SQL
workload: what the trap-free path is worth where a program spends its time.

  bench/sqlite_hot.py [BUILD]        (default: build/ next to bench/)

Runs `sqlite3 :memory:` on the shared SQL workload (tests/e2e/sptest.py
sql_workload: 20,000 inserts in a transaction, aggregates, an update, a
delete, a join, a recursive CTE, then 60 counts by group), unprobed and
under LD_PRELOAD=libselfprobe.so UPROBE_SPEC='uprobe:libsqlite3:*' in auto
mode, in one run.  Prints both times (the best of REPEAT runs each), their
ratio against the target (probed <= 2 x plain), whether the output is
identical, the share of attached sites on the jmp path (jmp5 and hop) and
the share of hits taken by int3, from the JSON report, with the int3
reasons that remain.  A benchmark, not a test: only a differing output
makes it exit 1.
"""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import sptest  # noqa: E402  (the shared workload)

ROWS, SELECTS = 20000, 60
REPEAT = int(os.environ.get("REPEAT", "3"))
TARGET_RATIO = 2.0


def timed(cmd, stdin, env=None):
    best, out = None, None
    for _ in range(REPEAT):
        t0 = time.monotonic()
        cp = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        took = time.monotonic() - t0
        if cp.returncode != 0:
            sys.exit("sqlite_hot: %s exited %d: %s" % (" ".join(cmd), cp.returncode, cp.stderr.decode()[-400:]))
        best = took if best is None else min(best, took)
        out = cp.stdout
    return best, out


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build"))
    lib = os.path.join(build, "lib", "libselfprobe.so")
    sqlite3 = shutil.which("sqlite3")
    if not os.path.exists(lib) or not sqlite3:
        sys.exit("sqlite_hot: needs %s (build first) and sqlite3 in PATH" % lib)
    work = tempfile.mkdtemp(prefix="sqlite_hot.")
    report = os.path.join(work, "report.json")
    sql = sptest.sql_workload(ROWS, SELECTS)
    cmd = [sqlite3, ":memory:"]
    plain, out_plain = timed(cmd, sql)
    env = dict(os.environ, LD_PRELOAD=lib, UPROBE_SPEC="uprobe:libsqlite3:*", UPROBE_MODE="auto",
               UPROBE_OUTPUT=report)
    probed, out_probed = timed(cmd, sql, env)
    with open(report) as f:
        rep = json.load(f)
    shutil.rmtree(work, ignore_errors=True)

    probes = rep["probes"]
    patches = collections.Counter(e.get("patch", "?") for e in probes)
    hits = collections.Counter()
    for e in probes:
        hits[e["mode"]] += e["hits"]
    total = sum(hits.values())
    same = out_plain == out_probed
    ratio = probed / plain
    print("workload: sqlite3 :memory:, %d inserts, %d selects by group (%d statements)"
          % (ROWS, SELECTS, sql.count(b";")))
    print("plain:    %.3f s (best of %d)" % (plain, REPEAT))
    print("probed:   %.3f s (best of %d), uprobe:libsqlite3:* auto, %d sites" % (probed, REPEAT, len(probes)))
    print("ratio:    %.2f x  (target <= %.0f x: %s)" % (ratio, TARGET_RATIO, "met" if ratio <= TARGET_RATIO else "NOT met"))
    print("output:   %s" % ("identical" if same else "DIFFERS"))
    print("sites:    %s; jmp share %.1f %%" % (", ".join("%s %d" % kv for kv in sorted(patches.items())),
                                               100.0 * (patches["jmp5"] + patches["hop"]) / max(1, len(probes))))
    print("hits:     %d, int3 share %.2f %%" % (total, 100.0 * hits["int3"] / max(1, total)))
    reasons = collections.Counter(e["reason"] for e in probes if e["mode"] == "int3")
    for reason, n in reasons.most_common(8):
        print("  int3 %4d sites, %10d hits: %s" % (n, sum(e["hits"] for e in probes if e["reason"] == reason),
                                                  reason))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
