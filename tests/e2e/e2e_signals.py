#!/usr/bin/python3
"""e2e_signals — probes hit inside asynchronous signal handlers (issue 13).

  e2e_signals.py [auto|jmp|int3]...     (default: all three)

The target is sp_sigs (tests/targets/sp_sigs.c): f (in the program) and
f_lib (libsp_sigs_lib.so) called from main's loop and from SIGALRM/SIGPROF
handlers firing every 20-200 µs, so that signals land on every instruction
of the trampolines, the SIGTRAP handler, dispatch and the return trampoline.
The program counts its own entries and returns of both functions with
locked adds.  Under every probe kind (uprobe count, uretprobe, usession,
=latency, a plugin handler on an entry and on a session) the report must
equal those counts exactly: hits, returns, lost (the frames the longjmp
variant abandons, and nothing else), missed 0; the plugin's handler must
have run once per hit and return.  Variants: plain, handlers on a
sigaltstack, nested handlers (SA_NODEFER), a handler that siglongjmps out
of f.  "jumpall" siglongjmps out from wherever main was, the runtime
included: the program must run as unprobed, and counts stay within the
jumps.  The kernel's uprobes (kcount), where they work, confirm the
program's own counts on an unprobed run.
"""
import os
import sys

import sptest as t

TDIR = os.path.dirname(t.TARGET)
SIGS = os.environ.get("SP_SIGS", os.path.join(TDIR, "sp_sigs"))
LIBSIGS = os.path.join(TDIR, "libsp_sigs_lib.so")
BUILD = os.path.dirname(os.path.dirname(t.LIB))
PLUGIN = os.environ.get("SP_PLUGIN_GOOD", os.path.join(BUILD, "lib", "libsp_plugin_good.so"))
MODES = ("auto", "jmp", "int3")
VARIANTS = ("plain", "altstack", "nodefer", "longjmp")
KEYS = ("f_entries", "f_returns", "f_lib_entries", "f_lib_returns", "from_handlers",
        "from_main", "alrm", "prof", "abandoned")
F, FL = "f", "libsp_sigs_lib:f_lib"


def counts(cp, label):
    c = t.target_counts(cp.stdout)
    missing = [k for k in KEYS if k not in c]
    t.check(not missing, "%s: the program printed no %s" % (label, ", ".join(missing)), t.clip(cp.stdout))
    return c if not missing else None


def args(variant, mode):
    # int3 hits cost a trap each: at 20 µs the handlers would starve main
    return [SIGS, variant, "400", "100" if mode == "int3" and variant != "nodefer" else "0"]


def run(variant, mode, spec, extra=None):
    label = "sp_sigs %s [%s] (%s)" % (variant, spec, mode)
    cp, rep = t.run_probed(args(variant, mode), spec, mode, extra=extra, timeout=240)
    ok = t.check(cp.returncode == 0, "%s: exit %d, unprobed 0" % (label, cp.returncode), t.clip(cp.stderr))
    t.check(not t.own_lines_removed(cp.stderr), "%s: stderr differs from the unprobed run" % label,
            t.clip(cp.stderr))
    c = counts(cp, label) if ok else None
    if not rep or not c:
        return label, None, c
    t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"])
    t.check(c["from_handlers"] > 0, "%s: the handlers made no calls" % label, c)
    by = {}
    for item in spec.split(";"):
        es = [e for e in rep["probes"] if e["spec"] == item]
        if t.check(len(es) == 1, "%s: %d report entries for %s" % (label, len(es), item), rep["probes"]):
            by[item] = es[0]
    return label, by, c


def expect(label, by, item, c, **want):
    e = (by or {}).get(item)
    if e is None:
        return
    for k, v in want.items():
        t.check(e.get(k, "absent") == v, "%s: %s %s = %s, want %s" % (label, item, k, e.get(k, "absent"), v),
                "%s returns=%s lost=%s; the program counted %s" % (t.fmt_probe(e), e.get("returns"),
                                                                   e.get("lost"), c))


def exact(variant, mode):
    """Every probe kind, counts equal to the program's own."""
    pre = {}
    for spec, check in (
        ("uprobe:%s;uprobe:%s" % (F, FL), "count"),
        ("uretprobe:%s;uretprobe:%s" % (F, FL), "ret"),
        ("usession:%s;usession:%s" % (F, FL), "session"),
        ("uprobe:%s=latency;uprobe:%s=latency" % (F, FL), "ret"),
        ("uprobe:%s=%s:on_hit;usession:%s=%s:on_hit" % (F, PLUGIN, FL, PLUGIN), "plugin"),
    ):
        marker = os.path.join(t.work_dir(), "plugin-%s-%s.txt" % (variant, mode))
        if os.path.exists(marker):
            os.unlink(marker)
        label, by, c = run(variant, mode, spec, extra={"UPROBE_PLUGIN_ARGS": marker})
        if not by or not c:
            continue
        items = spec.split(";")
        for item, fn in zip(items, ("f", "f_lib")):
            ent, ret = c[fn + "_entries"], c[fn + "_returns"]
            if check == "count":
                expect(label, by, item, c, hits=ent, missed=0)
            elif check == "ret":
                expect(label, by, item, c, hits=ret, lost=ent - ret, missed=0)
            elif check == "session":
                expect(label, by, item, c, hits=ent, returns=ret, lost=ent - ret, missed=0)
            else:
                if fn == "f":
                    expect(label, by, item, c, hits=ent, missed=0)
                else:
                    expect(label, by, item, c, hits=ent, returns=ret, lost=ent - ret, missed=0)
        if check == "plugin":
            want = c["f_entries"] + c["f_lib_entries"] + c["f_lib_returns"]
            got = open(marker).read().strip() if os.path.exists(marker) else "no marker file"
            t.check(got == "calls %d" % want, "%s: the plugin handler ran: %s, want calls %d"
                    % (label, got, want), c)
        if check == "count":
            pre = c
    return pre


