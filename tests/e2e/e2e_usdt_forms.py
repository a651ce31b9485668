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

The timeline (x.trace.json, under the preload alone and under `selfprobe
run`, whose launcher writes it from the shared file): each event has its
call's arguments, the floats as JSON numbers equal to the values passed.

Against the kernel (skipped, exit 77, only where kernel uprobes are
unavailable): kcount puts the kernel's uprobes on the four sites and counts
N hits on each, as we do; bpftrace, when it can run, reads the integer
argument of the nop5 and pair sites in every call, the same values we trace.
bpftrace 0.17 cannot parse a float operand ("8f@%rax", "%xmm0"): those two
sites are compared by count only (their values are checked against the
program's own above).
"""
import json
import os
import shutil

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


def check_timeline(launcher):
    label = "sp_usdt_forms timeline (%s)" % ("selfprobe run" if launcher else "preload")
    out = os.path.join(t.work_dir(), "forms-%d.trace.json" % launcher)
    if os.path.exists(out):
        os.unlink(out)
    if launcher:
        cp = t.run([t.CLI, "run", "-e", "usdt:forms:*=trace", "-o", out, "--", PROG, str(N)], t.base_env())
    else:
        cp = t.run([PROG, str(N)], t.probed_env("usdt:forms:*=trace", "auto", out))
    if not t.check(cp.returncode == 0 and os.path.exists(out), "%s: exit %d, timeline written %s"
                   % (label, cp.returncode, os.path.exists(out)), t.clip(cp.stderr)):
        return
    try:
        doc = json.load(open(out))
    except ValueError as e:
        t.check(False, "%s: invalid JSON: %s" % (label, e))
        return
    got = {}
    for e in doc["traceEvents"]:
        if e.get("ph") == "i" and e["name"].startswith("usdt:forms:"):
            a = e.get("args", {})
            got.setdefault(e["name"][len("usdt:forms:"):], []).append(
                [a.get("arg%d" % i) for i in range(len([k for k in a if k.startswith("arg")]))])
    want = {"nop5": [[i] for i in range(N)], "pair": [[i] for i in range(N)],
            "gpr": [[i + 0.5, i * 0.25] for i in range(N)], "xmm": [[i + 0.5, i * 0.25] for i in range(N)]}
    for name in sorted(want):
        g = got.get(name, [])
        bad = next((k for k, (x, y) in enumerate(zip(g, want[name])) if x != y), None)
        t.check(len(g) == N and bad is None, "%s: forms:%s %d events, want %d; first wrong %s"
                % (label, name, len(g), N, bad), "got %r want %r" % (g[bad] if bad is not None else None,
                                                                    want[name][bad] if bad is not None else None))


def check_kernel():
    ok, why = t.kernel_uprobes()
    if not ok:
        t.skip("kernel comparisons: %s" % why)
        return
    notes = t.Notes(PROG)
    sites = {n["name"]: n for n in notes.notes if n["provider"] == "forms"}
    t.check(sorted(sites) == ["gpr", "nop5", "pair", "xmm"], "sp_usdt_forms notes: %r" % sorted(sites))
    probes = {name: notes.kprobe(n) for name, n in sites.items()}
    cp, kc = t.kcount(list(probes.values()), [PROG, str(N)])
    if kc is None:
        return
    for name, p in sorted(probes.items()):
        t.check(kc.get(p) == N, "kernel: forms:%s counted %r, want %d (as we count)" % (name, kc.get(p), N))
    check_bpftrace()


def check_bpftrace():
    bt = shutil.which("bpftrace")
    if not bt:
        t.info("SKIP: bpftrace comparison: bpftrace is not installed (the rest of the test runs)")
        return
    ok = t.run([bt, "-e", "BEGIN { exit(); }"], timeout=60)
    if ok.returncode != 0:
        t.info("SKIP: bpftrace comparison: bpftrace cannot run here (exit %d): %s"
               % (ok.returncode, ok.stderr.decode(errors="replace").strip()[-300:]))
        return
    prog = " ".join('usdt:%s:forms:%s { printf("forms:%s %%ld\\n", (int64)arg0); }' % (PROG, n, n)
                    for n in ("nop5", "pair"))
    cp = t.run([bt, "-e", prog, "-c", "%s %d" % (PROG, N)], timeout=300)
    if not t.check(cp.returncode == 0, "bpftrace: exit %d" % cp.returncode, t.clip(cp.stderr + cp.stdout)):
        return
    got = {"nop5": [], "pair": []}
    for line in cp.stdout.decode().splitlines():
        f = line.split()
        if len(f) == 2 and f[0].startswith("forms:") and f[0][6:] in got:
            got[f[0][6:]].append(int(f[1]))
    mine, _ = t.run_probed([PROG, str(N)], "usdt:forms:nop5=trace;usdt:forms:pair=trace", "auto")
    ours = {"nop5": [], "pair": []}
    for l in mine.stderr.decode().splitlines():
        if l.startswith("[") and "] usdt:forms:" in l:
            name, _, arg = l.split("] usdt:forms:", 1)[1].partition("(")
            if name in ours:
                ours[name].append(int(arg.rstrip(")")))
    for name in ("nop5", "pair"):
        t.check(got[name] == list(range(N)) and got[name] == ours[name],
                "bpftrace: forms:%s read %d values (%s...), we read %d (%s...), want 0..%d"
                % (name, len(got[name]), got[name][:3], len(ours[name]), ours[name][:3], N - 1))


def main():
    t.require_build()
    if not os.path.exists(PROG):
        t.check(False, "missing build output %s" % PROG)
        t.finish()
    plain = t.run([PROG, str(N)])
    t.check(plain.returncode == 0 and b"wrong 0\n" in plain.stdout, "sp_usdt_forms unprobed")
    for mode in ("auto", "int3"):
        case(mode)
    for launcher in (0, 1):
        check_timeline(launcher)
    check_kernel()
    t.finish()


if __name__ == "__main__":
    main()
