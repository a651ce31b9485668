#!/usr/bin/python3
"""e2e_launcher — `selfprobe run` loses no count however the program ends.

The counters live in memory shared with the launcher: a program that exits,
calls _exit, is killed by SIGKILL, crashes on SIGSEGV or aborts still gets
every hit reported, with the right ending; fork children get a section of
their own; the exit status is the program's (128 + the signal); the JSON
report is valid; --interval prints counts while the program runs.  A killed
process's report, built from the shared counters, has each probe entry with
the same fields and values as the report the process writes at exit.

Ctrl-C at a terminal: the launcher runs in a session of its own on a
pseudo-terminal, as a shell would run it in the foreground, and the test
types ^C once the program has printed progress.  The tty sends SIGINT to
the whole foreground group; the launcher ignores it, so the program stops
(or handles it) and the report is printed, with the program's status and
every call it made, and nothing is left running in the session.

A process that changed user before its exec is counted too, through the
launcher's socket (cli/shmserve.h); `e2e_launcher.py user` runs only that.

The launcher's shared file costs a process the address space of what it
records, not of the most a process may record (issue 13: a program under
RLIMIT_AS runs as it does unprobed): a python with one probe has no more
than a few MiB more of it under the launcher than under the bare preload,
and 200 probes, records in several of the chunks a process maps as it
fills them (hot/shmchunks.h), are each reported exactly for a process
killed by SIGKILL and for its fork child.
"""
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import termios
import time

import sptest as t

LAUNCHER = t.CLI
ENDS = os.path.join(os.path.dirname(t.TARGET), "sp_ends")
N = 2500

CASES = [  # mode, exit status, ending text
    ("exit", 0, "exited"), ("_exit", 3, "exited"), ("sigkill", 128 + 9, "killed by signal 9"),
    ("segv", 128 + 11, "killed by signal 11"), ("abort", 128 + 6, "killed by signal 6"),
]


def run(args, out=None):
    cmd = [LAUNCHER, "run", "-e", "uprobe:ends_work"] + (["-o", out] if out else []) + args
    return t.run(cmd)


def on_tty(cmd, progress=3, timeout=60):
    """Run CMD as a session leader with a pty as its controlling terminal;
    type ^C once it has printed PROGRESS "progress" lines.  Returns (exit
    status, all output, output before the ^C, session id); status None
    when it did not end in TIMEOUT seconds (then killed)."""
    master, slave = os.openpty()

    def controlling_tty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=t.base_env(),
                         start_new_session=True, preexec_fn=controlling_tty)
    os.close(slave)
    out, before = b"", None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:       # EIO: nothing holds the terminal any more
                break
            if not data:
                break
            out += data
        if before is None and out.count(b"progress ") >= progress:
            before = out
            os.write(master, b"\x03")
    os.close(master)
    try:
        status = p.wait(5 if time.monotonic() < deadline else 0.1)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.wait()
        status = None
    return status, out.decode(errors="replace").replace("\r\n", "\n"), before, p.pid


