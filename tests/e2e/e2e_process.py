#!/usr/bin/python3
"""e2e_process — what the preload must leave exactly as it was, and the
launcher.

  environment   the program sees the environment and arguments it was given,
                whatever the spec (IFUNC symbols, globs over libc)
  secure        under secure execution (a setuid copy run by another user)
                the UPROBE_* environment is ignored, said once on stderr, and
                no report is written
  launcher      `selfprobe run` gives the same report as the preload, passes
                the exit status through, and refuses bad usage
"""
import os
import shutil
import stat
import subprocess

import sptest as t

LAUNCHER = t.CLI
LINKED = os.path.join(os.path.dirname(t.TARGET), "sp_linked")


def env_lines(out):
    return dict(line.split("=", 1) for line in out.decode(errors="replace").splitlines() if "=" in line)


def test_environment():
    for spec in ("uprobe:libc:strlen", "uprobe:libc:malloc;uprobe:libc:getenv",
                 "uprobe:libc:str*", "uprobe:libc:memcpy"):
        env = t.probed_env(spec, "int3", os.path.join(t.work_dir(), "env.json"),
                           {"SP_MARKER": "a b=c", "LANG": "C.UTF-8"})
        cp = t.run(["/usr/bin/printenv"], env)
        t.check(cp.returncode == 0, "printenv [%s] failed: %d" % (spec, cp.returncode), t.clip(cp.stderr))
        seen = env_lines(cp.stdout)
        t.check(seen == env, "[%s]: the program's environment differs from the one given: "
                "missing %s, extra %s" % (spec, sorted(set(env) - set(seen)), sorted(set(seen) - set(env))))
        cp = t.run(["/bin/echo", "one", "two words", "three"], env)
        t.check(cp.stdout == b"one two words three\n", "[%s]: arguments changed" % spec, t.clip(cp.stdout))


def test_secure():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        t.skip("secure execution test needs root and setpriv")
        return
    d = os.path.join(t.work_dir(), "secure")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.chmod(d, 0o777)
    exe = os.path.join(d, "sp_linked_suid")
    shutil.copy(LINKED, exe)
    os.chown(exe, 0, 0)
    os.chmod(exe, 0o4755)
    report = os.path.join(d, "report.json")
    env = t.probed_env("uprobe:linked_work", "int3", report)
    del env["LD_PRELOAD"]          # the library comes with the program itself
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe]
    cp = t.run(cmd, env)
    out = cp.stdout.decode(errors="replace")
    if "secure=1" not in out:
        t.skip("could not get secure execution here (a nosuid mount?): %s %s"
               % (out.strip(), t.clip(cp.stderr, 300)))
        return
    err = cp.stderr.decode(errors="replace")
    t.check(cp.returncode == 0 and "sum=5050" in out, "secure: the program did not run normally",
            out + err)
    t.check("secure execution" in err and err.count("selfprobe:") == 1,
            "secure: stderr should say once that the environment is ignored", err)
    t.check(not os.path.exists(report), "secure: a report was written to %s" % report)
    # the same program without setuid does attach: the test can fail
    cp = t.run([LINKED], env)
    if t.check(os.path.exists(report), "linked: no report without secure execution", t.clip(cp.stderr)):
        rep = t.load_report(report, "linked report")
        hits = [p["hits"] for p in (rep or {}).get("probes", [])]
        t.check(hits == [100], "linked: expected one probe with 100 hits, got %s" % hits)


def test_launcher():
    out = os.path.join(t.work_dir(), "launcher.json")
    if os.path.exists(out):
        os.unlink(out)
    cp = t.run([LAUNCHER, "run", "-e", "uprobe:t_nop", "-e", "uprobe:t_call", "-o", out,
                "--mode", "int3", "--", t.TARGET, "250"])
    t.check(cp.returncode == 0, "launcher: exit %d" % cp.returncode, t.clip(cp.stderr))
    rep = t.load_report(out, "launcher report")
    if rep:
        got = {p["spec"]: p["hits"] for p in rep["probes"]}
        t.check(got == {"uprobe:t_nop": 250, "uprobe:t_call": 250}, "launcher: counts %s" % got)
    cp = t.run([LAUNCHER, "run", "-e", "uprobe:libc:malloc", "--", "sh", "-c", "exit 7"])
    t.check(cp.returncode == 7, "launcher: exit status not passed through (%d)" % cp.returncode)
    for bad, why in (([], "no arguments"), (["run"], "no command"),
                     (["run", "--", "true"], "no probes"), (["run", "-x", "--", "true"], "bad option"),
                     (["run", "-e"], "missing value"), (["frobnicate"], "unknown command")):
        cp = t.run([LAUNCHER] + bad)
        t.check(cp.returncode == 2 and cp.stderr, "launcher %s (%s): exit %d, stderr %r"
                % (bad, why, cp.returncode, cp.stderr[:200]))
    cp = t.run([LAUNCHER, "run", "-e", "uprobe:libc:malloc", "--", "/no/such/program"])
    t.check(cp.returncode == 127 and b"/no/such/program" in cp.stderr,
            "launcher: a missing program should exit 127 naming it (%d)" % cp.returncode)


def main():
    t.require_build()
    test_environment()
    test_secure()
    test_launcher()
    t.finish()


if __name__ == "__main__":
    main()
