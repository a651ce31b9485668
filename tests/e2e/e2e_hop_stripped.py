#!/usr/bin/python3
"""e2e_hop_stripped — a file stripped to .dynsym gets the hop where the
unstripped file did: where a local function before the padding ends is known
from its .eh_frame FDE once its symbol is gone.

libsp_hop_lib.so (tests/targets/sp_hop_lib.S): hopl_loop's loop head is its
byte 3, int3 padding follows the LOCAL hopl_prev right before it;
libsp_hop_lib_stripped.so is the same file after objcopy --strip-all.
For each file:

  files     the unstripped file has hopl_prev in .symtab; the stripped one
            has no .symtab, and hopl_prev is in neither file's .dynsym
  list      `selfprobe list --json FILE hopl_loop`: mode jmp, patch hop
  live      sp_hop_dl FILE N under UPROBE_SPEC=uprobe:FILE:hopl_loop in auto
            mode, 2 threads: the entry holds the rel8 while probed, every
            result right, the report's patch hop with exactly 2N hits
"""
import json
import os
import subprocess

import sptest as t

N = 50000
DL = os.environ.get("SP_HOP_DL", os.path.join(t.BUILD, "tests", "sp_hop_dl"))
PLAIN = os.environ.get("SP_HOP_LIB", os.path.join(t.BUILD, "lib", "libsp_hop_lib.so"))
STRIPPED = os.path.join(os.path.dirname(PLAIN), "libsp_hop_lib_stripped.so")
CLI = os.path.join(t.BUILD, "bin", "selfprobe")


def names(path, want):
    data = open(path, "rb").read()
    secs = t._elf_sections(data, path)
    return {f[0] for f in t._elf_functions(data, secs, want)}, any(s[1] == 2 for s in secs)


def test_files():
    plain, has = names(PLAIN, (2,))
    t.check(has and "hopl_prev" in plain, "%s: hopl_prev is not in .symtab" % PLAIN)
    stripped, has = names(STRIPPED, (2,))
    t.check(not has, "%s: still has a .symtab" % STRIPPED)
    for path in (PLAIN, STRIPPED):
        dyn, _ = names(path, (11,))
        t.check("hopl_loop" in dyn and "hopl_prev" not in dyn,
                "%s: .dynsym holds %s" % (path, sorted(dyn)))


def test_list(path):
    cp = subprocess.run([CLI, "list", "--json", path, "hopl_loop"], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=120)
    if not t.check(cp.returncode == 0, "list %s: exit %d" % (path, cp.returncode), t.clip(cp.stderr)):
        return
    fs = json.loads(cp.stdout)["functions"]
    t.check(len(fs) == 1 and fs[0]["mode"] == "jmp" and fs[0]["patch"] == "hop",
            "list %s: hopl_loop should take the hop" % path, json.dumps(fs))


def test_live(path):
    label = "uprobe:%s:hopl_loop (auto)" % os.path.basename(path)
    cp, rep = t.run_probed([DL, path, str(N)], "uprobe:%s:hopl_loop" % path, "auto")
    out = cp.stdout.decode()
    t.check(cp.returncode == 0 and "calls %d wrong 0" % (2 * N) in out,
            "%s: exit %d, wrong results" % (label, cp.returncode), out + t.clip(cp.stderr))
    t.check("patch hop" in out, "%s: the entry does not hold the hop's rel8" % label, out)
    if not rep:
        return
    es = t.probes_by(rep, "symbol").get("hopl_loop", [])
    t.check(len(es) == 1, "%s: %d report entries for hopl_loop" % (label, len(es)))
    for e in es:
        t.check(e["mode"] == "jmp" and e["patch"] == "hop" and e["hits"] == 2 * N and e["missed"] == 0,
                "%s: want patch hop and %d hits" % (label, 2 * N), t.fmt_probe(e) + " patch=%s" % e.get("patch"))


def main():
    t.require_build()
    for p in (DL, PLAIN, STRIPPED):
        t.check(os.path.exists(p), "missing %s (build the tests)" % p)
    test_files()
    for path in (PLAIN, STRIPPED):
        test_list(path)
        test_live(path)
    t.finish()


if __name__ == "__main__":
    main()
