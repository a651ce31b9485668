#!/usr/bin/python3
"""e2e_golang — Go programs (issue 19 part 1): tests/go/sp_go built with
Debian's golang-go (cgo: dynamically linked, so the preload reaches it).

  e2e_golang.py [CASE]...      (default: every case)

  counts    UPROBE_MODE auto and int3, the preload alone (no launcher):
            entry and return probes on main.* functions whose calls the
            program counts itself (goroutines, recursion that copies the
            stack, panics recovered through probed frames, a nil
            dereference, runtime.GC(), cgo calls, os.Exit(3), a switch
            compiled to a jump table, main.Kind, whose indirect jmp is
            checked to be there): stdout and
            exit status as unprobed; each entry count, return count and
            latency count equal to the program's own; a panicked frame's
            return counted lost, never as a return; the report written
            although Go leaves by a raw exit_group; entries past the stack
            check (morestack's re-execution of the entry is not counted)
  libcint3  libc's malloc and free probed on the int3 path: the report
            written at Go's exit (in our SIGTRAP handler, on a private
            stack) calls them, and their traps must nest there, not over
            the SIGTRAP frame on Go's signal stack: exit status, stdout as
            unprobed, and the report's malloc hits
  launcher  the same under `selfprobe run`: the process's own report (not
            one rebuilt from the shared counters)
  paths     a Go function with a stack check takes the jmp path in auto, a
            nosplit one (no stack check) int3 with that reason; `selfprobe
            check` names main.Kind's case entries as jump-table entries
            (the index reads Go's tables: btindex.h); runtime
            functions entered otherwise than by a call (runtime.goexit) are
            refused with the reason; `selfprobe list` says the same
  trace     =trace shows Go's register arguments (Deep's n in RAX)
  stack     =stack walks Go frames (frame pointers) up to runtime.main
  static    a static (CGO_ENABLED=0) Go program (tests/go/sp_go_static):
            `selfprobe run` says it is static and Go, and it runs as unprobed
  goexit    tests/go/sp_goexit: goroutines end through runtime.Goexit with
            return-probed frames on their stacks: each frame counts lost
            once, as the goroutine ends (the report written mid-run, after
            the first round's goroutines are gone, already has them), and
            the table does not grow (11 rounds of 100000 records, more than
            its 1M, never miss)
  recover   panics recovered by an unprobed frame, in the main goroutine
            (which never ends) and in goroutines that end normally: each
            unwound frame counts lost exactly once, two probes of one site
            (uretprobe and =latency) alike
  late      probes attached through the C API (selfprobe_attach_spec) while
            goroutines run, preempted asynchronously: a Go function whose
            5-byte jmp window covers several instructions (selfprobe check
            shows it, and the jmp5 at the preload's attach) takes a hop
            (its first instruction alone) or int3, never the 5-byte jmp,
            the report's reason naming asynchronous preemption either way; a
            site whose first instruction is one byte (main.Ratio's cltd)
            takes int3, the reason naming asynchronous preemption; counts
            exact, the run as unprobed
  rearm     main.Late attached through selfprobe_attach by a C constructor,
            before the Go runtime starts: the jmp5 over several
            instructions (selfprobe check shows them); detached and
            attached again through the C API while goroutines run: the
            site leaves that window for int3, the reason naming
            asynchronous preemption; hits exact across both phases, the
            run as unprobed
  nogoexit1 the goexit run on a copy of sp_goexit without the
            runtime.goexit1 symbol (objcopy --strip-symbol): the report's
            errors say so; no frame counts lost as its goroutine ends (the
            mid-run report: none), only when a goroutine reusing its g
            meets it (later rounds: some, never the last round's)
"""
import json
import os
import re
import shutil
import struct
import sys

import sptest as t

CASES = ("counts", "launcher", "paths", "trace", "stack", "static", "goexit", "recover", "late",
         "rearm", "nogoexit1", "libcint3")
GOEXIT_CASES = ("goexit", "recover", "late", "rearm", "nogoexit1")

