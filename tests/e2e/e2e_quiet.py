#!/usr/bin/python3
"""e2e_quiet — what we add to the program: nothing on its stderr, no file
descriptor, and no report lost without a word.

  stderr   with UPROBE_OUTPUT set (or under `selfprobe run -o`), a probed
           program's stdout, stderr and exit status are byte for byte the
           unprobed run's, with ~25 glob refusals (uprobe:libc:*) and a
           library that is never loaded: they are in the report's errors,
           and the launcher names once the probes that attached in no
           process.  UPROBE_LOG=error puts them on stderr, as asked.
  fds      a program listing /proc/self/fd, in itself, in a fork child, in
           a child it execs, and after it dlopen's a probed library (a later
           patch batch), sees exactly the unprobed run's descriptors, under
           the preload and under the launcher.
  reports  a report that cannot be written (/nonexistent/dir, /dev/full, an
           immutable file) is said on stderr and the text report follows
           there; the launcher counts more than 256 processes; a static
           executable under the launcher is named as unprobed, in a message
           and in the report; a launcher killed by SIGKILL leaves no file (checked in a
           mount namespace whose /tmp and /dev/shm are a private directory).
"""
import json
import os
import re
import signal
import subprocess
import time

import sptest as t

LAUNCHER = t.CLI
TESTS = os.path.dirname(t.TARGET)
DL_LIB = os.path.join(TESTS, "libsp_dl_lib.so")
STATIC = os.environ.get("SP_STATIC", os.path.join(TESTS, "sp_static"))
PY = "/usr/bin/python3.11"
NOISY = "uprobe:libc:*;uprobe:libnotthere:nothing"


def same_output(label, cmd, probed, ref):
    t.check(probed.returncode == ref.returncode, "%s: exit %d, unprobed %d" % (label, probed.returncode,
            ref.returncode), t.clip(probed.stderr))
    t.check(probed.stdout == ref.stdout, "%s: stdout differs from the unprobed run" % label,
            "got:\n%s\nwant:\n%s" % (t.clip(probed.stdout, 600), t.clip(ref.stdout, 600)))
    t.check(probed.stderr == ref.stderr, "%s: stderr differs from the unprobed run" % label,
            "got:\n%s\nwant:\n%s" % (t.clip(probed.stderr, 1500), t.clip(ref.stderr, 600)))


def launched(spec, cmd, out):
    return t.run([LAUNCHER, "run", "-o", out, "-e", spec, "--"] + cmd)


def all_errors(report):
    """Every error of a report, the launcher's and each process's."""
    errs = list(report.get("errors", []))
    for p in report.get("processes", []):
        errs += p["report"].get("errors", [])
    return errs


def stderr_cases():
    cmds = [["ls", "/nonexistent", "/"],
            [PY, "-c", "import subprocess; print(subprocess.getoutput('ls /nonexistent'))"]]
    for cmd in cmds:
        name = os.path.basename(cmd[0])
        ref = t.run(cmd)
        out = os.path.join(t.work_dir(), "quiet-%s.json" % name)
        cp, rep = t.run_probed(cmd, NOISY, mode=None, output=out)
        same_output("preload %s" % name, cmd, cp, ref)
        if rep is not None:
            msgs = [e["spec"] for e in rep.get("errors", [])]
            t.check(msgs.count("uprobe:libc:*") >= 5, "preload %s: the glob's refusals are not in the "
                    "report's errors" % name, json.dumps(rep.get("errors"))[:600])
            t.check("uprobe:libnotthere:nothing" in msgs, "preload %s: the library never loaded is not "
                    "in the report's errors" % name, json.dumps(rep.get("errors"))[:600])
        lout = os.path.join(t.work_dir(), "quiet-run-%s.json" % name)
        cp = launched(NOISY, cmd, lout)
        same_output("launcher %s" % name, cmd, cp, ref)
        try:
            rep = json.load(open(lout))
        except (OSError, ValueError) as e:
            t.check(False, "launcher %s: report: %s" % (name, e))
            continue
        never = [e for e in rep.get("errors", []) if e["spec"] == "uprobe:libnotthere:nothing"]
        t.check(len(never) == 1 and "attached in no process" in never[0]["message"],
                "launcher %s: the launcher does not say once that libnotthere attached in no process"
                % name, json.dumps(rep.get("errors"))[:600])
        per_process = [e for p in rep.get("processes", []) for e in p["report"].get("errors", [])
                       if e["spec"] == "uprobe:libnotthere:nothing"]
        t.check(not per_process, "launcher %s: a process counts a library it never loaded as its error"
                % name, json.dumps(per_process)[:400])
    # asked for: on stderr
    env = t.probed_env(NOISY, output=os.path.join(t.work_dir(), "asked.json"), extra={"UPROBE_LOG": "error"})
    cp = t.run(["ls", "/"], env=env)
    t.check(cp.stderr.count(b"selfprobe: uprobe:libc:*") >= 5, "UPROBE_LOG=error: the refusals are not on "
            "stderr", t.clip(cp.stderr))


