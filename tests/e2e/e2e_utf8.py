#!/usr/bin/python3
"""e2e_utf8 — every JSON file we write is valid UTF-8, whatever bytes came in.

JSON text is UTF-8 (RFC 8259) and a parser may reject a whole report for
one bad byte.  Specs, paths, command lines and names come from outside as
arbitrary bytes: each byte that is not part of a valid UTF-8 sequence is
written as U+FFFD (escaped \\ufffd), valid sequences as they are (README,
after the JSON report's fields; man page, UPROBE_OUTPUT).  Checked, each
file decoded strictly and parsed:

1. the preload's report for UPROBE_SPEC=$'uprobe:libc:mal\\xfflloc' (with a
   good item beside it): the bad item is in "errors", its spec with U+FFFD,
   and a valid UTF-8 item (é, a 3- and a 4-byte character) is kept as is;
2. the launcher's report of the same spec, for a program that exits and for
   one killed by SIGKILL (built from the shared counters);
3. a program whose path has invalid bytes: "object" in the preload's
   report, "object" and "command" in the launcher's reports (killed, forked),
   and the process name in its timeline.
"""
import json
import os
import shutil

import sptest as t

ENDS = os.path.join(os.path.dirname(t.TARGET), "sp_ends")
BAD_SPEC = b"uprobe:libc:mal\xfflloc"
WANT_SPEC = "uprobe:libc:mal\ufffdlloc"
N = 100


def load(path, what):
    """PATH as JSON, strictly UTF-8; None (a failure recorded) if not."""
    if not t.check(os.path.exists(path), "%s: nothing written at %s" % (what, path)):
        return None
    text = t.read_utf8(path, what)
    try:
        return json.loads(text)
    except ValueError as e:
        t.check(False, "%s: invalid JSON (%s)" % (what, e), t.clip(text))
        return None


def reports(doc):
    """The per-process reports of a launcher's JSON (one, or one per process)."""
    if doc is None:
        return []
    return [p["report"] for p in doc["processes"]] if "processes" in doc else [doc]


def has_error(rep, spec):
    return any(e["spec"] == spec and e["message"] for e in rep.get("errors", []))


def test_spec_preload():
    # é (2 bytes), ∑ (3) and 𝄞 (4) are valid: kept; \xff and a lone
    # continuation byte are not: U+FFFD each
    good_utf8 = "uprobe:libc:é∑𝄞"
    spec = os.fsdecode(BAD_SPEC + b";" + good_utf8.encode() + b";uprobe:libc:x\x80\xc3;uprobe:t_nop")
    out = os.path.join(t.work_dir(), "preload.json")
    cp = t.run([t.TARGET, str(N)], t.probed_env(spec, "int3", out))
    t.check(cp.returncode == 0, "preload: sp_target exit %d" % cp.returncode, t.clip(cp.stderr))
    rep = load(out, "preload report of a spec with byte 0xff")
    if rep is None:
        return
    t.check(has_error(rep, WANT_SPEC), "preload: no error for %r" % WANT_SPEC, rep["errors"])
    t.check(has_error(rep, good_utf8), "preload: the valid UTF-8 item is not kept as is", rep["errors"])
    t.check(has_error(rep, "uprobe:libc:x\ufffd\ufffd"),
            "preload: a continuation byte and a truncated lead are not one U+FFFD each", rep["errors"])
    hits = [p["hits"] for p in rep["probes"] if p["spec"] == "uprobe:t_nop"]
    t.check(hits == [N], "preload: uprobe:t_nop hits %s, want [%d]" % (hits, N))


def test_spec_launcher():
    for end in ("exit", "sigkill"):
        out = os.path.join(t.work_dir(), "launcher-%s.json" % end)
        cp = t.run([os.fsencode(t.CLI), b"run", b"-e", BAD_SPEC, b"-e", b"uprobe:ends_work", b"-o",
                    os.fsencode(out), b"--", os.fsencode(ENDS), end.encode(), str(N).encode()])
        doc = load(out, "launcher report (%s) of a spec with byte 0xff" % end)
        for rep in reports(doc):
            t.check(has_error(rep, WANT_SPEC), "launcher (%s): no error for %r" % (end, WANT_SPEC),
                    json.dumps(rep)[:800] + t.clip(cp.stderr))
        if doc and end == "sigkill":
            t.check(doc.get("from") == "shared counters", "launcher (sigkill): not from the shared counters",
                    json.dumps(doc)[:400])


def test_bad_path():
    d = os.path.join(os.fsencode(t.work_dir()), b"dir\xff\xfe")
    os.makedirs(d, exist_ok=True)
    target = os.path.join(d, b"sp_target")
    ends = os.path.join(d, b"sp_ends")
    shutil.copy(os.fsencode(t.TARGET), target)
    shutil.copy(os.fsencode(ENDS), ends)
    shutil.copymode(os.fsencode(ENDS), ends)
    want = os.fsdecode(d).encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    out = os.path.join(t.work_dir(), "path-preload.json")
    cp = t.run([target, str(N)], t.probed_env("uprobe:t_nop", "int3", out))
    rep = load(out, "preload report of a program in a directory named with bytes ff fe")
    if rep:
        objs = [p["object"] for p in rep["probes"]]
        t.check(len(objs) == 1 and objs[0].startswith(want), "preload: object %r, want %r..." % (objs, want),
                t.clip(cp.stderr))

    for end in ("sigkill", "fork"):
        out = os.path.join(t.work_dir(), "path-launcher-%s.json" % end)
        cp = t.run([os.fsencode(t.CLI), b"run", b"-e", b"uprobe:ends_work", b"-o", os.fsencode(out), b"--",
                    ends, end.encode(), str(N).encode()])
        doc = load(out, "launcher report (%s) of a program in a directory named with bytes ff fe" % end)
        if doc is None:
            continue
        for rep in reports(doc):
            objs = [p["object"] for p in rep["probes"]]
            t.check(objs and all(o.startswith(want) for o in objs),
                    "launcher (%s): objects %r, want %r..." % (end, objs, want), t.clip(cp.stderr))
        if end == "fork":
            cmds = [p["command"] for p in doc.get("processes", [])]
            t.check(len(cmds) == 2 and all(c.startswith(want) for c in cmds),
                    "launcher (fork): commands %r, want %r..." % (cmds, want))

    out = os.path.join(t.work_dir(), "path.trace.json")
    cp = t.run([os.fsencode(t.CLI), b"run", b"-e", b"uprobe:ends_work=trace", b"-o", os.fsencode(out), b"--",
                ends, b"sigkill", b"3"])
    doc = load(out, "timeline of a program in a directory named with bytes ff fe")
    if doc:
        names = [e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "process_name"]
        t.check(names and all(n.startswith(want) for n in names),
                "timeline: process names %r, want %r..." % (names, want), t.clip(cp.stderr))


def main():
    t.require_build()
    test_spec_preload()
    test_spec_launcher()
    test_bad_path()
    t.finish()


if __name__ == "__main__":
    main()