# (spec, the program's own counter it must equal, the report field)
SPECS = [
    ("uprobe:main.Work", "Work", "hits"),
    ("usession:main.Work", "Work", "returns"),
    ("uprobe:main.Fib", "Fib", "hits"),
    ("uretprobe:main.Fib", "Fib", "hits"),
    ("uprobe:main.Deep", "Deep", "hits"),
    ("uprobe:main.Deep=latency", "Deep", "hits"),
    ("uprobe:main.Thrower", "Thrower", "hits"),
    ("uretprobe:main.Thrower", "Thrower-Panics", "hits"),
    ("uretprobe:main.Catch", "Thrower", "hits"),
    ("uprobe:main.(*Counter).Add", "Add", "hits"),
    ("uretprobe:main.(*Counter).Add", "Add", "hits"),
    ("uprobe:main.Cadd", "Cadd", "hits"),
    ("uretprobe:main.Cadd", "Cadd", "hits"),
    ("uprobe:main.Max[go.shape.int_0]", None, "hits"),
    # return probes through a jump table's RETs (golang.c reads the table)
    ("uretprobe:main.Kind", "Kind", "hits"),
    ("usession:main.Kind", "Kind", "returns"),
    ("uprobe:main.Kind=latency", "Kind", "hits"),
]
LATENCY = (("uprobe:main.Deep=latency", "Deep"), ("uprobe:main.Kind=latency", "Kind"))



def own_counts(stdout):
    m = re.search(rb"^counts (.*)$", stdout, re.M)
    if not m:
        return None
    return {k.decode(): int(v) for k, v in re.findall(rb"(\w+)=(\d+)", m.group(1))}


def expected(own, key):
    if key is None:
        return 1
    if "-" in key:
        a, b = key.split("-")
        return own[a] - own[b]
    return own[key]


def probe(rep, spec):
    es = [p for p in (rep or {}).get("probes", []) if p["spec"] == spec]
    return es[0] if len(es) == 1 else None


def check_report(label, rep, own):
    if not t.check(rep is not None, "%s: a report (Go exits by a raw exit_group)" % label):
        return
    t.check(not rep.get("errors"), "%s: no errors" % label, json.dumps(rep.get("errors"))[:2000])
    for spec, key, field in SPECS:
        p = probe(rep, spec)
        if not t.check(p is not None, "%s: %s in the report" % (label, spec)):
            continue
        want = expected(own, key)
        t.check(p.get(field) == want, "%s: %s %s %s, the program counted %d"
                % (label, spec, field, p.get(field), want), json.dumps(p)[:600])
        t.check(p.get("missed", 0) == 0, "%s: %s missed %s" % (label, spec, p.get("missed")))
    p = probe(rep, "uretprobe:main.Thrower")
    if p:
        t.check(p.get("lost") == own["Panics"], "%s: uretprobe:main.Thrower lost %s, the program "
                "panicked %d times" % (label, p.get("lost"), own["Panics"]))
    for spec, key in LATENCY:
        p = probe(rep, spec)
        if p:
            lat = p.get("latency") or {}
            t.check(lat.get("count") == own[key], "%s: %s's latency count %s, calls %d"
                    % (label, key, lat.get("count"), own[key]), json.dumps(lat)[:400])


def spec_text():
    return ";".join(s for s, _, _ in SPECS)


def case_counts(prog, plain):
    own = own_counts(plain.stdout)
    for mode in ("auto", "int3"):
        label = "counts (%s)" % mode
        cp, rep = t.run_probed([prog], spec_text(), mode=mode)
        t.check(cp.returncode == plain.returncode, "%s: exit %d, unprobed %d"
                % (label, cp.returncode, plain.returncode), t.clip(cp.stderr))
        t.check(cp.stdout == plain.stdout, "%s: stdout differs from the unprobed run" % label,
                "got:\n%s\nwant:\n%s\nstderr:\n%s" % (t.clip(cp.stdout), t.clip(plain.stdout),
                                                     t.clip(cp.stderr)))
        check_report(label, rep, own)


