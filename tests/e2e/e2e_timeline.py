#!/usr/bin/env python3
"""The timeline output (UPROBE_OUTPUT / selfprobe run -o X.trace.json):
Chrome Trace Event Format, checked event by event.

Every file is validated against the format (trace_problems): an object
with a traceEvents list; every event has name, ph, pid, tid; instant events
("i") a ts and a scope, complete events ("X") a ts and a dur >= 0;
metadata ("M") names each process and each thread that has events (one
track per thread); on each thread the complete events nest (a call's span
contains its callees' spans: durations that match their calls).

1. sp_target, in int3 and auto modes: uprobe/usession/uretprobe =trace and
   uretprobe =latency: one event per call, in call order, with the
   arguments the program passed and the values it got back.
2. sp_target threads: one track per thread, each with its own calls.
3. sp_usdt_target: USDT events carry the notes' arguments, signed, equal to
   the values the program prints.
4. ls -la under the launcher with nested libc sessions (opendir → malloc):
   spans nest; event counts equal the report's counts.
5. A bounded buffer: UPROBE_TRACE_EVENTS=5 keeps 5 events per thread and
   the report counts the rest as dropped; the hits are all counted.
6. Under the launcher, a process killed by SIGKILL and a forked child: the
   timeline still has every event of both (from the shared file).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sptest as t  # noqa: E402

CLI = t.CLI
TESTS_DIR = os.path.dirname(t.TARGET)
USDT_TARGET = os.path.join(TESTS_DIR, "sp_usdt_target")
ENDS = os.path.join(TESTS_DIR, "sp_ends")


def trace_problems(doc):
    """Everything in DOC that is not valid Trace Event Format, or breaks the
    promises above (tracks named, spans nested)."""
    bad = []
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        return ["not an object with a traceEvents list"]
    named_threads, named_procs, used = set(), set(), set()
    spans = {}
    for i, e in enumerate(doc["traceEvents"]):
        where = "event %d %r" % (i, e)
        if not isinstance(e, dict):
            bad.append(where + ": not an object")
            continue
        for k, types in (("name", str), ("ph", str), ("pid", int), ("tid", int)):
            if not isinstance(e.get(k), types):
                bad.append("%s: %s missing or not %s" % (where, k, types.__name__))
        ph = e.get("ph")
        if ph == "M":
            if e.get("name") not in ("process_name", "thread_name") or \
                    not isinstance(e.get("args", {}).get("name"), str):
                bad.append(where + ": metadata without a name")
            elif e["name"] == "thread_name":
                named_threads.add((e["pid"], e["tid"]))
            else:
                named_procs.add(e["pid"])
            continue
        if ph not in ("i", "X"):
            bad.append(where + ": phase %r (want i, X or M)" % ph)
            continue
        if not isinstance(e.get("ts"), (int, float)) or e["ts"] < 0:
            bad.append(where + ": ts missing or negative")
            continue
        if not isinstance(e.get("cat"), str) or not isinstance(e.get("args"), dict):
            bad.append(where + ": cat or args missing")
        used.add((e["pid"], e["tid"]))
        if ph == "i" and e.get("s") not in ("t", "p", "g"):
            bad.append(where + ": instant event without scope s")
        if ph == "X":
            if not isinstance(e.get("dur"), (int, float)) or e["dur"] < 0:
                bad.append(where + ": complete event without dur >= 0")
            else:
                spans.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"], e["name"]))
    for track in sorted(used - named_threads):
        bad.append("pid %d tid %d has events but no thread_name (no track name)" % track)
    for pid in sorted({p for p, _ in used} - named_procs):
        bad.append("pid %d has events but no process_name" % pid)
    for track, ss in spans.items():
        # proper nesting: sorted by start (outer first on ties), each span
        # ends before the enclosing one does
        ss.sort(key=lambda s: (s[0], -s[1]))
        stack = []
        for s in ss:
            while stack and stack[-1][1] <= s[0]:
                stack.pop()
            if stack and s[1] > stack[-1][1] + 0.0005:   # ns rounding of the us decimals
                bad.append("tid %d: span %s [%.3f, %.3f] overlaps %s [%.3f, %.3f] without nesting"
                           % (track[1], s[2], s[0], s[1], stack[-1][2], stack[-1][0], stack[-1][1]))
                break
            stack.append(s)
    other = doc.get("otherData", {})
    if not isinstance(other.get("dropped"), int):
        bad.append("otherData.dropped missing")
    return bad


def load_trace(path, what):
    if not t.check(os.path.exists(path), "%s: no timeline at %s" % (what, path)):
        return None
    try:
        doc = json.load(open(path))
    except ValueError as e:
        t.check(False, "%s: invalid JSON: %s" % (what, e), t.clip(open(path, errors="replace").read()))
        return None
    problems = trace_problems(doc)
    t.check(not problems, "%s: %d Trace Event Format problems" % (what, len(problems)),
            "\n".join(problems[:10]))
    return doc


def events(doc, suffix, ph=None):
    return [e for e in doc["traceEvents"] if e["ph"] != "M" and e["name"].endswith(suffix)
            and (ph is None or e["ph"] == ph)]


def hexargs(e, n):
    return [int(e["args"]["arg%d" % i], 16) for i in range(n)]


def run_trace(cmd, spec, name, mode=None, extra=None):
    out = os.path.join(t.work_dir(), name + ".trace.json")
    if os.path.exists(out):
        os.unlink(out)
    cp = t.run(cmd, t.probed_env(spec, mode, out, extra))
    return cp, load_trace(out, "%s (%s)" % (name, spec))


def expected_calls(n):
    """sp_target's arguments: a = i % 7, b = i % 5 + 1."""
    return [(i % 7, i % 5 + 1) for i in range(n)]


