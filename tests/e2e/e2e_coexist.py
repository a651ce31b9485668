#!/usr/bin/env python3
"""e2e_coexist — a kernel uprobe placed, then removed, on a function we
patched, while the program calls it in a loop (issue 13, "A kernel uprobe on
a site we patched").

    e2e_coexist.py jmp|int3|detach

The program (tests/targets/sp_coexist.c) calls one function until SIGUSR1,
checks every return value and prints its own call count.  The test runs it
probed (uprobe:sp_coexist:FUNC, the mode given), opens a kernel uprobe on the
same function of that process with perf_event_open (the uprobe PMU), lets it
fire, closes it, lets the loop run on, then stops the program.  The kernel
writes its int3 over our first byte, resumes each of its hits after the
file's first instruction, and writes the file's byte back on removal; on a
5-byte nop it turns its int3 into a call to its own trampoline and writes
the file's 5 bytes back on removal (runtime/hot/coexist.h).  What must hold:

  every case    the program finishes with its unprobed output and status
                (the functions are written so that a torn instruction that
                runs gives a wrong value); the report's errors name the site
                and say another tool changed its bytes;
  jmp, push, r15, test, endbr, sub  (first instruction of 1 to 4 bytes,
                starting with nothing, REX or a prefix) every call is
                counted: hits == the program's count, and the kernel's hits,
                which ran the first instruction in the kernel, are among the
                missed (missed >= the kernel's count);
  jmp, xor      (2 bytes, a plain opcode: its removal would leave a torn
                instruction) the first of the kernel's hits gives the site
                back to the file's bytes: our probe stops there and says so;
  jmp, long, nop5  (first instruction of 5 bytes or more; nop5: the kernel
                optimizes its probe into a call over our jmp) the kernel's
                hits ran the function unprobed: hits + the kernel's count <=
                the program's count, and the error says they were not seen;
  int3, push, endbr  the kernel takes the hits of our int3 and its removal
                erases it: hits < the program's count, and the error says so;
  detach, push, nop5  (the probe attached through the API) our detach while
                the kernel's int3 (push) or its optimized call (nop5) is on
                the site leaves it there: the kernel's probe still counts
                after our detach; attaching again over it is refused (the
                kernel's probe still counts); the program is unchanged;
  detach, nop5 putback  the kernel's optimized probe placed and removed
                (the whole nop written back over our jmp): the next attach
                batch puts our jmp back, our handler runs again.

Skips (exit 77) when kernel uprobes are unavailable here.
"""
import ctypes
import os
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sptest  # noqa: E402
from sptest import check, info  # noqa: E402

PROG = os.environ.get("SP_COEXIST", os.path.join(sptest.BUILD, "tests/sp_coexist"))
PMU = "/sys/bus/event_source/devices/uprobe/type"
SYS_perf_event_open = 298
PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_DISABLE = 0x2401

_libc = ctypes.CDLL(None, use_errno=True)


class KernelUprobe:
    """One perf event of the uprobe PMU on PATH at file offset OFF, in task
    PID only (the kernel puts its int3 in that process alone)."""

    def __init__(self, pid, path, off):
        self.path = ctypes.create_string_buffer(os.fsencode(path))
        attr = bytearray(128)
        struct.pack_into("<IIQ", attr, 0, int(open(PMU).read()), len(attr), 0)
        struct.pack_into("<QQ", attr, 56, ctypes.addressof(self.path), off)   # config1, config2
        buf = (ctypes.c_char * len(attr)).from_buffer(attr)
        fd = _libc.syscall(SYS_perf_event_open, buf, pid, -1, -1, PERF_FLAG_FD_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, "perf_event_open(uprobe %s+%#x, pid %d): %s" % (path, off, pid, os.strerror(e)))
        self.fd = fd

    def count(self):
        return struct.unpack("<Q", os.read(self.fd, 8))[0]

    def close(self):
        os.close(self.fd)


def unavailable():
    """Why kernel uprobes cannot be used here, or None."""
    if not os.path.exists(PMU):
        return "no uprobe PMU (%s)" % PMU
    ok, why = sptest.kernel_uprobes()
    if not ok:
        return why
    try:   # on ourselves: perf_event_open's own permission check
        KernelUprobe(os.getpid(), PROG, 0x1000).close()
    except OSError as e:
        return str(e)
    return None