def case_libcint3(prog, plain):
    spec = "uprobe:libc:malloc;uprobe:libc:free"
    cp, rep = t.run_probed([prog], spec, mode="int3")
    label = "libcint3 [%s] (int3)" % spec
    t.check(cp.returncode == plain.returncode and cp.stdout == plain.stdout,
            "%s: exit %d (unprobed %d), or stdout differs" % (label, cp.returncode, plain.returncode),
            t.clip(cp.stdout + cp.stderr))
    m = probe(rep, "uprobe:libc:malloc") if rep else None
    t.check(m is not None and m["mode"] == "int3" and m["hits"] > 0,
            "%s: no int3 malloc entry with hits in the report" % label, rep and json.dumps(rep)[:2000])


def case_launcher(prog, plain):
    own = own_counts(plain.stdout)
    out = os.path.join(t.work_dir(), "launcher.json")
    cmd = [t.CLI, "run", "-o", out]
    for s, _, _ in SPECS:
        cmd += ["-e", s]
    cp = t.run(cmd + ["--", prog])
    t.check(cp.returncode == plain.returncode and cp.stdout == plain.stdout,
            "launcher: exit %d and stdout as unprobed (%d)" % (cp.returncode, plain.returncode),
            t.clip(cp.stdout + cp.stderr))
    try:
        r = json.load(open(out))
    except (OSError, ValueError) as e:
        t.check(False, "launcher: report %s (%s)" % (out, e))
        return
    procs = r.get("processes")
    rep = procs[0].get("report") if procs else r
    if procs:
        t.check("from" not in procs[0], "launcher: the process wrote its own report (its exit "
                "hook ran), not one rebuilt from the shared counters", json.dumps(procs[0])[:400])
    check_report("launcher", rep, own)


def case_paths(prog, plain):
    cp, rep = t.run_probed([prog], "uprobe:main.Fib;uprobe:main.(*Counter).Add;uprobe:runtime.goexit*;"
                           "uretprobe:main.Max[go.shape.int_0]", mode="auto")
    t.check(cp.returncode == plain.returncode and cp.stdout == plain.stdout,
            "paths: the run as unprobed", t.clip(cp.stderr))
    fib, add = probe(rep, "uprobe:main.Fib"), probe(rep, "uprobe:main.(*Counter).Add")
    if t.check(fib and add, "paths: both probes reported", json.dumps(rep)[:1000]):
        t.check(fib["mode"] == "jmp", "paths: main.Fib (a stack check) takes the jmp path", json.dumps(fib))
        t.check(add["mode"] == "int3" and "stack check" in (add.get("reason") or ""),
                "paths: main.(*Counter).Add (nosplit) takes int3, the reason says why", json.dumps(add))
    errs = " ".join(e["message"] for e in (rep or {}).get("errors", []))
    t.check("runtime.goexit" in errs and "not probed" in errs,
            "paths: runtime.goexit refused with the reason", errs[:1000])
    ret = probe(rep, "uretprobe:main.Max[go.shape.int_0]")
    t.check(ret and ret.get("hits") == 1, "paths: uretprobe on a generic instantiation, by its "
            "name with brackets", json.dumps(ret))
    # a RET's window reaches the next case, an entry of the switch's table
    rets = t.go_rets(prog, "main.Kind")
    start = t.Elf(prog).symbol("main.Kind")[0]
    says = [t.run([t.CLI, "check", "-x", prog, "uprobe:main.Kind+%#x" % (a - start)]).stdout
            for a in rets[:-1]]
    t.check(any(b"is a jump-table entry" in o for o in says), "paths: selfprobe check names "
            "main.Kind's cases jump-table entries (the index reads Go's tables)",
            t.clip(b"\n".join(says), 3000))
    ls = t.run([t.CLI, "list", prog, "main.*"])
    text = ls.stdout.decode("utf-8", "replace")
    line = [l for l in text.splitlines() if l.startswith("main.(*Counter).Add ")]
    t.check(line and " int3 " in line[0] and "stack check" in line[0],
            "paths: selfprobe list says main.(*Counter).Add takes int3 and why", text[:3000])
    line = [l for l in text.splitlines() if l.startswith("main.Fib ")]
    t.check(line and " jmp " in line[0], "paths: selfprobe list: main.Fib takes the jmp path", text[:3000])
    if line and fib:   # list shows the function's address, the report the site's
        start = int(line[0].split()[1], 16)
        t.check(int(fib["address"], 16) > start, "paths: main.Fib's site (%s) is past its stack "
                "check, not at the function (%#x)" % (fib["address"], start))


