#!/usr/bin/python3
"""e2e_hostile — hostile conditions and W^X (issue 9, items 4 and 5).

  e2e_hostile.py [int3|auto]...     (default: both modes)

The target is sp_hostile (tests/targets/sp_hostile.c), linked against
libselfprobe.so: with UPROBE_SPEC set its constructor attaches before main
exactly as the preload does; the seccomp, MDWE and W^X cases attach from
main through the C API after the restriction is in place.  Every probed run
must print what the unprobed run prints and exit the same way, and the
report's hits must equal the calls the program counted itself.

  sigtrap     the application installs its own SIGTRAP handler after attach
              (sigaction with a full sa_mask, then signal), raises SIGTRAP and
              executes int3: its handler sees every one, probes keep counting
  waitmask    waits whose mask blocks every signal but SIGUSR1 (sigsuspend,
              ppoll, pselect, epoll_pwait, epoll_pwait2) let in a SIGUSR1 whose
              handler makes a probed call; probed calls under sigblock(~0),
              sigsetmask(~0), sighold(SIGTRAP), sigset(SIGTRAP, SIG_HOLD); SIGTRAP
              handled and ignored through sigset and sigignore
  rawclone    a raw clone(CLONE_VM) thread and a raw clone(CLONE_VM) process
              (LeakSanitizer's tracer's flags), both running with the main
              thread's TLS, call h_thr N times each while the main thread does:
              every hit counted (uprobe), theirs `missed` where a return would
              be needed (uretprobe, usession), the main thread's returns exact
  blocked     every signal blocked (sigprocmask; pthread_sigmask in a thread)
  altstack    a SIGUSR1 handler (sa_mask: all) on a 2*MINSIGSTKSZ sigaltstack
              calls probed functions
  threads     8 threads on 64 KiB stacks, a plugin handler; the stack a hit
              costs is measured (painted stacks) and printed
  storm       thousands of SIGUSR1 at a thread running probed calls with a
              plugin handler; the signal handler calls a probed function
  seccomp     mprotect / membarrier / pwrite / pwrite+mprotect fail with EPERM,
              then attach (C API): it works, or fails cleanly and the program
              runs on; and the preload's constructor under an inherited filter
  mdwe        prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) then attach (C API);
              with pwrite also refused, attach must fail cleanly
  wx          no mapping writable and executable: scanned by a thread during
              attach, from a probe handler, and after; trampoline pages r-x;
              the same with /proc/self/mem writes refused (the mprotect
              fallback: read-write, then read-exec, never both)
  wxrace      probes attached and detached 20 times while 2 threads hammer
              the probed functions (one of the program's, memchr, memcpy, a
              libc function on mprotect's page) and other sites on their
              pages are patched: every call hits exactly as its probe's state
              allows (0…0 1…1 attaching, 1 attached, 1…1 0…0 detaching), no
              W+X seen by a watcher thread or from a handler, none of the
              write windows reaches the application's SIGSEGV handler, and a
              fault of its own still does; with and without /proc/self/mem
"""
import os
import re
import sys

import sptest as t

TDIR = os.path.dirname(t.TARGET)
HOSTILE = os.environ.get("SP_HOSTILE", os.path.join(TDIR, "sp_hostile"))
BUILD = os.path.dirname(os.path.dirname(t.LIB))
PLUGIN = os.environ.get("SP_PLUGIN_GOOD", os.path.join(BUILD, "lib", "libsp_plugin_good.so"))
ALL_PROBES = "uprobe:h_work;uprobe:h_sig;uprobe:h_thr"

_refs = {}


