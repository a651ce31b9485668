#!/usr/bin/python3
"""e2e_sigframe — a jmp is never written under a signal handler's frame
that will resume a thread inside the window (issue 16 item 7).

The target is sp_sigframe (tests/targets/sp_sigframe.c): a thread calling
sf_target (six 1-byte nops first) is interrupted by SIGUSR1 until its
handler sees the interrupted PC inside bytes 1-4 of the entry's window; the
handler then waits (spin: on a flag, the thread running; block: in read(2),
the thread blocked in a system call) while the program attaches
uprobe:sf_target in auto mode through the C API.

  during   the entry keeps its int3 (bytes 1-4 untouched): a jmp there would
           resume the thread in the middle of the jmp's displacement
  wrong 0  every result after the handler returned is right
  report   the probe's reason names the signal handler
  after    attached again with no handler inside: the jmp
"""
import json
import os

import sptest as t

PROG = os.environ.get("SP_SIGFRAME", os.path.join(os.path.dirname(t.TARGET), "sp_sigframe"))


def case(how):
    out_path = os.path.join(t.work_dir(), "sigframe-%s.json" % how)
    if os.path.exists(out_path):
        os.unlink(out_path)
    cp = t.run([PROG, how, out_path], timeout=120)
    out = cp.stdout.decode()
    if cp.returncode == 77:
        t.skip("sp_sigframe %s: %s" % (how, out.strip()))
        return
    label = "sp_sigframe %s" % how
    lines = dict(l.split(" ", 1) for l in out.splitlines() if " " in l)
    t.check(cp.returncode == 0, "%s: exit %d" % (label, cp.returncode), out + t.clip(cp.stderr))
    t.check(lines.get("during") == "int3", "%s: the entry holds %s while a handler will resume inside "
            "its window (want int3)" % (label, lines.get("during")), out)
    t.check(lines.get("wrong") == "0", "%s: %s wrong results after the handler returned"
            % (label, lines.get("wrong")), out)
    t.check(lines.get("after") == "jmp", "%s: attached again with no handler inside: %s (want jmp)"
            % (label, lines.get("after")), out)
    try:
        with open(out_path) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        t.check(False, "%s: no report: %s" % (label, e))
        return
    es = t.probes_by(rep, "symbol").get("sf_target", [])
    t.check(len(es) == 1 and es[0]["mode"] == "int3" and "signal handler" in (es[0].get("reason") or ""),
            "%s: the report's reason should name the signal handler" % label,
            "; ".join(t.fmt_probe(e) + " reason=%s" % e.get("reason") for e in es))


def main():
    t.require_build()
    if not os.path.exists(PROG):
        t.check(False, "missing build output %s" % PROG)
        t.finish()
    for how in ("spin", "block"):
        case(how)
    t.finish()


if __name__ == "__main__":
    main()