def case_trace(prog, plain):
    cp = t.run([t.CLI, "run", "-e", "uprobe:main.Deep=trace", "--", prog, "quick"])
    lines = [l for l in cp.stderr.decode("utf-8", "replace").splitlines() if "uprobe:main.Deep(" in l]
    # the first line of the long recursion: Deep(2000) (0x7d0), argument 0 is RAX
    t.check(any("uprobe:main.Deep(0x7d0," in l for l in lines),
            "trace: Deep's first Go argument (RAX) is shown", "\n".join(lines[:5]) + t.clip(cp.stderr, 800))


def case_stack(prog, plain):
    out = os.path.join(t.work_dir(), "deep.folded")
    cp = t.run([t.CLI, "run", "-e", "uprobe:main.Deep=stack", "-o", out, "--", prog, "quick"])
    t.check(cp.returncode == 3, "stack: the program's exit status", t.clip(cp.stderr))
    try:
        folded = open(out).read()
    except OSError as e:
        t.check(False, "stack: folded output (%s)" % e, t.clip(cp.stderr))
        return
    off = r"\+0x[0-9a-f]+;"   # folded frames are symbol+offset, the root first
    t.check(re.search(r"runtime\.main" + off + r"main\.main" + off + r"main\.Deep" + off + r"main\.Deep",
                      folded) is not None,
            "stack: frames walked from main.Deep through main.main to runtime.main", folded[:1500])
    t.check(re.search(r"main\.main\.func1" + off + r"main\.Work" + off + r"main\.Deep", folded) is not None,
            "stack: a goroutine's frames (main.Work called from its closure)", folded[:1500])


def case_static(prog_static):
    plain = t.run([prog_static])
    cp = t.run([t.CLI, "run", "-e", "uprobe:main.Fib", "--", prog_static])
    err = cp.stderr.decode("utf-8", "replace")
    t.check("statically linked" in err and "Go program built without cgo" in err,
            "static: selfprobe run says the Go program is static and how to link it", err[:1500])
    t.check(cp.stdout == plain.stdout and cp.returncode == plain.returncode,
            "static: it runs as unprobed", err[:800])


def goexit_counts(cp):
    m = re.search(rb"^counts (.*)$", cp.stdout, re.M)
    return {k.decode(): int(v) for k, v in re.findall(rb"(\w+)=(\d+)", m.group(1))} if m else {}


def case_goexit(prog):
    rounds, n, depth = 11, 1000, 99   # 1.1M records in all: more than the table's 1M
    per_round = n * (depth + 1)
    for mode in ("auto", "int3"):
        label = "goexit (%s)" % mode
        r = rounds if mode == "auto" else 2
        mid = os.path.join(t.work_dir(), "goexit-mid-%s.json" % mode)
        cp, rep = t.run_probed([prog, "goexit", str(r), str(n), str(depth)], "uretprobe:main.Down",
                               mode=mode, extra={"SP_GOEXIT_MID": mid})
        own = goexit_counts(cp)
        if not t.check(cp.returncode == 0 and own.get("Down") == r * per_round,
                       "%s: the program ran (%s)" % (label, own), t.clip(cp.stdout + cp.stderr)):
            continue
        half = t.load_report(mid, "%s: the report written mid-run" % label)
        p = probe(half, "uretprobe:main.Down")
        t.check(p and p.get("lost") == per_round and p.get("hits") == 0,
                "%s: after the first round's goroutines ended, each of their %d frames counts "
                "lost" % (label, per_round), json.dumps(p))
        p = probe(rep, "uretprobe:main.Down")
        t.check(p and p.get("lost") == r * per_round and p.get("hits") == 0 and p.get("missed") == 0,
                "%s: %d frames lost, none missed (the table does not grow)" % (label, r * per_round),
                json.dumps(p))
        t.check(rep is not None and not rep.get("errors"), "%s: no errors" % label,
                json.dumps((rep or {}).get("errors"))[:1000])


