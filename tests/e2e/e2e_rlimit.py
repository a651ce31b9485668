#!/usr/bin/python3
"""e2e_rlimit — a program run under an address-space limit (RLIMIT_AS,
`ulimit -v`) that works unprobed works probed (issue 13: never change what
the program does).

sp_rlimit (tests/targets/sp_rlimit.c) runs threads that hit the probes, then
maps ALLOC_MIB MiB at once and exits 0; it writes its VmSize before that
mapping, its VmPeak and its maps to a file.  Its unprobed VmPeak is measured
first; then every case runs it, unprobed and probed, under RLIMIT_AS =
that peak + the runtime's budget (below): the probed run must exit 0 with
the unprobed run's output, the probes must have counted exactly (rl_work:
threads x CALLS; malloc: at least that), and no report may hold an error.
A failure says the VmPeak and the VmSize before the mapping, probed and
unprobed, and the probed process's largest mappings that the unprobed one
does not have.

Cases, each with the main thread alone and with THREADS threads: entry
probes, return probes, the latency action, a compiled bpftrace block
(its keyless map split per thread) and keyed bpftrace maps split per
thread (each thread's part mapped at its first update, not one for every
possible thread at attach), through the preload and through the
launcher (the limit set in the program only, by `ulimit -v` in a shell that
execs it: the launcher's own memory is not the program's; and with the
launcher under the same limit too, as `ulimit -v N; selfprobe run ...`
gives it, reading the process's section of its file); and fork
children (entry probes, keyed maps) that map the same after their parent's
threads.  A control run shows that the limit bites: unprobed, 16 MiB less
than its peak, the mapping fails.
"""
import collections
import glob
import json
import os
import resource

import sptest as t

PROG = os.path.join(t.BUILD, "tests/sp_rlimit")
ALLOC_MIB = 512
CALLS = 1000
THREADS = 8

# The runtime's address space in a probed process, the design of issue
# 13's fix: its own mappings (libselfprobe.so and the libraries it brings,
# about 4 MiB; its heap, code pages, site tables, a few MiB) and the shared
# stripe mapped at start (6.2 MiB): BASE_MIB, with room (about 12 MiB
# measured).  Each thread that hits a probe maps its own stripe at its
# first hit: counters (2^17 probes x 32 bytes, 4 MiB), latency histograms
# (4096 x 544 bytes, 2.1 MiB) and bpftrace parts (64 KiB), 6.2 MiB:
# PER_THREAD_MIB.  The main thread alone: 24 MiB (18 MiB measured; before
# the fix, 520 MiB).
BASE_MIB = 16
PER_THREAD_MIB = 8
# Each thread that hits a return probe (uretprobe, latency) also has its
# shadow stack (runtime/hot/uretmem.h): segment 0, 512 entries of 136
# bytes (68 KiB), mapped at its first return probe; deeper segments only
# when its calls nest deeper (up to 2^17 entries, 17 MiB, the README's
# "131072 nested calls per thread").  These calls nest one deep.
SHADOW_MIB = 1
# Each thread that updates a keyed bpftrace map split per thread maps its
# part of it at that first update (runtime/hot/btpartmem.h), not every
# thread's at attach: every slot's words, 64 KiB for a count or a sum, 4
# MiB for a hist (8192 slots x 65 buckets).  The keyed case's three maps:
# KEYED_MIB.
KEYED_MIB = 5

# (name, spec, return probes)
SPECS = [
    ("count", "uprobe:libc:malloc;uprobe:sp_rlimit:rl_work", False),
    ("uretprobe", "uretprobe:libc:malloc;uretprobe:sp_rlimit:rl_work", True),
    ("latency", "uprobe:sp_rlimit:rl_work=latency;uprobe:libc:malloc", True),
    ("bpftrace", "uprobe:sp_rlimit:rl_work { @c = count(); } uprobe:libc:malloc { @m = count(); }", False),
    ("keyed", "uprobe:sp_rlimit:rl_work { @k[tid] = count(); @n[arg0 & 7] = sum(arg0); @h[tid] = hist(arg0); }",
     False),
]


def budget_mib(threads, returns, keyed):
    """The runtime's budget for a process in which THREADS threads hit."""
    return BASE_MIB + threads * (PER_THREAD_MIB + (SHADOW_MIB if returns else 0) + (KEYED_MIB if keyed else 0))


