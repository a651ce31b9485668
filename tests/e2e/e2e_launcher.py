#!/usr/bin/python3
"""e2e_launcher — `selfprobe run` loses no count however the program ends.

The counters live in memory shared with the launcher: a program that exits,
calls _exit, is killed by SIGKILL, crashes on SIGSEGV or aborts still gets
every hit reported, with the right ending; fork children get a section of
their own; the exit status is the program's (128 + the signal); the JSON
report is valid; --interval prints counts while the program runs.
"""
import json
import os

import sptest as t

BUILD = os.path.dirname(os.path.dirname(t.LIB))
LAUNCHER = os.path.join(BUILD, "bin", "selfprobe")
ENDS = os.path.join(os.path.dirname(t.TARGET), "sp_ends")
N = 2500

CASES = [  # mode, exit status, ending text
    ("exit", 0, "exited"), ("_exit", 3, "exited"), ("sigkill", 128 + 9, "killed by signal 9"),
    ("segv", 128 + 11, "killed by signal 11"), ("abort", 128 + 6, "killed by signal 6"),
]


def run(args, out=None):
    cmd = [LAUNCHER, "run", "-e", "uprobe:ends_work"] + (["-o", out] if out else []) + args
    return t.run(cmd)


def main():
    t.require_build()
    for mode in ("int3", "auto"):
        for end, status, ending in CASES:
            label = "%s (%s)" % (end, mode)
            out = os.path.join(t.work_dir(), "%s-%s.json" % (end, mode))
            cp = run(["--mode", mode, "--", ENDS, end, str(N)], out)
            t.check(cp.returncode == status, "%s: exit status %d, want %d" % (label, cp.returncode, status),
                    t.clip(cp.stderr))
            t.check(cp.stdout == b"work %d\n" % N, "%s: stdout changed" % label, t.clip(cp.stdout))
            try:
                rep = json.load(open(out))
            except (OSError, ValueError) as e:
                t.check(False, "%s: no valid JSON report: %s" % (label, e))
                continue
            hits = [p["hits"] for p in rep.get("probes", [])]
            t.check(hits == [N], "%s: hits %s, want [%d]" % (label, hits, N), json.dumps(rep)[:600])
            if end in ("exit", "_exit"):
                t.check("from" not in rep, "%s: a normal end should give the full report" % label)
            else:
                t.check(ending in rep.get("ending", ""), "%s: ending %r, want %r"
                        % (label, rep.get("ending"), ending))
        # text report on stderr, even after SIGKILL
        cp = run(["--mode", mode, "--", ENDS, "sigkill", str(N)])
        err = cp.stderr.decode(errors="replace")
        t.check("@count[uprobe:ends_work]: %d" % N in err, "sigkill text (%s): count missing" % mode,
                t.clip(err))
        # fork: a section per process
        out = os.path.join(t.work_dir(), "fork-%s.json" % mode)
        cp = run(["--mode", mode, "--", ENDS, "fork", str(N)], out)
        t.check(cp.returncode == 0, "fork (%s): exit %d" % (mode, cp.returncode), t.clip(cp.stderr))
        try:
            rep = json.load(open(out))
            procs = rep["processes"]
            got = sorted(p["report"]["probes"][0]["hits"] for p in procs)
            t.check(got == [N, N], "fork (%s): hits per process %s, want [%d, %d]" % (mode, got, N, N))
            t.check(any(p["parent"] for p in procs), "fork (%s): the child's section has no parent" % mode)
        except (OSError, ValueError, KeyError, IndexError) as e:
            t.check(False, "fork (%s): bad report: %s" % (mode, e))
    # --interval: counts while it runs
    cp = t.run([LAUNCHER, "run", "-e", "uprobe:libc:malloc", "--interval", "0.2", "--",
                "sh", "-c", "sleep 0.7"])
    err = cp.stderr.decode(errors="replace")
    t.check(err.count("--- ") >= 2 and "running" in err, "--interval printed no running counts", t.clip(err))
    for bad in (["--interval", "0"], ["--interval", "x"], ["--mode", "fast"]):
        cp = t.run([LAUNCHER, "run", "-e", "uprobe:libc:malloc"] + bad + ["--", "true"])
        t.check(cp.returncode == 2 and cp.stderr, "bad usage %s: exit %d" % (bad, cp.returncode))
    t.finish()


if __name__ == "__main__":
    main()