def case_nogoexit1(prog):
    objcopy = shutil.which("objcopy")
    if not objcopy:
        t.skip("objcopy (binutils) is missing: no Go program without runtime.goexit1")
        return
    bare = os.path.join(t.work_dir(), "sp_goexit-nogoexit1")
    cp = t.run([objcopy, "--strip-symbol=runtime.goexit1", prog, bare])
    if not t.check(cp.returncode == 0, "nogoexit1: objcopy", t.clip(cp.stdout + cp.stderr)):
        return
    nm = t.run([t.CLI, "list", "--json", bare, "runtime.goexit1"])
    t.check(b'"runtime.goexit1"' not in nm.stdout, "nogoexit1: the copy has no runtime.goexit1",
            t.clip(nm.stdout))
    rounds, n, depth = 3, 1000, 99
    per_round = n * (depth + 1)
    mid = os.path.join(t.work_dir(), "nogoexit1-mid.json")
    cp, rep = t.run_probed([bare, "goexit", str(rounds), str(n), str(depth)], "uretprobe:main.Down",
                           mode="auto", extra={"SP_GOEXIT_MID": mid})
    own = goexit_counts(cp)
    if not t.check(cp.returncode == 0 and own.get("Down") == rounds * per_round,
                   "nogoexit1: the program ran (%s)" % own, t.clip(cp.stdout + cp.stderr)):
        return
    for label, r in (("mid-run", t.load_report(mid, "nogoexit1: the report written mid-run")),
                     ("at exit", rep)):
        errs = [e for e in (r or {}).get("errors", []) if e.get("spec") == "go"]
        t.check(len(errs) == 1 and bare in errs[0].get("message", "") and
                "has no runtime.goexit1 symbol" in errs[0].get("message", ""),
                "nogoexit1: %s: the report's errors name the object without runtime.goexit1" % label,
                json.dumps((r or {}).get("errors"))[:1000])
    p = probe(t.load_report(mid, "nogoexit1: the report written mid-run"), "uretprobe:main.Down")
    t.check(p and p.get("lost") == 0 and p.get("hits") == 0,
            "nogoexit1: after the first round's goroutines ended, none of their frames counts "
            "lost yet (no hook at their end)", json.dumps(p))
    p = probe(rep, "uretprobe:main.Down")
    t.check(p and 0 < p.get("lost", 0) <= (rounds - 1) * per_round and p.get("hits") == 0
            and p.get("missed") == 0,
            "nogoexit1: frames count lost as goroutines reusing their g meet them: some, at most "
            "the %d of the rounds before the last" % ((rounds - 1) * per_round), json.dumps(p))


def case_recover(prog):
    it, n = 100, 50
    for mode in ("auto", "int3"):
        label = "recover (%s)" % mode
        cp, rep = t.run_probed([prog, "recover", str(it), str(n)],
                               "uretprobe:main.Boom;uprobe:main.Boom=latency", mode=mode)
        own = goexit_counts(cp)
        if not t.check(cp.returncode == 0 and own.get("Boom") == it * 4 + 1 + n * 3,
                       "%s: the program ran (%s)" % (label, own), t.clip(cp.stdout + cp.stderr)):
            continue
        # Boom(-1) returns once; every frame a panic unwound is lost once
        for spec in ("uretprobe:main.Boom", "uprobe:main.Boom=latency"):
            p = probe(rep, spec)
            t.check(p and p.get("hits") == 1 and p.get("lost") == it * 4 + n * 3 and p.get("missed") == 0,
                    "%s: %s: 1 return, %d unwound frames lost" % (label, spec, it * 4 + n * 3),
                    json.dumps(p))


