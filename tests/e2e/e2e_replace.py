#!/usr/bin/python3
"""e2e_replace — a report is never seen half-written or empty.

  rename     a report (the preload's, the launcher's, a timeline) replaces an
             existing file by a rename: a new inode, the old file's mode kept,
             no temporary file left in the directory
  shared     without %p, a fork child's report and its parent's go to one
             name: each whole, the last to exit left
  readers    a reader polling a file a program rewrites again and again with
             selfprobe_write_report() reads a whole JSON report every time
  failed     a report that cannot be written whole (RLIMIT_FSIZE) is said on
             stderr, the text report follows there, and the old file is left
             as it was, with no temporary file beside it
  in place   where a rename cannot or must not replace the target, the report
             is written in place as before: /dev/null, a FIFO, another user's
             file (its owner kept), a file in a directory its user cannot
             write, a file with a second name (hard link), a target a rename
             cannot replace (a bind mount: its contents copied in place)
  refused    what a plain open refused is refused still: a symlink at the
             target, a read-only file in a writable directory
"""
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time

import sptest as t

N = 1000
SPEC = "uprobe:t_nop;uprobe:t_call"
NOBODY = 65534


class NobodyTools:
    """What runs as nobody, copied into a folder anyone can enter (the
    launcher beside ../lib/libselfprobe.so of its own): the build may lie
    in a folder only root can enter (CI's clone, in a 0700 temporary
    folder).  The folders nobody writes into or may not are made here too."""

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="sp-replace-user-")
        os.chmod(self.top, 0o755)
        for sub in ("bin", "lib"):
            os.mkdir(os.path.join(self.top, sub), 0o755)
        self.target = os.path.join(self.top, "bin", os.path.basename(t.TARGET))
        self.cli = os.path.join(self.top, "bin", "selfprobe")
        self.lib = os.path.join(self.top, "lib", "libselfprobe.so")
        for src, dst in ((t.TARGET, self.target), (t.CLI, self.cli), (t.LIB, self.lib)):
            shutil.copy2(src, dst)

    def dir(self, name, mode=0o755):
        d = os.path.join(self.top, name)
        os.mkdir(d)
        os.chmod(d, mode)
        return d

    def env(self, path):
        env = t.probed_env(SPEC, "int3", path)
        env["LD_PRELOAD"] = self.lib
        return env

    def close(self):
        shutil.rmtree(self.top, ignore_errors=True)


AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]


def fresh_dir(name, mode=0o755):
    d = os.path.join(t.work_dir(), name)
    os.makedirs(d)
    os.chmod(d, mode)
    return d


def leftovers(d, keep):
    """Files of D other than KEEP (names): temporary files left behind."""
    return sorted(set(os.listdir(d)) - set(keep))


def old_file(path, mode=0o640, text="old report\n"):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return os.stat(path)


