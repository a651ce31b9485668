#!/usr/bin/python3
"""e2e_return — return probes (uretprobe, usession, latency) under the preload.

  e2e_return.py [int3|auto]...     (default: both modes)

Targets (built next to SP_TARGET): sp_ret_target (C) and sp_ret_target_cxx
(C++) count their own calls and print them; every probed run must print
exactly what the unprobed run prints (stdout, stderr, exit status), and the
report must say (semantics of issue 5):

  uretprobe  hits = returns seen
  usession   hits = entries, returns = returns seen
  latency    hits = completed calls; histogram count == hits, buckets sum
             to the count, min <= avg <= max
  lost       returns never seen (longjmp, exceptions, cancellation,
             pthread_exit): exactly the frames unwound

Cases: return values in rax, rax:rdx, xmm0, xmm0:xmm1, rax+xmm0, st0; C++
exceptions through three probed frames (throw, rethrow, a probed catcher,
a throw caught inside one frame); longjmp and siglongjmp; a thread that
longjmps then returns; pthread_cancel in a probed frame; a C program whose
dlopen'ed C++ library is cancelled through and throws; 16 threads that
pthread_exit 51 probed frames deep; recursion 10,000 deep; fork inside a
probed call (per-process reports, %p); a 1 ms function's latency histogram
(JSON and text); backtrace() under probed frames.  Then, when kernel
uprobes work (kcount --check), uretprobe:libz:inflate in python3 and
usession:libsqlite3:sqlite3_step=latency in sqlite3 against the kernel's
uretprobe counts for the same runs; else SKIP.
"""
import glob
import os
import re
import sys

import sptest as t

TDIR = os.path.dirname(t.TARGET)
RET = os.environ.get("SP_RET_TARGET", os.path.join(TDIR, "sp_ret_target"))
RETXX = os.environ.get("SP_RET_TARGET_CXX", os.path.join(TDIR, "sp_ret_target_cxx"))
CXXLIB = os.path.join(TDIR, "libsp_ret_cxxlib.so")
PYTHON = "/usr/bin/python3"

_refs = {}


def reference(cmd, stdin=None):
    key = (tuple(cmd), stdin)
    if key not in _refs:
        _refs[key] = t.run(cmd, stdin=stdin)
    return _refs[key]


def same_as_unprobed(label, cp, cmd, stdin=None):
    ref = reference(cmd, stdin)
    ok = t.check(cp.returncode == ref.returncode, "%s: exit %d, unprobed %d"
                 % (label, cp.returncode, ref.returncode), t.clip(cp.stderr))
    ok &= t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run" % label,
                  "got:\n%s\nwant:\n%s\nstderr:\n%s" % (t.clip(cp.stdout, 1200), t.clip(ref.stdout, 1200),
                                                       t.clip(cp.stderr, 800)))
    ok &= t.check(cp.stderr == ref.stderr, "%s: stderr differs from the unprobed run" % label,
                  "got:\n%s\nwant:\n%s" % (t.clip(cp.stderr, 1200), t.clip(ref.stderr, 600)))
    return ok


def probed(cmd, spec, mode, stdin=None, label=None):
    """Run CMD under SPEC; check it behaves as unprobed and the report is
    clean.  Returns ({symbol: entry} or None, the target's own counts)."""
    label = label or "%s %s [%s] (%s)" % (os.path.basename(cmd[0]), " ".join(cmd[1:]), spec, mode)
    cp, rep = t.run_probed(cmd, spec, mode, stdin=stdin)
    same_as_unprobed(label, cp, cmd, stdin)
    if not rep:
        return None, {}
    t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"])
    by_sym = {}
    for item in spec.split(";"):
        entries = [e for e in rep["probes"] if e["spec"] == item]
        if not t.check(len(entries) == 1, "%s: %d report entries for %s" % (label, len(entries), item)):
            continue
        e = entries[0]
        if e["kind"] != "uprobe":
            t.check("returns" in e and "lost" in e, "%s: %s has no returns/lost fields" % (label, item), e)
        by_sym.setdefault(e["symbol"], []).append(e)
    return by_sym, t.target_counts(cp.stdout)


def field(e, name):
    return e.get(name, "absent")