def function_bytes(prog, name):
    """NAME's address and code in the ELF executable PROG (its PT_LOAD
    segments), by `selfprobe list --json`: (address, bytes) or None."""
    ls = t.run([t.CLI, "list", "--json", prog, name])
    try:
        fn = json.loads(ls.stdout)["functions"][0]
    except (ValueError, IndexError, KeyError):
        return None
    addr, size = int(fn["address"], 16), fn["size"]
    data = open(prog, "rb").read()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        ptype, _, off, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if ptype == 1 and vaddr <= addr and addr + size <= vaddr + filesz:
            return addr, data[off + addr - vaddr:off + addr - vaddr + size]
    return None


def check_jmp5(label, prog, spec):
    """`selfprobe check --json -x PROG SPEC`'s site, checked to take the jmp5
    over several instructions (as the preload's attach would); None after a
    failed check."""
    ck = t.run([t.CLI, "check", "--json", "-x", prog, spec])
    try:
        site = json.loads(ck.stdout)[0]
    except (ValueError, IndexError) as e:
        t.check(False, "%s: selfprobe check --json %s (%s)" % (label, spec, e), t.clip(ck.stdout + ck.stderr))
        return None
    t.check(site.get("patch") == "jmp5" and len(site.get("window") or []) > 1,
            "%s: selfprobe check: %s takes a jmp5 over several instructions at the preload's "
            "attach" % (label, spec), json.dumps(site)[:1500])
    return site


def case_late(prog):
    workers, calls = 16, 1000
    # main.Ratio's cltd (one byte: too short for a hop) before its idivl
    fn = function_bytes(prog, "main.Ratio")
    at = fn[1].find(b"\x99\xf7") if fn else -1
    if not t.check(at > 0, "late: main.Ratio's cltd; idivl found", repr(fn)):
        return
    ratio = "uprobe:main.Ratio+%#x" % at
    late = "uprobe:main.Spin;uprobe:main.Late;uretprobe:main.Late;" + ratio
    cp, rep = t.run_probed([prog, "late", str(workers), str(calls)], "uprobe:main.Busy",
                           mode="auto", extra={"SP_GOEXIT_LATE": late})
    plain = t.run([prog, "late", str(workers), str(calls)])
    t.check(cp.returncode == plain.returncode and cp.stdout == plain.stdout.replace(
        b"late attach -1000", b"late attach 0"), "late: the run as unprobed, the attach made",
            t.clip(cp.stdout + cp.stderr))
    # the function's 5-byte window covers several instructions: the jmp5 at
    # the preload's attach, and what a late attach takes instead
    site = check_jmp5("late", prog, "uprobe:main.Late")
    if not site or not check_jmp5("late", prog, ratio):
        return
    pre = [c for c in site.get("checks", []) if "asynchronous preemption" in c.get("check", "")]
    t.check(pre and pre[0].get("result") != "ok" and "int3" in (pre[0].get("detail") or ""),
            "late: selfprobe check says a late attach takes int3 for that window", json.dumps(pre))
    p = probe(rep, ratio)
    t.check(p and p.get("mode") == "int3" and "asynchronous preemption" in (p.get("reason") or "")
            and p.get("hits") == workers * calls and p.get("missed") == 0,
            "late: %s (no hop: a one-byte first instruction) takes int3, the reason naming "
            "asynchronous preemption; %d hits" % (ratio, workers * calls), json.dumps(p))
    for spec in ("uprobe:main.Spin", "uprobe:main.Late", "uretprobe:main.Late"):
        p = probe(rep, spec)
        if not t.check(p is not None, "late: %s in the report" % spec, json.dumps(rep)[:1500]):
            continue
        preempt = "asynchronous preemption" in (p.get("reason") or "")
        hop = p.get("mode") == "jmp" and p.get("patch") == "hop"
        int3 = p.get("mode") == "int3"
        t.check((hop or int3) and preempt, "late: %s takes a hop (one instruction) or int3, not the "
                "5-byte jmp, its reason naming asynchronous preemption" % spec, json.dumps(p))
        t.check(p.get("missed") == 0, "late: %s missed nothing" % spec, json.dumps(p))
        if spec == "uprobe:main.Spin":   # running while attached: its count is the run's
            continue
        t.check(p.get("hits") == workers * calls, "late: %s hits %s, the program called it %d times"
                % (spec, p.get("hits"), workers * calls), json.dumps(p))
    p = probe(rep, "uretprobe:main.Late")
    t.check(p and p.get("lost", 0) == 0, "late: no return lost", json.dumps(p))