def stats(path):
    """sp_rlimit's numbers (kB) and its maps [(bytes, name)], or None."""
    if not os.path.exists(path):
        return None
    out = {"maps": []}
    for line in open(path):
        f = line.split()
        if f[0] == "map":
            lo, hi = (int(x, 16) for x in f[1].split("-"))
            out["maps"].append((hi - lo, os.path.basename(f[6]) if len(f) > 6 else "[anon]"))
        elif len(f) == 2:
            out[f[0]] = int(f[1])
    return out


def mib(kb):
    return "%.1f MiB" % (kb / 1024.0) if kb is not None else "?"


def how_far(got, ref):
    """How far the probed process is from the unprobed one, in words."""
    if got is None:
        return "the probed process wrote no numbers (it did not reach its mapping)"
    lines = ["VmPeak probed %s, unprobed %s; before the mapping: VmSize probed %s, unprobed %s (+%s)"
             % (mib(got.get("VmPeak")), mib(ref.get("VmPeak")), mib(got.get("VmSizeBeforeAlloc")),
                mib(ref.get("VmSizeBeforeAlloc")),
                mib(got.get("VmSizeBeforeAlloc", 0) - ref.get("VmSizeBeforeAlloc", 0)))]
    extra = sorted(extra_maps(got, ref), reverse=True)
    lines.append("mappings the unprobed process does not have: %s in all (adjacent ones are one), the largest: %s"
                 % (mib(sum(b for b, _ in extra) / 1024),
                    ", ".join("%s %s" % (mib(b / 1024), name) for b, name in extra[:8])))
    return "\n".join(lines)


def extra_maps(got, ref):
    """The mappings [(bytes, name)] of GOT that REF does not have: the
    runtime's, whatever the limit left of the program's own."""
    return list((collections.Counter(got["maps"]) - collections.Counter(ref["maps"])).elements())


def run_limited(cmd, kb, env):
    """CMD under RLIMIT_AS = KB kB, set in the child only."""
    def set_limit():
        resource.setrlimit(resource.RLIMIT_AS, (kb * 1024, kb * 1024))
    return t.run(cmd, env=env, timeout=120, preexec_fn=set_limit)


def program_lines(out):
    """The program's own lines: a bpftrace program prints its maps after
    them, at exit (a hist's buckets "[lo, hi)  N |@@@ |" under its name)."""
    return [l for l in out.decode(errors="replace").split("\n")
            if l and not l.startswith("@") and not (l[:1] in "[(" and l.endswith("|"))]


def bt_maps(out):
    """{map: value} of the lines "@m: N" on stdout."""
    maps = {}
    for l in out.decode(errors="replace").split("\n"):
        name, sep, val = l.partition(": ")
        if l.startswith("@") and sep and val.strip().isdigit():
            maps[name] = int(val)
    return maps


def keyed_maps(out):
    """{map: {key: value}} of the lines "@m[KEY]: N" on stdout, a hist's
    value the sum of its buckets' counts; each process prints its own maps,
    so a key printed twice (a fork child's tid is not its parent's, but
    @n's keys are) adds up."""
    maps = collections.defaultdict(collections.Counter)
    hist = None
    for l in out.decode(errors="replace").split("\n"):
        name, sep, val = l.partition(": ")
        if l.startswith("@") and "[" in name and sep:
            key = (name[:name.index("[")], name[name.index("["):])
            hist = key if not val.strip() else None
            if val.strip().isdigit():
                maps[key[0]][key[1]] += int(val)
        elif hist and l[:1] in "[(" and "|" in l:
            maps[hist[0]][hist[1]] += int(l.split("|")[0].split()[-1])
        else:
            hist = None
    return maps


def check_keyed(tag, out, threads, fork):
    """The keyed case's maps: @k[tid] CALLS for each thread that called
    rl_work (the main thread alone with 0 threads; a fork child's too), the
    same count in its @h[tid] hist's buckets, @n[arg0 & 7] the sum of their
    arguments 0..CALLS-1 with that remainder; with FORK the child's maps,
    printed by the child, start from zero (its parent's parts are not its
    own)."""
    m = keyed_maps(out)
    callers = max(threads, 1) + (1 if fork else 0)
    want = {"@k": [CALLS] * callers, "@h": [CALLS] * callers,
            "@n": [callers * sum(i for i in range(CALLS) if i & 7 == r) for r in range(8)]}
    got = {"@k": sorted(m["@k"].values()), "@h": sorted(m["@h"].values()),
           "@n": [m["@n"]["[%d]" % r] for r in range(8)]}
    t.check(got == want, "%s: keyed maps %s (want %s)" % (tag, got, want), t.clip(out, 600))