def start(func, env):
    p = subprocess.Popen([PROG, func], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline()
    return p, line


def stop(p, head):
    try:
        p.send_signal(signal.SIGUSR1)
    except ProcessLookupError:
        pass
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return head + out, err, p.returncode


def parse(out):
    """(lines without the count, the count or None)."""
    lines = out.decode(errors="replace").splitlines()
    calls = None
    rest = []
    for l in lines:
        if l.startswith("calls "):
            calls = int(l.split()[1])
        else:
            rest.append(l)
    return rest, calls


def one(func, mode, elf):
    what = "%s/%s" % (func, mode)
    sym = elf.symbol("cx_" + func)
    if not check(sym is not None, "%s: symbol cx_%s in %s" % (what, func, PROG)):
        return
    off = elf.vaddr_to_offset(sym[0])

    # unprobed: the output to compare with
    p, head = start(func, sptest.base_env())
    time.sleep(0.2)
    plain_out, _, plain_rc = stop(p, head)
    plain_lines, _ = parse(plain_out)

    report_path = os.path.join(sptest.work_dir(), "report-%s-%s.json" % (func, mode))
    env = sptest.probed_env("uprobe:%s:cx_%s" % (PROG, func), mode, report_path)
    p, head = start(func, env)
    kcount = 0
    kerr = None
    if head == b"ready\n":
        time.sleep(0.3)   # our probe counts alone first
        try:
            k = KernelUprobe(p.pid, PROG, off)
            time.sleep(0.4)   # the kernel's int3 over ours
            kcount = k.count()
            k.close()         # its removal: the file's byte back
        except OSError as e:
            kerr = str(e)
        time.sleep(0.4)   # ours again
    out, err, rc = stop(p, head)
    lines, calls = parse(out)
    info("%s: program %d calls, kernel uprobe %d hits, exit %s" % (what, calls or -1, kcount, rc))
    check(kerr is None, "%s: the kernel uprobe could be placed on the running program" % what, kerr or "")
    check(rc == plain_rc == 0, "%s: exit status %s, unprobed %s" % (what, rc, plain_rc),
          sptest.clip(err))
    check(lines == plain_lines and "result ok" in lines,
          "%s: output as unprobed (every return value right)" % what,
          "probed: %r\nunprobed: %r" % (lines, plain_lines))
    check(kcount > 0, "%s: the kernel uprobe fired (else nothing was tested)" % what)
    report = sptest.load_report(report_path, what)
    if report is None or calls is None:
        return
    probes = [e for e in report.get("probes", []) if e.get("symbol") == "cx_" + func]
    if not check(len(probes) == 1, "%s: one probe in the report" % what, report):
        return
    e = probes[0]
    hits, missed = e.get("hits", 0), e.get("missed", 0)
    info("%s: report patch %s, hits %d, missed %d" % (what, e.get("patch"), hits, missed))
    if func not in STOPPED:   # a stopped site is reported as not jmp any more
        check(e.get("patch") == ("int3" if mode == "int3" else "jmp5"),
              "%s: patched as %s" % (what, mode), e)
    errs = [x.get("message", "") for x in report.get("errors", [])
            if x.get("spec") == e.get("spec")]
    named = [m for m in errs if "another tool" in m and ("%#x" % int(e["address"], 16)) in m]
    check(named, "%s: the report's errors name the site and another tool" % what, report.get("errors"))
    if mode == "jmp" and func in COUNTED:
        check(hits == calls, "%s: every call counted (hits %d, the program's calls %d)" % (what, hits, calls))
        check(missed >= kcount, "%s: the kernel's hits are among the missed (missed %d, kernel %d)"
              % (what, missed, kcount))
    elif mode == "jmp" and func in STOPPED:
        check(hits < calls and missed >= 1,
              "%s: our probe stopped at the kernel's first hit (hits %d < calls %d, missed %d)"
              % (what, hits, calls, missed))
        check(any("stopped" in m for m in named), "%s: the error says the probe stopped" % what, named)
    elif mode == "jmp":
        check(hits + kcount <= calls and hits < calls,
              "%s: the kernel's hits were not ours (hits %d + kernel %d <= calls %d)" % (what, hits, kcount, calls))
        check(any("not seen" in m for m in named), "%s: the error says hits were not seen" % what, named)
    else:
        check(hits < calls, "%s: the kernel took hits of our int3 (hits %d < calls %d)" % (what, hits, calls))
        check(any("int3 was replaced" in m for m in named), "%s: the error says our int3 was replaced" % what,
              named)


def expect_line(p, want, what):
    line = p.stdout.readline()
    return check(line == want, "%s: the program says %r" % (what, want), line)


def detach_one(func, elf):
    """Our detach, and our attach again, while the kernel's probe is on the
    site (the probe attached by the program through the API)."""
    what = "%s/detach" % func
    sym = elf.symbol("cx_" + func)
    off = elf.vaddr_to_offset(sym[0])
    p, head = start(func, sptest.base_env())
    time.sleep(0.2)
    plain_out, _, plain_rc = stop(p, head)
    plain_lines, _ = parse(plain_out)

    report_path = os.path.join(sptest.work_dir(), "report-%s-detach.json" % func)
    env = sptest.probed_env("", "jmp", report_path)
    p = subprocess.Popen([PROG, func, "api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = p.stdout.readline()
    k = None
    before = after = again = 0
    if check(head == b"ready\n", "%s: the program attached through the API" % what, head):
        try:
            time.sleep(0.3)
            k = KernelUprobe(p.pid, PROG, off)
            time.sleep(0.3)             # the kernel's int3 (or call) over our jmp
            p.send_signal(signal.SIGUSR2)
            if expect_line(p, b"detached\n", what):
                before = k.count()
                time.sleep(0.3)
                after = k.count()
                # attach again, over the kernel's probe: refused (its int3
                # or call stays, as on a site never probed)
                p.send_signal(signal.SIGUSR2)
                if expect_line(p, b"attach failed\n", what):
                    time.sleep(0.3)
                    again = k.count()
            k.close()                   # its removal
            k = None
            time.sleep(0.3)
        except OSError as e:
            check(False, "%s: the kernel uprobe could be placed on the running program" % what, str(e))
        finally:
            if k:
                k.close()
    out, err, rc = stop(p, head)
    lines, calls = parse(out)
    lines = [l for l in lines if not l.startswith("handler ")]
    info("%s: program %s calls, kernel uprobe %d at our detach, %d 0.3 s later, %d after attaching again"
         % (what, calls, before, after, again))
    check(rc == plain_rc == 0, "%s: exit status %s, unprobed %s" % (what, rc, plain_rc), sptest.clip(err))
    check(lines == plain_lines and "result ok" in lines,
          "%s: output as unprobed (every return value right)" % what,
          "probed: %r\nunprobed: %r" % (lines, plain_lines))
    check(before > 0 and after > before,
          "%s: the kernel's probe still counts after our detach (%d, then %d)" % (what, before, after))
    check(again > after, "%s: and after our attach again was refused (%d, then %d)" % (what, after, again))
    report = sptest.load_report(report_path, what)
    errs = [x.get("message", "") for x in (report or {}).get("errors", [])]
    check(any("changed by another tool" in m for m in errs) and any("first byte is another tool's" in m for m in errs),
          "%s: the report's errors name another tool's bytes, and our refused attach" % what, errs)


def putback_one(func, elf):
    """The kernel's optimized probe placed and removed (it writes the whole
    nop back over our jmp): the next attach batch puts our jmp back."""
    what = "%s/putback" % func
    off = elf.vaddr_to_offset(elf.symbol("cx_" + func)[0])
    report_path = os.path.join(sptest.work_dir(), "report-%s-putback.json" % func)
    env = sptest.probed_env("", "jmp", report_path)
    p = subprocess.Popen([PROG, func, "api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = p.stdout.readline()
    counts = []
    if check(head == b"ready\n", "%s: the program attached through the API" % what, head):
        try:
            time.sleep(0.3)
            k = KernelUprobe(p.pid, PROG, off)
            time.sleep(0.3)             # optimized: its call over our jmp
            k.close()                   # the whole nop back: our probe misses the function
            time.sleep(0.2)
            for _ in range(2):          # two batches, the loop running between them
                p.send_signal(signal.SIGHUP)
                line = p.stdout.readline().decode()
                if line.startswith("batch "):
                    counts.append(int(line.split()[1]))
                time.sleep(0.3)
        except OSError as e:
            check(False, "%s: the kernel uprobe could be placed on the running program" % what, str(e))
    out, err, rc = stop(p, head)
    lines, calls = parse(out)
    info("%s: handler count at two batches after the kernel's removal: %s" % (what, counts))
    check(rc == 0 and "result ok" in lines, "%s: the program ran unchanged (exit %s)" % (what, rc),
          sptest.clip(err))
    check(len(counts) == 2 and counts[1] > counts[0],
          "%s: our handler runs again after the batch (counts %s)" % (what, counts))
    report = sptest.load_report(report_path, what)
    errs = [x.get("message", "") for x in (report or {}).get("errors", [])]
    check(any("our jmp put back" in m for m in errs), "%s: the report says our jmp was put back" % what, errs)


# by first instruction (sp_coexist.c): counted, stopped at the kernel's
# first hit, or run unprobed while the kernel's probe stands
COUNTED = ("push", "r15", "test", "endbr", "sub")
STOPPED = ("xor",)
UNSEEN = ("long", "nop5")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "jmp"
    sptest.require_build()
    if not check(os.path.exists(PROG), "missing build output %s" % PROG):
        sptest.finish()
    why = unavailable()
    if why:
        sptest.skip("kernel uprobes unavailable: %s" % why)
        sptest.finish()
    elf = sptest.Elf(PROG)
    if mode == "detach":
        for func in ("push", "nop5"):
            detach_one(func, elf)
        putback_one("nop5", elf)
    else:
        for func in (COUNTED + STOPPED + UNSEEN if mode == "jmp" else ("push", "endbr")):
            one(func, mode, elf)
    sptest.finish()


if __name__ == "__main__":
    main()
