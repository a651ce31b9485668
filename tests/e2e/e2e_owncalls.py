#!/usr/bin/python3
"""e2e_owncalls — nothing the runtime does on its own behalf is counted.

A fixed workload (`ls -la` of a generated tree, LC_ALL=C) runs with every
libc function counted, `uprobe:libc:*`, and then with each built-in action
attached as well: the counts of every libc function must not move.  The
actions' own work calls libc (the unwinder's memcmp and dl_iterate_phdr,
the trace's write, the timeline's buffers, the report writers' stdio, the
dlopen of a plugin): those calls are the runtime's, not the application's.

Variants (each compared per function with the plain `uprobe:libc:*` run):
  stack      uprobe:libc:*=stack                 (every hit unwinds)
  trace      uprobe:libc:*=trace                 (a line per hit)
  mixed      uprobe:libc:* and, on a few busy functions, =stack, =trace,
             =latency and a plugin: only the `uprobe:libc:*` probes compared
             (the issue's case: memcmp alone vs memcmp with malloc=stack)
  timeline   uprobe:libc:*=trace with UPROBE_OUTPUT=x.trace.json
  folded     uprobe:libc:*=stack with UPROBE_OUTPUT=x.folded
  launcher   selfprobe run -e 'uprobe:libc:*=stack' (counters in the
             launcher's file: the exit report's own calls would count)
  plugin     a user's handler that calls getppid on every malloc: its calls
             are the process's own and count (README, Counting), so getppid
             counts once more per malloc; nothing else moves

Differences libc's allocator explains (the runtime shares the heap, so
_int_malloc and friends may run a different number of times inside the
application's own malloc calls; README's known limits) are printed as notes.

The kernel (kcount, when perf_event_open and uprobes work) counts a few
functions on the unprobed workload; the preload's counts with the actions
attached must equal it.  Without kernel uprobes that part is skipped (77).
"""
import json
import os
import re
import sys

import sptest as t

BUILD = os.path.dirname(os.path.dirname(t.LIB))
LAUNCHER = t.CLI
PLUGIN = os.environ.get("SP_PLUGIN_GOOD", os.path.join(BUILD, "lib", "libsp_plugin_good.so"))
ALL = "uprobe:libc:*"
# busy functions of the workload that the mixed variant gives an action
BUSY = ("malloc", "free", "memcmp", "strlen", "memcpy")
# the kernel's reference: plain (non-IFUNC) functions the workload calls, and
# dl_iterate_phdr, which it never calls but the unwinder does
# (by the names the report gives them)
KERNEL_FUNCS = ("__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc", "dl_iterate_phdr", "getenv",
                "_IO_fclose", "opendir", "strcoll", "__clock_gettime")
EXPLAINED = [
    # the runtime shares the heap: its own allocations (not counted) change
    # which chunks exist, so these run more or less often inside the
    # application's own malloc and free
    (re.compile(r"^(_int_\w+|alloc_perturb|unlink_chunk(\.\w+)*|malloc_consolidate|sysmalloc\w*(\.\w+)*|"
                r"systrim(\.\w+)*|tcache_\w+(\.\w+)*|mremap_chunk|munmap_chunk)$"), "allocator internal"),
    # at exit the dynamic linker finalises every loaded object, a plugin too
    (re.compile(r"^(__unregister_atfork|__cxa_finalize)$"), "per loaded object at exit"),
]


def explained(sym):
    return next((why for rx, why in EXPLAINED if rx.match(sym)), None)


def make_tree(d):
    for i in range(6):
        sub = os.path.join(d, "d%d" % i)
        os.makedirs(sub)
        for j in range(40):
            p = os.path.join(sub, "f%03d.txt" % j)
            with open(p, "w") as f:
                f.write("x" * (i * 40 + j))
            os.utime(p, (1700000000 + j, 1700000000 + j))
        os.utime(sub, (1700000000, 1700000000))
    os.utime(d, (1700000000, 1700000000))


def json_counts(report):
    """{symbol: (hits, missed)} of the report's `uprobe:libc:*` probes."""
    out = {}
    for e in (report or {}).get("probes", []):
        if e.get("spec", "").split("=")[0] == ALL:
            h, m = out.get(e["symbol"], (0, 0))
            out[e["symbol"]] = (h + e["hits"], m + e["missed"])
    return out


COUNT_LINE = re.compile(rb"^@(count|missed)\[uprobe:libc:([^\]]+)\]: (\d+)$", re.M)


def text_counts(stderr):
    """The same from a text report (the `=stack`/`=trace` probes are the
    only ones there, one per function)."""
    out = {}
    for kind, sym, n in COUNT_LINE.findall(stderr):
        h, m = out.get(sym.decode(), (0, 0))
        out[sym.decode()] = (h + int(n), m) if kind == b"count" else (h, m + int(n))
    return out