def expect(label, by_sym, sym, kind=None, **want):
    """Check the report entries of SYM (of KIND, if given) have the WANT
    values (hits, returns, lost, missed)."""
    if by_sym is None:
        return
    entries = [e for e in by_sym.get(sym, []) if kind is None or e["kind"] == kind]
    if not t.check(entries, "%s: no report entry for %s" % (label, sym)):
        return
    for e in entries:
        for k, v in want.items():
            t.check(field(e, k) == v, "%s: %s %s = %s, want %s" % (label, e["spec"], k, field(e, k), v),
                    t.fmt_probe(e) + " returns=%s lost=%s" % (field(e, "returns"), field(e, "lost")))


def check_latency(label, e, n_calls, lo_ns=None):
    lat = e.get("latency")
    if not t.check(isinstance(lat, dict), "%s: %s has no latency object" % (label, e["spec"]), e):
        return
    # completed calls: a uretprobe's hits, a session's returns
    hits = e["returns"] if e["kind"] == "usession" else e["hits"]
    what = "returns" if e["kind"] == "usession" else "hits"
    total = sum(b["count"] for b in lat.get("buckets", []))
    t.check(hits == n_calls, "%s: %s %s %d, want %d completed calls" % (label, e["spec"], what, hits, n_calls))
    t.check(lat.get("count") == hits, "%s: %s latency count %s != %s %d"
            % (label, e["spec"], lat.get("count"), what, hits))
    t.check(total == lat.get("count"), "%s: %s latency buckets sum to %d, count %s"
            % (label, e["spec"], total, lat.get("count")), lat)
    for b in lat.get("buckets", []):
        t.check(b["hi"] > b["lo"] and b["count"] > 0, "%s: bad bucket %s" % (label, b))
    if hits:
        mn, avg, mx = lat.get("min", -1), lat.get("avg", -1), lat.get("max", -1)
        t.check(0 <= mn <= avg <= mx, "%s: %s min %s avg %s max %s out of order" % (label, e["spec"], mn, avg, mx))
        t.check(abs(lat.get("sum", 0) // hits - avg) <= 1, "%s: avg %s != sum/count" % (label, avg))
        if lo_ns is not None:
            t.check(mn >= lo_ns, "%s: %s min %d ns < %d ns" % (label, e["spec"], mn, lo_ns))
            low = [b for b in lat["buckets"] if b["hi"] <= lo_ns]
            t.check(not low, "%s: %s buckets below %d ns: %s" % (label, e["spec"], lo_ns, low))
            near = [b for b in lat["buckets"] if b["lo"] < lo_ns * 2 and b["hi"] > lo_ns]
            t.check(near, "%s: %s no bucket around %d ns" % (label, e["spec"], lo_ns), lat)


# ------------------------------------------------------------------ cases

VALUE_FNS = ["r_int", "r_pair", "r_dbl", "r_dpair", "r_mixed", "r_ldbl"]


def test_values(mode):
    n = 20000
    cmd = [RET, "values", str(n)]
    for kind in ("uretprobe", "usession"):
        spec = ";".join("%s:%s" % (kind, f) for f in VALUE_FNS)
        by, counts = probed(cmd, spec, mode)
        label = "values %s (%s)" % (kind, mode)
        t.check(counts.get("r_int") == n, "%s: target counted %s calls" % (label, counts.get("r_int")))
        for f in VALUE_FNS:
            if kind == "uretprobe":
                expect(label, by, f, hits=n, lost=0, missed=0)
            else:
                expect(label, by, f, hits=n, returns=n, lost=0, missed=0)
    # the latency action's clock call at the return must not clobber them
    spec = ";".join("uretprobe:%s=latency" % f for f in VALUE_FNS[:3]) + ";" + \
        ";".join("usession:%s=latency" % f for f in VALUE_FNS[3:])
    by, _ = probed(cmd, spec, mode)
    for f in VALUE_FNS:
        for e in (by or {}).get(f, []):
            check_latency("values latency (%s)" % mode, e, n)
    # several probes of each kind on one site
    spec = "uprobe:r_pair;uretprobe:r_pair;usession:r_pair;uretprobe:r_pair=latency;usession:r_dpair;uretprobe:r_dpair"
    by, _ = probed(cmd, spec, mode)
    label = "values, shared sites (%s)" % mode
    expect(label, by, "r_pair", "uprobe", hits=n, missed=0)
    expect(label, by, "r_pair", "uretprobe", hits=n, lost=0)
    expect(label, by, "r_pair", "usession", hits=n, returns=n, lost=0)
    expect(label, by, "r_dpair", hits=n, lost=0)


def test_cxx(mode):
    n = 1000
    frames = ["f1", "f2", "f3"]
    spec = ";".join("uretprobe:" + f for f in frames)
    for sub in ("throw", "rethrow"):
        by, counts = probed([RETXX, sub, str(n)], spec, mode)
        label = "C++ %s (%s)" % (sub, mode)
        t.check(counts.get("f1") == 2 * n, "%s: target counted f1 %s" % (label, counts.get("f1")))
        for f in frames:   # n thrown through, then n normal calls
            expect(label, by, f, hits=n, lost=n)
    # sessions and latency on the same frames
    spec2 = "usession:f1;usession:f2=latency;uretprobe:f3=latency"
    by, _ = probed([RETXX, "throw", str(n)], spec2, mode)
    label = "C++ throw, sessions (%s)" % mode
    expect(label, by, "f1", hits=2 * n, returns=n, lost=n)
    expect(label, by, "f2", hits=2 * n, returns=n, lost=n)
    expect(label, by, "f3", hits=n, lost=n)
    for f in ("f2", "f3"):
        for e in (by or {}).get(f, []):
            check_latency(label, e, n)
    # a probed frame that catches is not unwound: its return is seen
    by, _ = probed([RETXX, "catcher", str(n)], spec + ";uretprobe:catcher", mode)
    label = "C++ probed catcher (%s)" % mode
    for f in frames:
        expect(label, by, f, hits=n, lost=n)
    expect(label, by, "catcher", hits=2 * n, lost=0)
    # a throw caught inside the innermost frame unwinds no probed frame
    by, _ = probed([RETXX, "local", str(n)], "uretprobe:lc_outer;uretprobe:lc_inner", mode)
    label = "C++ throw caught in the same frame (%s)" % mode
    expect(label, by, "lc_outer", hits=n, lost=0)
    expect(label, by, "lc_inner", hits=n, lost=0)
    # thread cancellation's forced unwind (glibc calls libgcc_s through a
    # private pointer): every destructor of the probed frames runs
    k = 20
    plain = t.run([RETXX, "cancel", str(k)])
    want = "cancelled %d\ndestructors %d\n" % (k, 3 * k)
    t.check(plain.returncode == 0 and want in plain.stdout.decode(), "C++ cancel, unprobed: want %r" % want,
            plain.stdout.decode() + t.clip(plain.stderr))
    # libc's read is where the thread is blocked: its probed return is the
    # first frame the unwinder meets
    cx = ["cx_outer", "cx_mid", "cx_inner"]
    by, counts = probed([RETXX, "cancel", str(k)], ";".join("uretprobe:" + f for f in cx + ["libc:read"]),
                        mode)
    label = "C++ pthread_cancel through probed frames (%s)" % mode
    t.check(counts.get("cancelled") == k and counts.get("destructors") == 3 * k,
            "%s: %s (want every destructor: %r)" % (label, counts, want))
    for f in cx:
        expect(label, by, f, hits=0, lost=k)


def test_longjmp(mode):
    n = 1000
    fns = ["lj_outer", "lj_mid", "lj_inner", "sj_outer", "sj_inner", "sig_helper"]
    by, counts = probed([RET, "longjmp", str(n)], ";".join("uretprobe:" + f for f in fns), mode)
    label = "longjmp (%s)" % mode
    t.check(counts.get("lj_outer") == 2 * n, "%s: target counted %s" % (label, counts))
    for f in fns[:5]:
        expect(label, by, f, hits=n, lost=n)
    expect(label, by, "sig_helper", hits=n, lost=0)
    by, _ = probed([RET, "longjmp", str(n)], ";".join("usession:" + f for f in fns), mode)
    label = "longjmp, sessions (%s)" % mode
    for f in fns[:5]:
        expect(label, by, f, hits=2 * n, returns=n, lost=n)
    # the last frames jumped out of belong to a thread that then exits
    by, _ = probed([RET, "ljthread", str(n)], "uretprobe:tl_outer;uretprobe:tl_inner", mode)
    label = "longjmp in a thread that exits (%s)" % mode
    for f in ("tl_outer", "tl_inner"):
        expect(label, by, f, hits=0, lost=n)


def test_cancel(mode):
    n = 20000
    spec = "uretprobe:cn_outer;uretprobe:cn_blocked;uretprobe:work"
    by, counts = probed([RET, "cancel", str(n)], spec, mode)
    label = "pthread_cancel (%s)" % mode
    t.check(counts.get("work") == 3 * n, "%s: target counted %s" % (label, counts))
    expect(label, by, "work", hits=3 * n, lost=0, missed=0)
    expect(label, by, "cn_outer", hits=0)
    expect(label, by, "cn_blocked", hits=0)
    label = "pthread_cancel: lost returns of the cancelled thread (%s)" % mode
    expect(label, by, "cn_outer", lost=1)
    expect(label, by, "cn_blocked", lost=1)


def test_dlcancel(mode):
    """A C program that loads C++ code with dlopen: libgcc_s comes after the
    preload's libraries, one of which (libunwind) defines the unwinder ABI
    too.  Cancellation and exceptions must still run every destructor."""
    k = 10
    cmd = [RET, "dlcancel", str(k), CXXLIB]
    plain = reference(cmd)
    want = "cancelled %d\ndestructors %d\ncaught %d\ndestructors %d\n" % (k, k, k, 2 * k)
    t.check(plain.returncode == 0 and plain.stdout.decode().startswith(want),
            "C dlopens C++, unprobed: want %r" % want, plain.stdout.decode() + t.clip(plain.stderr))
    by, _ = probed(cmd, "uprobe:dl_blocked", mode)
    expect("C dlopens C++, an entry probe (%s)" % mode, by, "dl_blocked", hits=k)
    by, _ = probed(cmd, "uretprobe:dl_blocked", mode)
    expect("C dlopens C++, cancelled through a return probe (%s)" % mode, by, "dl_blocked",
           hits=0, lost=k)


def test_threads(mode):
    n = 10000
    by, counts = probed([RET, "threads", str(n)], "uretprobe:work;uretprobe:ex_rec", mode)
    label = "16 threads, pthread_exit 51 frames deep (%s)" % mode
    t.check(counts.get("work") == 16 * n and counts.get("ex_rec") == 16 * 51,
            "%s: target counted %s" % (label, counts))
    expect(label, by, "work", hits=16 * n, lost=0, missed=0)
    expect(label, by, "ex_rec", hits=0, lost=16 * 51)
    by, _ = probed([RET, "threads", str(n)], "usession:work=latency;usession:ex_rec", mode)
    label = "16 threads, sessions (%s)" % mode
    expect(label, by, "work", hits=16 * n, returns=16 * n, lost=0)
    expect(label, by, "ex_rec", hits=16 * 51, returns=0, lost=16 * 51)
    for e in (by or {}).get("work", []):
        check_latency(label, e, 16 * n)


def test_recurse(mode):
    depth = 10000
    calls = 20 * (depth + 1)
    cmd = [RET, "recurse", str(depth)]
    by, counts = probed(cmd, "uretprobe:rec", mode)
    label = "recursion %d deep (%s)" % (depth, mode)
    t.check(counts.get("rec") == calls, "%s: target counted %s" % (label, counts))
    expect(label, by, "rec", hits=calls, lost=0, missed=0)
    by, _ = probed(cmd, "usession:rec", mode)
    expect(label + " usession", by, "rec", hits=calls, returns=calls, lost=0, missed=0)
    by, _ = probed(cmd, "uprobe:rec;uretprobe:rec=latency;usession:rec", mode)
    expect(label + " three probes", by, "rec", "uprobe", hits=calls)
    expect(label + " three probes", by, "rec", "usession", hits=calls, returns=calls, lost=0)
    for e in (by or {}).get("rec", []):
        if e["kind"] == "uretprobe":
            check_latency(label, e, calls)


def test_fork(mode):
    n = 500
    cmd = [RET, "fork", str(n)]
    d = os.path.join(t.work_dir(), "fork-%s" % mode)
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "*")):
        os.unlink(f)
    spec = "uretprobe:fk_call;uretprobe:after;usession:after"
    cp, _ = t.run_probed(cmd, spec, mode, output=os.path.join(d, "r-%p.json"))
    label = "fork inside a probed call (%s)" % mode
    same_as_unprobed(label, cp, cmd)
    out = cp.stdout.decode(errors="replace")
    t.check("child returned 1005" in out and "parent returned 47" in out,
            "%s: child or parent did not return correctly" % label, out)
    files = sorted(glob.glob(os.path.join(d, "r-*.json")))
    if not t.check(len(files) == 2, "%s: %d reports, want 2 (parent, child)" % (label, len(files)), files):
        return
    pids = {}
    for f in files:
        rep = t.load_report(f, label)
        if rep:
            pids[rep["pid"]] = rep
            t.check(f.endswith("r-%d.json" % rep["pid"]), "%s: %s holds pid %d" % (label, f, rep["pid"]))
    t.check(cp.pid in pids, "%s: no report of the parent %d" % (label, cp.pid), list(pids))
    for pid, rep in pids.items():
        who = "parent" if pid == cp.pid else "child"
        by = {}
        for e in rep["probes"]:
            by.setdefault(e["symbol"], []).append(e)
        # counters start from zero in the child: each process saw one
        # return from fk_call (the child's through the inherited shadow stack)
        expect("%s, %s" % (label, who), by, "fk_call", hits=1, lost=0)
        expect("%s, %s" % (label, who), by, "after", "uretprobe", hits=n, lost=0)
        expect("%s, %s" % (label, who), by, "after", "usession", hits=n, returns=n, lost=0)


