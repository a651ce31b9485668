#!/usr/bin/python3
"""e2e_target — sp_target under the preload: every t_* site probed.

  e2e_target.py MODE            all sites, UPROBE_MODE=MODE (int3, auto)
  e2e_target.py threads MODE    t_mt from 4 threads
  e2e_target.py kernel          the same counts against kernel uprobes (kcount)

The target checks every return value itself (exit 1 on a wrong one) and
prints its own call counts; each probe's hits must equal them exactly, with
stdout unchanged and nothing on stderr.
"""
import sys

import sptest as t

N = 1000
N_MT = 20000
# Sites where the 5-byte jmp is unsafe by the design's rules, whatever the
# runtime's implementation: a branch lands in bytes 1-4 (t_jmp8's jmp .+4:
# its first instruction alone may take a hop, never the 5-byte jmp), or an
# indirect jmp (t_indjmp's jmp *%rax at the entry, to a target at +4 whose
# address is taken) lies in the window.
MUST_BE_INT3 = {"t_indjmp": "indirect jmp in the jmp window (not its last instruction)"}
NEVER_JMP5 = {"t_jmp8": "jmp rel8 targets byte 4"}
# Probes inside a function, at instruction boundaries, with the function's count.
OFFSET_PROBES = {"uprobe:t_push+1": "t_push", "uprobe:t_sub+4": "t_sub",
                 "uprobe:t_call+5": "t_call", "uprobe:t_endbr+4": "t_endbr"}


def check_run(label, cp, ref):
    ok = t.check(cp.returncode == 0, "%s: exit status %d, want 0 (the target checks its results)"
                 % (label, cp.returncode), t.clip(cp.stderr))
    ok &= t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run" % label,
                  "got:\n%s\nwant:\n%s" % (t.clip(cp.stdout, 800), t.clip(ref.stdout, 800)))
    ok &= t.check(not cp.stderr, "%s: unexpected stderr" % label, t.clip(cp.stderr))
    return ok


def check_entry(label, e, want_hits, mode):
    name = e.get("symbol") or e.get("spec")
    t.check(e["hits"] == want_hits, "%s: %s hits %d, want %d" % (label, e["spec"], e["hits"], want_hits),
            t.fmt_probe(e))
    t.check(e["missed"] == 0, "%s: %s missed %d" % (label, e["spec"], e["missed"]), t.fmt_probe(e))
    t.check(e["kind"] == "uprobe" and e["action"] == "count",
            "%s: %s kind/action %s/%s" % (label, e["spec"], e["kind"], e["action"]))
    if mode == "int3":
        t.check(e["mode"] == "int3", "%s: %s took mode %s under UPROBE_MODE=int3"
                % (label, e["spec"], e["mode"]), t.fmt_probe(e))
    if e["mode"] == "int3" and mode != "int3":
        t.check(e["reason"], "%s: %s is on int3 without a reason" % (label, e["spec"]), t.fmt_probe(e))
    if e.get("symbol") in MUST_BE_INT3 and "+" not in e["spec"]:
        t.check(e["mode"] == "int3", "%s: %s took the jmp path although unsafe (%s)"
                % (label, name, MUST_BE_INT3[e["symbol"]]), t.fmt_probe(e))
    if e.get("symbol") in NEVER_JMP5 and "+" not in e["spec"]:
        t.check(e["patch"] != "jmp5", "%s: %s took the 5-byte jmp although unsafe (%s)"
                % (label, name, NEVER_JMP5[e["symbol"]]), t.fmt_probe(e) + " patch=%s" % e["patch"])


def test_all(mode):
    ref, counts = t.target_plain([str(N)])
    names = sorted(counts)
    t.check(len(names) == 14 and counts["t_nop"] == N, "target output unexpected", t.clip(ref.stdout))

    # A glob: one entry per matched site, each with the original spec.
    cp, rep = t.run_probed([t.TARGET, str(N)], "uprobe:t_*", mode)
    label = "glob uprobe:t_* (%s)" % mode
    check_run(label, cp, ref)
    if rep:
        t.check(rep["pid"] == cp.pid, "%s: report pid %d, want %d" % (label, rep["pid"], cp.pid))
        t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"])
        by_sym = t.probes_by(rep, "symbol")
        t.check(sorted(by_sym) == names, "%s: matched symbols differ" % label,
                "got %s\nwant %s" % (sorted(map(str, by_sym)), names))
        for name in names:
            for e in by_sym.get(name, []):
                t.check(e["spec"] == "uprobe:t_*", "%s: entry for %s has spec %r"
                        % (label, name, e["spec"]))
                t.check(e["object"].endswith("/sp_target"), "%s: %s object %r"
                        % (label, name, e["object"]))
                check_entry(label, e, counts[name], mode)
            t.check(len(by_sym.get(name, [])) == 1, "%s: %d entries for %s"
                    % (label, len(by_sym.get(name, [])), name))
        t.info("%s: %s" % (label, ", ".join("%s=%s/%s" % (e["symbol"], e["hits"], e["mode"])
                                            for e in rep["probes"])))

    # One item per site, plus probes inside functions.
    items = ["uprobe:%s" % n for n in names] + sorted(OFFSET_PROBES)
    cp, rep = t.run_probed([t.TARGET, str(N)], ";".join(items), mode)
    label = "list of %d items (%s)" % (len(items), mode)
    check_run(label, cp, ref)
    if rep:
        t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"])
        by_spec = t.probes_by(rep, "spec")
        for item in items:
            entries = by_spec.get(item, [])
            if t.check(len(entries) == 1, "%s: %d entries for %s" % (label, len(entries), item)):
                fn = OFFSET_PROBES.get(item, item.split(":")[1])
                check_entry(label, entries[0], counts[fn], mode)