def session_members(sid):
    """The processes still in session SID."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open("/proc/%s/stat" % pid).read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:          # state ppid pgrp session
            left.append("%s %s" % (pid, stat[:stat.rindex(")") + 1]))
    return left


def test_ctrl_c(mode):
    """^C: killed by SIGINT (no handler / handler that re-raises it) or a
    handler that exits 0; the report on the terminal or in a JSON file."""
    for end, out_ext in (("sigint", None), ("sigint-die", "json"), ("sigint-die", None),
                         ("sigint-exit", "json"), ("sigint-exit", None)):
        label = "Ctrl-C %s (%s, %s)" % (end, mode, out_ext or "text on the terminal")
        out = os.path.join(t.work_dir(), "%s-%s.json" % (end, mode)) if out_ext else None
        status, text, before, sid = on_tty(
            [LAUNCHER, "run", "-e", "uprobe:ends_work", "--mode", mode]
            + (["-o", out] if out else []) + ["--", ENDS, end, "2000"])
        if not t.check(before is not None, "%s: the program printed no progress" % label, t.clip(text)):
            continue
        left = session_members(sid)
        t.check(not left, "%s: processes left running in the session" % label, "\n".join(left))
        if not t.check(status is not None, "%s: the launcher did not end after ^C" % label, t.clip(text)):
            continue
        want = 0 if end == "sigint-exit" else 128 + 2
        t.check(status == want, "%s: exit status %d, want %d" % (label, status, want), t.clip(text))
        # the calls made: exact when the program counted them at ^C, else at
        # least those of the last progress line seen before the ^C
        done = re.findall(r"interrupted (\d+)$", text, re.M)   # after the echoed ^C
        seen = [int(n) for n in re.findall(rb"^progress (\d+)\r?$", before, re.M)]
        if end == "sigint":
            t.check(not done, "%s: the program handled SIGINT" % label)
            low, exact = max(seen), None
        elif t.check(len(done) == 1, "%s: no 'interrupted N' line" % label, t.clip(text)):
            low, exact = max(seen), int(done[0])
        else:
            continue
        if out:
            try:
                rep = json.load(open(out))
            except (OSError, ValueError) as e:
                t.check(False, "%s: no valid JSON report: %s" % (label, e))
                continue
            hits = [p["hits"] for p in rep.get("probes", [])]
            ending = rep.get("ending")
        else:
            hits = [int(n) for n in re.findall(r"^@count\[uprobe:ends_work\]: (\d+)$", text, re.M)]
            ending = "counts from shared memory" in text and re.search(r"killed by signal 2\b", text)
        t.check(len(hits) == 1 and hits[0] > 0 and hits[0] >= low and exact in (None, hits[0]),
                "%s: hits %s, want %s" % (label, hits, exact if exact is not None else ">= %d" % low),
                t.clip(text))
        if end == "sigint-exit":      # a normal exit: the program's own full report
            t.check(not ending and (not out or "from" not in rep and rep.get("errors") == []),
                    "%s: not the full report (ending %r)" % (label, ending), t.clip(text))
        else:
            t.check(ending and "killed by signal 2" in str(ending if out else ending.group(0)),
                    "%s: the report does not say SIGINT ended it (%r)" % (label, ending), t.clip(text))


SAME_FIELDS_SPEC = ["uprobe:ends_work", "uretprobe:ends_work", "usession:ends_work",
                    "uprobe:ends_work=latency", "uprobe:ends_work=stack", "uprobe:libc:memcpy",
                    "uprobe:libc:malloc+4"]


def test_same_fields(mode):
    """A killed process's report, built by the launcher from the shared
    counters, has every entry with the same fields (in the same order) and
    the same values as the report the process writes itself at exit: a jq
    filter on .symbol or .address must not lose the killed process's counts."""
    reps = {}
    for end in ("exit", "sigkill"):
        out = os.path.join(t.work_dir(), "fields-%s-%s.json" % (end, mode))
        cmd = [LAUNCHER, "run", "--mode", mode, "-o", out]
        for item in SAME_FIELDS_SPEC:
            cmd += ["-e", item]
        cp = t.run(cmd + ["--", ENDS, end, str(N)])
        reps[end] = t.load_report(out, "fields: report after %s (%s)" % (end, mode))
        if reps[end] is None:
            return
    exited, killed = reps["exit"], reps["sigkill"]
    t.check(killed.get("from") == "shared counters", "fields (%s): the killed report is not from the shared "
            "counters" % mode, json.dumps(killed)[:300])
    t.check(len(exited["probes"]) == len(killed["probes"]) == len(SAME_FIELDS_SPEC),
            "fields (%s): %d entries at exit, %d after SIGKILL, want %d" % (
                mode, len(exited["probes"]), len(killed["probes"]), len(SAME_FIELDS_SPEC)))
    for a, b in zip(exited["probes"], killed["probes"]):
        what = "fields (%s) of %s" % (mode, a.get("spec"))
        t.check(list(a) == list(b), "%s: exit has %s, SIGKILL %s" % (what, list(a), list(b)))
        for k in ("spec", "kind", "object", "symbol", "mode", "patch", "reason", "action", "hits", "missed",
                  "returns", "lost", "implementation", "attached", "unloaded"):
            t.check(a.get(k) == b.get(k), "%s: %s is %r at exit, %r after SIGKILL" % (what, k, a.get(k), b.get(k)))
        # ASLR moves the object between the runs, never within its page
        t.check(a["address"][-3:] == b["address"][-3:] and int(b["address"], 16) > 0x1000,
                "%s: address %s after SIGKILL, %s at exit" % (what, b["address"], a["address"]))
    malloc = [p for p in killed["probes"] if p["symbol"] == "malloc+0x4"]
    t.check(len(malloc) == 1, "fields (%s): select(.symbol==\"malloc+0x4\") finds %d entries after SIGKILL"
            % (mode, len(malloc)), json.dumps(killed["probes"])[:600])


