#!/usr/bin/python3
"""e2e_scale — every function of libc probed at once.

  e2e_scale.py [programs|fork]...      (default: both)

  programs  `uprobe:libc:*` on `ls -la /usr/bin`, `sort` of a generated
            file, `sqlite3 :memory:` with a generated workload and
            `python3 -c '...'`, in UPROBE_MODE auto and int3: stdout and the
            exit status are the unprobed run's (stderr too, once the
            runtime's own "selfprobe:" lines are set aside), the report has
            more than 3000 probes, every entry with hits >= 0 and missed
            >= 0, and every function that could not be probed is in the
            errors with a reason.  Prints the share of probes on the jmp
            path and the time taken against the unprobed run.
  fork      `bash -c` and `sh -c 'ls ...; sort ...; echo done'` (the shell
            forks, the children exec) with UPROBE_OUTPUT=DIR/r-%p.json: one
            valid report per process (the shell and its two children), each
            named by its own pid, each with the whole libc probed.  Debian's
            sh (dash) ends with _exit, never exit.
"""
import glob
import os
import sys
import time

import sptest as t

SPEC = "uprobe:libc:*"
MODES = ("auto", "int3")
MIN_PROBES = 3000
PYTHON = "/usr/bin/python3"      # not a PATH lookup: that may find a wrapper script

PY_CODE = r"""
import json, re, hashlib, collections, os, time
words = ["w%d" % (i * 7919 % 1000) for i in range(20000)]
c = collections.Counter(words)
print(len(c), c.most_common(3))
print(hashlib.sha256(" ".join(words).encode()).hexdigest())
d = json.loads(json.dumps({"k%d" % i: [i, str(i), i * 0.5] for i in range(2000)}))
print(len(d), sum(v[0] for v in d.values()))
print(len(re.findall(r"w1\d\d\b", " ".join(words))))
print(sorted(os.listdir("/usr/lib/python3.11"))[:3])
"""


def programs():
    """[(name, cmd, stdin)]"""
    return [("ls", ["ls", "-la", "/usr/bin"], None),
            ("sort", ["sort", t.sort_input(20000, 4242)], None),
            ("sqlite3", ["sqlite3", ":memory:"], t.sql_workload(2000)),
            ("python3", [PYTHON, "-c", PY_CODE], None)]


def check_report(label, rep):
    probes = rep["probes"]
    t.check(len(probes) > MIN_PROBES, "%s: %d probes, want more than %d" % (label, len(probes), MIN_PROBES))
    bad = [t.fmt_probe(e) for e in probes if e["hits"] < 0 or e["missed"] < 0]
    t.check(not bad, "%s: %d entries with negative counts" % (label, len(bad)), "\n".join(bad[:20]))
    t.check(all(e["spec"] == SPEC for e in probes), "%s: entries with another spec" % label)
    t.check(sum(e["hits"] for e in probes) > 0, "%s: no hits at all" % label)
    t.check(all(e["spec"] == SPEC and e["message"] for e in rep["errors"]),
            "%s: errors without a reason or for another spec" % label, rep["errors"][:10])
    addrs = [e["address"] for e in probes]
    t.check(len(set(addrs)) == len(addrs), "%s: %d sites probed twice" % (label, len(addrs) - len(set(addrs))))


def test_programs():
    for name, cmd, stdin in programs():
        if not t.check(t.run(["sh", "-c", "command -v %s" % cmd[0]]).returncode == 0,
                       "%s is not installed" % cmd[0]):
            continue
        t0 = time.monotonic()
        ref = t.run(cmd, stdin=stdin)
        t_ref = time.monotonic() - t0
        for mode in MODES:
            label = "%s [%s] (%s)" % (name, SPEC, mode)
            t0 = time.monotonic()
            cp, rep = t.run_probed(cmd, SPEC, mode, stdin=stdin)
            took = time.monotonic() - t0
            t.check(cp.returncode == ref.returncode, "%s: exit %d, unprobed %d"
                    % (label, cp.returncode, ref.returncode), t.clip(cp.stderr))
            t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run (%d vs %d bytes)"
                    % (label, len(cp.stdout), len(ref.stdout)), t.clip(cp.stderr))
            t.check(t.own_lines_removed(cp.stderr) == ref.stderr,
                    "%s: stderr (without selfprobe's lines) differs from the unprobed run" % label,
                    "got:\n%s\nwant:\n%s" % (t.clip(cp.stderr, 1000), t.clip(ref.stderr, 1000)))
            if not rep:
                continue
            check_report(label, rep)
            probes = rep["probes"]
            jmp = sum(1 for e in probes if e["mode"] == "jmp")
            if mode == "int3":
                t.check(jmp == 0, "%s: %d probes on the jmp path" % (label, jmp))
            t.info("%s: %d probes, %d on the jmp path (%.1f %%), %d not probed (errors), "
                   "%d hits, %d missed; %.2f s (unprobed %.2f s)"
                   % (label, len(probes), jmp, 100.0 * jmp / max(1, len(probes)), len(rep["errors"]),
                      sum(e["hits"] for e in probes), sum(e["missed"] for e in probes), took, t_ref))


def test_fork():
    """SHELL -c 'ls; sort; echo done': the shell forks twice and its
    children exec; the shell itself exits after the builtin echo.  Both
    bash and /bin/sh (dash on Debian, which ends with _exit)."""
    src = t.sort_input(3000, 4242)
    script = "ls -la /usr/bin >/dev/null; sort %s; echo done" % src
    d = os.path.join(t.work_dir(), "fork")
    os.makedirs(d, exist_ok=True)
    for shell in ("bash", "sh"):
        cmd = [shell, "-c", script]
        ref = t.run(cmd)
        for mode in MODES:
            label = "%s -c 'ls; sort; echo' [%s] (%s)" % (shell, SPEC, mode)
            for old in glob.glob(os.path.join(d, "*")):
                os.unlink(old)
            cp, _ = t.run_probed(cmd, SPEC, mode, output=os.path.join(d, "r-%p.json"))
            t.check(cp.returncode == ref.returncode, "%s: exit %d, unprobed %d"
                    % (label, cp.returncode, ref.returncode), t.clip(cp.stderr))
            t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run" % label,
                    t.clip(cp.stderr))
            files = sorted(glob.glob(os.path.join(d, "*")))
            names = [os.path.basename(f) for f in files]
            t.check(len(files) == 3, "%s: %d reports, want 3 (%s, ls, sort)"
                    % (label, len(files), shell), names)
            t.check("r-%d.json" % cp.pid in names, "%s: no report for the shell itself (pid %d)"
                    % (label, cp.pid), names)
            for f in files:
                name = os.path.basename(f)
                rep = t.load_report(f, "%s: %s" % (label, name))
                if not rep:
                    continue
                t.check(name == "r-%d.json" % rep["pid"], "%s: %s holds the report of pid %d"
                        % (label, name, rep["pid"]))
                check_report("%s: %s" % (label, name), rep)


def main():
    t.require_build()
    parts = sys.argv[1:] or ["programs", "fork"]
    tests = {"programs": test_programs, "fork": test_fork}
    for p in parts:
        if p not in tests:
            sys.exit("usage: e2e_scale.py [programs|fork]...")
    for p in parts:
        tests[p]()
    t.finish()


if __name__ == "__main__":
    main()