def test_threads(mode):
    ref, counts = t.target_plain(["threads", str(N_MT)])
    t.check(counts.get("t_mt") == 4 * N_MT, "target threads output unexpected", t.clip(ref.stdout))
    for spec in ("uprobe:t_mt;uprobe:t_nop", "uprobe:t_mt+1"):
        cp, rep = t.run_probed([t.TARGET, "threads", str(N_MT)], spec, mode)
        label = "threads %s (%s)" % (spec, mode)
        check_run(label, cp, ref)
        if rep:
            t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"])
            by_spec = t.probes_by(rep, "spec")
            for item in spec.split(";"):
                entries = by_spec.get(item, [])
                if t.check(len(entries) == 1, "%s: %d entries for %s" % (label, len(entries), item)):
                    fn = item.split(":")[1].split("+")[0]
                    check_entry(label, entries[0], counts[fn], mode)
                    t.info("%s: %s" % (label, t.fmt_probe(entries[0])))


def test_kernel():
    """kcount's counts == the target's own == the preload's, per site."""
    ok, reason = t.kernel_uprobes()
    if not ok:
        t.skip("kernel uprobes unavailable: %s" % reason)
        t.finish()
    ref, counts = t.target_plain([str(N)])
    names = sorted(counts)
    kcp, kc = t.kcount(["%s:%s" % (t.TARGET, n) for n in names], [t.TARGET, str(N)])
    t.check(kcp.returncode == 0 and kcp.stdout == ref.stdout,
            "kcount run of sp_target: exit %d / stdout differs" % kcp.returncode, t.clip(kcp.stderr))
    if not kc:
        t.finish()
    kernel = {n: kc["%s:%s" % (t.TARGET, n)] for n in names}
    for n in names:
        t.check(kernel[n] == counts[n], "kernel counts %d calls of %s, the target %d"
                % (kernel[n], n, counts[n]))
    for mode in ("int3", "auto"):
        cp, rep = t.run_probed([t.TARGET, str(N)], "uprobe:t_*", mode)
        check_run("glob (%s)" % mode, cp, ref)
        by_sym = t.probes_by(rep, "symbol")
        for n in names:
            hits = [e["hits"] for e in by_sym.get(n, [])]
            t.check(hits == [kernel[n]], "%s: preload hits %s for %s, kernel %d"
                    % (mode, hits, n, kernel[n]))

    mt = ["threads", str(N_MT)]
    ref, counts = t.target_plain(mt)
    kcp, kc = t.kcount(["%s:t_mt" % t.TARGET, "ret:%s:t_mt" % t.TARGET], [t.TARGET] + mt)
    if kc:
        for k, v in kc.items():
            t.check(v == 4 * N_MT, "threads: kernel counts %d for %s, want %d" % (v, k, 4 * N_MT))
    for mode in ("int3", "auto"):
        cp, rep = t.run_probed([t.TARGET] + mt, "uprobe:t_mt", mode)
        check_run("threads (%s)" % mode, cp, ref)
        hits = [e["hits"] for e in (rep or {}).get("probes", [])]
        t.check(kc and hits == [kc["%s:t_mt" % t.TARGET]],
                "threads %s: preload hits %s, kernel %s" % (mode, hits, kc))
    t.info("kernel counts: %s" % kernel)


def main():
    t.require_build()
    args = sys.argv[1:]
    if args == ["kernel"]:
        test_kernel()
    elif len(args) == 2 and args[0] == "threads":
        test_threads(args[1])
    elif len(args) == 1:
        test_all(args[0])
    else:
        sys.exit("usage: e2e_target.py int3|auto | threads int3|auto | kernel")
    t.finish()


if __name__ == "__main__":
    main()
