#!/usr/bin/python3
"""e2e_heap — the runtime never allocates from the program's heap.

The runtime allocates from its own memory (runtime/core/heap.h), and the
libraries it brings (libelf, libunwind, ...) are routed there too
(runtime/mech/gotheap.h), so a probed program's heap is the one it has
unprobed: the same addresses from malloc, the same mallinfo2(), the same
work inside the allocator.

sp_heap (tests/targets/sp_heap.c) prints mallinfo2() and where each block
of a fixed sequence of malloc/realloc/free/strdup lands, as offsets from
its first block, and dlopens a library half way (so that a probe waiting
for it attaches then).  Run unprobed, then under each spec below (through
the preload, and one through the launcher): the lines must be identical.
The probes must also have counted (else the comparison proves nothing).
"""
import json
import os

import sptest as t

TARGET = os.path.join(t.BUILD, "tests/sp_heap")
LIBRARY = os.path.join(t.BUILD, "tests/libsp_dl_lib.so")

# (spec, mode): entry and return probes on the allocator itself, every libc
# function, the stack action (libunwind), a bpftrace block, a probe that
# attaches at the dlopen
SPECS = [
    ("uprobe:libc:malloc", "auto"),
    ("uprobe:libc:malloc", "int3"),
    ("uprobe:libc:*", "auto"),
    ("uretprobe:libc:malloc;usession:libc:free", "auto"),
    ("uprobe:libc:realloc=latency", "auto"),
    ("uprobe:libc:malloc=stack", "auto"),
    ("uprobe:libc:malloc { @[tid] = count(); }", "auto"),
    ("uprobe:libsp_dl_lib:dl_func;uprobe:libc:free", "auto"),
]


def program_lines(out):
    """The program's own lines: a bpftrace block prints its maps on stdout
    at exit, after them."""
    return [l for l in out.decode(errors="replace").split("\n") if l and not l.startswith("@")]


def hits(report):
    procs = [p.get("report", {}) for p in report["processes"]] if "processes" in report else [report]
    return sum(p.get("hits", 0) for proc in procs for p in proc.get("probes", []))


def main():
    t.require_build()
    cmd = [TARGET, LIBRARY]
    plain = t.run(cmd)
    t.check(plain.returncode == 0, "sp_heap runs unprobed", t.clip(plain.stderr))
    want = program_lines(plain.stdout)
    t.check(any(l.startswith("end: ") for l in want), "sp_heap prints its heap", t.clip(plain.stdout))
    for spec, mode in SPECS:
        what = "%s (%s)" % (spec, mode)
        cp, rep = t.run_probed(cmd, spec, mode=mode)
        t.check(cp.returncode == 0, "%s: exit %d" % (what, cp.returncode), t.clip(cp.stderr))
        got = program_lines(cp.stdout)
        diff = ["- %s\n+ %s" % (a, b) for a, b in zip(want, got) if a != b]
        t.check(got == want, "%s: the program's heap is as unprobed" % what,
                "\n".join(diff[:12]) or "lines: %d, unprobed %d" % (len(got), len(want)))
        if rep:
            t.check(hits(rep) > 0, "%s: the probes counted (%d hits)" % (what, hits(rep)))
    # through the launcher (its shared counters file, its report at exit)
    out = os.path.join(t.work_dir(), "launcher.json")
    cp = t.run([t.CLI, "run", "-e", "uprobe:libc:malloc;uretprobe:libc:realloc", "-o", out, "--"] + cmd)
    t.check(cp.returncode == 0, "launcher: exit %d" % cp.returncode, t.clip(cp.stderr))
    t.check(program_lines(cp.stdout) == want, "launcher: the program's heap is as unprobed",
            t.clip(cp.stdout))
    if t.check(os.path.exists(out), "launcher: a report"):
        t.check(hits(json.load(open(out))) > 0, "launcher: the probes counted")
    t.finish()


if __name__ == "__main__":
    main()