def test_many_threads(mode):
    """129 threads and the main thread, more than the 128 exclusive counter
    stripes: the killed process's counts, read by the launcher from the
    stripes the process says it gave out, are every call."""
    out = os.path.join(t.work_dir(), "threads-%s.json" % mode)
    cp = run(["--mode", mode, "--", ENDS, "threads-sigkill", str(N)], out)
    want = N * 130
    t.check(cp.stdout == b"work %d\n" % want, "threads (%s): stdout %r" % (mode, cp.stdout), t.clip(cp.stderr))
    rep = t.load_report(out, "threads (%s)" % mode)
    if rep:
        hits = [p["hits"] for p in rep["probes"]]
        t.check(rep.get("from") == "shared counters" and hits == [want],
                "threads (%s): hits %s from %r, want [%d] from the shared counters"
                % (mode, hits, rep.get("from"), want))


def test_spec_files():
    """-f FILE is repeatable and goes with -e: the launcher reads each file
    ('#' comments dropped, ';' and newlines between items) and joins the
    items in the order given; a bpftrace program file is the whole spec,
    its errors at the file's own lines; a file that cannot be read, or a
    program beside other probes, is a usage error that names it."""
    work = t.work_dir()

    def write(name, text):
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    a = write("a.probes", "# the work\nuprobe:ends_work   # each call\n\nuprobe:libc:malloc;uprobe:libc:free # two\n")
    b = write("b.probes", "uprobe:libc:calloc")
    out = os.path.join(work, "files.json")
    cp = t.run([LAUNCHER, "run", "-e", "uprobe:libc:realloc", "-f", a, "-f", b, "-o", out, "--", ENDS, "exit", "10"])
    try:
        rep = json.load(open(out))
        specs = [p["spec"] for p in rep["probes"]]
        hits = {p["spec"]: p["hits"] for p in rep["probes"]}
        t.check(specs == ["uprobe:libc:realloc", "uprobe:ends_work", "uprobe:libc:malloc", "uprobe:libc:free",
                          "uprobe:libc:calloc"] and not rep["errors"] and hits["uprobe:ends_work"] == 10,
                "-e with two -f: every item, in order, no error", "%s\n%s" % (rep, t.clip(cp.stderr)))
    except (OSError, ValueError, KeyError) as e:
        t.check(False, "-e with two -f: report: %s" % e, t.clip(cp.stderr))
    prog = write("count.bt", "// a program\nuprobe:ends_work\n{ @n = count(); }\n")
    cp = t.run([LAUNCHER, "run", "-f", prog, "--", ENDS, "exit", "10"])
    t.check(cp.returncode == 0 and b"@n: 10" in cp.stdout, "-f a bpftrace program: its maps", t.clip(cp.stdout))
    bad = write("bad.bt", "// an error on line 3\n\nuprobe:ends_work { @n = nosuch(); }\n")
    out = os.path.join(work, "bad-bt.json")
    cp = t.run([LAUNCHER, "run", "-f", bad, "-o", out, "--", ENDS, "exit", "10"])
    try:
        errs = json.load(open(out))["errors"]
        t.check(len(errs) == 1 and errs[0]["message"].startswith("line 3, column "),
                "-f a bad program: the error at the file's line", errs)
    except (OSError, ValueError, KeyError) as e:
        t.check(False, "-f a bad program: report: %s" % e, t.clip(cp.stderr))
    missing = os.path.join(work, "no-such.probes")
    for args, name in ((["-f", prog, "-e", "uprobe:libc:free"], prog), (["-e", "uprobe:libc:free", "-f", prog], prog),
                       (["-f", a, "-f", missing], missing), (["-f", work], work)):
        cp = t.run([LAUNCHER, "run"] + args + ["--", ENDS, "exit", "1"])
        t.check(cp.returncode == 2 and name.encode() in cp.stderr and not cp.stdout,
                "run %s: usage error naming %s (exit %d)" % (" ".join(args), name, cp.returncode), t.clip(cp.stderr))


