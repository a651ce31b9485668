#!/usr/bin/python3
"""e2e_cpython — CPython's own test suite, probed, must pass as unprobed.

  e2e_cpython.py SPEC_NAME [MODULE ...]

SPEC_NAME picks what is attached to every Python process of the run (the
interpreter running regrtest, its worker processes and every child the tests
start: LD_PRELOAD and UPROBE_SPEC are inherited):

  pyret   uretprobe:/usr/bin/python3.11:_Py*   return probes on the
          interpreter's own functions, the evaluation loop among them
  libc    uprobe:libc:*                        every libc function

The modules (default: test_signal test_subprocess test_threading test_ctypes
test_zlib test_json) are the ones that notice a runtime that changes what a
program does: asynchronous signals landing in probed code, children that
read each other's stderr or list their file descriptors, threads that come
and go, foreign calls, C extensions.  Reports go to files (UPROBE_OUTPUT),
never to the program's stderr.

A module that fails probed is run again unprobed: if it passes there, the
runtime changed what the program does (a failure); if it fails there too,
the machine cannot run it (a skip, with regrtest's words).  The tests come
from Debian's libpython3.11-testsuite (.ci/deps installs it).
"""
import glob
import json
import os
import re
import sys

import sptest as t

PYTHON = "/usr/bin/python3.11"
SPECS = {
    "pyret": "uretprobe:%s:_Py*" % PYTHON,
    "libc": "uprobe:libc:*",
}
MODULES = ["test_signal", "test_subprocess", "test_threading", "test_ctypes", "test_zlib", "test_json"]
TIMEOUT = 900


def regrtest(modules, env):
    """Run MODULES with regrtest in two worker processes; returns
    (CompletedProcess, {module: "passed" | "failed" | "crashed" | ...}, its output)."""
    cmd = [PYTHON, "-m", "test", "-j2", "--timeout", "600"] + modules
    cp = t.run(cmd, env=env, timeout=TIMEOUT)
    text = cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    status = {m: "unknown" for m in modules}
    # "0:00:03 load avg: 1.2 [1/6] test_zlib passed", "[2/6/1] test_json failed (12 failures)"
    for m, word in re.findall(r"\[\d+/\d+(?:/\d+)?\] (test_\w+) (\w+)", text):
        if m in status:
            status[m] = word
    return cp, status, text


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in SPECS:
        print("usage: e2e_cpython.py {%s} [MODULE ...]" % "|".join(SPECS))
        sys.exit(2)
    name, modules = sys.argv[1], sys.argv[2:] or MODULES
    spec = SPECS[name]
    t.require_build()
    testdir = "/usr/lib/python3.11/test"
    missing = [m for m in modules if not (os.path.exists(os.path.join(testdir, m + ".py")) or
                                          os.path.isdir(os.path.join(testdir, m)))]
    if not os.path.exists(PYTHON) or missing:
        t.skip("CPython's test suite is not installed (Debian's libpython3.11-testsuite; "
               "missing: %s)" % (", ".join(missing) or PYTHON))
        t.finish()

    reports = os.path.join(t.work_dir(), "reports")
    os.makedirs(reports, exist_ok=True)
    # test_subprocess runs children as another user (user=, setuid tests):
    # their reports must be writable for them too, like a shared /tmp
    os.chmod(reports, 0o1777)
    for d in (t.work_dir(), os.path.dirname(t.work_dir())):
        os.chmod(d, os.stat(d).st_mode | 0o011)
    env = t.probed_env(spec, output=os.path.join(reports, "r-%p.json"))
    t.info("probed: %s -m test %s  (UPROBE_SPEC=%s)" % (PYTHON, " ".join(modules), spec))
    cp, status, text = regrtest(modules, env)
    own = [l for l in text.splitlines() if l.startswith("selfprobe")]
    t.check(not own, "the runtime wrote %d lines into the tests' output" % len(own), "\n".join(own[:20]))

    failed = [m for m in modules if status[m] != "passed"]
    if failed:
        t.info("failed probed: %s; running them unprobed" % " ".join(failed))
        plain, pstatus, ptext = regrtest(failed, t.base_env())
        for m in failed:
            if pstatus[m] == "passed":
                t.check(False, "%s fails under %s but passes unprobed" % (m, spec),
                        t.clip(text[-6000:], 6000))
            else:
                t.skip("%s fails unprobed too on this machine: %s" % (m, t.clip(ptext[-600:], 600)))
    t.check(cp.returncode == 0 or failed, "regrtest exited %d with every module passed" % cp.returncode)

    # the probes were there: the reports of the run count hits, and none
    # says the runtime lost its own state
    files = glob.glob(os.path.join(reports, "r-*.json"))
    t.check(len(files) >= 2, "reports of the interpreter and its workers: %d found" % len(files))
    hits = lost = 0
    bad = []
    for f in files:
        try:
            r = json.load(open(f))
        except ValueError as e:
            bad.append("%s: %s" % (os.path.basename(f), e))
            continue
        for p in r.get("probes", []):
            hits += p.get("hits", 0)
            lost += p.get("lost", 0)
    t.check(not bad, "every report is valid JSON", "\n".join(bad[:10]))
    t.check(hits > 0, "the probes counted hits in the run (%d)" % hits)
    t.info("%d reports, %d hits, %d returns lost" % (len(files), hits, lost))
    t.finish()


if __name__ == "__main__":
    main()
