#!/usr/bin/python3
"""e2e_badspec — a bad spec item never breaks the application.

  e2e_badspec.py ls       bad items next to uprobe:libc:malloc, in `ls -la /usr/bin`
  e2e_badspec.py target   bad items next to uprobe:t_nop, in sp_target

Each run has one bad item and one good item (the bad one first or second,
alternately).  Required: exit status and stdout identical to the unprobed
run; stderr is the unprobed run's (UPROBE_LOG unset); the JSON report's "errors" has an entry whose
"spec" is the bad item, none for the good item, and no probe entry for the
bad item; the good item is attached and counts its hits.
"""
import sys

import sptest as t

LONG = 5000
LS_BAD = [
    # grammar
    "uprobez:libc:malloc", "UPROBE:libc:malloc", "kprobe:do_sys_open",
    "tracepoint:syscalls:sys_enter_openat", "uprobe", "uprobe:", "uprobe:libc:",
    ":libc:malloc", "uprobe::malloc", "uretprobe:", "usession:", "usdt:", "usdt:libc",
    "usdt:::", "uprobe:libc:malloc:extra",
    # offsets and addresses
    "uprobe:libc:malloc+0xZZ", "uprobe:libc:malloc+", "uprobe:libc:malloc+0x",
    "uprobe:libc:malloc+-1", "uprobe:libc:malloc+0x1+0x2",
    "uprobe:libc:malloc+0x10000000000000000", "uprobe:libc:malloc+0x100000",
    # malloc starts with push %r12 (41 54), mov %rdi,%rbx at +4 (48 89 fb) in
    # Debian 12's glibc: +1 and +5 are inside instructions
    "uprobe:libc:malloc+1", "uprobe:libc:malloc+0x5",
    "uprobe:libc:0xZZ", "uprobe:libc:0x", "uprobe:libc:0x1", "uprobe:libc:0xffffffffffffffff",
    "uprobe:libc:0x10000000000000000", "uprobe:0x1",
    # objects and symbols
    "uprobe:libnotloaded:foo", "uprobe:/nonexistent/path/libfoo.so:foo", "uprobe:/etc/passwd:foo",
    "uprobe:/usr/lib/x86_64-linux-gnu:malloc", "uprobe:libc:no_such_symbol",
    "uprobe:libc:nomatch_zz*", "uretprobe:libc:no_such_symbol", "usession:libc:no_such_symbol",
    "usdt:nosuchprovider:nosuchname", "usdt:libc:nosuchprovider:nosuchname",
    "uprobe:libc:" + "a" * LONG, "uprobe:" + "x" * LONG + ":malloc",
    'uprobe:libc:"quoted"', "uprobe:libc:back\\slash",
    # actions
    "uprobe:libc:malloc=bogus", "uprobe:libc:malloc=", "uprobe:libc:malloc=count=count",
    "uprobe:libc:malloc=latencyx", "uprobe:libc:malloc=count:",
    "uprobe:libc:malloc=:fn", "uprobe:libc:malloc=/nonexistent.so:fn",
    "uprobe:libc:malloc=/etc/passwd:fn", "uprobe:libc:malloc=/nonexistent.so",
]
TARGET_BAD = [
    # not at an instruction boundary: mov %rdi,%rax (3 bytes), sub $8,%rsp
    # (4), call rel32 (5), mov rip-rel (6), endbr64 (4), nopl (5)
    "uprobe:t_mov+1", "uprobe:t_sub+3", "uprobe:t_call+2", "uprobe:t_riprel+1",
    "uprobe:t_endbr+1", "uprobe:t_nop5+2",
    # past the function's end, unknown names, not text
    "uprobe:t_nop+0x1000", "uprobe:h_nosuch", "uprobe:sp_riprel_val", "uprobe:0x1",
    "uretprobe:t_nosuch", "uprobe:t_nop=bogus", "usdt:nosuchprov:nosuchname",
    "uprobe:./nonexistent_object:t_nop",
]


def named(item):
    """What must appear of ITEM in messages (long items may be shortened)."""
    return item if len(item) < 200 else item[:60]


def test(cmd, bad, good, good_hits, order, ref):
    spec = bad + ";" + good if order == 0 else good + ";" + bad
    label = "%r" % (bad if len(bad) < 200 else bad[:60] + "...(%d chars)" % len(bad))
    cp, rep = t.run_probed(cmd, spec, "int3")
    t.check(cp.returncode == ref.returncode, "%s: exit %d, unprobed %d"
            % (label, cp.returncode, ref.returncode), t.clip(cp.stderr))
    t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run" % label)
    # the program's stderr is its own: the item is named in the report only
    t.check(cp.stderr == ref.stderr, "%s: stderr differs from the unprobed run" % label,
            t.clip(cp.stderr, 600))
    if not rep:
        return
    errs = [e for e in rep["errors"] if e["spec"].startswith(named(bad))]
    t.check(errs, "%s: no report error with this spec" % label, rep["errors"])
    t.check(not [e for e in rep["errors"] if e["spec"] == good],
            "%s: the good item %s is in errors" % (label, good), rep["errors"])
    t.check(not [e for e in rep["probes"] if e["spec"] == bad],
            "%s: the bad item has a probe entry" % label,
            "\n".join(t.fmt_probe(e) for e in rep["probes"]))
    goods = [e for e in rep["probes"] if e["spec"] == good]
    hits = [e["hits"] for e in goods]
    want = "== %d" % good_hits if good_hits else "> 0"
    t.check(len(goods) == 1 and (hits[0] == good_hits if good_hits else hits[0] > 0),
            "%s: good item %s hits %s, want one entry with hits %s" % (label, good, hits, want))
    if errs:
        t.info("ok %s -> %s" % (label, errs[0]["message"]))


def main():
    t.require_build()
    which = sys.argv[1:]
    if which == ["ls"]:
        cmd, good, hits, bad = ["ls", "-la", "/usr/bin"], "uprobe:libc:malloc", None, LS_BAD
    elif which == ["target"]:
        cmd, good, hits, bad = [t.TARGET, "1000"], "uprobe:t_nop", 1000, TARGET_BAD
    else:
        sys.exit("usage: e2e_badspec.py ls|target")
    ref = t.run(cmd)
    for i, item in enumerate(bad):
        test(cmd, item, good, hits, i % 2, ref)
    t.info("%d bad items tried" % len(bad))
    t.finish()


if __name__ == "__main__":
    main()