def test_other_user(mode):
    """A process of the run that changed user before its exec (setpriv here;
    Python's subprocess user=, runuser) may not reopen the shared file by
    name (/proc/LAUNCHER/fd/N is another user's): it gets the file from the
    launcher's socket, is counted like any, and prints nothing of ours on
    its stderr (it printed its text report there: CPython's test_subprocess
    under the launcher, run as root)."""
    label = "other user (%s)" % mode
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        t.skip("%s: needs root and setpriv" % label)
        return
    out = os.path.join(t.work_dir(), "user-%s.json" % mode)
    # The other user must reach the library and the program: the build may
    # lie under a folder only root can enter (CI's clone in a 0700 mktemp
    # folder), so both run from a copy in a folder anyone can read, the
    # launcher beside them (it preloads ../lib/libselfprobe.so of its own).
    top = tempfile.mkdtemp(prefix="sp-launcher-user-")
    try:
        os.chmod(top, 0o755)
        for sub in ("bin", "lib"):
            os.mkdir(os.path.join(top, sub), 0o755)
        cli = os.path.join(top, "bin", "selfprobe")
        ends = os.path.join(top, "bin", "sp_ends")
        shutil.copy2(LAUNCHER, cli)
        shutil.copy2(ENDS, ends)
        shutil.copy2(t.LIB, os.path.join(top, "lib", "libselfprobe.so"))
        cp = t.run([cli, "run", "-e", "uprobe:ends_work", "-o", out, "--mode", mode, "--",
                    "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ends, "exit", str(N)])
    finally:
        shutil.rmtree(top, ignore_errors=True)
    t.check(cp.returncode == 0 and cp.stdout == b"work %d\n" % N and cp.stderr == b"",
            "%s: exit %d, stdout %r, stderr not empty" % (label, cp.returncode, cp.stdout), t.clip(cp.stderr))
    try:
        rep = json.load(open(out))
    except (OSError, ValueError) as e:
        t.check(False, "%s: no valid JSON report: %s" % (label, e))
        return
    procs = [p["report"] for p in rep.get("processes", [])]   # setpriv, then what it execs
    hits = [e["hits"] for r in procs for e in r.get("probes", []) if e["symbol"] == "ends_work"]
    t.check(hits == [N], "%s: ends_work's hits %s in the launcher's report, want [%d]" % (label, hits, N),
            json.dumps(rep)[:800])


VMSIZE_PY = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmSize:')][0])"

# forks; the child calls getppid K times, the parent 2K, each killed by SIGKILL
FORK_KILL_PY = r"""
import os, sys
k = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    for _ in range(k):
        os.getppid()
    os.kill(os.getpid(), 9)
os.waitpid(pid, 0)
for _ in range(2 * k):
    os.getppid()
print("done", flush=True)
os.kill(os.getpid(), 9)
"""


def test_records_mapped():
    """The shared file's records are mapped in chunks as they are taken:
    one probe costs a few hundred KiB of address space under the launcher
    (the whole array was 107 MiB), and probes in several chunks, in a
    killed process and its killed fork child, are all reported exactly."""
    spec = "uprobe:libc:malloc"
    size = {}
    for how in ("preload", "launcher"):
        if how == "preload":
            cp = t.run([sys.executable, "-c", VMSIZE_PY], env=t.probed_env(spec, output=os.devnull))
        else:
            cp = t.run([LAUNCHER, "run", "-e", spec, "-o", os.devnull, "--", sys.executable, "-c", VMSIZE_PY])
        try:
            size[how] = int(cp.stdout)
        except ValueError:
            t.check(False, "address space (%s): no VmSize printed" % how, t.clip(cp.stdout + cp.stderr))
            return
    extra = size["launcher"] - size["preload"]
    t.check(extra < 4096, "address space: %d KiB more under the launcher than under the preload with one probe "
            "(VmSize %d KiB, %d KiB), want < 4096" % (extra, size["launcher"], size["preload"]))
    n, k = 200, 1000
    out = os.path.join(t.work_dir(), "chunks.json")
    cmd = [LAUNCHER, "run", "-o", out]
    for _ in range(n):
        cmd += ["-e", "uprobe:libc:getppid"]
    cp = t.run(cmd + ["--", sys.executable, "-c", FORK_KILL_PY, str(k)])
    try:
        rep = json.load(open(out))
        procs = sorted((p["report"] for p in rep["processes"]), key=lambda r: [e["hits"] for e in r["probes"]])
        hits = [[e["hits"] for e in r["probes"]] for r in procs]
        t.check(cp.stdout == b"done\n" and all(r.get("from") == "shared counters" for r in procs) and
                hits == [[k] * n, [2 * k] * n] and not any(r["errors"] for r in procs),
                "%d records (several chunks), a killed process and its killed child: hits %s, want %d x %d and "
                "%d x %d, from the shared counters" % (n, [sorted(set(h)) + [len(h)] for h in hits], n, k, n, 2 * k),
                json.dumps(rep)[:800] + t.clip(cp.stderr))
    except (OSError, ValueError, KeyError) as e:
        t.check(False, "%d records: bad report: %s" % (n, e), t.clip(cp.stderr))


def main():
    t.require_build()
    if sys.argv[1:] == ["user"]:
        for mode in ("int3", "auto"):
            test_other_user(mode)
        t.finish()
        return
    test_spec_files()
    test_records_mapped()
    for mode in ("int3", "auto"):
        test_same_fields(mode)
        test_many_threads(mode)
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
        # errors are in the shared file too: a killed process's report has them
        out = os.path.join(t.work_dir(), "errors-%s.json" % mode)
        cp = t.run([LAUNCHER, "run", "-e", "uprobe:ends_work", "-e", "uprobe:libc:no_such_fn", "--mode", mode,
                    "-o", out, "--", ENDS, "sigkill", str(N)])
        try:
            rep = json.load(open(out))
            t.check(rep.get("from") == "shared counters" and
                    [e["spec"] for e in rep["errors"]] == ["uprobe:libc:no_such_fn"] and
                    "no_such_fn" in rep["errors"][0]["message"] and rep["probes"][0]["hits"] == N,
                    "errors after SIGKILL (%s): the bad item is in the report's errors" % mode, json.dumps(rep)[:800])
        except (OSError, ValueError, KeyError, IndexError) as e:
            t.check(False, "errors after SIGKILL (%s): bad report: %s" % (mode, e), t.clip(cp.stderr))
        # stacks too: symbolised by the launcher from the objects the process
        # noted; with a fork, both processes' stacks in one folded file
        for end, procs in (("sigkill", 1), ("fork", 2)):
            out = os.path.join(t.work_dir(), "stacks-%s-%s.folded" % (end, mode))
            cp = t.run([LAUNCHER, "run", "-e", "uprobe:ends_work=stack", "--mode", mode, "-o", out, "--",
                        ENDS, end, str(N)])
            lines = open(out).read().splitlines() if os.path.exists(out) else []
            good = [l for l in lines if re.search(r";main\+0x[0-9a-f]+;ends_work\+0;uprobe:ends_work %d$" % N, l)]
            t.check(len(lines) == procs and len(good) == procs,
                    "stacks after %s (%s): %d folded stacks main;ends_work of %d hits, want %d"
                    % (end, mode, len(good), N, procs), "\n".join(lines[:5]) + t.clip(cp.stderr))
            err = cp.stderr.decode(errors="replace")
            t.check(err.count("    ends_work+0\n    main+0x") == procs and err.count("\n]: %d\n" % N) == procs,
                    "stacks after %s (%s): the text report shows each process's stack" % (end, mode), t.clip(err))
        # latency histograms survive SIGKILL and a crash too (shared file),
        # in the text and the JSON report, with a fork child's apart
        for end, procs in (("sigkill", 1), ("segv", 1), ("fork", 2)):
            out = os.path.join(t.work_dir(), "lat-%s-%s.json" % (end, mode))
            cp = t.run([LAUNCHER, "run", "-e", "uprobe:ends_work=latency", "--mode", mode, "-o", out, "--",
                        ENDS, end, str(N)])
            try:
                rep = json.load(open(out))
                reps = [p["report"] for p in rep["processes"]] if "processes" in rep else [rep]
                lats = [r["probes"][0]["latency"] for r in reps]
                t.check(len(lats) == procs and all(l["count"] == N and sum(b["count"] for b in l["buckets"]) == N
                                                   and l["min"] <= l["avg"] <= l["max"] for l in lats),
                        "latency after %s (%s): %d histograms of %d calls each, got %s"
                        % (end, mode, procs, N, [(l["count"], len(l["buckets"])) for l in lats]))
            except (OSError, ValueError, KeyError, IndexError) as e:
                t.check(False, "latency after %s (%s): bad report: %s" % (end, mode, e), t.clip(cp.stderr))
        cp = t.run([LAUNCHER, "run", "-e", "uprobe:ends_work=latency", "--mode", mode, "--", ENDS, "sigkill",
                    str(N)])
        err = cp.stderr.decode(errors="replace")
        t.check("@latency_ns[uprobe:ends_work]: count %d" % N in err and "|@" in err,
                "latency text after SIGKILL (%s): the histogram is drawn" % mode, t.clip(err))
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
        test_ctrl_c(mode)
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
