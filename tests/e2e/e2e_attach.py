#!/usr/bin/python3
"""e2e_attach — `selfprobe attach/detach/top PID`: probes in a process that
was started without the preload (issue 17).

  e2e_attach.py single | threads | python | reattach | dlfork | bad | control

sp_live (tests/targets/sp_live.c) waits for commands on stdin, its main
thread blocked in read() — the thread the injection hijacks is inside a
system call — and counts its own calls.  Each case drives it through the
same commands twice, unprobed and with an attachment in the middle, and
checks: the output and exit status are the unprobed run's; the counts of
the attached window are exactly the calls made in it (the calls are made
between attach and detach, none in flight at either instant); after detach
the text of every mapped object equals the file's bytes (nothing left
patched); the runtime stays loaded, idle.
"""
import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import sptest as t

TESTS = os.path.dirname(t.TARGET)
LIVE = os.path.join(TESTS, "sp_live")
LIVE_STATIC = os.path.join(TESTS, "sp_live_static")
DL_LIB = os.path.join(TESTS, "libsp_dl_lib.so")
PYTHON = "/usr/bin/python3.11"


def cli(*args, timeout=120, user=None):
    cmd = [t.CLI] + [str(a) for a in args]
    if user:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + cmd
    return t.run(cmd, timeout=timeout)