def test_latency(mode):
    n = 60
    cmd = [RET, "latency", str(n)]
    for spec in ("uretprobe:sleeper=latency", "usession:sleeper=latency"):
        by, _ = probed(cmd, spec, mode)
        for e in (by or {}).get("sleeper", []):
            check_latency("1 ms sleeper [%s] (%s)" % (spec, mode), e, n, lo_ns=1000000)
            if e["kind"] == "usession":
                t.check(e.get("returns") == n, "latency usession: returns %s" % e.get("returns"))
    # the text report: "@latency_ns[...]" and the histogram rows sum to the count
    out = os.path.join(t.work_dir(), "latency-%s.txt" % mode)
    cp, _ = t.run_probed(cmd, "uretprobe:sleeper=latency", mode, output=out)
    label = "text latency report (%s)" % mode
    same_as_unprobed(label, cp, cmd)
    text = open(out).read() if os.path.exists(out) else ""
    m = re.search(r"^@latency_ns\[([^\]]*)\]: count (\d+), min (\d+), avg (\d+), max (\d+)$", text, re.M)
    if t.check(m, "%s: no @latency_ns line" % label, text):
        cnt, mn, avg, mx = (int(x) for x in m.groups()[1:])
        t.check(cnt == n and mn <= avg <= mx and mn >= 1000000, "%s: %s" % (label, m.group(0)))
        rows = re.findall(r"^\[(\S+), (\S+)\)\s+(\d+) \|[@ ]*\|$", text[m.end():], re.M)
        t.check(sum(int(r[2]) for r in rows) == n, "%s: histogram rows sum to %d, want %d"
                % (label, sum(int(r[2]) for r in rows), n), text)
        t.check(any(r[0] in ("512K", "1M") for r in rows), "%s: no [512K, 1M) or [1M, 2M) row" % label, text)
    t.check(re.search(r"^@count\[[^\]]*sleeper\]: %d$" % n, text, re.M), "%s: no @count line = %d" % (label, n), text)


