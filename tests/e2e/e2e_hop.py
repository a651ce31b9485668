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
  carrier   sp_carrier (sp_carrier_funcs.S): cr_short is too short for a
            5-byte jmp and no padding is in reach; the hop's pad is made in
            a carrier, cr_host's straight run: `list` and the live report
            say hop, 2 threads calling cr_short, cr_host (through the
            carrier's relocated copy) and cr_next get every result right
            and exact hits, in auto and int3 mode; a probe inside the
            carrier is refused with the reason, the hop still exact
"""
import json
import os

import sptest as t

N = 100000
HOP = os.environ.get("SP_HOP", os.path.join(os.path.dirname(t.TARGET), "sp_hop"))
CARRIER = os.environ.get("SP_CARRIER", os.path.join(os.path.dirname(t.TARGET), "sp_carrier"))
CLI = t.CLI


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


def test_carrier():
    cp = t.run([CLI, "list", "--json", CARRIER, "cr_*"])
    listed = {}
    try:
        listed = {f["name"]: f["patch"] for f in json.loads(cp.stdout.decode())["functions"]}
    except (ValueError, KeyError) as e:
        t.check(False, "selfprobe list --json %s: %s" % (CARRIER, e), t.clip(cp.stderr))
    t.check(listed.get("cr_short") == "hop", "list: cr_short's patch %s, want hop (a carrier's pad)"
            % listed.get("cr_short"), listed)
    calls = 2 * N
    for mode, patch in (("auto", "hop"), ("int3", "int3")):
        label = "sp_carrier uprobe:cr_short (%s)" % mode
        cp, rep = t.run_probed([CARRIER, str(N)], "uprobe:cr_short", mode)
        out = cp.stdout.decode()
        t.check(cp.returncode == 0 and "calls %d wrong 0" % calls in out, "%s: exit %d, wrong results"
                % (label, cp.returncode), out + t.clip(cp.stderr))
        t.check(("patch hop" in out) == (patch == "hop"), "%s: the entry's bytes: %s" % (label, out))
        es = (t.probes_by(rep, "symbol") if rep else {}).get("cr_short", [])
        t.check(len(es) == 1 and es[0]["patch"] == patch and es[0]["hits"] == calls and not rep["errors"],
                "%s: want patch %s and %d hits, no error" % (label, patch, calls),
                "; ".join(t.fmt_probe(e) + " patch=%s" % e.get("patch") for e in es) + str(rep and rep["errors"]))
    label = "sp_carrier: a probe inside the carrier"
    cp, rep = t.run_probed([CARRIER, str(N)], "uprobe:cr_short;uprobe:cr_host+7", "auto")
    out = cp.stdout.decode()
    t.check(cp.returncode == 0 and "calls %d wrong 0" % calls in out, "%s: exit %d" % (label, cp.returncode), out)
    if rep:
        es = t.probes_by(rep, "symbol").get("cr_short", [])
        t.check(len(es) == 1 and es[0]["patch"] == "hop" and es[0]["hits"] == calls,
                "%s: cr_short want hop and %d hits" % (label, calls), str(es))
        t.check(any("carrier" in e["message"] for e in rep["errors"]),
                "%s: the refusal should name the carrier" % label, rep["errors"])


def main():
    t.require_build()
    test_api()
    test_preload()
    test_carrier()
    t.finish()


if __name__ == "__main__":
    main()