def facts(out):
    """The program's "key value" lines → {key: value} (ints where they are)."""
    d = {}
    for line in out.decode(errors="replace").splitlines():
        k, _, v = line.partition(" ")
        if k == "info":
            continue
        d[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
    return d


def infos(out):
    return [l[5:] for l in out.decode(errors="replace").splitlines() if l.startswith("info ")]


def reference(args):
    key = tuple(args)
    if key not in _refs:
        cp = t.run([HOSTILE] + args)
        t.check(cp.returncode == 0, "unprobed `sp_hostile %s` exits %d (the test program itself is broken)"
                % (" ".join(args), cp.returncode), t.clip(cp.stderr))
        _refs[key] = cp
    return _refs[key]


def deterministic(out):
    return b"\n".join(l for l in out.splitlines() if not l.startswith(b"info "))


def same_as_unprobed(label, cp, args, compare_stdout=True):
    ref = reference(args)
    ok = t.check(cp.returncode == ref.returncode,
                 "%s: exit status %d, unprobed %d%s" % (label, cp.returncode, ref.returncode,
                                                        " (killed by signal %d)" % -cp.returncode
                                                        if cp.returncode < 0 else ""),
                 t.clip(cp.stderr))
    if compare_stdout:
        ok &= t.check(deterministic(cp.stdout) == deterministic(ref.stdout),
                      "%s: stdout differs from the unprobed run" % label,
                      "got:\n%s\nwant:\n%s\nstderr:\n%s" % (t.clip(cp.stdout, 800), t.clip(ref.stdout, 800),
                                                           t.clip(cp.stderr, 800)))
    return ok


def hits_match(label, report, counts, names=("h_work", "h_sig", "h_thr")):
    """Each probed function's hits in REPORT == the calls the program counted."""
    if report is None:
        return
    by = t.probes_by(report, "symbol")
    for name in names:
        entries = by.get(name)
        if name not in counts:
            continue
        if not t.check(entries, "%s: no report entry for %s" % (label, name), str(report)[:1500]):
            continue
        hits = sum(e["hits"] for e in entries)
        t.check(hits == counts[name], "%s: %s hits %d, the program made %d calls"
                % (label, name, hits, counts[name]), "\n".join(t.fmt_probe(e) for e in entries))


def probed(label, args, spec, mode, extra=None, compare_stdout=True):
    cp, report = t.run_probed([HOSTILE] + args, spec, mode, extra=extra, timeout=240)
    if same_as_unprobed(label, cp, args, compare_stdout):
        return cp, report
    return cp, None


# ---------------------------------------------------------------- cases

def test_sigtrap(mode):
    label = "sigtrap [%s]" % mode
    args = ["sigtrap", "1000"]
    cp, report = probed(label, args, ALL_PROBES, mode)
    f = facts(cp.stdout)
    t.check(f.get("app_traps") == 30, "%s: the application's SIGTRAP handler ran %s times, want 30 "
            "(10 raise + 10 int3 via sigaction, 5 + 5 via signal)" % (label, f.get("app_traps")),
            t.clip(cp.stdout + cp.stderr))
    hits_match(label, report, f)


def test_waitmask(mode):
    label = "waitmask [%s]" % mode
    args = ["waitmask", "200"]
    cp, report = probed(label, args, ALL_PROBES, mode)
    f = facts(cp.stdout)
    t.check(f.get("usr1_runs") == 200 and f.get("app_traps") == 1,
            "%s: %s SIGUSR1 handler runs (want 200, one per wait), the application's SIGTRAP handler "
            "ran %s times (want 1)" % (label, f.get("usr1_runs"), f.get("app_traps")),
            t.clip(cp.stdout + cp.stderr))
    hits_match(label, report, f)


def test_rawclone(mode):
    n = 100000
    args = ["rawclone", str(n)]
    # the main thread's calls (one before the others start, then N) and
    # the two tasks' (N each); hits and missed per probe kind
    want = {"uprobe": (3 * n + 1, 0), "uretprobe": (n + 1, 2 * n), "usession": (3 * n + 1, 2 * n)}
    for kind, (hits, missed) in sorted(want.items()):
        label = "rawclone %s [%s]" % (kind, mode)
        cp, report = probed(label, args, "%s:h_thr" % kind, mode)
        f = facts(cp.stdout)
        t.check(f.get("h_thr") == 3 * n + 1, "%s: the program made %s calls, want %d"
                % (label, f.get("h_thr"), 3 * n + 1))
        if report is None:
            continue
        entries = t.probes_by(report, "symbol").get("h_thr") or []
        got = (sum(e["hits"] for e in entries), sum(e.get("missed", 0) for e in entries))
        t.check(got == (hits, missed), "%s: hits %d, missed %d; want %d and %d (the tasks on the main "
                "thread's TLS counted apart from it)" % (label, got[0], got[1], hits, missed),
                "\n".join(t.fmt_probe(e) for e in entries))


def test_blocked(mode):
    label = "blocked [%s]" % mode
    args = ["blocked", "1000"]
    cp, report = probed(label, args, ALL_PROBES, mode)
    hits_match(label, report, facts(cp.stdout))


def test_altstack(mode):
    # the kernel's signal frame on this machine (AVX-512 makes it ~3.4 KB)
    ref = reference(["altstack", "200"])
    m = re.search(r"kernel _SC_MINSIGSTKSZ (\d+)", "\n".join(infos(ref.stdout)))
    frame = int(m.group(1)) if m else 2048
    small = 2 * 2048   # 2 * MINSIGSTKSZ (glibc's constant)
    sizes = [0]
    if mode == "int3" and 2 * frame + 512 > small:
        # The int3 path nests a SIGTRAP frame inside the SIGUSR1 frame on the
        # same alternate stack; the kernel kills the process when it does not
        # fit, before any handler runs: a limit of trapping, not of the
        # runtime.  The jmp path (auto) runs this case; int3 gets a stack for
        # two kernel frames.
        # Printed, not t.skip(): the limit is the kernel's and documented;
        # the rest of the test must still count as a pass.
        t.info("SKIP: int3 with a %d-byte sigaltstack: two kernel signal frames (%d bytes each "
               "here) cannot nest on it; checked with %d bytes instead (auto mode checks %d)"
               % (small, frame, 4 * frame, small))
        sizes = [4 * frame]
    for size in sizes:
        label = "altstack %s [%s]" % (size or small, mode)
        args = ["altstack", "200", str(size)]
        cp, report = probed(label, args, ALL_PROBES, mode)
        f = facts(cp.stdout)
        t.check(f.get("alt_runs") == 200, "%s: the SIGUSR1 handler ran %s times, want 200"
                % (label, f.get("alt_runs")), t.clip(cp.stdout + cp.stderr))
        hits_match(label, report, f)


def plugin_spec(probe):
    return "%s=%s:on_hit" % (probe, PLUGIN)


def plugin_calls(marker, label, want):
    if not t.check(os.path.exists(marker), "%s: the plugin's fini wrote no marker %s" % (label, marker)):
        return
    got = open(marker).read().strip()
    t.check(got == "calls %d" % want, "%s: plugin handler counted %r, the program made %d calls"
            % (label, got, want))


_stack = {}


def test_threads(mode):
    label = "threads 64K [%s]" % mode
    args = ["threads", "10000"]
    marker = os.path.join(t.work_dir(), "plugin-threads-%s.txt" % mode)
    if os.path.exists(marker):
        os.unlink(marker)
    cp, report = probed(label, args, plugin_spec("uprobe:h_thr") + ";uprobe:h_work", mode,
                        extra={"UPROBE_PLUGIN_ARGS": marker})
    f = facts(cp.stdout)
    hits_match(label, report, f, ("h_thr",))
    plugin_calls(marker, label, f.get("h_thr", -1))
    used = re.search(r"stack_used (\d+)", "\n".join(infos(cp.stdout)))
    base = re.search(r"stack_used (\d+)", "\n".join(infos(reference(args).stdout)))
    if used and base:
        _stack[mode] = int(used.group(1)) - int(base.group(1))
        t.info("%s: deepest stack %s bytes, unprobed %s: a hit with a handler costs %d bytes "
               "of the thread's stack" % (label, used.group(1), base.group(1), _stack[mode]))


def test_libc_threads(mode):
    """Every function of libc probed while threads start and exit: glibc
    runs some of them with every signal blocked (start_thread's setjmp
    before it restores the mask, the stack given back at exit), where an
    int3 kills the process; they must take the jmp or be refused."""
    label = "threads under uprobe:libc:* [%s]" % mode
    cp, report = probed(label, ["threads", "100"], "uprobe:libc:*", mode)
    if report is not None and mode == "int3":
        refused = {e.get("spec") for e in report.get("errors", []) if "every signal blocked" in e.get("message", "")}
        t.check(bool(refused), "%s: no libc function refused for running with signals blocked" % label)


def test_storm(mode):
    label = "storm [%s]" % mode
    args = ["storm", "200000", "5000"]
    marker = os.path.join(t.work_dir(), "plugin-storm-%s.txt" % mode)
    if os.path.exists(marker):
        os.unlink(marker)
    cp, report = t.run_probed([HOSTILE] + args, plugin_spec("uprobe:h_work") + ";uprobe:h_sig", mode,
                              extra={"UPROBE_PLUGIN_ARGS": marker}, timeout=240)
    # how many signals land varies run to run: compare with the program's own counts
    ok = t.check(cp.returncode == 0, "%s: exit status %d" % (label, cp.returncode), t.clip(cp.stderr))
    f = facts(cp.stdout)
    if ok and report:
        t.check(f.get("h_work") == 200000 and f.get("h_sig") == f.get("storm_runs"),
                "%s: the program's own counts are off" % label, t.clip(cp.stdout))
        hits_match(label, report, f, ("h_work", "h_sig"))
        plugin_calls(marker, label, f.get("h_work", -1))
        t.info("%s: %s signal handler runs during 200000 probed calls" % (label, f.get("storm_runs")))


def test_seccomp(mode):
    for what in ("mprotect", "membarrier", "pwrite", "pwrite+mprotect"):
        label = "seccomp %s EPERM, C API attach [%s]" % (what, mode)
        cp = t.run([HOSTILE, "seccomp", what, mode, "1000"], timeout=120)
        f = facts(cp.stdout)
        if not t.check(cp.returncode == 0, "%s: exit status %d" % (label, cp.returncode),
                       t.clip(cp.stdout + cp.stderr)):
            continue
        t.check(f.get("h_work") in (1000, 2000), "%s: the program did not run normally" % label,
                t.clip(cp.stdout))
        if what == "pwrite+mprotect":
            # no way left to write code: a clean refusal (or success, if the
            # runtime found another way); never a crash or a half-patched site
            if f.get("attach") == "failed":
                t.check(f.get("handler") == 0 and f.get("h_work") == 1000,
                        "%s: attach failed yet the handler ran" % label, t.clip(cp.stdout))
                t.check(cp.stderr.strip() != b"", "%s: attach failed without a message" % label)
                continue
        if t.check(f.get("attach") == "ok", "%s: attach failed (%s)" % (label, " ".join(infos(cp.stdout))),
                   t.clip(cp.stdout + cp.stderr)):
            t.check(f.get("handler") == 1000, "%s: handler ran %s times for 1000 calls"
                    % (label, f.get("handler")), t.clip(cp.stdout))
            t.check(f.get("handler_after_detach") == 1000, "%s: handler ran after detach (%s)"
                    % (label, f.get("handler_after_detach")))
    # the preload path: a filter inherited through exec, attach in the constructor
    for what in ("membarrier", "mprotect-exec"):
        label = "seccomp %s EPERM, attach in the constructor [%s]" % (what, mode)
        args = ["seccomp-exec", what, "--", HOSTILE, "plain", "1000"]
        cp, report = t.run_probed([HOSTILE] + args, "uprobe:h_work", mode, timeout=120)
        if same_as_unprobed(label, cp, args):
            hits_match(label, report, facts(cp.stdout), ("h_work",))


def test_mdwe(mode):
    label = "MDWE [%s]" % mode
    cp = t.run([HOSTILE, "mdwe", mode, "1000"], timeout=120)
    f = facts(cp.stdout)
    if "skip" in f:
        t.skip("PR_SET_MDWE: %s (kernel before 6.3?)" % cp.stdout.decode().strip())
        return
    if not t.check(cp.returncode == 0, "%s: exit status %d" % (label, cp.returncode),
                   t.clip(cp.stdout + cp.stderr)):
        return
    if t.check(f.get("attach") == "ok", "%s: attach failed under MDWE (%s)" % (label, " ".join(infos(cp.stdout))),
               t.clip(cp.stdout + cp.stderr)):
        t.check(f.get("handler") == 1000, "%s: handler ran %s times for 1000 calls" % (label, f.get("handler")))
    # MDWE and no /proc/self/mem writes: the mprotect fallback would need W+X
    label = "MDWE + seccomp pwrite [%s]" % mode
    cp = t.run([HOSTILE, "mdwe", mode, "1000", "pwrite"], timeout=120)
    f = facts(cp.stdout)
    if t.check(cp.returncode == 0 and f.get("h_work") in (1000, 2000),
               "%s: the program did not run normally (exit %d)" % (label, cp.returncode),
               t.clip(cp.stdout + cp.stderr)):
        if f.get("attach") == "failed":
            t.check(f.get("handler") == 0, "%s: attach failed yet the handler ran" % label)
            t.check(b"MDWE" in cp.stderr, "%s: attach failed without naming MDWE as the reason" % label,
                    t.clip(cp.stderr))
        else:
            t.check(f.get("handler") == 1000, "%s: handler ran %s times" % (label, f.get("handler")))


def test_wx(mode):
    label = "W^X [%s]" % mode
    cp = t.run([HOSTILE, "wx", mode, "1000"], timeout=120)
    f = facts(cp.stdout)
    detail = t.clip(cp.stdout + cp.stderr)
    if not t.check(cp.returncode == 0 and f.get("attach") == "ok",
                   "%s: exit %d, attach %s" % (label, cp.returncode, f.get("attach")), detail):
        return
    for key, when in (("wx_during_attach", "while attaching (a thread scanning /proc/self/maps)"),
                      ("wx_in_handler", "from inside a probe handler"),
                      ("wx_after_attach", "after attach")):
        t.check(f.get(key) == 0, "%s: a mapping was writable and executable %s: %s times"
                % (label, when, f.get(key)), detail)
    t.check(f.get("handler") == 1000, "%s: the scanning handler ran %s times, want 1000"
            % (label, f.get("handler")), detail)
    t.check(f.get("text_perms") == "r-xp", "%s: the patched text is %s, want r-xp"
            % (label, f.get("text_perms")), detail)
    # /proc/self/mem writes refused (seccomp pwrite64): the runtime's
    # mprotect fallback takes the execute permission away while it writes
    # (patch.h): never writable and executable, not even for a moment
    label2 = "W^X with pwrite refused [%s]" % mode
    cp2 = t.run([HOSTILE, "wx", mode, "1000", "pwrite"], timeout=120)
    f2 = facts(cp2.stdout)
    detail2 = t.clip(cp2.stdout + cp2.stderr)
    if t.check(cp2.returncode == 0 and f2.get("h_work") == 1000,
               "%s: the program did not run normally (exit %d)" % (label2, cp2.returncode), detail2):
        t.check(f2.get("attach") == "ok", "%s: attach failed (%s)" % (label2, " ".join(infos(cp2.stdout))),
                detail2)
        for key, when in (("wx_during_attach", "while attaching through the mprotect fallback"),
                          ("wx_in_handler", "from inside a probe handler"),
                          ("wx_after_attach", "after attach")):
            t.check(f2.get(key) == 0, "%s: a mapping was writable and executable %s: %s times"
                    % (label2, when, f2.get(key)), detail2)
        t.check(f2.get("text_perms") == "r-xp", "%s: the patched text is %s, want r-xp"
                % (label2, f2.get("text_perms")), detail2)
    if mode == "auto":
        t.check(f.get("tramp_perms") == "r-xp", "%s: h_work's trampoline page is %s, want r-xp "
                "(or the site is not a jmp)" % (label, f.get("tramp_perms")), detail)


def test_wxrace(mode):
    for what in ("", "pwrite"):
        label = "W^X race%s [%s]" % (", /proc/self/mem refused" if what else "", mode)
        cp = t.run([HOSTILE, "wxrace", mode, "20"] + ([what] if what else []), timeout=240)
        f = facts(cp.stdout)
        if "skip" in f:
            t.skip("%s: %s" % (label, cp.stdout.decode(errors="replace").strip()))
            continue
        detail = t.clip(cp.stdout + cp.stderr)
        if not t.check(cp.returncode == 0, "%s: exit status %d%s" % (label, cp.returncode,
                       " (killed by signal %d)" % -cp.returncode if cp.returncode < 0 else ""), detail):
            continue
        fallback = b"writing code through mprotect" in cp.stderr
        t.check(fallback == bool(what), "%s: the runtime %s the mprotect fallback"
                % (label, "did not use" if what else "used"), detail)
        t.check(f.get("race_attached") == 4, "%s: only %s of the 4 hammered probes attached in some round"
                % (label, f.get("race_attached")), detail)
        t.check(f.get("race_others") == 1, "%s: a probe on the hammered pages did not attach" % label, detail)
        t.check(f.get("race_checked") == 1, "%s: no call was checked while the probes were attached"
                % label, detail)
        t.check(f.get("race_violations") == 0, "%s: %s calls hit a wrong number of times, the first: %s"
                % (label, f.get("race_violations"), f.get("race_first_violation")),
                "\n".join(infos(cp.stdout)) + "\n" + t.clip(cp.stderr))
        t.check(f.get("race_wx") == 0, "%s: the watcher saw %s writable and executable mappings"
                % (label, f.get("race_wx")), detail)
        t.check(f.get("race_wx_in_handler") == 0, "%s: a handler saw a writable and executable mapping "
                "%s times" % (label, f.get("race_wx_in_handler")), detail)
        t.check(f.get("race_app_segv") == 0, "%s: the application's SIGSEGV handler ran %s times "
                "(a write window leaked to it)" % (label, f.get("race_app_segv")), detail)
        t.check(f.get("race_nx_fault_seen") == 1, "%s: the application's own fault (a call into a "
                "non-executable page) did not reach its handler" % label, detail)
        t.info("%s: %s" % (label, "; ".join(i for i in infos(cp.stdout) if i.startswith("neighbour"))))


def test_traced(mode):
    import glob
    import shutil
    probes = "uprobe:libc:*"
    for tool in ("gdb", "strace"):
        if not shutil.which(tool):
            t.check(False, "traced [%s]: %s is not installed (.ci/deps installs it)" % (mode, tool))
            return
    d = os.path.join(t.work_dir(), "traced-" + mode)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    env = t.probed_env(probes, mode, os.path.join(d, "r-%p.json"))
    gdb = ["gdb", "-nx", "-batch", "-ex", "run", "--args", "/bin/echo", "traced"]
    plain = t.run(gdb, timeout=120)
    probed = t.run(gdb, env=env, timeout=120)
    # gdb prints the inferior's pid: the only line that may differ
    norm = lambda b: re.sub(rb"process \d+", b"process N", b)
    t.check(norm(probed.stdout) == norm(plain.stdout) and probed.returncode == plain.returncode,
            "traced [%s]: gdb's output under the preload is not the unprobed run's" % mode,
            "unprobed:\n%s\nprobed:\n%s" % (t.clip(plain.stdout), t.clip(probed.stdout + probed.stderr)))
    log = os.path.join(d, "strace.log")
    st = t.run(["strace", "-f", "-o", log, "/bin/echo", "traced"], env=env, timeout=120)
    t.check(st.returncode == 0 and st.stdout == b"traced\n", "traced [%s]: echo under strace" % mode,
            t.clip(st.stdout + st.stderr))
    with open(log, errors="replace") as f:
        trapped = [line for line in f if "SIGTRAP" in line or "SIGSEGV" in line]
    t.check(not trapped, "traced [%s]: strace saw our signals" % mode, "".join(trapped[:5]))
    hits, tracers = {}, set()
    for f in glob.glob(os.path.join(d, "r-*.json")):
        rep = t.load_report(f, "traced [%s]: %s" % (mode, os.path.basename(f)))
        if not rep:
            continue
        hits[rep["pid"]] = sum(p["hits"] for p in rep.get("probes", []))
        why = [e["message"] for e in rep.get("errors", []) if "is traced by PID" in e["message"]]
        if why:
            m = re.search(r"traced by PID (\d+) \((gdb|strace)\)", why[0])
            t.check(m and not rep.get("probes"), "traced [%s]: pid %d: probes attached while traced, "
                    "or the tracer not named: %s" % (mode, rep["pid"], why[0]))
            if m:
                tracers.add((int(m.group(1)), m.group(2)))
    t.check(sorted(n for _, n in tracers) == ["gdb", "strace"],
            "traced [%s]: the processes under gdb and strace did not both say why they were not probed: "
            "%s" % (mode, sorted(tracers)))
    for pid, name in sorted(tracers):
        t.check(hits.get(pid, 0) > 0, "traced [%s]: the tracer %s (pid %d) itself was not probed"
                % (mode, name, pid))


def main():
    modes = sys.argv[1:] or ["int3", "auto"]
    t.require_build()
    for path in (HOSTILE, PLUGIN):
        t.check(os.path.exists(path), "missing build output %s" % path)
    if not os.path.exists(HOSTILE) or not os.path.exists(PLUGIN):
        t.finish()
    for mode in modes:
        for case in (test_sigtrap, test_waitmask, test_rawclone, test_blocked, test_altstack, test_threads, test_libc_threads, test_storm,
                     test_seccomp, test_mdwe, test_wx, test_wxrace, test_traced):
            t.info("== %s [%s]" % (case.__name__[5:], mode))
            case(mode)
    for mode, extra in sorted(_stack.items()):
        t.info("stack per hit with a handler, %s mode: %d bytes" % (mode, extra))
    t.finish()


main()