def jumpall(mode):
    """siglongjmp out from anywhere, the runtime included: no crash, and
    counts within the jumps."""
    for spec in ("uprobe:%s;uretprobe:%s" % (F, FL), "usession:%s=%s:on_hit;uprobe:%s=latency" % (F, PLUGIN, FL)):
        label, by, c = run("jumpall", mode, spec)
        if not by or not c:
            continue
        j = c["abandoned"]
        t.check(j > 0, "%s: no siglongjmp happened" % label, c)
        for item in spec.split(";"):
            e = by.get(item)
            if not e:
                continue
            fn = "f_lib" if "f_lib" in item else "f"
            ent, ret = c[fn + "_entries"], c[fn + "_returns"]
            kind_ret = e["kind"] == "uretprobe" or e.get("action") == "latency"
            seen = e["hits"] if kind_ret else e.get("returns", None)
            if not kind_ret:
                t.check(ent <= e["hits"] <= ent + j, "%s: %s hits %d outside [%d, %d + %d jumps]"
                        % (label, item, e["hits"], ent, ent, j), t.fmt_probe(e))
            if seen is not None:
                t.check(ret - j <= seen <= ret, "%s: %s returns %d outside [%d - %d jumps, %d]"
                        % (label, item, seen, ret, j, ret), t.fmt_probe(e))
                t.check(seen + e.get("lost", 0) <= ent + j, "%s: %s returns + lost %d > entries %d + %d jumps"
                        % (label, item, seen + e.get("lost", 0), ent, j), t.fmt_probe(e))
            t.check(e["missed"] == 0, "%s: %s missed %d" % (label, item, e["missed"]), t.fmt_probe(e))


def kernel_oracle():
    ok, why = t.kernel_uprobes()
    if not ok:
        t.skip("kernel uprobes: %s (the program's own counts are checked anyway)" % why)
        return
    probes = ["%s:f" % SIGS, "ret:%s:f" % SIGS, "%s:f_lib" % LIBSIGS, "ret:%s:f_lib" % LIBSIGS]
    for variant in ("plain", "longjmp"):
        # kernel uprobes trap on every hit: a longer period lets main run
        kcp, kc = t.kcount(probes, [SIGS, variant, "400", "200"], timeout=120)
        c = counts(kcp, "sp_sigs %s under kcount" % variant) if kcp.returncode == 0 else None
        if not t.check(kc is not None and c, "kcount sp_sigs %s failed (exit %d)" % (variant, kcp.returncode),
                       t.clip(kcp.stderr)):
            continue
        want = {probes[0]: c["f_entries"], probes[1]: c["f_returns"],
                probes[2]: c["f_lib_entries"], probes[3]: c["f_lib_returns"]}
        t.check(kc == want, "sp_sigs %s: the kernel counted %s, the program %s" % (variant, kc, want))


def main():
    t.require_build()
    for path in (SIGS, LIBSIGS, PLUGIN):
        if not os.path.exists(path):
            t.check(False, "missing build output %s" % path)
            t.finish()
    for variant in VARIANTS:
        cp = t.run(args(variant, "auto"))
        if not t.check(cp.returncode == 0 and not cp.stderr, "unprobed sp_sigs %s: exit %d"
                       % (variant, cp.returncode), t.clip(cp.stderr)):
            t.finish()
    # cpath: the trampoline's inline count off (fastcount.h): count-only
    # jmp sites take the C path, whose exactness is checked the same way
    cpath = "cpath" in sys.argv[1:]
    if cpath:
        os.environ["SELFPROBE_FASTCOUNT"] = "0"
    modes = [a for a in sys.argv[1:] if a in MODES] or list(MODES)
    for mode in modes:
        for variant in VARIANTS:
            c = exact(variant, mode)
            if c:
                t.info("%s %s: f %d calls (%d from handlers, %d SIGALRM, %d SIGPROF)"
                       % (mode, variant, c["f_entries"], c["from_handlers"] // 2, c["alrm"], c["prof"]))
        jumpall(mode)
    if not cpath:
        kernel_oracle()
    t.finish()


if __name__ == "__main__":
    main()