class Live:
    """A program driven line by line: cmd() sends one and reads up to its
    'done' line; send() does not wait, line() reads one line."""

    QUIT = b"quit\n"

    def __init__(self, argv, env=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env or t.base_env())
        self.pid = self.p.pid
        self.out = []

    def send(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def line(self):
        """One line of output ('' at its end), kept in the output."""
        got = self.p.stdout.readline().decode()
        self.out.append(got)
        return got

    def cmd(self, line):
        self.send(line + "\n")
        while True:
            got = self.line()
            if not got:
                raise RuntimeError("the program ended (after %r)" % line)
            if got.startswith("done"):
                return got

    def quit(self):
        out, err = self.p.communicate(self.QUIT, timeout=120)
        self.out.append(out.decode())
        return "".join(self.out), self.p.returncode, err.decode(errors="replace")


def text_mismatches(pid):
    """The executable mappings of PID whose bytes differ from their file's
    (a probe left behind), as 'path+offset' strings."""
    bad = []
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read().splitlines()
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            off, path = int(parts[2], 16), parts[5]
            try:
                with open(path, "rb") as fh:
                    fh.seek(off)
                    want = fh.read(hi - lo)
            except OSError:
                continue
            mem.seek(lo)
            have = mem.read(len(want))
            if have != want:
                first = next(i for i in range(len(want)) if have[i] != want[i])
                bad.append("%s+%#x" % (path, off + first))
    return bad


def report_hits(path_or_text, label_part):
    """Hits of the probes whose label contains LABEL_PART: from a JSON
    report file or a text report."""
    if os.path.exists(path_or_text):
        with open(path_or_text) as f:
            r = json.load(f)
        return sum(p["hits"] for p in r["probes"] if label_part in p["label"])
    return sum(int(n) for lab, n in re.findall(r"@count\[([^\]]*)\]: (\d+)", path_or_text)
               if label_part in lab)


def unprobed(argv, script):
    lv = Live(argv)
    for c in script:
        lv.cmd(c)
    return lv.quit()


def attached_run(argv, before, spec, during, after, label, expect, what):
    """BEFORE commands, attach SPEC, DURING, detach (JSON report), AFTER;
    the window's hits of LABEL must be EXPECT; output as unprobed."""
    lv = Live(argv)
    for c in before:
        lv.cmd(c)
    check_text(lv.pid, "%s: before attach" % what)
    a = cli("attach", lv.pid, "-e", spec, "--no-wait")
    t.check(a.returncode == 0, "%s: attach exits 0" % what, a.stderr)
    for c in during:
        lv.cmd(c)
    rep = detach_report(lv.pid, what, "%s: detach exits 0" % what)
    if rep:
        hits = report_hits(rep, label)
        t.check(hits == expect, "%s: %d hits in the window (the calls made in it: %d)" % (what, hits, expect),
                open(rep).read())
    check_text(lv.pid, "%s: after detach" % what)
    t.check(("/libselfprobe.so" in open("/proc/%d/maps" % lv.pid).read()) == (a.returncode == 0),
            "%s: the runtime stays loaded (idle) after detach" % what)
    for c in after:
        lv.cmd(c)
    out, rc, err = lv.quit()
    want_out, want_rc, _ = unprobed(argv, before + during + after)
    t.check(out == want_out and rc == want_rc, "%s: output and status as unprobed (%d)" % (what, want_rc),
            "probed (%d):\n%s\nunprobed:\n%s\nstderr: %s" % (rc, t.clip(out), t.clip(want_out), err))


def detach_report(pid, name, what):
    """Detach from PID with the JSON report in NAME.json in the work
    directory; WHAT: the check that the detach exits 0.  The report's path,
    or None when the detach failed."""
    rep = os.path.join(t.work_dir(), "%s.json" % name)
    d = cli("detach", pid, "-o", rep)
    t.check(d.returncode == 0, what, d.stderr)
    return rep if d.returncode == 0 else None


def check_text(pid, what):
    bad = text_mismatches(pid)
    t.check(not bad, "%s: text equals the files' bytes" % what, "\n".join(bad[:10]))


def case_single():
    attached_run([LIVE], ["call 1000"], "uprobe:live_work", ["call 5000"], ["call 300"],
                 "live_work", 5000, "single")
    # --duration, text report on stdout: the window holds the calls made
    # while the attach command waits
    lv = Live([LIVE])
    lv.cmd("call 1")
    a = subprocess.Popen([t.CLI, "attach", str(lv.pid), "-e", "uprobe:live_work=latency", "--duration", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.base_env())
    line = a.stderr.readline().decode()
    t.check("attached to %d" % lv.pid in line, "duration: attached", line)
    lv.cmd("call 2000")
    out, err = a.communicate(timeout=60)
    out = out.decode()
    t.check(a.returncode == 0, "duration: exits 0", err)
    t.check(report_hits(out, "live_work") == 2000, "duration: 2000 hits in the text report", out)
    t.check("@latency_ns[uprobe:live_work]: count 2000" in out, "duration: latency histogram of 2000", out)
    check_text(lv.pid, "duration: after detach")
    out, rc, _ = lv.quit()
    t.check(rc == 7, "duration: status 7", out)
    # -f: read by the launcher, '#' comments dropped, joined with -e
    probes = os.path.join(t.work_dir(), "single.probes")
    with open(probes, "w") as f:
        f.write("# the work\nuprobe:live_work   # each call\n")
    lv = Live([LIVE])
    lv.cmd("call 1")
    a = cli("attach", lv.pid, "-f", probes, "-e", "uretprobe:live_work", "--no-wait")
    t.check(a.returncode == 0, "-f: attached", a.stderr)
    lv.cmd("call 40")
    rep = os.path.join(t.work_dir(), "single-f.json")
    with open(rep, "w") as f:   # an old report: replaced whole, by a rename, its mode kept
        f.write("old report\n")
    os.chmod(rep, 0o640)
    old = os.stat(rep)
    d = cli("detach", lv.pid, "-o", rep)
    new = os.stat(rep)
    t.check(new.st_ino != old.st_ino and new.st_mode == old.st_mode,
            "-o: the old report was not replaced by a rename with its mode (inode %d, mode %o)"
            % (new.st_ino, new.st_mode))
    t.check(not [n for n in os.listdir(t.work_dir()) if n.endswith(".tmp")], "-o: a temporary file left",
            os.listdir(t.work_dir()))
    try:
        r = json.load(open(rep))
        got = [(p["spec"], p["hits"]) for p in r["probes"]]
        t.check(got == [("uprobe:live_work", 40), ("uretprobe:live_work", 40)] and not r["errors"],
                "-f with -e: both items, 40 hits each", r)
    except (OSError, ValueError, KeyError) as e:
        t.check(False, "-f: report: %s" % e, d.stderr)
    out, rc, _ = lv.quit()
    t.check(rc == 7, "-f: status 7", out)
    # -o naming a symlink: refused, as UPROBE_OUTPUT and run -o refuse it,
    # the file it names untouched (it was followed and overwritten)
    lv = Live([LIVE])
    lv.cmd("call 1")
    a = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")
    t.check(a.returncode == 0, "symlink: attached", a.stderr)
    victim, link = os.path.join(t.work_dir(), "victim"), os.path.join(t.work_dir(), "link.json")
    with open(victim, "w") as f:
        f.write("victim\n")
    os.symlink(victim, link)
    d = cli("detach", lv.pid, "-o", link)
    t.check(d.returncode == 1 and b"Too many levels of symbolic links" in d.stderr,
            "-o symlink: not refused (exit %d)" % d.returncode, d.stderr)
    t.check(open(victim).read() == "victim\n" and os.path.islink(link), "-o symlink: the file it names was written")
    out, rc, _ = lv.quit()
    t.check(rc == 7, "symlink: status 7", out)


def case_busy():
    # the main thread computing, not in a system call: a worker blocked in
    # futex is the one hijacked (then the main thread alone, computing)
    for threads in ("2", "0"):
        busy(threads)


# long enough (about half a second unprobed) for the attach, which takes a
# tenth of a second or more under load, to land inside the loop
BUSY_CALLS = 200000000


def busy(threads):
    lv = Live([LIVE, threads])
    lv.cmd("call 1")
    lv.send("call %d\n" % BUSY_CALLS)
    time.sleep(0.05)
    a = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")
    t.check(a.returncode == 0, "busy: attach while the main thread computes", a.stderr)
    got = lv.line()
    rep = detach_report(lv.pid, "busy", "busy: detach")
    if rep:
        hits = report_hits(rep, "live_work")
        t.check(0 < hits <= BUSY_CALLS, "busy: %d hits, part of the %d calls" % (hits, BUSY_CALLS))
    check_text(lv.pid, "busy: after detach")
    lv.cmd("call 5")
    out, rc, _ = lv.quit()
    t.check(rc == 7 and "done %d 0" % (BUSY_CALLS + 1) in out and "total %d" % (BUSY_CALLS + 6) in out,
            "busy (%s threads): the program's own counts and status are unprobed's" % threads, out)


def case_churn():
    # attach and detach while the program dlopens, dlcloses and forks
    argv = [LIVE, "0", DL_LIB]
    spec = "uprobe:live_work;uprobe:%s:dl_func" % DL_LIB
    lv = Live(argv)
    lv.cmd("call 1")
    lv.send("churn 400\n")
    raced = 0
    for i in range(3):
        a = cli("attach", lv.pid, "-e", spec, "--no-wait")
        # an attach that races the dlclose of the library (its code gone
        # while its site is read or written) keeps that item pending for
        # the next load, and says so; it never fails
        t.check(a.returncode == 0, "churn: attach %d during dlopen/dlclose/fork" % i, a.stderr)
        err = a.stderr.decode(errors="replace")
        t.check("already holds an int3" not in err and "Bad address" not in err,
                "churn: attach %d says nothing misleading" % i, err)
        if "it attaches when the program loads it" in err:
            raced += 1
            t.check("libsp_dl_lib.so:dl_func: its object is not loaded (or was unloaded while attaching)" in err,
                    "churn: attach %d names the pending item" % i, err)
        detach_report(lv.pid, "churn%d" % i, "churn: detach %d" % i)
    t.info("churn: %d of 3 attaches found the library not loaded (pending for its next load)" % raced)
    got = lv.line()
    t.check(got == "done 401 0\n", "churn: every call made, every child exited 0", got)
    if lv.p.poll() is not None:
        t.check(False, "churn: the program ended with status %d" % lv.p.returncode, lv.p.stderr.read())
        t.finish()
    check_text(lv.pid, "churn: after the last detach")
    out, rc, _ = lv.quit()
    t.check(rc == 7 and "child status" not in out, "churn: status 7, no child failed", out)


def case_sqlite():
    sqlite = shutil.which("sqlite3")
    stdbuf = shutil.which("stdbuf")
    if not sqlite or not stdbuf:
        t.skip("no sqlite3 or stdbuf")
        return
    argv = [stdbuf, "-oL", sqlite, ":memory:"]
    script = ["create table t(x integer);"] + ["insert into t values(%d);" % i for i in range(300)]

    class Sql(Live):
        QUIT = b".quit\n"

        def cmd(self, line):   # sqlite3 reads statements; a select ends each batch
            self.send(line + "\nselect 'done', count(*) from t;\n")
            return self.line()

    def drive(attach):
        s = Sql(argv)
        s.cmd(script[0])
        rep = None
        if attach:
            a = cli("attach", s.pid, "-e", "uprobe:libsqlite3:sqlite3_step", "--no-wait")
            t.check(a.returncode == 0, "sqlite3: attach", a.stderr)
        for line in script[1:]:
            s.cmd(line)
        if attach:
            rep = detach_report(s.pid, "sqlite", "sqlite3: detach")
            check_text(s.pid, "sqlite3: after detach")
        out, rc, _ = s.quit()
        return out, rc, rep

    out, rc, rep = drive(True)
    want, wrc, _ = drive(False)
    t.check(out == want and rc == wrc == 0, "sqlite3: output and status as unprobed", t.clip(out))
    if rep and os.path.exists(rep):
        hits = report_hits(rep, "sqlite3_step")
        # each batch: one insert step, the select's (a row, then done)
        t.check(hits >= 300 * 2, "sqlite3: %d sqlite3_step hits for 300 inserts and 300 selects" % hits)


def case_threads():
    # and the program's own SIGTRAP handler still gets its own traps while
    # attached (the late runtime chains to it)
    attached_run([LIVE, "4"], ["tcall 100", "trap 2"], "uprobe:live_work", ["tcall 2500", "trap 3", "call 10"],
                 ["tcall 7", "trap 1"], "live_work", 4 * 2500 + 10, "threads")
    # threads that block SIGTRAP: an int3 hit there would kill the
    # process, so a runtime loaded late refuses (a preloaded one keeps
    # SIGTRAP unblocked itself)
    lv = Live([LIVE, "2", DL_LIB, "blocktrap"])
    lv.cmd("call 1")
    refused(["attach", lv.pid, "-e", "uprobe:live_work"], r"blocks SIGTRAP", "threads blocking SIGTRAP")
    check_text(lv.pid, "blocked SIGTRAP: target untouched")
    lv.cmd("tcall 100")
    out, rc, _ = lv.quit()
    t.check(rc == 7, "blocked SIGTRAP: runs on", out)


def json_hits(path):
    with open(path) as f:
        r = json.load(f)
    return {p["label"].split(":")[-1]: p["hits"] for p in r["probes"]}, r


def case_latesig():
    # A runtime loaded late keeps SIGTRAP and the faults its own when the
    # program, AFTER the attach, installs its own SIGTRAP handler (through
    # a pointer to sigaction taken with dlsym before the attach), blocks
    # SIGTRAP (sigprocmask, pthread_sigmask in the workers) and installs a
    # SIGSEGV handler: libc's entry points lead into the runtime while
    # attached (engine/sigtake.h).  live_int3 is on the int3 path (a branch
    # into its bytes 1-4), live_work on the jmp path.
    argv = [LIVE, "2"]
    spec = "uprobe:live_int3;uprobe:live_work"
    during = ["settrap", "icall 500", "call 300", "trap 3", "block", "icall 200", "call 100",
              "unblock", "tblock 50", "segv", "icall 7", "settrap", "setusr", "usr"]
    # after the detach: the SIGUSR1 handler set while attached (installed
    # behind the runtime's wrapper) reads back as the program's own
    after = ["usr", "icall 5", "trap 1", "settrap", "block", "call 2", "unblock"]
    for round_ in (1, 2):   # the second: a session after a detach, the program's handler set meanwhile
        lv = Live(argv)
        lv.cmd("call 10")
        if round_ == 2:
            a = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")
            t.check(a.returncode == 0, "latesig: a first session", a.stderr)
            d = cli("detach", lv.pid)
            t.check(d.returncode == 0, "latesig: its detach", d.stderr)
            lv.cmd("settrap")   # no session: straight to the kernel
        a = cli("attach", lv.pid, "-e", spec, "--no-wait")
        t.check(a.returncode == 0, "latesig %d: attach" % round_, a.stderr)
        maps = open("/proc/%d/maps" % lv.pid).read()
        for c in during:
            lv.cmd(c)
        rep = detach_report(lv.pid, "latesig%d" % round_, "latesig %d: detach" % round_)
        if rep:
            hits, r = json_hits(rep)
            want = {"live_int3": 500 + 200 + 2 * 50 + 7, "live_work": 300 + 100 + 2 * 50}
            t.check(hits == want and not r["errors"],
                    "latesig %d: exact counts %s (int3 and jmp probes) and no error" % (round_, want),
                    open(rep).read())
        check_text(lv.pid, "latesig %d: after detach (libc's entry points too)" % round_)
        t.check("/libselfprobe.so" in maps, "latesig %d: the runtime was loaded late" % round_)
        for c in after:
            lv.cmd(c)
        out, rc, err = lv.quit()
        want_out, want_rc, _ = unprobed(argv, ["call 10"] + (["settrap"] if round_ == 2 else []) + during + after)
        # between sessions libc's sigaction is libc's again and the
        # program's own actions are back in the kernel: round 2's read-back
        # there finds main's handler, as unprobed (it found the runtime's)
        t.check(out == want_out and rc == want_rc == 7,
                "latesig %d: output and status as unprobed (the program's own traps and fault handled by "
                "it, its old actions read back as its own)" % round_,
                "probed (%d):\n%s\nunprobed:\n%s\nstderr: %s" % (rc, t.clip(out), t.clip(want_out), err))
    # a handler of ours that faults after the program installed its own
    # SIGSEGV handler: the runtime's fault recovery still gets it (the
    # probe is disabled), the program's handler never sees it
    plugin = os.path.join(os.path.dirname(t.LIB), "libsp_crash_plugin.so")
    if not os.path.exists(plugin):
        t.skip("no crash plugin built (%s)" % plugin)
        return
    lv = Live([LIVE])
    lv.cmd("call 1")
    a = cli("attach", lv.pid, "-e", "uprobe:live_work=%s:crash" % plugin, "--no-wait")
    t.check(a.returncode == 0, "latesig fault: attach a faulting handler", a.stderr)
    lv.cmd("segv")
    lv.cmd("call 20")
    rep = detach_report(lv.pid, "latesig_fault", "latesig fault: detach")
    if rep:
        hits, _ = json_hits(rep)
        t.check(hits.get("live_work") == 20, "latesig fault: 20 hits (counted, the handler disabled)",
                open(rep).read())
    check_text(lv.pid, "latesig fault: after detach")
    lv.cmd("call 3")
    out, rc, err = lv.quit()
    want_out, want_rc, _ = unprobed([LIVE], ["call 1", "segv", "call 20", "call 3"])
    t.check(out == want_out and rc == want_rc == 7, "latesig fault: output and status as unprobed",
            "probed (%d):\n%s\nunprobed:\n%s\nstderr: %s" % (rc, t.clip(out), t.clip(want_out), err))


def case_reattach():
    lv = Live([LIVE])
    lv.cmd("call 0")
    a1 = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")
    t.check(a1.returncode == 0, "first attach", a1.stderr)
    a2 = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")
    t.check(a2.returncode == 1 and b"already attached" in a2.stderr, "a second attach: 'already attached'",
            a2.stderr)
    lv.cmd("call 400")
    rep = os.path.join(t.work_dir(), "re1.json")
    d1 = cli("detach", lv.pid, "-o", rep)
    t.check(d1.returncode == 0 and report_hits(rep, "live_work") == 400, "first window: 400", d1.stderr)
    d2 = cli("detach", lv.pid)
    t.check(d2.returncode == 1 and b"not attached" in d2.stderr, "a second detach: 'not attached'", d2.stderr)
    lv.cmd("call 50")   # between attachments: in no window
    a3 = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")
    t.check(a3.returncode == 0, "attach again", a3.stderr)
    lv.cmd("call 700")
    rep = os.path.join(t.work_dir(), "re2.json")
    d3 = cli("detach", lv.pid, "-o", rep)
    t.check(d3.returncode == 0 and report_hits(rep, "live_work") == 700,
            "second window: 700 (not the first window's too)", open(rep).read() if d3.returncode == 0 else d3.stderr)
    check_text(lv.pid, "reattach: after the second detach")
    out, rc, _ = lv.quit()
    t.check(rc == 7 and "total 1150" in out, "reattach: status 7, 1150 calls", out)


def case_dlfork():
    # a library the program dlopens while attached; a fork child while
    # attached (its calls are its own: not in the parent's window)
    spec = "uprobe:live_work;uprobe:%s:dl_func" % DL_LIB
    attached_run([LIVE, "0", DL_LIB], ["call 10"], spec, ["dlcall 400", "fork 250", "call 30"], ["dlcall 5"],
                 "dl_func", 400, "dlfork")


def case_python():
    if not os.path.exists(PYTHON):
        t.skip("no %s" % PYTHON)
        return
    script = os.path.join(t.work_dir(), "live.py")
    with open(script, "w") as f:
        f.write("import sys\n"
                "n = 0\n"
                "for line in sys.stdin:\n"
                "    w = line.split()\n"
                "    if w[0] == 'quit':\n"
                "        break\n"
                "    for i in range(int(w[1])):\n"
                "        n += len('%d' % i)\n"
                "    print('done', n, flush=True)\n"
                "print('total', n)\n"
                "sys.exit(7)\n")
    argv = [PYTHON, script]
    lv = Live(argv)
    lv.cmd("call 100")
    # PyUnicode_Format: once per '%d' % i (PyObject_Repr is inlined into
    # repr() in Debian's build)
    a = cli("attach", lv.pid, "-e", "uprobe:PyUnicode_Format", "--no-wait")
    t.check(a.returncode == 0, "python: attach", a.stderr)
    lv.cmd("call 3000")
    rep = detach_report(lv.pid, "py", "python: detach")
    if rep:
        hits = report_hits(rep, "PyUnicode_Format")
        t.check(3000 <= hits <= 3010, "python: %d PyUnicode_Format hits for 3000 formats" % hits,
                open(rep).read())
    check_text(lv.pid, "python: after detach")
    lv.cmd("call 10")
    out, rc, _ = lv.quit()
    want, wrc, _ = unprobed(argv, ["call 100", "call 3000", "call 10"])
    t.check(out == want and rc == wrc == 7, "python: output and status as unprobed", out + "\n--\n" + want)


def refused(args, pattern, what, pid=None, user=None):
    r = cli(*args, user=user)
    err = r.stderr.decode(errors="replace")
    t.check(r.returncode == 1 and re.search(pattern, err), "%s: refused (%s)" % (what, err.strip()), err)
    if pid:
        check_text(pid, "%s: target untouched" % what)
        t.check("/libselfprobe.so" not in open("/proc/%d/maps" % pid).read(), "%s: nothing loaded" % what)


def case_bad():
    # a pid that no longer exists
    p = subprocess.Popen(["true"])
    p.wait()
    refused(["attach", p.pid, "-e", "uprobe:live_work"], r"no process %d" % p.pid, "nonexistent pid")
    # a zombie
    z = subprocess.Popen(["sh", "-c", "exit 0"])
    for _ in range(100):
        with open("/proc/%d/stat" % z.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.02)
    refused(["attach", z.pid, "-e", "uprobe:live_work"], r"zombie", "zombie")
    z.wait()
    # a kernel thread: kthreadd is pid 2 where the pid namespace is the host's
    try:
        with open("/proc/2/stat") as f:
            kthread = "(kthreadd)" in f.read()
    except OSError:
        kthread = False
    if kthread:
        refused(["attach", 2, "-e", "uprobe:x"], r"kernel thread", "kernel thread")
    else:
        t.skip("no kernel thread visible in this pid namespace (pid 2 is not kthreadd)")
    # a stopped process (Ctrl-Z): nobody would load or answer
    sp = Live([LIVE])
    sp.cmd("call 1")
    os.kill(sp.pid, 19)
    for _ in range(100):
        with open("/proc/%d/stat" % sp.pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                break
        time.sleep(0.02)
    refused(["attach", sp.pid, "-e", "uprobe:live_work"], r"is stopped", "stopped process", pid=sp.pid)
    os.kill(sp.pid, 18)
    sp.cmd("call 2")
    out, rc, _ = sp.quit()
    t.check(rc == 7, "stopped: runs on once continued", out)
    # a static executable
    st = Live([LIVE_STATIC])
    st.cmd("call 1")
    refused(["attach", st.pid, "-e", "uprobe:live_work"], r"static executable", "static", pid=None)
    out, rc, _ = st.quit()
    t.check(rc == 7, "static: runs on", out)
    lv = Live([LIVE])
    lv.cmd("call 1")   # started: its libraries loaded
    # a spec that fails in the target: its errors come back; nothing stays
    refused(["attach", lv.pid, "-e", "uprobe:live_work;uprobe:no_such_function_here"],
            r"no_such_function_here", "spec failing in the target")
    check_text(lv.pid, "failed spec: target untouched")
    c = cli("detach", lv.pid)
    t.check(c.returncode == 1 and b"not attached" in c.stderr, "failed spec: nothing attached", c.stderr)
    # detach with nothing attached, in a process without the runtime
    lv2 = Live([LIVE])
    lv2.cmd("call 1")
    refused(["detach", lv2.pid], r"no control channel", "detach unattached", pid=lv2.pid)
    # another user's process, without privileges
    if os.geteuid() == 0 and shutil.which("setpriv"):
        refused(["attach", lv2.pid, "-e", "uprobe:live_work"], r"belongs to user 0", "other user",
                pid=lv2.pid, user=65534)
    elif os.geteuid() != 0:
        t.skip("not root: no process of another user to try")
    else:
        t.skip("no setpriv to run the CLI as another user")
    # already traced (a debugger): this test seizes it
    libc = ctypes.CDLL(None, use_errno=True)
    PTRACE_SEIZE, PTRACE_DETACH = 0x4206, 17
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_SEIZE, lv2.pid, None, None) == 0:
        refused(["attach", lv2.pid, "-e", "uprobe:live_work"], r"already traced by process %d" % os.getpid(),
                "already traced", pid=lv2.pid)
        libc.ptrace(PTRACE_DETACH, lv2.pid, None, None)
    else:
        t.skip("cannot ptrace a child here (errno %d)" % ctypes.get_errno())
    # Yama: named when it forbids (only readable here)
    yama = "/proc/sys/kernel/yama/ptrace_scope"
    if not os.path.exists(yama):
        t.info("no Yama on this kernel: its refusal (kernel.yama.ptrace_scope named) is not exercised")
    # a preloaded program without the control channel: opt-in
    pre = Live([LIVE], env=dict(t.base_env(), LD_PRELOAD=t.LIB))
    pre.cmd("call 1")
    refused(["attach", pre.pid, "-e", "uprobe:live_work"], r"UPROBE_CONTROL=1", "preloaded without control")
    for x in (lv, lv2, pre):
        out, rc, _ = x.quit()
        t.check(rc == 7, "bad inputs: the program runs on (%d)" % x.pid, out)
    # usage errors
    u = cli("attach", "notapid", "-e", "uprobe:x")
    t.check(u.returncode == 2, "usage: a PID that is not a number", u.stderr)


def case_control():
    # a preloaded program that opted in (selfprobe run --control): the
    # channel is its own, no ptrace; top and the metrics endpoint
    rep_run = os.path.join(t.work_dir(), "run.txt")
    lv = Live([t.CLI, "run", "--control", "-o", rep_run, "--", LIVE])
    child = None
    for _ in range(200):
        kids = open("/proc/%d/task/%d/children" % (lv.pid, lv.pid)).read().split()
        if kids:
            child = int(kids[0])
            break
        time.sleep(0.02)
    lv.cmd("call 1")
    t.check(child is not None, "control: the program started")
    a = cli("attach", child, "-e", "uprobe:live_work=latency", "--no-wait")
    t.check(a.returncode == 0, "control: attach through the program's own channel", a.stderr)
    lv.cmd("call 1234")
    # top: two screens with stdin at its end, then it detaches
    tp = cli("top", child, "--iterations", "2")
    text = tp.stdout.decode()
    t.check(tp.returncode == 0 and re.search(r"\s1234\s+0\s+\S+\s+\S+\s+\S+\s+uprobe:live_work", text),
            "control: top shows 1234 hits of uprobe:live_work", text + tp.stderr.decode())
    d = cli("detach", child)
    t.check(d.returncode == 1 and b"not attached" in d.stderr, "control: top detached on leaving", d.stderr)
    check_text(child, "control: after top")
    metrics(lv, child)
    out, rc, err = lv.quit()
    t.check(rc == 7, "control: the program's status through run", out + err)


def case_killed():
    # a process SIGKILLed while `attach` waits: the report holds its counts
    # at its death exactly (read from its counters file, not a snapshot of
    # up to a second before).  sp_live's spinkill calls live_work for 1.5 s,
    # prints how many calls it made (each returned), and kills itself.
    lv = Live([LIVE])
    lv.cmd("call 100")   # before the attach: in no window
    rep = os.path.join(t.work_dir(), "killed.json")
    a = subprocess.Popen([t.CLI, "attach", str(lv.pid), "-e", "uprobe:live_work",
                          "-e", "uretprobe:live_work=latency", "-o", rep],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.base_env())
    first = a.stderr.readline().decode()
    t.check("attached to %d: 2 probes" % lv.pid in first, "killed: attached", first)
    lv.send("spinkill 1500\n")
    line = lv.line()
    m = re.match(r"killed (\d+)", line)
    t.check(m is not None, "killed: the program said how many calls it made", line)
    lv.p.wait(timeout=60)
    t.check(lv.p.returncode == -9, "killed: the program died of SIGKILL", lv.p.returncode)
    try:
        _, err = a.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        a.kill()
        _, err = a.communicate()
    err = first + err.decode()
    t.check(a.returncode == 1 and "ended while attached" in err,
            "killed: attach says the process ended while attached (status 1)", "%s\n%s" % (a.returncode, err))
    if not m or not os.path.exists(rep):
        t.check(False, "killed: a report was written", err)
        return
    n = int(m.group(1))
    with open(rep) as f:
        r = json.load(f)
    got = {p["spec"]: p for p in r["probes"]}
    hits = got.get("uprobe:live_work", {}).get("hits")
    t.check(hits == n, "killed: %s hits of live_work, the %d calls made until its death" % (hits, n),
            json.dumps(r)[:2000])
    lat = got.get("uretprobe:live_work=latency", {})
    t.check(lat.get("hits") == n and lat.get("latency", {}).get("count") == n,
            "killed: the latency probe's returns and histogram count %d too" % n, json.dumps(lat)[:1000])
    t.check(r.get("pid") == lv.pid and r.get("comm") == "sp_live" and 1.0 < r.get("seconds", 0) < 30,
            "killed: pid, comm and the attached seconds", "%s %s %s" % (r.get("pid"), r.get("comm"),
                                                                        r.get("seconds")))


def control_conn(pid):
    """A connection to PID's control channel, held open: once ping is
    answered, the server thread serves it (it is not in accept())."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0selfprobe.%d" % pid)
    s.sendall(b"ping 0\n")
    got = b""
    while b"}" not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    t.check(got.startswith(b"OK "), "control connection: ping answered", got)
    return s


def server_in_accept(pid, timeout=10):
    """Wait until PID's selfprobe-ctl thread is blocked in accept4."""
    end = time.time() + timeout
    while time.time() < end:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    if f.read().strip() != "selfprobe-ctl":
                        continue
                with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                    if f.read().split()[0] == "288":   # accept4 (x86-64)
                        return True
            except OSError:
                pass
        time.sleep(0.02)
    return False


def case_ownlisten():
    # the program closes the runtime's listening socket and puts a listening
    # socket of its own at that number: the runtime never accepts its
    # connections, and serves attach on a socket made again under its name
    lv = Live([LIVE])
    a = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")
    t.check(a.returncode == 0, "ownlisten: first attach", a.stderr)
    d = cli("detach", lv.pid, "-o", "/dev/null")
    t.check(d.returncode == 0, "ownlisten: first detach", d.stderr)
    with control_conn(lv.pid):
        lv.cmd("ownlisten")
    at = [l for l in "".join(lv.out).splitlines() if l.startswith("listening at ")]
    t.check(len(at) == 1, "ownlisten: one listening socket was the runtime's, the program's now", at)
    t.check(server_in_accept(lv.pid), "ownlisten: the server waits for connections again", "")
    mine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mine.connect("\0sp_live.%d" % lv.pid)
    time.sleep(0.3)   # time for a server blocked on the program's socket to take it
    got = lv.cmd("ownaccept")
    acc = [l for l in "".join(lv.out).splitlines() if l.startswith("accepted ")]
    t.check(acc[-1:] == ["accepted 1"], "ownlisten: the program accepts its own connection", "%s %s" % (acc, got))
    mine.close()
    a = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")
    t.check(a.returncode == 0, "ownlisten: attach after (a new listening socket)", a.stderr)
    lv.cmd("call 25")
    rep = os.path.join(t.work_dir(), "ownlisten.json")
    d = cli("detach", lv.pid, "-o", rep)
    t.check(d.returncode == 0, "ownlisten: detach after", d.stderr)
    try:
        with open(rep) as f:
            hits = json.load(f)["probes"][0]["hits"]
    except (OSError, ValueError, LookupError) as e:
        hits = str(e)
    t.check(hits == 25, "ownlisten: 25 hits", hits)
    out, rc, _ = lv.quit()
    t.check(rc == 7 and "total 25" in out, "ownlisten: the program's status and calls", out)


def case_closedfd():
    # a program that closes every descriptor (a daemon's closefrom) after the
    # runtime made its counters file: the number now names /dev/null, which
    # is neither mapped nor handed out; attach counts over the channel, and
    # a latency probe set up after that (private memory) counts right
    lv = Live([LIVE])
    a = cli("attach", lv.pid, "-e", "uprobe:live_work", "--no-wait")   # the file is made
    t.check(a.returncode == 0, "closedfd: first attach", a.stderr)
    lv.cmd("call 10")
    d = cli("detach", lv.pid, "-o", "/dev/null")
    t.check(d.returncode == 0, "closedfd: first detach", d.stderr)
    # the server is inside a connection, not in accept() (which would keep
    # the socket alive a while): the closing destroys the listening socket
    # and its name, and the connection's number is the program's /dev/null
    with control_conn(lv.pid):
        lv.cmd("closefds")
    rep = os.path.join(t.work_dir(), "closedfd.json")
    w = subprocess.Popen([t.CLI, "attach", str(lv.pid), "-e", "uprobe:live_work",
                          "-e", "uretprobe:live_work=latency", "-o", rep],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.base_env())
    first = w.stderr.readline().decode()
    second = w.stderr.readline().decode()
    lv.cmd("call 600")
    w.send_signal(2)
    _, err = w.communicate(timeout=60)
    err = first + second + err.decode()
    t.check(w.returncode == 0 and "the program closed its descriptor" in err
            and "over the control channel instead" in err,
            "closedfd: attach says the file is gone and counts over the channel", err)
    try:
        with open(rep) as f:
            r = json.load(f)
        got = {p["spec"]: p for p in r["probes"]}
    except (OSError, ValueError) as e:
        got = {"error": str(e)}
    t.check(got.get("uprobe:live_work", {}).get("hits") == 600
            and got.get("uretprobe:live_work=latency", {}).get("latency", {}).get("count") == 600,
            "closedfd: 600 hits and 600 latency samples", got)
    check_text(lv.pid, "closedfd: after detach")
    out, rc, _ = lv.quit()
    t.check(rc == 7 and "total 610" in out, "closedfd: the program's status and calls", out)


def readme_block():
    """The shell block of README.md's "Probing a running process"."""
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
    text = open(readme).read()
    sec = text.index("### Probing a running process")
    start = text.index("```sh\n", sec) + len("```sh\n")
    return text[start:text.index("```", start)]


def case_readme():
    # the README's walkthrough, run as written (ports and the report's path
    # made free ones: other tests run beside this one), a client giving the
    # server work meanwhile; the last line (kill $PID) is run by the test
    # once it has compared the server's text with its files
    import threading
    import urllib.request
    if not os.path.exists(PYTHON) or not shutil.which("curl"):
        t.skip("no %s or no curl" % PYTHON)
        return
    block = readme_block()
    web, mport = free_port(), free_port()
    rep = os.path.join(t.work_dir(), "readme-recv.json")
    for old in ("8000", "127.0.0.1:9464", "/tmp/recv.json", "\nkill $PID\n"):
        t.check(old in block, "readme: the block has %r" % old, block)
    script = block.replace("8000", str(web)).replace("9464", str(mport)).replace("/tmp/recv.json", rep)
    script = script.replace("\nkill $PID\n", "\necho PID=$PID\n")
    here = os.path.join(t.work_dir(), "readme")
    os.makedirs(here, exist_ok=True)
    if not os.path.lexists(os.path.join(here, "build")):
        os.symlink(t.BUILD, os.path.join(here, "build"))
    with open(os.path.join(here, "walk.sh"), "w") as f:
        f.write(script)
    sh = subprocess.Popen(["bash", "walk.sh"], cwd=here, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=t.base_env())
    done = threading.Event()
    served = []

    def load():   # the other terminal's curl, ten times a second
        while not done.is_set():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/" % web, timeout=5) as r:
                    served.append(r.status)
            except OSError:
                pass
            time.sleep(0.1)
    threading.Thread(target=load, daemon=True).start()
    errs = []
    reader = threading.Thread(target=lambda: errs.append(sh.stderr.read().decode(errors="replace")), daemon=True)
    reader.start()
    out, screens, pid = [], 0, None
    deadline = time.time() + 180
    while time.time() < deadline:
        line = sh.stdout.readline().decode(errors="replace")
        if not line:
            break
        out.append(line)
        if line.startswith("selfprobe top: process"):
            screens += 1
            if screens == 3:   # q, as a user would after a few screens
                sh.stdin.write(b"q")
                sh.stdin.flush()
        if line.startswith("PID="):
            pid = int(line[4:])
            break
    text = "".join(out)
    if pid is None:
        sh.kill()
        sh.wait()
        t.check(False, "readme: the walkthrough ran to its end", text + "".join(errs))
        return
    check_text(pid, "readme: the server after the walkthrough")
    os.kill(pid, 15)   # the block's last line
    sh.wait(timeout=60)
    done.set()
    reader.join(timeout=60)
    err = "\n".join(l for l in "".join(errs).splitlines() if "GET / HTTP" not in l)
    t.check(sh.returncode == 0, "readme: the walkthrough's shell exits 0", err)
    t.check("attached to %d: 2 probes" % pid in err, "readme: the first attach", err)
    rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+\d+\s+(\S+)\s+\S+\s+\S+\s+(uprobe:\S+)$", text, re.M)
    fmt = [int(total) for _, total, _, lab in rows if lab == "uprobe:PyUnicode_Format"]
    lat = [p50 for _, _, p50, lab in rows if lab == "uprobe:libc:malloc"]
    t.check(screens >= 3 and fmt and max(fmt) > 0, "readme: top counts PyUnicode_Format (%s)" % fmt, text)
    t.check(lat and lat[-1] != "-", "readme: top shows malloc's latency percentiles", text)
    t.check(re.search(r'^selfprobe_hits_total\{probe="uprobe:libc:malloc",.*pid="%d".*\} \d+' % pid, text, re.M)
            and "# EOF" in text, "readme: curl scrapes the metrics while attached", text + err)
    t.check(re.search(r"^Attached to %d \(python3.11\) for [0-9.]+ s:" % pid, text, re.M)
            and report_hits(text, "uprobe:libc:malloc") > 0,
            "readme: Ctrl-C of attach reports on stdout", text + err)
    try:
        with open(rep) as f:
            r = json.load(f)
        recv = r["probes"][0]["hits"]
    except (OSError, ValueError, KeyError, IndexError) as e:
        r, recv = str(e), 0
    t.check(recv > 0 and 9.5 < r["seconds"] < 20, "readme: --duration 10 -o recv.json: %d recv calls" % recv, r)
    t.check(served and all(c == 200 for c in served), "readme: the server answered every request (%d)"
            % len(served))


def metrics_tools():
    """The OpenMetrics parser, or None (a skip said)."""
    try:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    except ImportError:
        t.skip("no prometheus_client (Debian python3-prometheus-client) to parse /metrics")
        return None
    if not shutil.which("curl"):
        t.skip("no curl to scrape /metrics")
        return None
    return text_string_to_metric_families


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port, parse, what):
    c = t.run(["curl", "-sS", "-f", "http://127.0.0.1:%d/metrics" % port], timeout=60)
    text = c.stdout.decode()
    t.check(c.returncode == 0 and text.endswith("# EOF\n"), "%s: scraped" % what, text + c.stderr.decode())
    fams = {}
    try:
        for fam in parse(text):
            fams[fam.name] = fam
    except Exception as e:   # noqa: BLE001 — the parser's verdict is the check
        t.check(False, "%s: the OpenMetrics parser accepts it (%s)" % (what, e), text)
    return fams


def case_runmetrics():
    # `selfprobe run --metrics`: every process's counts from the shared file
    parse = metrics_tools()
    if not parse:
        return
    port = free_port()
    rep = os.path.join(t.work_dir(), "run.json")
    lv = Live([t.CLI, "run", "-e", "uprobe:live_work", "-e", "uretprobe:live_work=latency", "-o", rep,
               "--metrics", "127.0.0.1:%d" % port, "--", LIVE])
    lv.cmd("call 500")
    fams = scrape(port, parse, "run --metrics")
    out, rc, err = lv.quit()
    t.check(rc == 7, "run --metrics: the program's status", err)
    with open(rep) as f:
        r = json.load(f)
    want = {p["spec"]: p["hits"] for p in r["probes"]}
    hits = {s.labels["probe"]: s.value for s in fams.get("selfprobe_hits", []).samples
            if s.name.endswith("_total")} if "selfprobe_hits" in fams else {}
    t.check(hits == want and want.get("uprobe:live_work") == 500, "run --metrics: hits equal the report's (500)",
            "%s\n%s" % (hits, want))
    lat = [s for s in fams["selfprobe_latency_seconds"].samples if s.name.endswith("_count")] \
        if "selfprobe_latency_seconds" in fams else []
    t.check(len(lat) == 1 and lat[0].value == 500, "run --metrics: the latency histogram counts 500", lat)


def metrics(lv, pid):
    parse = metrics_tools()
    if not parse:
        return
    port = free_port()
    a = subprocess.Popen([t.CLI, "attach", str(pid), "-e", "uprobe:live_work;uretprobe:live_work=latency",
                          "-o", os.path.join(t.work_dir(), "m.json"), "--metrics", "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.base_env())
    a.stderr.readline()          # attached
    a.stderr.readline()          # metrics on ...
    lv.cmd("call 777")
    fams = scrape(port, parse, "metrics")
    a.send_signal(2)   # Ctrl-C: detach, report
    out, err = a.communicate(timeout=60)
    t.check(a.returncode == 0, "metrics: attach ends at Ctrl-C with the report", err)
    with open(os.path.join(t.work_dir(), "m.json")) as f:
        rep = json.load(f)
    if "selfprobe_hits" not in fams or "selfprobe_latency_seconds" not in fams:
        t.check(False, "metrics: the families are there", fams)
        return
    hits = {s.labels["probe"]: s.value for s in fams["selfprobe_hits"].samples if s.name.endswith("_total")}
    want = {p["spec"]: p["hits"] for p in rep["probes"]}
    t.check(hits == want and want.get("uprobe:live_work") == 777, "metrics: hits equal the report's (777)",
            "%s\n%s" % (hits, want))
    lat = [s for s in fams["selfprobe_latency_seconds"].samples if s.name.endswith("_count")]
    rl = [p for p in rep["probes"] if p["action"] == "latency"][0]["latency"]["count"]
    t.check(len(lat) == 1 and lat[0].value == rl == 777, "metrics: latency histogram count equals the report's",
            "%s %s" % (lat, rl))
    lab = fams["selfprobe_hits"].samples[0].labels
    t.check(lab.get("pid") == str(pid) and lab.get("comm") == "sp_live" and lab.get("symbol") == "live_work",
            "metrics: labels pid, comm, symbol", lab)


CASES = {"latesig": case_latesig, "churn": case_churn, "runmetrics": case_runmetrics, "busy": case_busy, "sqlite": case_sqlite, "single": case_single, "threads": case_threads, "python": case_python, "reattach": case_reattach,
         "dlfork": case_dlfork, "bad": case_bad, "control": case_control, "killed": case_killed,
         "readme": case_readme, "closedfd": case_closedfd,
         "ownlisten": case_ownlisten}


def main():
    t.require_build()
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: e2e_attach.py {%s}" % "|".join(CASES))
        sys.exit(2)
    CASES[sys.argv[1]]()
    t.finish()


if __name__ == "__main__":
    main()
