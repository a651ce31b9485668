#!/usr/bin/python3
"""e2e_unchanged — every libc function return-probed through the launcher
leaves real programs' output and exit status unchanged.

  e2e_unchanged.py [SPEC ...]   (default: uretprobe:libc:*)

For each SPEC (`uretprobe:libc:*` swaps the return address of every libc
function it can; e2e_retall.py runs the other return-swapping kinds and int3
mode through the preload) each program runs as
`selfprobe run -e SPEC -o report.json -- CMD`, in auto mode, and must print
exactly what it prints unprobed (stdout and stderr, byte for byte: the
report goes to its file) and exit the same way.
The report must hold the program's process with hits counted, and no return
the runtime could not account for.

The programs: sptest.real_programs() (ls, shells, python3.11 and a
subprocess, git status, perl, sqlite3 on a workload, zstd and xz both ways
and an xz pipeline), shared with e2e_retall.py.
"""
import json
import os
import sys

import sptest as t

LAUNCHER = t.CLI
SPECS = ["uretprobe:libc:*"]


def main():
    specs = sys.argv[1:] or SPECS
    t.require_build()
    work = t.work_dir()
    env = t.real_env()   # git and the shells read no user configuration
    for name, cmd, stdin in t.real_programs():
        plain = t.run(cmd, env=env, stdin=stdin)
        for spec in specs:
            for mode in ("auto",):
                what = "%s under %s (%s)" % (name, spec, mode)
                out = os.path.join(work, "r-%s.json" % name.replace(" ", "_").replace("/", "_"))
                if os.path.exists(out):
                    os.unlink(out)
                cp = t.run([LAUNCHER, "run", "-e", spec, "--mode", mode, "-o", out, "--"] + cmd,
                           env=env, stdin=stdin)
                t.check(cp.returncode == plain.returncode,
                        "%s: exit %d, unprobed %d" % (what, cp.returncode, plain.returncode), t.clip(cp.stderr))
                t.check(cp.stdout == plain.stdout, "%s: stdout differs from the unprobed run" % what,
                        "probed:\n%s\nunprobed:\n%s" % (t.clip(cp.stdout, 800), t.clip(plain.stdout, 800)))
                t.check(cp.stderr == plain.stderr, "%s: stderr differs from the unprobed run" % what,
                        "probed:\n%s\nunprobed:\n%s" % (t.clip(cp.stderr, 1500), t.clip(plain.stderr, 800)))
                if not t.check(os.path.exists(out), "%s: no report at %s" % (what, out)):
                    continue
                try:
                    r = json.load(open(out))
                except ValueError as e:
                    t.check(False, "%s: report is not JSON (%s)" % (what, e))
                    continue
                # one process: the report itself; several: one "report" each
                procs = [proc.get("report", {}) for proc in r["processes"]] if "processes" in r else [r]
                hits = sum(p.get("hits", 0) for proc in procs for p in proc.get("probes", []))
                t.check(hits > 0, "%s: the report counts hits (%d)" % (what, hits))
    t.finish()


if __name__ == "__main__":
    main()