def case_rearm(prog):
    workers, calls = 16, 1000
    spec = "uprobe:main.Late"
    if not check_jmp5("rearm", prog, spec):
        return
    mid = os.path.join(t.work_dir(), "rearm-mid.json")
    cmd = [prog, "rearm", str(workers), str(calls)]
    # no UPROBE_SPEC item: the program's constructor attaches SP_GOEXIT_EARLY
    cp, rep = t.run_probed(cmd, "", mode="auto", extra={"SP_GOEXIT_EARLY": spec, "SP_GOEXIT_MID": mid})
    env = t.base_env()
    env.update(SP_GOEXIT_EARLY=spec, SP_GOEXIT_MID=mid + ".plain")
    plain = t.run(cmd, env)
    t.check(cp.returncode == plain.returncode == 0 and cp.stdout == plain.stdout.replace(
        b"mid report -1000", b"mid report 0").replace(b"rearm -1000", b"rearm 0"),
            "rearm: the run as unprobed, the probe detached and attached again",
            t.clip(cp.stdout + cp.stderr) + "\n" + t.clip(plain.stdout))
    half = t.load_report(mid, "rearm: the report before the detach")
    p = probe(half, spec)
    t.check(p and p.get("mode") == "jmp" and p.get("patch") == "jmp5" and p.get("reason") is None
            and p.get("hits") == workers * calls and p.get("missed") == 0,
            "rearm: attached before any goroutine existed: the jmp5; %d hits" % (workers * calls),
            json.dumps(p))
    p = probe(rep, spec)
    t.check(p and p.get("attached") and p.get("mode") == "int3" and p.get("patch") == "int3"
            and "asynchronous preemption" in (p.get("reason") or ""),
            "rearm: attached again while goroutines run: int3, the reason naming asynchronous "
            "preemption, not the jmp5 decided before", json.dumps(p))
    t.check(p and p.get("hits") == 2 * workers * calls and p.get("missed") == 0,
            "rearm: %d hits across both phases, none missed" % (2 * workers * calls), json.dumps(p))
    t.check(rep is not None and not rep.get("errors"), "rearm: no errors",
            json.dumps((rep or {}).get("errors"))[:1000])


def main():
    cases = sys.argv[1:] or CASES
    t.require_build()
    prog = t.go_build("sp_go")
    if not prog:
        t.finish()
    plain = t.run([prog])
    own = own_counts(plain.stdout)
    if not t.check(plain.returncode == 3 and own, "sp_go runs unprobed: exit 3 and its counts",
                   t.clip(plain.stdout + plain.stderr)):
        t.finish()
    # without it the Kind probes would cover nothing new
    t.check(t.go_table_jmp(prog, "main.Kind"), "main.Kind holds an indirect jmp through a jump table (go1.19 "
            "switch): its return probes must read the table")
    for case in cases:
        t.info("== %s" % case)
        if case in GOEXIT_CASES:
            pg = t.go_build("sp_goexit")
            if pg:
                globals()["case_" + case](pg)
        elif case == "static":
            ps = t.go_build("sp_go_static", static=True)
            if ps:
                case_static(ps)
        else:
            globals()["case_" + case](prog, plain)
    t.finish()


if __name__ == "__main__":
    main()
