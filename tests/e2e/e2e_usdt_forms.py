#!/usr/bin/python3
"""e2e_usdt_forms — USDT sites in libbpf usdt.h's forms and float arguments
(issue 19 part 2).

The target is sp_usdt_forms (tests/usdt): forms:nop5 (a 5-byte nop site),
forms:pair (a 1-byte nop followed by a 10-byte nop), forms:gpr (a double
and a float in general registers, sys/sdt.h's "8f@%rax 4f@%edx") and
forms:xmm (the same in vector registers, "8f@%xmm0 4f@%xmm1"), each called
N times with known arguments.  Under `usdt:forms:*=trace`, in auto and int3
mode: every trace line has exactly the arguments of its call (floats
printed as %g prints them), in call order; each probe counts N hits; no
error; the program's results are unchanged.  In auto mode the 5-byte and
pair sites take the jmp (jmp5).
"""
import os

import sptest as t

N = 300
PROG = os.path.join(os.path.dirname(t.TARGET), "sp_usdt_forms")


def expected():
    lines = []
    for i in range(N):
        d, f = i + 0.5, i * 0.25
        lines += ["usdt:forms:nop5(%d)" % i, "usdt:forms:pair(%d)" % i,
                  "usdt:forms:gpr(%g, %g)" % (d, f), "usdt:forms:xmm(%g, %g)" % (d, f)]
    return lines


def case(mode):
    label = "sp_usdt_forms (%s)" % mode
    cp, rep = t.run_probed([PROG, str(N)], "usdt:forms:*=trace", mode)
    out = cp.stdout.decode()
    t.check(cp.returncode == 0 and "wrong 0\n" in out, "%s: exit %d" % (label, cp.returncode),
            out + t.clip(cp.stderr))
    got = [l.split("] ", 1)[1] for l in cp.stderr.decode().splitlines() if l.startswith("[") and "] " in l]
    want = expected()
    first = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    t.check(got == want, "%s: %d trace lines, want %d; first difference at %s" % (label, len(got), len(want), first),
            "got %r want %r" % (got[first] if first is not None and first < len(got) else None,
                                want[first] if first is not None and first < len(want) else None))
    if not rep:
        t.check(False, "%s: no report" % label)
        return
    t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"])
    by = {e["symbol"]: e for e in rep["probes"]}
    for name in ("nop5", "pair", "gpr", "xmm"):
        e = by.get("forms:" + name)
        t.check(e is not None and e["hits"] == N, "%s: forms:%s hits %s, want %d"
                % (label, name, e and e["hits"], N))
        if mode == "auto" and name in ("nop5", "pair"):
            t.check(e is not None and e.get("patch") == "jmp5", "%s: forms:%s patch %s, want jmp5"
                    % (label, name, e and e.get("patch")))


def main():
    t.require_build()
    if not os.path.exists(PROG):
        t.check(False, "missing build output %s" % PROG)
        t.finish()
    plain = t.run([PROG, str(N)])
    t.check(plain.returncode == 0 and b"wrong 0\n" in plain.stdout, "sp_usdt_forms unprobed")
    for mode in ("auto", "int3"):
        case(mode)
    t.finish()


if __name__ == "__main__":
    main()
