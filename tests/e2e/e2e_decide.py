#!/usr/bin/python3
"""e2e_decide — one decision for the CLI and the runtime; indirect jumps proven.

  e2e_decide.py            everything below
  e2e_decide.py switch     compiler-made jump tables and computed gotos
                           (libsp_switch_gcc.so, libsp_switch_clang.so: -O2
                           -fPIC): under uprobe:LIB:* in auto mode, from 2
                           threads, every function on the jmp path (tc_tail's
                           window is its tail call, jmp *8(%rsi)), counted
                           exactly, results unchanged
  e2e_decide.py compare    `selfprobe list --json LIB` against a live
                           uprobe:LIB:* report under sqlite3, function by
                           function (mode and reason equal), for libc.so.6
                           and libsqlite3.so.0
"""
import json
import os
import shutil
import subprocess
import sys

import sptest as t

CLI = t.CLI
TESTS = os.path.dirname(t.TARGET)
DRIVER = os.path.join(TESTS, "sp_switch_target")
ITERS = 20000
FUNCS = ["sw_dense", "sw_offset", "sw_loop", "cg_run", "tc_method", "tc_ptr", "tc_tail"]
SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"
# What only a live process decides (the CLI reports them "not checked").
LIVE_ONLY = ("another probe site lies inside its jmp window", "a thread did not answer the stop check",
             "a thread was blocked inside the jmp window", "no code memory", "trampoline")


def test_switch():
    for cc in ("gcc", "clang"):
        lib = os.path.join(TESTS, "libsp_switch_%s.so" % cc)
        if not os.path.exists(lib):
            if cc == "clang":
                t.info("SKIP part: clang is not installed (Debian package clang): no %s" % lib)
                continue
            t.check(False, "%s is not built" % lib)
            continue
        cmd = [DRIVER, lib, str(ITERS)]
        ref = t.run(cmd)
        if not t.check(ref.returncode == 0, "%s: plain run exit %d" % (cc, ref.returncode), t.clip(ref.stderr)):
            continue
        spec = "uprobe:libsp_switch_%s:*" % cc
        cp, rep = t.run_probed(cmd, spec, "auto")
        label = "%s under %s (auto)" % (os.path.basename(lib), spec)
        t.check(cp.returncode == 0, "%s: exit %d" % (label, cp.returncode), t.clip(cp.stderr))
        t.check(cp.stdout == ref.stdout, "%s: output differs from the plain run" % label,
                "got:\n%s\nwant:\n%s" % (t.clip(cp.stdout), t.clip(ref.stdout)))
        if not rep:
            continue
        by = t.probes_by(rep, "symbol")
        for name in FUNCS:
            es = by.get(name, [])
            if not t.check(len(es) == 1, "%s: %d report entries for %s" % (label, len(es), name)):
                continue
            e = es[0]
            t.check(e["mode"] == "jmp" and e["reason"] is None,
                    "%s: %s is not on the jmp path" % (label, name), t.fmt_probe(e))
            t.check(e["hits"] == 2 * ITERS and e["missed"] == 0,
                    "%s: %s counted %d (missed %d), want %d" % (label, name, e["hits"], e["missed"], 2 * ITERS),
                    t.fmt_probe(e))


def listed(lib):
    cp = subprocess.run([CLI, "list", "--json", lib], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=600)
    if not t.check(cp.returncode == 0, "selfprobe list --json %s: exit %d" % (lib, cp.returncode),
                   t.clip(cp.stderr)):
        return None
    return {f["name"]: f for f in json.loads(cp.stdout)["functions"]}


def test_compare():
    if not os.path.exists(SQLITE3):
        t.check(False, "sqlite3 is not installed (Debian package sqlite3)")
        return
    cmd = [SQLITE3, ":memory:"]
    sql = t.sql_workload(300)
    ref = t.run(cmd, stdin=sql)
    if not t.check(ref.returncode == 0, "plain sqlite3: exit %d" % ref.returncode, t.clip(ref.stderr)):
        return
    for obj, soname in (("libsqlite3", "libsqlite3.so.0"), ("libc", "libc.so.6")):
        spec = "uprobe:%s:*" % obj
        cp, rep = t.run_probed(cmd, spec, "auto", stdin=sql)
        label = "sqlite3 under %s (auto)" % spec
        t.check(cp.returncode == 0 and cp.stdout == ref.stdout, "%s: exit %d or output differs"
                % (label, cp.returncode), t.clip(cp.stderr))
        if not rep:
            continue
        path = rep["probes"][0]["object"] if rep["probes"] else soname
        lst = listed(path)
        if lst is None:
            continue
        same = differ = live_only = 0
        bad = []
        for e in rep["probes"]:
            f = lst.get(e["symbol"])
            if f is None or f["ifunc"]:
                continue   # an IFUNC's site is its resolver's choice: list says "ifunc"
            if (f["mode"], f["reason"]) == (e["mode"], e["reason"]):
                same += 1
            elif e["reason"] and any(p in e["reason"] for p in LIVE_ONLY):
                live_only += 1
            else:
                differ += 1
                bad.append("%s: list %s %r, live %s %r" % (e["symbol"], f["mode"], f["reason"],
                                                          e["mode"], e["reason"]))
        t.info("%s: %d functions decided alike by list and the live run, %d by live-only rules, %d differ"
               % (soname, same, live_only, differ))
        t.check(same > 100, "%s: only %d functions compared" % (label, same))
        t.check(differ == 0, "%s: %d functions decided differently by list and the live run"
                % (label, differ), "\n".join(bad[:20]))


def main():
    t.require_build()
    which = sys.argv[1:] or ["switch", "compare"]
    if "switch" in which:
        test_switch()
    if "compare" in which:
        test_compare()
    t.finish()


if __name__ == "__main__":
    main()