# ---------------------------------------------------------------- fds

LISTER = r"""
import ctypes, os, re, subprocess, sys

def fds(tag):
    out = []
    for f in sorted(os.listdir('/proc/self/fd'), key=int):
        try:
            target = os.readlink('/proc/self/fd/' + f)
        except OSError:
            continue        # the directory listing's own descriptor, closed
        out.append('%s %s %s' % (tag, f, re.sub(r'[0-9]+', 'N', target)))
    return out

lines = fds('self')
pid = os.fork()
if pid == 0:
    print('\n'.join(fds('fork')), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
lines += subprocess.run(['ls', '-l', '/proc/self/fd'], capture_output=True, text=True).stdout.split('\n')[1:]
if len(sys.argv) > 1:
    ctypes.CDLL(sys.argv[1]).dl_func(1)
    lines += fds('dlopen')
    pid = os.fork()
    if pid == 0:
        print('\n'.join(fds('fork-after-dlopen')), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
print('\n'.join(lines))
"""


def normalize(out):
    # ls -l: the date and the pid vary
    return re.sub(rb"[0-9]+", b"N", out)


def fd_cases():
    cmd = [PY, "-c", LISTER, DL_LIB]
    ref = t.run(cmd)
    if not t.check(ref.returncode == 0, "unprobed fd lister: exit %d" % ref.returncode, t.clip(ref.stderr)):
        return
    spec = "uprobe:libc:malloc;uprobe:libc:close;uprobe:libsp_dl_lib:dl_func"
    for how in ("preload", "launcher"):
        out = os.path.join(t.work_dir(), "fds-%s.json" % how)
        if how == "preload":
            cp, rep = t.run_probed(cmd, spec, mode=None, output=out)
        else:
            cp = launched(spec, cmd, out)
            rep = json.load(open(out)) if os.path.exists(out) else None
        t.check(cp.returncode == 0, "%s fd lister: exit %d" % (how, cp.returncode), t.clip(cp.stderr))
        t.check(normalize(cp.stdout) == normalize(ref.stdout), "%s: the program sees descriptors the "
                "unprobed run does not" % how, "got:\n%s\nwant:\n%s" % (t.clip(cp.stdout, 1500),
                                                                      t.clip(ref.stdout, 1500)))
        hits = []
        for p in ([rep] if rep and "probes" in rep else [p["report"] for p in (rep or {}).get("processes", [])]):
            hits += [e["hits"] for e in p.get("probes", []) if e["spec"] == "uprobe:libsp_dl_lib:dl_func"]
        t.check(sum(hits) >= 1, "%s: the library loaded later was not probed (no later batch tested)" % how,
                json.dumps(rep)[:600] if rep else "no report")


# ---------------------------------------------------------------- reports