def test_backtrace(mode):
    n = 2000
    cmd = [RET, "backtrace", str(n)]
    ref = reference(cmd)
    t.check(b"bt  bt_inner bt_mid bt_outer bt_main\n" in ref.stdout,
            "backtrace: the unprobed target does not see its callers (built without -rdynamic?)",
            t.clip(ref.stdout))
    fns = ["bt_inner", "bt_mid", "bt_outer", "bt_main"]
    by, _ = probed(cmd, ";".join("uretprobe:" + f for f in fns), mode)
    label = "backtrace under probed frames (%s)" % mode
    for f in fns[:3]:
        expect(label, by, f, hits=n, lost=0)
    expect(label, by, "bt_main", hits=1, lost=0)


# ------------------------------------------------------------------ kernel

ZLIB_SCRIPT = r"""
import zlib
blobs = [zlib.compress(bytes((i * 7 + j) %% 251 for j in range(3000 + 17 * i)), 6) for i in range(40)]
total = 0
for k in range(%d):
    for b in blobs:
        d = zlib.decompressobj()
        total += len(d.decompress(b, 1000)) + len(d.decompress(d.unconsumed_tail))
print("inflated", total)
"""


def libz_path():
    cp = t.run(["ldd", PYTHON])
    m = re.search(rb"libz\.so\.1 => (\S+)", cp.stdout)
    return os.path.realpath(m.group(1).decode()) if m else None


