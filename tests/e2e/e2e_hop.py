#!/usr/bin/python3
"""e2e_hop — the hop (a 2-byte jmp to a 5-byte jmp in unused padding) where
a back-edge blocks the 5-byte window of a function's entry.

The target is sp_hop (tests/targets/sp_hop.c, sp_hop_funcs.S): hop_loop's
loop head is its byte 3, and int3 padding follows hop_prev right before it.

  api       selfprobe_attach in auto mode: the entry holds eb rel8 to an
            e9 rel32 in the padding; 2 threads call it N times each with
            every result checked and the handler counting exactly 2N; after
            selfprobe_detach every byte around the site and its pad is as
            before; a call after the detach is not counted
  preload   UPROBE_SPEC=uprobe:hop_loop in auto mode: the report's mode is
            jmp, its patch hop, exact hits; in int3 mode, patch int3 with
            the same counts
"""
import os

import sptest as t

N = 100000
HOP = os.environ.get("SP_HOP", os.path.join(os.path.dirname(t.TARGET), "sp_hop"))


def test_api():
    cp = t.run([HOP, "api", str(N)])
    want = ["patch hop", "hits %d of %d, wrong 0" % (2 * N, 2 * N), "restored yes", "hits after detach 0",
            "detached under load: wrong 0, restored yes"]
    t.check(cp.returncode == 0 and cp.stdout.decode().split("\n")[:5] == want,
            "sp_hop api %d: exit %d" % (N, cp.returncode),
            "got:\n%s\nwant:\n%s\nstderr:\n%s" % (cp.stdout.decode(), "\n".join(want), t.clip(cp.stderr)))


def test_preload():
    for mode, patch in (("auto", "hop"), ("int3", "int3")):
        label = "uprobe:hop_loop (%s)" % mode
        cp, rep = t.run_probed([HOP, "preload", str(N)], "uprobe:hop_loop", mode)
        out = cp.stdout.decode()
        t.check(cp.returncode == 0 and "calls %d wrong 0" % (2 * N) in out,
                "%s: exit %d, wrong results" % (label, cp.returncode), out + t.clip(cp.stderr))
        t.check(("patch hop" in out) == (patch == "hop"), "%s: the entry's bytes: %s" % (label, out))
        if not rep:
            continue
        es = t.probes_by(rep, "symbol").get("hop_loop", [])
        t.check(len(es) == 1, "%s: %d report entries for hop_loop" % (label, len(es)))
        for e in es:
            t.check(e["mode"] == ("jmp" if patch == "hop" else "int3") and e["patch"] == patch
                    and e["hits"] == 2 * N and e["missed"] == 0,
                    "%s: want patch %s and %d hits" % (label, patch, 2 * N), t.fmt_probe(e) + " patch=%s" % e.get("patch"))


def main():
    t.require_build()
    test_api()
    test_preload()
    t.finish()


if __name__ == "__main__":
    main()
