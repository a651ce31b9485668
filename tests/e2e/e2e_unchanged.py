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

The programs: ls -la /usr/bin, python3.11 -c pass and a subprocess,
sqlite3 on a workload, git status in a fresh repository, xz compressing and
decompressing, a shell script of [ ] tests.
"""
import json
import os
import shutil
import sys

import sptest as t

LAUNCHER = t.CLI
SPECS = ["uretprobe:libc:*"]
PY = "/usr/bin/python3.11"


def programs(work):
    repo = os.path.join(work, "repo")
    if not os.path.isdir(repo):
        os.makedirs(repo)
        env = t.base_env()
        env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                   GIT_COMMITTER_EMAIL="t@t", HOME=work)
        for cmd in (["git", "init", "-q"], ["git", "commit", "-q", "--allow-empty", "-m", "x"]):
            t.run(cmd, env=env, cwd=repo)
        open(os.path.join(repo, "new.txt"), "w").write("hello\n")
    data = os.path.join(work, "data.txt")
    if not os.path.exists(data):
        open(data, "w").write(t.sort_input(20000))
    script = os.path.join(work, "tests.sh")
    open(script, "w").write(
        'x=abc; n=3\n'
        'if [ "$x" = abc ] && [ $n -gt 2 ] && [ -n "$x" ] && [ ! -z "$x" ]; then echo ok1; fi\n'
        '[ -d / ] && [ -f /etc/passwd ] && echo ok2\n'
        'for i in 1 2 3; do [ $i -eq 2 ] && echo two; done\n'
        'test "$(echo a b | wc -w)" -eq 2 && echo ok3\n')
    return [
        ("ls", ["ls", "-la", "/usr/bin"], None, None),
        ("python", [PY, "-c", "pass"], None, None),
        ("python-subprocess", [PY, "-c", "import subprocess, sys; "
                               "r = subprocess.run(['true']); "
                               "print(subprocess.getoutput('echo hi; ls /nonexistent'), r.returncode)"],
         None, None),
        ("sqlite3", ["sqlite3", ":memory:"], t.sql_workload(400), None),
        ("git", ["git", "status", "--porcelain=v1", "-b"], None, repo),
        ("xz", ["sh", "-c", "xz -6 -c %s | xz -dc | sha256sum" % data], None, None),
        ("sh-tests", ["sh", script], None, None),
    ]


def main():
    specs = sys.argv[1:] or SPECS
    t.require_build()
    work = t.work_dir()
    env = t.base_env()
    env["HOME"] = work   # git and the shell read no user configuration
    for name, cmd, stdin, cwd in programs(work):
        plain = t.run(cmd, env=env, stdin=stdin, cwd=cwd)
        for spec in specs:
            for mode in ("auto",):
                what = "%s under %s (%s)" % (name, spec, mode)
                out = os.path.join(work, "r-%s.json" % name)
                if os.path.exists(out):
                    os.unlink(out)
                cp = t.run([LAUNCHER, "run", "-e", spec, "--mode", mode, "-o", out, "--"] + cmd,
                           env=env, stdin=stdin, cwd=cwd)
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