def sql_workload(rows):
    s = ["CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL, grp INTEGER);", "BEGIN;"]
    for i in range(rows):
        s.append("INSERT INTO t(name, v, grp) VALUES('n%d', %d.5, %d);" % (i, (i * 7919) % 1000, i % 13))
    s += ["COMMIT;", "SELECT grp, count(*), sum(v) FROM t GROUP BY grp ORDER BY grp;",
          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) SELECT sum(x) FROM c;",
          "SELECT name FROM t WHERE v > 990 ORDER BY id LIMIT 10;"]
    s += ["SELECT %d, count(*) FROM t WHERE grp = %d;" % (i, i % 13) for i in range(rows // 10)]
    return ("\n".join(s) + "\n").encode()


def kernel_compare(label, cmd, stdin, spec, sym, kind, mode):
    """Run CMD probed (SPEC: one probe on SYM), then under kcount with an
    entry and a return probe on the reported object's SYM."""
    by, _ = probed(cmd, spec, mode, stdin=stdin, label=label)
    entries = (by or {}).get(sym, [])
    if not t.check(len(entries) == 1, "%s: no report entry for %s" % (label, sym)):
        return
    e = entries[0]
    t.check(e["hits"] > 0, "%s: no hits" % label, t.fmt_probe(e))
    obj = e["object"]
    kp = "%s:%s" % (obj, sym)
    kcp, kc = t.kcount([kp, "ret:" + kp], cmd, stdin=stdin)
    if kc is None:
        return
    t.check(kcp.stdout == reference(cmd, stdin).stdout, "%s: stdout under kcount differs" % label)
    kent, kret = kc.get(kp), kc.get("ret:" + kp)
    t.check(kent == kret, "%s: kernel entries %s != kernel returns %s (the workload is not "
            "deterministic?)" % (label, kent, kret))
    if kind == "uretprobe":
        t.check(e["hits"] == kret, "%s: returns %d, kernel uretprobe %s" % (label, e["hits"], kret), t.fmt_probe(e))
    else:
        t.check(e["hits"] == kent, "%s: hits %d, kernel uprobe %s" % (label, e["hits"], kent), t.fmt_probe(e))
        t.check(e.get("returns") == kret, "%s: returns %s, kernel uretprobe %s" % (label, e.get("returns"), kret))
    t.check(e.get("lost") == 0, "%s: lost %s" % (label, e.get("lost")))
    if e["action"] == "latency":
        check_latency(label, e, kret)
    t.info("%s: %s hits %d returns %s, kernel %s/%s" % (label, e["spec"], e["hits"], e.get("returns"), kent, kret))


def test_kernel(modes):
    ok, why = t.kernel_uprobes()
    if not ok:
        t.skip("kernel uprobes unavailable (kcount --check): %s" % why)
        return
    libz = libz_path()
    if not t.check(libz, "%s does not link libz.so.1" % PYTHON):
        return
    for mode in modes:
        for loops in (3, 20):
            cmd = [PYTHON, "-c", ZLIB_SCRIPT % loops]
            kernel_compare("python3 zlib x%d [uretprobe:libz:inflate] (%s)" % (loops, mode), cmd, None,
                           "uretprobe:libz:inflate", "inflate", "uretprobe", mode)
        for rows in (500, 3000):
            kernel_compare("sqlite3 %d rows [usession:libsqlite3:sqlite3_step=latency] (%s)" % (rows, mode),
                           ["sqlite3", ":memory:"], sql_workload(rows),
                           "usession:libsqlite3:sqlite3_step=latency", "sqlite3_step", "usession", mode)


def main():
    modes = sys.argv[1:] or ["int3", "auto"]
    for m in modes:
        if m not in ("int3", "auto", "jmp"):
            sys.exit("usage: e2e_return.py [int3|auto|jmp]...")
    t.require_build()
    for path in (RET, RETXX, CXXLIB):
        t.check(os.path.exists(path), "missing build output %s" % path)
    if not all(os.path.exists(p) for p in (RET, RETXX, CXXLIB)):
        t.finish()
    for mode in modes:
        t.info("== mode %s" % mode)
        for test in (test_values, test_cxx, test_longjmp, test_cancel, test_dlcancel, test_threads, test_recurse,
                     test_fork, test_latency, test_backtrace):
            t.info("-- %s" % test.__name__)
            test(mode)
    t.info("-- test_kernel")
    test_kernel(modes)
    t.finish()


if __name__ == "__main__":
    main()