def compare(name, base, got, expect_more=None):
    """Every function's hits in GOT equal BASE's, but for EXPECT_MORE
    ({symbol: extra}) and allocator internals (notes)."""
    expect_more = expect_more or {}
    if not t.check(got, "%s: no counts" % name):
        return
    diffs, notes = [], []
    for sym in sorted(set(base) | set(got)):
        b = base.get(sym, (0, 0))[0] + expect_more.get(sym, 0)
        g = got.get(sym, (0, 0))[0]
        if b != g:
            line = "%-32s %d without, %d with" % (sym, b, g)
            if explained(sym):
                notes.append("%s (%s)" % (line, explained(sym)))
            else:
                diffs.append(line)
    for n in notes:
        t.info("  note (%s): %s" % (name, n))
    t.check(not diffs, "%s: %d libc functions counted differently than with %s alone" % (name, len(diffs), ALL),
            "\n".join(diffs))
    t.info("%s: %d functions compared" % (name, len(set(base) | set(got))))


def probed(cmd, spec, output, extra=None):
    cp = t.run(cmd, t.probed_env(spec, output=output, extra=extra))
    t.check(cp.returncode == 0, "%s: exit %d" % (spec, cp.returncode), t.clip(cp.stderr))
    return cp


def main():
    t.require_build()
    wd = t.work_dir()
    tree = os.path.join(wd, "input", "tree")   # `..` too is left alone while reports come and go
    make_tree(tree)
    os.utime(os.path.dirname(tree), (1700000000, 1700000000))
    cmd = ["ls", "-la", tree]
    plain = t.run(cmd)
    t.check(plain.returncode == 0, "unprobed ls: exit %d" % plain.returncode, t.clip(plain.stderr))

    def report_run(spec, extra=None):
        out = os.path.join(wd, "r.json")
        if os.path.exists(out):
            os.unlink(out)
        cp = probed(cmd, spec, out, extra)
        t.check(cp.stdout == plain.stdout, "%s: ls's output differs from the unprobed run" % spec)
        report = t.load_report(out, "report of %s" % spec)
        report_run.last = report
        return json_counts(report), cp

    base, _ = report_run(ALL)
    again, _ = report_run(ALL)
    # the comparison means something only if the workload repeats exactly
    compare("plain twice", base, again)

    counts = {}
    counts["stack"], _ = report_run(ALL + "=stack")
    counts["trace"], _ = report_run(ALL + "=trace")
    mixed = [ALL] + ["uprobe:libc:%s=%s" % (f, a) for f, a in zip(BUSY, ("stack", "trace", "latency", "stack", "trace"))]
    mixed.append("uprobe:libc:calloc=%s:on_hit" % PLUGIN)
    counts["mixed"], _ = report_run(";".join(mixed))
    for name in ("stack", "trace", "mixed"):
        compare(name, base, counts[name])

    tl = os.path.join(wd, "x.trace.json")
    cp = probed(cmd, ALL + "=trace", tl)
    counts["timeline"] = text_counts(cp.stderr)
    compare("timeline", base, counts["timeline"])
    t.check(os.path.exists(tl) and json.load(open(tl)).get("traceEvents"), "timeline: no events written to %s" % tl)

    folded = os.path.join(wd, "x.folded")
    cp = probed(cmd, ALL + "=stack", folded)
    counts["folded"] = text_counts(cp.stderr)
    compare("folded", base, counts["folded"])

    lout = os.path.join(wd, "launcher.json")
    cp = t.run([LAUNCHER, "run", "-e", ALL + "=stack", "-o", lout, "--"] + cmd)
    t.check(cp.returncode == 0 and cp.stdout == plain.stdout, "launcher: exit %d or output differs" % cp.returncode,
            t.clip(cp.stderr))
    counts["launcher"] = json_counts(t.load_report(lout, "the launcher's report"))
    compare("launcher", base, counts["launcher"])

    # a user's handler: its getppid calls are real calls of the process
    # (plugins attach at the program's entry: the handler runs for the
    # mallocs from there on, which is its probe's hits)
    user, _ = report_run(ALL + ";uprobe:libc:malloc=%s:on_hit_calls_getppid" % PLUGIN)
    handled = sum(e["hits"] - e["missed"] for e in (report_run.last or {}).get("probes", [])
                  if e["spec"].endswith(":on_hit_calls_getppid"))
    t.check(handled > 0, "the plugin's handler ran (%d times)" % handled)
    compare("plugin", base, user, {"getppid": handled})

    ok, why = t.kernel_uprobes()
    if not ok:
        t.skip("kernel uprobes: %s" % why)
        t.finish()
    libc = None
    for e in json.load(open(lout)).get("probes", []):
        libc = libc or e.get("object")
    elf = t.Elf(libc)
    probes = []
    for f in KERNEL_FUNCS:
        s = elf.symbol(f)
        if t.check(s and not s[2], "libc has a plain function %s" % f):
            probes.append((f, "%s:%#x" % (libc, elf.vaddr_to_offset(s[0]))))
    kcp, k = t.kcount([p for _, p in probes], cmd)
    if not t.check(k is not None and kcp.stdout == plain.stdout, "kcount over ls", t.clip(kcp.stderr)):
        t.finish()
    for f, p in probes:
        for name, c in [("plain", base)] + sorted(counts.items()):
            t.check(c.get(f, (0, 0))[0] == k[p], "%s: %s counted %d, the kernel %d" % (name, f, c.get(f, (0, 0))[0], k[p]))
    t.info("kernel: " + ", ".join("%s %d" % (f, k[p]) for f, p in probes))
    t.finish()


if __name__ == "__main__":
    main()
