#!/usr/bin/python3
"""bench/startup_cost.py — what attaching costs a process at start-up, and a
fork+exec storm under the launcher.

    bench/startup_cost.py [BUILD] [--runs N] [--children N] [--only python|storm]

Rows (each the median of N runs, interleaved so drift hits them alike):

  python3.11 -c pass     plain / one probe (uprobe:libc:malloc) / uprobe:libc:*
                         each probed row with the on-disk cache (UPROBE_CACHE)
                         cold (emptied before every run) and warm
  storm                  `selfprobe run -e uprobe:libc:malloc -- sh -c` running
                         N children (fork+exec of /bin/true), plain / cold / warm

Wall time on a shared machine mostly measures the other users; CPU time
(user+sys of the process tree, from wait4) is what attaching costs.  Both are
printed, with the ratio to the plain row.  Prints only: no pass/fail.
"""
import os
import shutil
import statistics
import sys
import tempfile
import time

PYTHON = "/usr/bin/python3.11"


def run(argv, env):
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(os.devnull, os.O_RDWR)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("bench: %s exited %d" % (" ".join(argv), os.waitstatus_to_exitcode(status)))
    return wall, ru.ru_utime + ru.ru_stime


def main():
    args = sys.argv[1:]
    build = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build")
    runs, children, only = 5, 300, None
    while args:
        a = args.pop(0)
        if a == "--runs":
            runs = int(args.pop(0))
        elif a == "--children":
            children = int(args.pop(0))
        elif a == "--only":
            only = args.pop(0)
        else:
            build = a
    lib = os.path.join(build, "lib", "libselfprobe.so")
    launcher = os.path.join(build, "bin", "selfprobe")
    for f in (lib, launcher, PYTHON):
        if not os.path.exists(f):
            sys.exit("bench: missing %s" % f)
    work = tempfile.mkdtemp(prefix="sp-startup-")
    cache = os.path.join(work, "cache")
    base = {k: v for k, v in os.environ.items() if not k.startswith("UPROBE_") and k != "LD_PRELOAD"}
    base["UPROBE_CACHE"] = cache

    def preload(spec):
        return dict(base, LD_PRELOAD=lib, UPROBE_SPEC=spec, UPROBE_OUTPUT=os.path.join(work, "r.json"))

    storm = ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % children]
    launch = [launcher, "run", "-e", "uprobe:libc:malloc", "-o", os.path.join(work, "storm.json"), "--"] + storm
    # (name, argv, env, cache: None = not relevant, "cold" = emptied first, "warm")
    rows = [
        ("python -c pass, plain", [PYTHON, "-c", "pass"], base, None),
        ("python, uprobe:libc:malloc, cache cold", [PYTHON, "-c", "pass"], preload("uprobe:libc:malloc"), "cold"),
        ("python, uprobe:libc:malloc, cache warm", [PYTHON, "-c", "pass"], preload("uprobe:libc:malloc"), "warm"),
        ("python, uprobe:libc:*, cache cold", [PYTHON, "-c", "pass"], preload("uprobe:libc:*"), "cold"),
        ("python, uprobe:libc:*, cache warm", [PYTHON, "-c", "pass"], preload("uprobe:libc:*"), "warm"),
        ("storm of %d, plain" % children, storm, base, None),
        ("storm of %d, selfprobe run, cache cold" % children, launch, base, "cold"),
        ("storm of %d, selfprobe run, cache warm" % children, launch, base, "warm"),
    ]
    if only:
        rows = [r for r in rows if r[0].startswith(only)]
    res = {r[0]: [] for r in rows}
    for _ in range(runs):
        for name, argv, env, c in rows:
            if c == "cold":
                shutil.rmtree(cache, ignore_errors=True)
            elif c == "warm" and not os.path.isdir(cache):
                run(argv, env)      # fill it
            res[name].append(run(argv, env))
    print("%-46s %10s %8s %10s %8s" % ("", "wall s", "ratio", "cpu s", "ratio"))
    ref = None
    for name, _, _, _ in rows:
        wall = statistics.median(w for w, _ in res[name])
        cpu = statistics.median(c for _, c in res[name])
        if name.endswith("plain"):
            ref = (wall, cpu)
        print("%-46s %10.3f %7.1fx %10.3f %7.1fx" % (name, wall, wall / ref[0], cpu, cpu / ref[1]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
