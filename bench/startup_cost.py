#!/usr/bin/python3
"""bench/startup_cost.py — what attaching costs a process at start-up, and a
fork+exec storm under the launcher.

    bench/startup_cost.py [BUILD] [--runs N] [--children N] [--only python|storm]
                          [--compare OTHER_BUILD]

Rows (each the median of N runs, interleaved so drift hits them alike):

  python3.11 -c pass     plain / one probe (uprobe:libc:malloc) / uprobe:libc:*
                         each probed row with the on-disk cache (UPROBE_CACHE)
                         cold (emptied before every run), warm and off
  storm                  `selfprobe run -e uprobe:libc:malloc -- sh -c` running
                         N children (fork+exec of /bin/true), plain / cold / warm
                         / off

--compare runs every probed row with a second build as well (e.g. main,
built in another tree), interleaved in the same run, and prints the two side
by side: before (OTHER_BUILD) and after (BUILD), each as a ratio to the same
plain row.

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
    runs, children, only, other = 5, 300, None, None
    while args:
        a = args.pop(0)
        if a == "--runs":
            runs = int(args.pop(0))
        elif a == "--children":
            children = int(args.pop(0))
        elif a == "--only":
            only = args.pop(0)
        elif a == "--compare":
            other = args.pop(0)
        else:
            build = a
    builds = [build] + ([other] if other else [])
    for b in builds:
        for f in (os.path.join(b, "lib", "libselfprobe.so"), os.path.join(b, "bin", "selfprobe")):
            if not os.path.exists(f):
                sys.exit("bench: missing %s" % f)
    if not os.path.exists(PYTHON):
        sys.exit("bench: missing %s" % PYTHON)
    work = tempfile.mkdtemp(prefix="sp-startup-")
    base = {k: v for k, v in os.environ.items() if not k.startswith("UPROBE_") and k != "LD_PRELOAD"}
    storm = ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % children]

    def probed_rows(b, bi):
        lib = os.path.join(b, "lib", "libselfprobe.so")
        launcher = os.path.join(b, "bin", "selfprobe")
        cache = os.path.join(work, "cache%d" % bi)
        env0 = dict(base, UPROBE_CACHE=cache)

        def preload(spec):
            return dict(env0, LD_PRELOAD=lib, UPROBE_SPEC=spec, UPROBE_OUTPUT=os.path.join(work, "r.json"))
        launch = [launcher, "run", "-e", "uprobe:libc:malloc", "-o", os.path.join(work, "storm.json"), "--"] + storm
        off = lambda env: dict(env, UPROBE_CACHE="off")
        # (name, argv, env, cache dir, cache: None = not relevant, "cold" = emptied first, "warm")
        return [
            ("python, uprobe:libc:malloc, cache cold", [PYTHON, "-c", "pass"], preload("uprobe:libc:malloc"), cache, "cold"),
            ("python, uprobe:libc:malloc, cache warm", [PYTHON, "-c", "pass"], preload("uprobe:libc:malloc"), cache, "warm"),
            ("python, uprobe:libc:malloc, cache off", [PYTHON, "-c", "pass"], off(preload("uprobe:libc:malloc")), cache, None),
            ("python, uprobe:libc:*, cache cold", [PYTHON, "-c", "pass"], preload("uprobe:libc:*"), cache, "cold"),
            ("python, uprobe:libc:*, cache warm", [PYTHON, "-c", "pass"], preload("uprobe:libc:*"), cache, "warm"),
            ("python, uprobe:libc:*, cache off", [PYTHON, "-c", "pass"], off(preload("uprobe:libc:*")), cache, None),
            ("storm of %d, selfprobe run, cache cold" % children, launch, env0, cache, "cold"),
            ("storm of %d, selfprobe run, cache warm" % children, launch, env0, cache, "warm"),
            ("storm of %d, selfprobe run, cache off" % children, launch, off(env0), cache, None),
        ]
    plain = [("python -c pass, plain", [PYTHON, "-c", "pass"], base, None, None),
             ("storm of %d, plain" % children, storm, base, None, None)]
    per_build = [probed_rows(b, i) for i, b in enumerate(builds)]
    names = [plain[0][0]] + [r[0] for r in per_build[0] if r[0].startswith("python")] + \
            [plain[1][0]] + [r[0] for r in per_build[0] if r[0].startswith("storm")]
    if only:
        names = [n for n in names if n.startswith(only)]
    todo = [(None, r) for r in plain] + [(bi, r) for bi, rows in enumerate(per_build) for r in rows]
    todo = [(bi, r) for bi, r in todo if r[0] in names]
    res = {}
    for _ in range(runs):
        for bi, (name, argv, env, cache, c) in todo:
            if c == "cold":
                shutil.rmtree(cache, ignore_errors=True)
            elif c == "warm" and not os.path.isdir(cache):
                run(argv, env)      # fill it
            res.setdefault((bi, name), []).append(run(argv, env))

    def med(key):
        if key not in res:
            return None
        return (statistics.median(w for w, _ in res[key]), statistics.median(c for _, c in res[key]))
    cols = [0] if not other else [1, 0]   # before (OTHER_BUILD), after (BUILD)
    heads = [""] if not other else ["before ", "after "]
    print("%-42s" % "" + "".join(" %9s %6s %9s %6s" % (h + "wall", "ratio", h + "cpu", "ratio") for h in heads))
    ref = None
    for name in names:
        if name.endswith("plain"):
            ref = med((None, name))
            print("%-42s" % name + "".join(" %9.3f %5.1fx %9.3f %5.1fx" % (ref[0], 1.0, ref[1], 1.0) for _ in cols))
            continue
        line = "%-42s" % name
        for bi in cols:
            m = med((bi, name))
            line += " %9.3f %5.1fx %9.3f %5.1fx" % (m[0], m[0] / ref[0], m[1], m[1] / ref[1])
        print(line)
    if other:
        print("before: %s\nafter:  %s" % (os.path.abspath(other), os.path.abspath(build)))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
