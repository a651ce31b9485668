#!/usr/bin/python3
"""e2e_abandon — a detach never waits for ever for a probe handler's call
its thread will never come back to, and always waits for one still running
(issue 13; runtime/hot/quiesce.h).

The target is sp_abandon (tests/targets/sp_abandon.c), in auto and int3
mode; a worker thread's call of ab_target runs its probe handler, which:
  setcontext  raises SIGUSR1, whose handler leaves by setcontext(3) (no
              longjmp: no interposer sees it); the worker then blocks
  exit        ends the thread by a raw exit system call (no key destructor)
  sleep       sleeps 200 ms while main detaches, then reads its data, which
              main frees as soon as the detach returns

  detach     returns 0, in seconds (setcontext, exit), after the handler
             ended (sleep: "finished 1", "data ok")
  next       the worker's next hit runs its handler (the abandoned call is
             not taken for still running)
  errors     the report counts the call left (setcontext, exit), and no
             call for sleep
"""
import os

import sptest as t

PROG = os.environ.get("SP_ABANDON", os.path.join(os.path.dirname(t.TARGET), "sp_abandon"))
LEFT = "1 probe handler call left without returning"


def case(mode, how):
    out_path = os.path.join(t.work_dir(), "abandon-%s-%s.json" % (mode, how))
    if os.path.exists(out_path):
        os.unlink(out_path)
    cp = t.run([PROG, mode, how, out_path], timeout=60)
    out = cp.stdout.decode()
    label = "sp_abandon %s %s" % (mode, how)
    lines = dict(l.split(" ", 1) for l in out.splitlines() if " " in l)
    t.check(cp.returncode == 0, "%s: exit %d (the detach hung: killed by SIGALRM is %d)"
            % (label, cp.returncode, -14), out + t.clip(cp.stderr))
    det = lines.get("detach", "").split()
    t.check(len(det) == 2 and det[0] == "0" and float(det[1]) < 5.0,
            "%s: the detach answered %s (want 0, in under 5 s)" % (label, lines.get("detach")), out)
    if how == "sleep":
        t.check(lines.get("finished") == "1", "%s: the detach returned while the handler still ran" % label, out)
        t.check(lines.get("data") == "ok", "%s: the handler read its data after it was freed" % label, out)
    want_next = "0" if how == "exit" else "1"   # the exited worker makes no more hits
    t.check(lines.get("next") == want_next, "%s: the worker's next hit ran its handler %s times (want %s)"
            % (label, lines.get("next"), want_next), out)
    rep = t.load_report(out_path, label)
    if rep is None:
        return
    left = [e for e in rep.get("errors", []) if e.get("spec") == "dispatch"]
    if how == "sleep":
        t.check(not left, "%s: a call that ran to its end was reported left" % label, str(left))
    else:
        t.check(len(left) == 1 and left[0]["message"].startswith(LEFT),
                "%s: the report should count the call left" % label, str(rep.get("errors")))


def main():
    t.require_build()
    if not os.path.exists(PROG):
        t.check(False, "missing build output %s" % PROG)
        t.finish()
    for mode in ("auto", "int3"):
        for how in ("setcontext", "exit", "sleep"):
            case(mode, how)
    t.finish()


if __name__ == "__main__":
    main()