# ------------------------------------------------------------ 1. kinds, modes
def kinds(mode):
    n = 40
    T = t.TARGET
    spec = ("uprobe:%s:t_nop=trace;usession:%s:t_push=trace;uretprobe:%s:t_mov=trace;"
            "uretprobe:%s:t_jcc=latency;uprobe:%s:t_sub" % (T, T, T, T, T))
    cp, doc = run_trace([T, str(n)], spec, "kinds-" + mode, mode)
    t.check(cp.returncode == 0, "sp_target under the timeline (%s): status %d" % (mode, cp.returncode),
            t.clip(cp.stderr))
    if not doc:
        return
    calls = expected_calls(n)
    nop = events(doc, ":t_nop")
    t.check(len(nop) == n and all(e["ph"] == "i" for e in nop),
            "%s: t_nop: %d instant events, want %d" % (mode, len(nop), n))
    t.check([tuple(hexargs(e, 2)) for e in nop] == calls,
            "%s: t_nop's events carry the arguments of each call in order" % mode,
            str([hexargs(e, 2) for e in nop[:8]]))
    push = events(doc, ":t_push")
    t.check(len(push) == n and all(e["ph"] == "X" for e in push),
            "%s: t_push (usession): %d complete events, want %d" % (mode, len(push), n))
    t.check([(tuple(hexargs(e, 2)), int(e["args"]["retval"], 16)) for e in push] ==
            [((a, b), a + 2) for a, b in calls],
            "%s: t_push's spans carry the entry's arguments and the return value" % mode)
    mov = events(doc, ":t_mov")
    t.check([int(e["args"]["retval"], 16) for e in mov if e["ph"] == "X"] == [a * b + 3 for a, b in calls],
            "%s: t_mov (uretprobe): a complete event per call with its return value" % mode,
            str(mov[:3]))
    jcc = events(doc, ":t_jcc")
    t.check(len(jcc) == n and all(e["ph"] == "X" for e in jcc),
            "%s: t_jcc (latency): %d complete events, want %d" % (mode, len(jcc), n))
    t.check(not events(doc, ":t_sub"), "%s: a count probe puts nothing on the timeline" % mode)
    # events in time order per thread, one thread
    ts = [e["ts"] for e in nop]
    t.check(ts == sorted(ts), "%s: a thread's events are in time order" % mode)
    t.check("@timeline: %d events from 1 threads, 0 dropped" % (4 * n) in cp.stderr.decode(),
            "%s: the text report (on stderr beside the timeline) counts the events" % mode,
            t.clip(cp.stderr))
    t.check("trace" not in cp.stdout.decode() and b"[" not in cp.stderr.split(b"@")[0],
            "%s: with a timeline the trace action writes no lines" % mode, t.clip(cp.stderr))


