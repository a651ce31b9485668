#!/usr/bin/python3
"""e2e_real — real programs under the preload, counts checked by the kernel.

  e2e_real.py ls|sort|sqlite3

For each spec and each UPROBE_MODE (int3, auto): exit status and stdout equal
to the unprobed run, no errors in the report, every item attached with hits;
then each probe's hits must equal what kernel uprobes (kcount) count over the
same command, when `kcount --check` passes (else the test reports SKIP).

IFUNC symbols (strlen): the report's address is the implementation the
runtime chose, at run time.  Its file offset is found through another,
plain symbol of the same object in the same report (runtime address minus
ELF value gives the load base); without one, the kernel comparison of that
probe is skipped and said so.
"""
import os
import sys

import sptest as t

LIBC_SPECS = ["uprobe:libc:malloc", "uprobe:libc:free;uprobe:libc:strlen"]
SQLITE_SPEC = "uprobe:libsqlite3:sqlite3_step;uprobe:libsqlite3:sqlite3_prepare_v2"


def sort_input():
    """20000 deterministic pseudo-random lines (a fixed LCG)."""
    x, lines = 12345, []
    for i in range(20000):
        x = (x * 1103515245 + 12345) % (1 << 31)
        lines.append("%08x %d line-%d\n" % (x, x % 977, i))
    path = os.path.join(t.work_dir(), "sort-input.txt")
    with open(path, "w") as f:
        f.writelines(lines)
    return path


def sql_workload():
    s = ["CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL, grp INTEGER);",
         "CREATE INDEX t_grp ON t(grp);", "BEGIN;"]
    for i in range(3000):
        s.append("INSERT INTO t(name, v, grp) VALUES('name-%d', %d.25, %d);" % (i, (i * 7919) % 1000, i % 17))
    s += ["COMMIT;",
          "SELECT grp, count(*), sum(v), min(name), max(name) FROM t GROUP BY grp ORDER BY grp;",
          "UPDATE t SET v = v * 2 WHERE grp IN (1, 3, 5);",
          "DELETE FROM t WHERE id % 11 = 0;",
          "CREATE TABLE u AS SELECT grp, group_concat(id) AS ids FROM t GROUP BY grp;",
          "SELECT grp, length(ids) FROM u ORDER BY grp;",
          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) "
          "SELECT sum(x), count(*) FROM c;",
          "SELECT name FROM t WHERE name LIKE 'name-1%' ORDER BY v DESC, id LIMIT 20;",
          "SELECT count(*) FROM t a JOIN t b ON a.grp = b.grp AND a.id < b.id WHERE a.id < 300;"]
    for i in range(200):
        s.append("SELECT %d, count(*) FROM t WHERE grp = %d;" % (i, i % 17))
    return ("\n".join(s) + "\n").encode()


def programs(name):
    """[(cmd, stdin, specs)]"""
    if name == "ls":
        return [(["ls", "-la", "/usr/bin"], None, LIBC_SPECS)]
    if name == "sort":
        return [(["sort", sort_input()], None, LIBC_SPECS)]
    if name == "sqlite3":
        return [(["sqlite3", ":memory:"], sql_workload(), LIBC_SPECS + [SQLITE_SPEC])]
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
        return
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
            t.info("%s: %s" % (label, t.fmt_probe(e)))

    ok, reason = t.kernel_uprobes()
    if not ok:
        t.skip("kernel uprobes unavailable: %s" % reason)
        return
    elfs, probes, entries = {}, [], []
    for e in rep["probes"]:
        probe, why = kernel_probe(e, rep, elfs)
        if probe is None:
            t.skip("%s: kernel comparison of %s: %s" % (label, e["spec"], why))
            continue
        probes.append(probe)
        entries.append(e)
    if not probes:
        return
    kcp, kc = t.kcount(probes, cmd, stdin=stdin)
    t.check(kcp.returncode == ref.returncode and kcp.stdout == ref.stdout,
            "%s: the kcount run differs from the plain run (exit %d)" % (label, kcp.returncode),
            t.clip(kcp.stderr))
    for probe, e in zip(probes, entries):
        k = (kc or {}).get(probe)
        t.check(k == e["hits"], "%s: %s: preload counts %d hits, the kernel %s (%s)"
                % (label, e["spec"], e["hits"], k, probe), t.fmt_probe(e))


def main():
    t.require_build()
    if len(sys.argv) != 2:
        sys.exit("usage: e2e_real.py ls|sort|sqlite3")
    for cmd, stdin, specs in programs(sys.argv[1]):
        if not t.check(t.run(["sh", "-c", "command -v %s" % cmd[0]]).returncode == 0,
                       "%s is not installed" % cmd[0]):
            continue
        for spec in specs:
            for mode in ("int3", "auto"):
                test(cmd, stdin, spec, mode)
    t.finish()


if __name__ == "__main__":
    main()
