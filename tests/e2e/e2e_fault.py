#!/usr/bin/python3
"""e2e_fault — a handler that faults never takes the program down.

A plugin whose handler dereferences NULL is attached to malloc next to a
count probe: the program's output and status are those of the unprobed run,
the faulting probe is reported with its signal and address (text and JSON)
and keeps counting, and the other probe counts every call; in both modes.
A program's own SIGSEGV still kills it as before.
"""
import os

import sptest as t

PLUGIN = os.path.join(os.path.dirname(t.LIB), "libsp_crash_plugin.so")


def main():
    t.require_build()
    ref = t.run(["ls", "-la", "/usr/bin"])
    for mode in ("int3", "auto"):
        spec = "uprobe:libc:malloc=%s:crash;uprobe:libc:free" % PLUGIN
        cp, rep = t.run_probed(["ls", "-la", "/usr/bin"], spec, mode)
        t.check(cp.returncode == ref.returncode and cp.stdout == ref.stdout,
                "%s: the program changed (exit %d)" % (mode, cp.returncode), t.clip(cp.stderr))
        if rep:
            by = {p["spec"]: p for p in rep["probes"]}
            bad = by.get("uprobe:libc:malloc=%s:crash" % PLUGIN, {})
            t.check(bad.get("fault", {}).get("signal") == 11 and bad["fault"].get("address") == "0",
                    "%s: the faulting probe is not reported with SIGSEGV at 0" % mode, str(bad))
            t.check(bad.get("hits", 0) > 100, "%s: the faulting probe stopped counting" % mode, str(bad))
            t.check(by.get("uprobe:libc:free", {}).get("hits", 0) > 100, "%s: the other probe" % mode)
        cp = t.run(["ls", "/"], t.probed_env(spec, mode))
        t.check("@fault[" in cp.stderr.decode(errors="replace"), "%s: no @fault line in the text report" % mode,
                t.clip(cp.stderr))
    seg = t.run(["sh", "-c", "kill -SEGV $$"], t.probed_env("uprobe:libc:malloc=%s:crash" % PLUGIN))
    t.check(seg.returncode != 0, "a program's own SIGSEGV should still end it")
    t.finish()


if __name__ == "__main__":
    main()