# ------------------------------------------------------------ 2. threads
def threads():
    n = 25
    cp, doc = run_trace([t.TARGET, "threads", str(n)], "uprobe:%s:t_mt=trace" % t.TARGET, "threads", "auto")
    if not doc:
        return
    by_tid = {}
    for e in events(doc, ":t_mt"):
        by_tid.setdefault(e["tid"], []).append(tuple(hexargs(e, 2)))
    t.check(len(by_tid) == 4, "threads: %d tracks with events, want 4 (one per thread)" % len(by_tid))
    t.check(all(v == expected_calls(n) for v in by_tid.values()),
            "threads: each thread's track holds exactly its own %d calls in order" % n,
            str({k: len(v) for k, v in by_tid.items()}))
    names = [e for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"]
    t.check(sorted(e["tid"] for e in names) == sorted(by_tid),
            "threads: one thread_name per thread with events", str(names))


# ------------------------------------------------------------ 3. USDT
def usdt():
    if not os.path.exists(USDT_TARGET):
        t.check(False, "no %s" % USDT_TARGET)
        return
    cp, doc = run_trace([USDT_TARGET, "2"], "usdt:%s:sptest:*=trace" % USDT_TARGET, "usdt", "auto")
    if not doc:
        return
    want = []
    for line in cp.stdout.decode().splitlines():
        f = line.split()
        if f and f[0] == "expect" and f[1].startswith("sptest:"):
            want.append((f[1].split(":")[1], [int(x) for x in f[2:]]))
    t.check(len(want) >= 14, "usdt: the target printed %d expected firings" % len(want))
    seen = {}
    for e in doc["traceEvents"]:
        if e["ph"] == "i" and e["cat"] == "usdt":
            name = e["name"].rsplit(":", 1)[1]
            seen.setdefault(name, []).append([e["args"]["arg%d" % i] for i in range(len(e["args"]))])
    bad = []
    for name, vals in want:
        got = seen.get(name, [])
        if vals not in got:
            bad.append("%s: want %s, events %s" % (name, vals, got[:3]))
    t.check(not bad, "usdt: every firing's event carries the program's values, signed", "\n".join(bad[:8]))


# ------------------------------------------------------------ 4. nesting, launcher
def nested():
    out = os.path.join(t.work_dir(), "ls.trace.json")
    rep = os.path.join(t.work_dir(), "ls-report.txt")
    spec = ("usession:libc:opendir=trace;usession:libc:malloc=trace;uretprobe:libc:free=trace;"
            "uprobe:libc:getenv=trace")
    env = t.base_env()
    cp = t.run([CLI, "run", "-e", spec, "-o", out, "--", "ls", "-la", "/usr/bin"], env)
    t.check(cp.returncode == 0, "ls under `selfprobe run -o x.trace.json`: status %d" % cp.returncode,
            t.clip(cp.stderr))
    doc = load_trace(out, "ls -la timeline")
    open(rep, "wb").write(cp.stderr)
    if not doc:
        return
    text = cp.stderr.decode()
    for fn, ph in (("malloc", "X"), ("opendir", "X"), ("free", "X"), ("getenv", "i")):
        got = len(events(doc, ":" + fn, ph))
        line = "@count[%s:libc:%s]: " % ("uprobe" if ph == "i" else
                                        "uretprobe" if fn == "free" else "usession", fn)
        count = [int(l.split(": ")[1]) for l in text.splitlines() if l.startswith(line)]
        t.check(count and count[0] == got and got > 0,
                "ls: %s: %d %s events, report counts %s" % (fn, got, ph, count), t.clip(text))
    # opendir allocates: some malloc spans lie inside opendir spans
    ods = [(e["ts"], e["ts"] + e["dur"]) for e in events(doc, ":opendir", "X")]
    inner = [e for e in events(doc, ":malloc", "X") if any(a <= e["ts"] and e["ts"] + e["dur"] <= b
                                                          for a, b in ods)]
    t.check(inner, "ls: malloc spans nest inside opendir's (opendir allocates its DIR)")
    t.check("selfprobe: timeline: " in text and "@count[" in text,
            "ls: the launcher prints the report and where the timeline went", t.clip(text))


# ------------------------------------------------------------ 5. bounded
def bounded():
    n = 30
    cp, doc = run_trace([t.TARGET, "threads", str(n)], "uprobe:%s:t_mt=trace" % t.TARGET, "bounded",
                        "auto", {"UPROBE_TRACE_EVENTS": "5"})
    if not doc:
        return
    per = {}
    for e in events(doc, ":t_mt"):
        per[e["tid"]] = per.get(e["tid"], 0) + 1
    t.check(sorted(per.values()) == [5] * 4, "bounded: 5 events kept per thread, got %s" % per)
    t.check(doc["otherData"]["dropped"] == 4 * (n - 5),
            "bounded: otherData.dropped = %r, want %d" % (doc["otherData"]["dropped"], 4 * (n - 5)))
    err = cp.stderr.decode()
    t.check("@count[uprobe:%s:t_mt]: %d" % (t.TARGET, 4 * n) in err and
            "@timeline: 20 events from 4 threads, %d dropped" % (4 * (n - 5)) in err,
            "bounded: every hit counted, the dropped events reported", t.clip(err))
    cp2 = t.run([t.TARGET, "1"], t.probed_env("uprobe:%s:t_nop=trace" % t.TARGET, None,
                                              os.path.join(t.work_dir(), "x.trace.json"),
                                              {"UPROBE_TRACE_EVENTS": "lots"}))
    t.check(b"UPROBE_TRACE_EVENTS='lots'" in cp2.stderr and cp2.returncode == 0,
            "bounded: a bad UPROBE_TRACE_EVENTS is named and the program runs", t.clip(cp2.stderr))


# ------------------------------------------------------------ 6. killed, forked
def ends():
    if not os.path.exists(ENDS):
        t.check(False, "no %s" % ENDS)
        return
    for mode, n, procs in (("sigkill", 300, 1), ("fork", 200, 2), ("segv", 100, 1)):
        out = os.path.join(t.work_dir(), "ends-%s.trace.json" % mode)
        cp = t.run([CLI, "run", "-e", "usession:%s:ends_work=trace" % ENDS, "-o", out, "--", ENDS, mode,
                    str(n)])
        doc = load_trace(out, "sp_ends %s timeline" % mode)
        if not doc:
            continue
        spans = events(doc, ":ends_work", "X")
        pids = {e["pid"] for e in spans}
        t.check(len(spans) == n * procs and len(pids) == procs,
                "sp_ends %s: %d spans in %d processes, want %d in %d" % (mode, len(spans), len(pids),
                                                                         n * procs, procs),
                t.clip(cp.stderr))
        for pid in pids:
            args = [int(e["args"]["arg0"], 16) for e in spans if e["pid"] == pid]
            t.check(args == list(range(n)), "sp_ends %s: pid %d's spans carry i = 0..%d in order"
                    % (mode, pid, n - 1), str(args[:10]))


def validator_catches():
    """The validator itself: each broken document is refused for its fault."""
    meta = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "p"}},
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "t"}}]
    x = lambda ts, dur: {"name": "f", "ph": "X", "cat": "c", "pid": 1, "tid": 1, "ts": ts, "dur": dur,
                         "args": {}}
    cases = {
        "overlaps": meta + [x(0, 10), x(5, 10)],
        "dur": meta + [{"name": "f", "ph": "X", "cat": "c", "pid": 1, "tid": 1, "ts": 1, "args": {}}],
        "no thread_name": meta[:1] + [x(0, 1)],
        "scope": meta + [{"name": "f", "ph": "i", "cat": "c", "pid": 1, "tid": 1, "ts": 1, "args": {}}],
    }
    for what, evs in cases.items():
        probs = trace_problems({"traceEvents": evs, "otherData": {"dropped": 0}})
        t.check(any(what.split()[-1] in p for p in probs), "the validator refuses a document with %s" % what,
                str(probs))
    t.check(not trace_problems({"traceEvents": meta + [x(0, 10), x(2, 3), x(5, 5)],
                                "otherData": {"dropped": 0}}),
            "the validator accepts nested spans")


def main():
    t.require_build()
    validator_catches()
    for mode in ("int3", "auto"):
        kinds(mode)
    threads()
    usdt()
    nested()
    bounded()
    ends()
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