def unwritable_cases():
    # ls closes its stderr before it exits (gnulib's close_stdout): what can
    # be known at start is said then; a full disk shows only when the report
    # is written, so that case runs a program that keeps its stderr open
    ls = ["ls", "/"]
    keeps = ["/bin/sh", "-c", "echo kept"]
    targets = [("missing directory", "/nonexistent/dir/r.json", ls), ("/dev/full", "/dev/full", keeps)]
    immutable = os.path.join(t.work_dir(), "immutable.json")
    open(immutable, "w").close()
    ch = subprocess.run(["chattr", "+i", immutable], capture_output=True)
    if ch.returncode == 0:
        targets.append(("immutable file", immutable, ls))
    else:
        t.skip("chattr +i is not supported here (%s): the immutable report file is not tested"
               % ch.stderr.decode(errors="replace").strip())
    try:
        for what, path, cmd in targets:
            ref = t.run(cmd)
            cp = t.run(cmd, env=t.probed_env("uprobe:libc:malloc", output=path))
            err = cp.stderr.decode(errors="replace")
            t.check(cp.stdout == ref.stdout and cp.returncode == 0, "preload, %s: the program changed" % what)
            t.check("cannot write the report to '%s'" % path in err and "@count[uprobe:libc:malloc]" in err,
                    "preload, %s: no message, or no text report on stderr" % what, err)
            cp = launched("uprobe:libc:malloc", cmd, path)
            err = cp.stderr.decode(errors="replace")
            t.check(cp.stdout == ref.stdout and cp.returncode == 0, "launcher, %s: the program changed" % what)
            t.check("cannot write the report to '%s'" % path in err and "@count[uprobe:libc:malloc]" in err,
                    "launcher, %s: no message, or no text report on stderr" % what, err)
    finally:
        subprocess.run(["chattr", "-i", immutable], capture_output=True)


def many_processes():
    n = 300
    out = os.path.join(t.work_dir(), "many.json")
    cmd = ["/bin/sh", "-c", "i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done" % n]
    cp = launched("uprobe:libc:getpid", cmd, out)
    t.check(cp.returncode == 0 and not cp.stderr, "%d processes: exit %d, stderr" % (n, cp.returncode),
            t.clip(cp.stderr))
    try:
        rep = json.load(open(out))
    except (OSError, ValueError) as e:
        t.check(False, "%d processes: report: %s" % (n, e))
        return
    t.check(len(rep.get("processes", [])) == n + 1, "%d processes: the report holds %d of %d"
            % (n, len(rep.get("processes", [])), n + 1), json.dumps(rep.get("errors")))


def static_program():
    if not os.path.exists(STATIC):
        t.check(False, "missing build output %s" % STATIC)
        return
    ref = t.run([STATIC])
    out = os.path.join(t.work_dir(), "static.json")
    cp = launched("uprobe:libc:malloc", [STATIC], out)
    err = cp.stderr.decode(errors="replace")
    t.check(cp.returncode == ref.returncode and cp.stdout == ref.stdout, "static: the program changed")
    t.check("statically linked" in err, "static: no message naming why it runs unprobed", err)
    try:
        rep = json.load(open(out))
    except (OSError, ValueError) as e:
        t.check(False, "static: report: %s" % e, err)
        return
    t.check(any("statically linked" in e["message"] for e in rep.get("errors", [])),
            "static: the report does not say the program ran unprobed", json.dumps(rep)[:600])


def killed_launcher():
    # in a mount namespace of its own, /tmp and /dev/shm are a private
    # directory: the check sees only this launcher's files, not those of
    # others running on the machine meanwhile
    private = os.path.join(t.work_dir(), "private-tmp")
    os.makedirs(private, exist_ok=True)
    inner = 'mount --bind "$0" /dev/shm && mount --bind "$0" /tmp && exec "$@"'
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, private,
                            "true"], capture_output=True)
    if probe.returncode != 0:
        t.skip("no private mount namespace here (%s): the killed launcher is not tested"
               % probe.stderr.decode(errors="replace").strip())
        return
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, private,
                          LAUNCHER, "run", "-e", "uprobe:libc:getpid", "--", "/bin/sh", "-c",
                          "/bin/true; exec sleep 30"], env=t.base_env(), start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)   # not an assertion on time: the program is started, whichever comes first
    os.kill(p.pid, signal.SIGKILL)   # unshare and sh exec: this is the launcher
    p.wait()
    try:   # the program, if the launcher's death has not ended it already
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    left = os.listdir(private)
    t.check(not left, "a launcher killed by SIGKILL left files behind", " ".join(sorted(left)))


def main():
    t.require_build()
    if os.path.exists(PY):
        stderr_cases()
        fd_cases()
    else:
        t.skip("%s is not installed: the stderr and descriptor cases are not run" % PY)
    unwritable_cases()
    many_processes()
    static_program()
    killed_launcher()
    t.finish()


if __name__ == "__main__":
    main()