def parses(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        t.check(False, "%s: %s is not a whole JSON report (%s)" % (what, path, e))
        return None


def test_rename():
    d = fresh_dir("rename")
    cases = [
        ("preload", "r.json", lambda p: t.run([t.TARGET, str(N)], t.probed_env(SPEC, "int3", p))),
        ("launcher", "l.json", lambda p: t.run([t.CLI, "run", "-o", p, "-e", SPEC, "--", t.TARGET, str(N)])),
        ("launcher timeline", "l.trace.json",
         lambda p: t.run([t.CLI, "run", "-o", p, "-e", "uprobe:t_nop=latency", "--", t.TARGET, "10"])),
    ]
    for what, name, run in cases:
        path = os.path.join(d, name)
        before = old_file(path)
        cp = run(path)
        t.check(cp.returncode == 0, "%s: exit %d" % (what, cp.returncode), t.clip(cp.stderr))
        after = os.stat(path)
        t.check(after.st_ino != before.st_ino, "%s: the report was written into the old file "
                "(same inode), not renamed over it" % what)
        t.check(stat.S_IMODE(after.st_mode) == 0o640, "%s: mode %o, want the old file's 0640"
                % (what, stat.S_IMODE(after.st_mode)))
        parses(path, what)
    t.check(not leftovers(d, [c[1] for c in cases]), "rename: files left behind",
            " ".join(leftovers(d, [c[1] for c in cases])))
    # a new report is made 0644 less the umask, as before
    path = os.path.join(d, "new.json")
    cp = t.run([t.TARGET, str(N)], t.probed_env(SPEC, "int3", path))
    if t.check(os.path.exists(path), "new file: no report"):
        t.check(stat.S_IMODE(os.stat(path).st_mode) == 0o644 & ~current_umask(),
                "new file: mode %o" % stat.S_IMODE(os.stat(path).st_mode))


def test_shared_name():
    """Without %p, a fork child and its parent write one name: whole, the
    parent's (the last to exit: it waits for the child) left."""
    d = fresh_dir("shared")
    path = os.path.join(d, "r.json")
    cp = t.run([t.TARGET, "fork", str(N)], t.probed_env("uprobe:t_nop", "int3", path))
    t.check(cp.returncode == 0, "shared name: exit %d" % cp.returncode, t.clip(cp.stderr))
    rep = parses(path, "shared name")
    t.check(rep and rep["pid"] == cp.pid and [e["hits"] for e in rep["probes"]] == [N],
            "shared name: not the parent's report", rep)
    t.check(not leftovers(d, ["r.json"]), "shared name: files left behind", " ".join(leftovers(d, ["r.json"])))


def current_umask():
    m = os.umask(0)
    os.umask(m)
    return m


WRITER = """
import ctypes, sys
write = ctypes.CDLL(None).selfprobe_write_report
write.argtypes = [ctypes.c_char_p]
for i in range(int(sys.argv[2])):
    if write(sys.argv[1].encode()) != 0:
        sys.exit(3)
"""


def test_readers():
    """A program rewrites its report many times; this test reads it in a
    loop meanwhile: every read must be a whole report.  Written in place,
    the reader saw it empty or cut short within a few dozen reads."""
    d = fresh_dir("readers")
    path = os.path.join(d, "r.json")
    # many probes (never hit), for a report of several stdio buffers
    env = t.probed_env("uprobe:libc:wcs*", output=os.path.join(d, "exit.json"))
    p = subprocess.Popen(["/usr/bin/python3", "-c", WRITER, path, "3000"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reads, bad = 0, []
    deadline = time.time() + 120
    while p.poll() is None and time.time() < deadline:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        reads += 1
        try:
            json.loads(data)
        except ValueError:
            bad.append(len(data))
    if p.poll() is None:
        p.kill()
    out, err = p.communicate()
    t.check(p.returncode == 0, "readers: the writer failed (exit %s)" % p.returncode, t.clip(err))
    t.check(reads >= 100, "readers: only %d reads while the report was rewritten: the test cannot "
            "tell" % reads)
    t.check(not bad, "readers: %d of %d reads were not a whole report (sizes %s)"
            % (len(bad), reads, sorted(set(bad))[:10]))
    t.check(not leftovers(d, ["r.json", "exit.json"]), "readers: files left behind",
            " ".join(leftovers(d, ["r.json", "exit.json"])))


def limited(nbytes):
    def set_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a core dump
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return set_limit


def test_failed():
    d = fresh_dir("failed")
    for name in ("r.json", "r.txt"):
        path = os.path.join(d, name)
        before = old_file(path)
        p = subprocess.Popen([t.TARGET, str(N)], env=t.probed_env(SPEC, "int3", path), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=limited(16))
        out, err = p.communicate()
        err = err.decode(errors="replace")
        t.check(p.returncode == 0, "RLIMIT_FSIZE %s: exit %d" % (name, p.returncode), err)
        t.check("cannot write the report to '%s': File too large" % path in err
                and "@count[uprobe:t_nop]: %d" % N in err,
                "RLIMIT_FSIZE %s: no message, or no text report on stderr" % name, err)
        with open(path) as f:
            t.check(f.read() == "old report\n", "RLIMIT_FSIZE %s: the old file was changed" % name)
        t.check(os.stat(path).st_ino == before.st_ino, "RLIMIT_FSIZE %s: the old file was replaced" % name)
    t.check(not leftovers(d, ["r.json", "r.txt"]), "RLIMIT_FSIZE: temporary files left behind",
            " ".join(leftovers(d, ["r.json", "r.txt"])))
    # the launcher's report, alike
    path = os.path.join(d, "r.json")
    p = subprocess.Popen([t.CLI, "run", "-o", path, "-e", SPEC, "--", t.TARGET, str(N)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=limited(16))
    out, err = p.communicate()
    err = err.decode(errors="replace")
    t.check("cannot write the report to '%s'" % path in err and "@count[uprobe:t_nop]: %d" % N in err,
            "launcher, RLIMIT_FSIZE: no message, or no text report on stderr", err)
    with open(path) as f:
        t.check(f.read() == "old report\n", "launcher, RLIMIT_FSIZE: the old file was changed")
    t.check(not leftovers(d, ["r.json", "r.txt"]), "launcher, RLIMIT_FSIZE: temporary files left behind",
            " ".join(leftovers(d, ["r.json", "r.txt"])))


def in_place(what, path, cmd, env=None, keep=None):
    """CMD writes its report to PATH, an existing file, in place."""
    before = os.stat(path)
    cp = t.run(cmd, env)
    t.check(cp.returncode == 0, "%s: exit %d" % (what, cp.returncode), t.clip(cp.stderr))
    after = os.stat(path)
    t.check(after.st_ino == before.st_ino and after.st_uid == before.st_uid,
            "%s: the file was replaced (inode %d, owner %d; before %d, %d)"
            % (what, after.st_ino, after.st_uid, before.st_ino, before.st_uid))
    parses(path, what)
    d = os.path.dirname(path)
    t.check(not leftovers(d, keep or [os.path.basename(path)]), "%s: files left behind" % what,
            " ".join(leftovers(d, keep or [os.path.basename(path)])))


def test_in_place():
    # /dev/null: no error, still the device
    cp = t.run([t.TARGET, str(N)], t.probed_env(SPEC, "int3", "/dev/null"))
    t.check(cp.returncode == 0 and b"selfprobe" not in cp.stderr, "/dev/null: an error", t.clip(cp.stderr))
    t.check(stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is no longer a device")
    # a FIFO: read whole by its reader, still a FIFO
    d = fresh_dir("fifo")
    fifo = os.path.join(d, "r.json")
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    cp = t.run([t.TARGET, str(N)], t.probed_env(SPEC, "int3", fifo))
    reader.join(60)
    t.check(cp.returncode == 0, "FIFO: exit %d" % cp.returncode, t.clip(cp.stderr))
    try:
        t.check(got and json.loads(got[0])["pid"] == cp.pid, "FIFO: not the report", t.clip(got))
    except ValueError:
        t.check(False, "FIFO: not JSON", t.clip(got[0]))
    t.check(stat.S_ISFIFO(os.stat(fifo).st_mode), "FIFO: replaced by a file")
    # a second name: both names keep the report
    d = fresh_dir("linked")
    path, other = os.path.join(d, "r.json"), os.path.join(d, "other.json")
    old_file(path, 0o644)
    os.link(path, other)
    in_place("hard link", path, [t.TARGET, str(N)], t.probed_env(SPEC, "int3", path), ["r.json", "other.json"])
    t.check(os.path.samefile(path, other), "hard link: the names no longer share the file")
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        t.skip("another user's file and an unwritable directory: need root and setpriv")
    else:
        # another user's file, written by root: its owner kept
        d = fresh_dir("others", 0o1777)
        path = os.path.join(d, "r.json")
        old_file(path, 0o666)
        os.chown(path, NOBODY, NOBODY)
        in_place("another user's file", path, [t.TARGET, str(N)], t.probed_env(SPEC, "int3", path))
        # a directory its user cannot write, the file writable
        tools = NobodyTools()
        try:
            d = tools.dir("closed")
            path = os.path.join(d, "r.json")
            old_file(path, 0o644)
            os.chown(path, NOBODY, NOBODY)
            in_place("unwritable directory", path, AS_NOBODY + [tools.target, str(N)], tools.env(path))
            in_place("unwritable directory, launcher", path,
                     AS_NOBODY + [tools.cli, "run", "-o", path, "-e", SPEC, "--", tools.target, str(N)])
        finally:
            tools.close()
    # a target no rename can replace: a file mounted over it (EBUSY)
    if os.geteuid() != 0 or not shutil.which("unshare"):
        t.skip("a bind-mounted target: needs root and unshare")
        return
    d = fresh_dir("mounted")
    path, src = os.path.join(d, "r.json"), os.path.join(d, "src.json")
    old_file(path, 0o644)
    old_file(src, 0o644)
    env = t.probed_env(SPEC, "int3", path)
    cp = t.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount --bind "$1" "$2" && exec "$3" %d' % N, "sh", src, path, t.TARGET], env)
    if b"mount" in cp.stderr and cp.returncode != 0:
        t.skip("a bind-mounted target: cannot mount here (%s)" % t.clip(cp.stderr, 200).strip())
        return
    t.check(cp.returncode == 0, "bind-mounted target: exit %d" % cp.returncode, t.clip(cp.stderr))
    rep = parses(src, "bind-mounted target")
    t.check(rep and rep["pid"] == cp.pid, "bind-mounted target: not this run's report")
    t.check(not leftovers(d, ["r.json", "src.json"]), "bind-mounted target: files left behind",
            " ".join(leftovers(d, ["r.json", "src.json"])))


def test_refused():
    """What a plain open refused is refused still, though a rename could
    replace it: a symlink at the target (the file it names untouched), a
    file its user may not write in a directory it may."""
    d = fresh_dir("refused", 0o777)
    victim, link = os.path.join(d, "victim"), os.path.join(d, "r.json")
    old_file(victim, 0o666, "victim\n")
    os.symlink(victim, link)
    runs = [("preload", [t.TARGET, str(N)], t.probed_env(SPEC, "int3", link)),
            ("launcher", [t.CLI, "run", "-o", link, "-e", SPEC, "--", t.TARGET, str(N)], None)]
    tools, readonly = None, None
    if os.geteuid() == 0 and shutil.which("setpriv"):
        tools = NobodyTools()
        readonly = os.path.join(tools.dir("refused", 0o777), "readonly.json")
        old_file(readonly, 0o444)
        os.chown(readonly, NOBODY, NOBODY)
        runs += [("read-only file", AS_NOBODY + [tools.target, str(N)], tools.env(readonly)),
                 ("read-only file, launcher", AS_NOBODY + [tools.cli, "run", "-o", readonly, "-e", SPEC, "--",
                                                           tools.target, str(N)], None)]
    else:
        t.skip("a read-only file of another user: needs root and setpriv")
    for what, cmd, env in runs:
        target = cmd[cmd.index("-o") + 1] if "-o" in cmd else env["UPROBE_OUTPUT"]
        cp = t.run(cmd, env)
        err = cp.stderr.decode(errors="replace")
        t.check(cp.returncode == 0 and "cannot write the report to '%s'" % target in err
                and "@count[uprobe:t_nop]: %d" % N in err, "%s: not refused, or no text report on stderr" % what, err)
    t.check(os.path.islink(link) and open(victim).read() == "victim\n", "symlink: replaced or followed")
    t.check(not leftovers(d, ["victim", "r.json"]), "refused: files left behind",
            " ".join(leftovers(d, ["victim", "r.json"])))
    if tools:
        t.check(open(readonly).read() == "old report\n", "read-only file: replaced")
        ro = os.path.dirname(readonly)
        t.check(not leftovers(ro, ["readonly.json"]), "read-only file: files left behind",
                " ".join(leftovers(ro, ["readonly.json"])))
        tools.close()


def main():
    t.require_build()
    test_rename()
    test_shared_name()
    test_readers()
    test_failed()
    test_in_place()
    test_refused()
    t.finish()


if __name__ == "__main__":
    main()
