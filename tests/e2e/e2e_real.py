#!/usr/bin/python3
"""e2e_real — real programs under the preload, counts checked by the kernel.

  e2e_real.py ls|sort|sqlite3

For each spec and each UPROBE_MODE (int3, auto): exit status and stdout equal
to the unprobed run, no errors in the report, every item attached with hits;
then each probe's hits are compared with what kernel uprobes (kcount) count
over the same command, when `kcount --check` passes (else the test reports
SKIP).

The preload attaches before any other constructor runs (-z initfirst) and
writes its report after every destructor (an exit handler registered from
its destructor), so it sees the same window as the kernel: each probe's hits
must equal the kernel's count, for a small and a large workload.

IFUNC symbols (memcpy): the report's address is the implementation the
runtime chose, at run time.  Its file offset is found through another,
plain symbol of the same object in the same report (runtime address minus
ELF value gives the load base); without one, the kernel comparison of that
probe is skipped and said so.
"""
import os
import sys

import sptest as t

# memcpy, not strlen, for an IFUNC: the int3 path refuses strlen (posix_spawnp's
# child calls it after its handlers are reset)
LIBC_SPECS = ["uprobe:libc:malloc", "uprobe:libc:free;uprobe:libc:memcpy"]
SQLITE_SPEC = "uprobe:libsqlite3:sqlite3_step;uprobe:libsqlite3:sqlite3_prepare_v2"


def programs(name):
    """(specs, [(cmd, stdin)] small and large workloads)"""
    if name == "ls":
        return LIBC_SPECS, [(["ls", "-la", "/usr/bin"], None),
                            (["ls", "-la", "/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/share"], None)]
    if name == "sort":
        return LIBC_SPECS, [(["sort", t.sort_input(5000)], None), (["sort", t.sort_input(20000)], None)]
    if name == "sqlite3":
        return LIBC_SPECS + [SQLITE_SPEC], [(["sqlite3", ":memory:"], t.sql_workload(1000)),
                                            (["sqlite3", ":memory:"], t.sql_workload(3000))]
    sys.exit("usage: e2e_real.py ls|sort|sqlite3")


def kernel_probe(entry, report, elfs):
    """kcount's PROBE for a report entry, or (None, why)."""
    obj = entry["object"]
    if obj not in elfs:
        elfs[obj] = t.Elf(obj)
    elf = elfs[obj]
    sym = elf.symbol(entry["symbol"] or "")
    if sym is not None and not sym[2] and "+" not in entry["spec"]:
        return "%s:%s" % (obj, entry["symbol"]), None
    # An IFUNC (or a name the ELF file does not hold): the runtime address
    # less the load base, found through a plain symbol of the same object.
    for other in report["probes"]:
        osym = elf.symbol(other["symbol"] or "") if other["object"] == obj else None
        if osym and not osym[2] and "+" not in other["spec"]:
            base = int(other["address"], 16) - osym[0]
            impl = int(entry["address"], 16) - base
            off = elf.vaddr_to_offset(impl)
            if off is None:
                return None, "IFUNC %s: address %s - base 0x%x is not in %s's text" % (
                    entry["symbol"], entry["address"], base, obj)
            return "%s:0x%x" % (obj, off), None
    return None, "%s: no plain symbol of %s in the report to find its load base" % (
        entry["symbol"], obj)


def test(cmd, stdin, spec, mode):
    """Run CMD under SPEC; check it behaves as unprobed.  Returns the report."""
    label = "%s [%s] (%s)" % (" ".join(os.path.basename(c) for c in cmd), spec, mode)
    ref = t.run(cmd, stdin=stdin)
    cp, rep = t.run_probed(cmd, spec, mode, stdin=stdin)
    t.check(cp.returncode == ref.returncode, "%s: exit %d, unprobed %d"
            % (label, cp.returncode, ref.returncode), t.clip(cp.stderr))
    t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run (%d vs %d bytes)"
            % (label, len(cp.stdout), len(ref.stdout)), t.clip(cp.stderr))
    t.check(cp.stderr == ref.stderr, "%s: stderr differs from the unprobed run" % label,
            "got:\n%s\nwant:\n%s" % (t.clip(cp.stderr, 1000), t.clip(ref.stderr, 1000)))
    if not rep:
        return None
    t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"])
    by_spec = t.probes_by(rep, "spec")
    for item in spec.split(";"):
        entries = by_spec.get(item, [])
        if t.check(len(entries) == 1, "%s: %d report entries for %s" % (label, len(entries), item)):
            e = entries[0]
            t.check(e["hits"] > 0, "%s: %s has no hits" % (label, item), t.fmt_probe(e))
            t.check(e["missed"] == 0, "%s: %s missed %d" % (label, item, e["missed"]), t.fmt_probe(e))
            if mode == "int3":
                t.check(e["mode"] == "int3", "%s: %s mode %s" % (label, item, e["mode"]))
    return rep


_kernel_cache = {}


def kernel_counts(cmd, stdin, rep, label):
    """{spec item: kernel count} for REP's probes over CMD (cached per run)."""
    elfs, probes, items = {}, [], []
    for e in rep["probes"]:
        probe, why = kernel_probe(e, rep, elfs)
        if probe is None:
            t.skip("%s: no kernel comparison for %s: %s" % (label, e["spec"], why))
            continue
        probes.append(probe)
        items.append(e["spec"])
    key = (tuple(cmd), stdin, tuple(probes))
    if probes and key not in _kernel_cache:
        ref = t.run(cmd, stdin=stdin)
        kcp, kc = t.kcount(probes, cmd, stdin=stdin)
        t.check(kcp.returncode == ref.returncode and kcp.stdout == ref.stdout,
                "%s: the kcount run differs from the plain run (exit %d)" % (label, kcp.returncode),
                t.clip(kcp.stderr))
        _kernel_cache[key] = kc or {}
    kc = _kernel_cache.get(key, {})
    return {item: kc.get(probe) for item, probe in zip(items, probes)}


def compare_kernel(workloads, spec, mode, reps):
    label = "%s [%s] (%s)" % (workloads[0][0][0], spec, mode)
    ok, reason = t.kernel_uprobes()
    if not ok:
        t.skip("kernel uprobes unavailable: %s" % reason)
        return
    for (cmd, stdin), rep in zip(workloads, reps):
        kc = kernel_counts(cmd, stdin, rep, label)
        size = "large" if (cmd, stdin) == workloads[-1] else "small"
        for e in rep["probes"]:
            k = kc.get(e["spec"])
            if k is None:
                continue
            t.info("%s %s: %s: preload %d, kernel %d" % (label, size, e["spec"], e["hits"], k))
            t.check(k == e["hits"], "%s %s: %s: preload counts %d hits, the kernel %d"
                    % (label, size, e["spec"], e["hits"], k), t.fmt_probe(e))


def main():
    t.require_build()
    if len(sys.argv) != 2:
        sys.exit("usage: e2e_real.py ls|sort|sqlite3")
    specs, workloads = programs(sys.argv[1])
    if not t.check(t.run(["sh", "-c", "command -v %s" % workloads[0][0][0]]).returncode == 0,
                   "%s is not installed" % workloads[0][0][0]):
        t.finish()
    for spec in specs:
        for mode in ("int3", "auto"):
            reps = [test(cmd, stdin, spec, mode) for cmd, stdin in workloads]
            if all(reps):
                compare_kernel(workloads, spec, mode, reps)
    t.finish()


if __name__ == "__main__":
    main()
