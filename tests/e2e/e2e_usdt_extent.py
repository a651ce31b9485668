#!/usr/bin/python3
"""e2e_usdt_extent — USDT notes in a program stripped to .dynsym take the
jmp when their function's extent comes from .eh_frame.

/usr/bin/python3.11 (Debian's: stripped, with python:* notes inside
functions that have no symbol any more).  A fixed script (PYTHONHASHSEED=0)
runs under usdt:/usr/bin/python3.11:python:* in int3 mode and in auto mode:

  list      `selfprobe list --json --usdt` gives every python:* note the jmp
  live      auto mode: function__entry, function__return and line are on
            the jmp path (patch jmp5), and every note counts exactly the
            hits int3 mode counts; the script's output is the same
"""
import json
import os
import subprocess

import sptest as t

PYTHON = "/usr/bin/python3.11"
CLI = os.path.join(t.BUILD, "bin", "selfprobe")
SCRIPT = "def f(n): return n + 1\ns = 0\nfor i in range(20000): s += f(i)\nprint(s)\n"
HOT = ("python:function__entry", "python:function__return", "python:line")


def main():
    t.require_build()
    if not os.path.exists(PYTHON):
        t.skip("%s is not installed" % PYTHON)
    cp = subprocess.run([CLI, "list", "--json", "--usdt", PYTHON], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=120)
    if not t.check(cp.returncode == 0, "list --usdt %s: exit %d" % (PYTHON, cp.returncode), t.clip(cp.stderr)):
        t.finish()
    notes = {"%s:%s" % (n["provider"], n["name"]): n for n in json.loads(cp.stdout)["usdt"]}
    if not all(h in notes for h in HOT):
        t.skip("%s has no python:function__entry/return/line notes" % PYTHON)
    for name, n in sorted(notes.items()):
        if name.startswith("python:"):
            t.check(n["mode"] == "jmp", "list: %s takes %s (%s)" % (name, n["mode"], n.get("reason")))
    runs = {}
    for mode in ("int3", "auto"):
        cp, rep = t.run_probed([PYTHON, "-c", SCRIPT], "usdt:%s:python:*" % PYTHON, mode,
                               extra={"PYTHONHASHSEED": "0"})
        t.check(cp.returncode == 0 and cp.stdout == b"200010000\n",
                "%s: exit %d, output %r" % (mode, cp.returncode, cp.stdout), t.clip(cp.stderr))
        if rep:
            runs[mode] = {p["symbol"]: p for p in rep["probes"]}
    if len(runs) == 2:
        for h in HOT:
            a = runs["auto"].get(h)
            t.check(a and a["mode"] == "jmp" and a["patch"] == "jmp5",
                    "auto: %s not on the jmp5 path" % h, t.fmt_probe(a) if a else "missing")
        t.check(runs["int3"].keys() == runs["auto"].keys(), "the two runs probed different notes")
        for name, p in runs["int3"].items():
            a = runs["auto"].get(name)
            t.check(a and a["hits"] == p["hits"] and a["missed"] == 0 and p["hits"] > 0 or
                    (a and a["hits"] == p["hits"] == 0),
                    "%s: %s hits in auto, %d in int3" % (name, a and a["hits"], p["hits"]))
        t.check(runs["auto"]["python:function__entry"]["hits"] >= 20000, "function__entry hit too rarely")
    t.finish()


if __name__ == "__main__":
    main()