def processes(report):
    """The per-process reports of a preload or launcher report."""
    if report is None:
        return []
    return [p["report"] for p in report["processes"]] if "processes" in report else [report]


def all_errors(reports):
    errs = []
    for r in reports:
        errs += r.get("errors", [])
        errs += [e for p in processes(r) for e in p.get("errors", [])]
    return errs


def hits(reports, symbol, field="hits"):
    return sum(e.get(field, 0) for r in reports for p in processes(r) for e in p.get("probes", [])
               if e.get("symbol") == symbol)


def load(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        t.check(False, "%s: no report (%s)" % (what, e))
        return None


def probed_run(how, spec, args, kb, tag):
    """sp_rlimit ARGS probed by SPEC through HOW under RLIMIT_AS = KB kB:
    (CompletedProcess, [reports])."""
    work = t.work_dir()
    if how == "preload":
        out = os.path.join(work, "r-%s-%%p.json" % tag)
        for old in glob.glob(out.replace("%p", "*")):
            os.unlink(old)
        cp = run_limited([PROG] + args, kb, t.probed_env(spec, output=out))
        reports = [load(p, tag) for p in sorted(glob.glob(out.replace("%p", "*")))]
        t.check(reports, "%s: no report written" % tag, t.clip(cp.stderr))
        return cp, reports
    out = os.path.join(work, "r-%s.json" % tag)
    if os.path.exists(out):
        os.unlink(out)
    if how == "launcher-limited":   # the launcher too, reading the process's section
        cp = run_limited([t.CLI, "run", "-o", out, "-e", spec, "--", PROG] + args, kb, t.base_env())
        return cp, [load(out, tag)]
    shell = ["sh", "-c", 'ulimit -v %d && exec "$0" "$@"' % kb, PROG]
    cp = t.run([t.CLI, "run", "-o", out, "-e", spec, "--"] + shell + args, timeout=120)
    return cp, [load(out, tag)]


def case(how, name, spec, returns, threads, fork, ref_peak):
    tag = "%s-%s-%d%s" % (how, name, threads, "-fork" if fork else "")
    st = os.path.join(t.work_dir(), "stats-" + tag)
    args = [str(ALLOC_MIB), str(threads), str(CALLS), st] + (["fork"] if fork else [])
    # the main thread hits malloc too; a fork child hits on its parent's
    # stripe and may claim one of its own
    hitting = threads + 1 + (1 if fork else 0)
    budget = budget_mib(hitting, returns, name == "keyed")
    kb = ref_peak + budget * 1024
    ref = run_limited([PROG] + args[:3] + [st + ".ref"] + args[4:], kb, t.base_env())
    refst = stats(st + ".ref")
    if not t.check(ref.returncode == 0 and refst, "%s: unprobed under the limit: exit %d"
                   % (tag, ref.returncode), t.clip(ref.stdout + ref.stderr)):
        return
    cp, reports = probed_run(how, spec, args, kb, tag)
    got = stats(st)
    far = "limit %s = unprobed peak %s + budget %d MiB\n%s" % (mib(kb), mib(ref_peak), budget, how_far(got, refst))
    if fork:
        far += "\nchild: " + how_far(stats(st + ".child"), stats(st + ".ref.child"))
    ok = t.check(cp.returncode == 0, "%s: exit %d under RLIMIT_AS (unprobed: 0)" % (tag, cp.returncode),
                 far + "\nstdout:\n" + t.clip(cp.stdout, 800) + "\nstderr:\n" + t.clip(cp.stderr, 800))
    t.check(program_lines(cp.stdout) == program_lines(ref.stdout),
            "%s: output differs from the unprobed run's" % tag,
            "got:\n%s\nwant:\n%s%s" % (t.clip(cp.stdout, 600), t.clip(ref.stdout, 600),
                                       "" if not ok else "\n" + far))
    if fork and ok:
        # the child's one thread needs its own stripe and the shared one,
        # not the stripes its parent's threads had (unmapped at the fork)
        child, ref_child = stats(st + ".child"), stats(st + ".ref.child")
        cbudget = budget_mib(2, returns, name == "keyed")
        extra = sum(b for b, _ in extra_maps(child, ref_child)) / 2**20 if child and ref_child else None
        t.check(extra is not None and extra <= cbudget,
                "%s: the fork child holds %s MiB of the runtime's address space (budget %d MiB)"
                % (tag, "?" if extra is None else "%.1f" % extra, cbudget), how_far(child, ref_child))
    reports = [r for r in reports if r is not None]
    want = CALLS * (max(threads, 1) + (1 if fork else 0))
    if name == "bpftrace":
        m = bt_maps(cp.stdout)
        t.check(m.get("@c") == want and m.get("@m", 0) >= want,
                "%s: @c = %s, @m = %s (want %d and at least %d)" % (tag, m.get("@c"), m.get("@m"), want, want),
                t.clip(cp.stdout, 600))
    if name == "keyed":
        check_keyed(tag, cp.stdout, threads, fork)
    calls, malloc = hits(reports, "rl_work"), hits(reports, "malloc")
    want_malloc = want if "libc:malloc" in spec else 0
    t.check(calls == want and malloc >= want_malloc,
            "%s: hits rl_work %d (missed %d), malloc %d (want %d and at least %d)"
            % (tag, calls, hits(reports, "rl_work", "missed"), malloc, want, want_malloc), far)
    errs = all_errors(reports)
    t.check(not errs, "%s: the report has errors" % tag, json.dumps(errs)[:1500])
    t.info("%s: exit %d; VmPeak probed %s, unprobed %s; the runtime's mappings %s (budget %d MiB)"
           % (tag, cp.returncode, mib(got.get("VmPeak") if got else None), mib(refst.get("VmPeak")),
              mib(sum(b for b, _ in extra_maps(got, refst)) / 1024) if got else "?", budget))


def main():
    if not t.check(os.path.exists(PROG), "missing build output %s" % PROG):
        t.finish()
    for path in (t.LIB, t.CLI):
        t.check(os.path.exists(path), "missing build output %s" % path)
    if resource.getrlimit(resource.RLIMIT_AS)[1] != resource.RLIM_INFINITY:
        t.skip("this test runs under an address-space limit already (%d bytes): it sets its own"
               % resource.getrlimit(resource.RLIMIT_AS)[1])
        t.finish()
    work = t.work_dir()
    peaks = {}
    for threads in (0, THREADS):
        st = os.path.join(work, "stats-plain-%d" % threads)
        cp = t.run([PROG, str(ALLOC_MIB), str(threads), str(CALLS), st])
        s = stats(st)
        if cp.returncode != 0 or not s:
            t.skip("sp_rlimit %d threads cannot map %d MiB unprobed here (exit %d: %s): nothing to compare"
                   % (threads, ALLOC_MIB, cp.returncode, " / ".join(cp.stdout.decode(errors="replace").split("\n"))))
            t.finish()
        peaks[threads] = s["VmPeak"]
    # the limit bites: unprobed, 16 MiB under its peak, the mapping fails
    st = os.path.join(work, "stats-control")
    cp = run_limited([PROG, str(ALLOC_MIB), "0", str(CALLS), st], peaks[0] - 16 * 1024, t.base_env())
    t.check(cp.returncode == 1 and b"mapping %d MiB failed" % ALLOC_MIB in cp.stdout,
            "control: unprobed, 16 MiB under its peak, the mapping does not fail (exit %d)" % cp.returncode,
            t.clip(cp.stdout + cp.stderr))
    for how in ("preload", "launcher"):
        for name, spec, returns in SPECS:
            for threads in (0, THREADS):
                case(how, name, spec, returns, threads, False, peaks[threads])
        case(how, "count", SPECS[0][1], False, 0, True, peaks[0])
        case(how, "count", SPECS[0][1], False, THREADS, True, peaks[THREADS])
        case(how, "keyed", SPECS[-1][1], False, 0, True, peaks[0])
    for name, spec, returns in SPECS:
        for threads in (0, THREADS):
            case("launcher-limited", name, spec, returns, threads, False, peaks[threads])
    t.finish()


if __name__ == "__main__":
    main()
