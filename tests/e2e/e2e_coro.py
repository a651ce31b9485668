#!/usr/bin/python3
"""e2e_coro — return probes across stack switches (setcontext/swapcontext).

A coroutine suspends inside probed frames on its own stack while the main
stack calls and returns probed functions: the output is unchanged and every
return is seen, in both modes (the shadow stack keeps another stack's live
entries instead of discarding them).
"""
import os

import sptest as t

CORO = os.path.join(os.path.dirname(t.TARGET), "sp_coro")
SPEC = "uretprobe:leafp;uretprobe:co_work;uretprobe:driver;uprobe:leafp"
WANT = {"uretprobe:leafp": 14, "uretprobe:co_work": 4, "uretprobe:driver": 1, "uprobe:leafp": 14}


def main():
    t.require_build()
    ref = t.run([CORO])
    t.check(ref.returncode == 0 and ref.stdout == b"s 21 steps 15\n", "unprobed run", t.clip(ref.stdout))
    for mode in ("int3", "auto"):
        cp, rep = t.run_probed([CORO], SPEC, mode)
        t.check(cp.returncode == 0 and cp.stdout == ref.stdout, "%s: output or status changed" % mode,
                t.clip(cp.stdout + cp.stderr))
        if rep:
            got = {p["spec"]: p["hits"] for p in rep["probes"]}
            t.check(got == WANT, "%s: hits %s, want %s" % (mode, got, WANT))
            lost = {p["spec"]: p.get("lost", 0) for p in rep["probes"] if p.get("lost")}
            t.check(not lost, "%s: returns counted lost: %s" % (mode, lost))
    t.finish()


if __name__ == "__main__":
    main()
