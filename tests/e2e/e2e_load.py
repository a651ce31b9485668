#!/usr/bin/python3
"""e2e_load — objects loaded after start, plugins, and libraries that
arrive by dlopen in real programs, checked against the kernel.

  e2e_load.py [dlopen|plugins|kernel]...      (default: all three)

  dlopen   sp_dl_target dlopen's libsp_dl_lib.so (not linked; it brings its
           dependency libsp_dl_dep.so), calls dl_func N times, dlclose's it,
           dlopen's it again and calls it M times.  With the spec given
           before start: each probe is one report entry over both loads,
           attached again by the reload, with N + M hits (a reload does not
           add entries); without the reload, the entry says "attached":
           false, "unloaded": true, with N hits;
           the dependency is probed too; a spec naming a library that never
           loads is an error "was never loaded" in the report at exit; the
           program's output and exit status are those of the unprobed run.
  plugins  the good test plugin's handler is called exactly as often as the
           probe is hit (its fini writes "calls N" into UPROBE_PLUGIN_ARGS),
           on the main program and on the dlopen'ed library; a plugin
           missing its function, without the ABI mark, with another ABI,
           whose init fails, a path that does not exist and a file that is
           not a shared object are each an error naming the item (report
           and stderr) while the other items attach and count.
  kernel   /usr/bin/python3.11 importing sqlite3 (libsqlite3 arrives by the
           dlopen of the _sqlite3 extension) with uprobe:libsqlite3:sqlite3_*,
           and importing lzma with uprobe:liblzma:lzma_*: each function's
           hits equal kernel uprobes' count over the same run (kcount).
           Skipped, with "SKIP:", when `kcount --check` fails.
"""
import os
import sys

import sptest as t

TESTS = os.path.dirname(t.TARGET)
DL_TARGET = os.path.join(TESTS, "sp_dl_target")
DL_LIB = os.path.join(TESTS, "libsp_dl_lib.so")
DL_DEP = os.path.join(TESTS, "libsp_dl_dep.so")
PLUGINS = os.path.dirname(t.LIB)
PYTHON = "/usr/bin/python3.11"

N, M, K = 1000, 357, 23      # dl_func calls in load 1 and 2; dl_main_func calls
MODES = ("int3", "auto")


def dl_cmd(n=N, m=M, k=K):
    return [DL_TARGET, DL_LIB, str(n), str(m), str(k)]


def same_as_unprobed(label, cmd, cp, ref):
    """The probed run's exit status and stdout are the unprobed run's.
    (stderr may differ: the runtime says at start-up which items wait for a
    library.)"""
    t.check(cp.returncode == ref.returncode, "%s: exit %d, unprobed %d"
            % (label, cp.returncode, ref.returncode), t.clip(cp.stderr))
    t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run" % label,
            "got:\n%s\nwant:\n%s" % (t.clip(cp.stdout, 800), t.clip(ref.stdout, 800)))


def reference():
    ref = t.run(dl_cmd())
    ok = t.check(ref.returncode == 0, "unprobed sp_dl_target failed (%d)" % ref.returncode,
                 t.clip(ref.stderr))
    # Without a real unload the reload cases would test nothing.
    ok &= t.check(b"closed: lib unmapped, dep unmapped" in ref.stdout,
                  "dlclose does not unmap libsp_dl_lib/libsp_dl_dep: the test cannot test reloading",
                  t.clip(ref.stdout))
    return ref if ok else None


def two_loads(label, entries, first, second):
    """ENTRIES (one spec item's report entries) are one attached entry with
    FIRST + SECOND hits: the reload attached the unloaded probe again."""
    if not t.check(len(entries) == 1, "%s: %d report entries, want 1 (the reload attaches it again)"
                   % (label, len(entries)), "\n".join(t.fmt_probe(e) for e in entries)):
        return
    e = entries[0]
    t.check(e.get("attached") is True and not e.get("unloaded"),
            "%s: attached=%r unloaded=%r after the reload" % (label, e.get("attached"), e.get("unloaded")))
    t.check(e["hits"] == first + second, "%s: %d hits, want %d + %d" % (label, e["hits"], first, second),
            t.fmt_probe(e))
    t.check(e["missed"] == 0, "%s: missed %d" % (label, e["missed"]), t.fmt_probe(e))


def one_load(label, entries, first):
    """Without a reload: one entry, unloaded, with FIRST hits."""
    if not t.check(len(entries) == 1, "%s: %d report entries, want 1" % (label, len(entries)),
                   "\n".join(t.fmt_probe(e) for e in entries)):
        return
    e = entries[0]
    t.check(e.get("attached") is False and e.get("unloaded") is True,
            "%s: attached=%r unloaded=%r, want false, true" % (label, e.get("attached"), e.get("unloaded")))
    t.check(e["hits"] == first, "%s: %d hits, want %d" % (label, e["hits"], first), t.fmt_probe(e))


def test_dlopen():
    ref = reference()
    if not ref:
        return
    lib_items = ["uprobe:libsp_dl_lib:dl_func", "uretprobe:libsp_dl_lib:dl_func",
                 "uprobe:%s:dl_func" % DL_LIB,            # the same object named by path
                 "uprobe:libsp_dl_dep:dl_dep_func"]      # a dependency of the dlopen'ed one
    never = "uprobe:libsp_never_loaded:never_func"
    main_item = "uprobe:dl_main_func"
    spec = ";".join(lib_items + [never, main_item])
    for mode in MODES:
        label = "sp_dl_target (%s)" % mode
        cp, rep = t.run_probed(dl_cmd(), spec, mode)
        same_as_unprobed(label, dl_cmd(), cp, ref)
        if not rep:
            continue
        by_spec = t.probes_by(rep, "spec")
        for item in lib_items:
            two_loads("%s: %s" % (label, item), by_spec.get(item, []), N, M)
            if mode == "int3":
                for e in by_spec.get(item, []):
                    t.check(e["mode"] == "int3", "%s: %s mode %s" % (label, item, e["mode"]))
        for e in by_spec.get("uretprobe:libsp_dl_lib:dl_func", []):
            t.check(e.get("lost", 0) == 0, "%s: uretprobe lost %r returns" % (label, e.get("lost")),
                    t.fmt_probe(e))
        mains = by_spec.get(main_item, [])
        if t.check(len(mains) == 1, "%s: %d entries for %s" % (label, len(mains), main_item)):
            t.check(mains[0]["hits"] == K, "%s: %s: %d hits, want %d"
                    % (label, main_item, mains[0]["hits"], K), t.fmt_probe(mains[0]))
        t.check(never not in by_spec, "%s: %s has report entries" % (label, never))
        errs = rep["errors"]
        t.check(len(errs) == 1 and errs[0]["spec"] == never and "was never loaded" in errs[0]["message"],
                "%s: want exactly one error, '%s' ... was never loaded" % (label, never), errs)
        # not an error while the program runs: nothing on its stderr
        t.check(b"libsp_never_loaded" not in cp.stderr, "%s: the missing library is named on the "
                "program's stderr" % label, t.clip(cp.stderr))
        # no reload: the unloaded probes keep their counts
        cp, rep = t.run_probed(dl_cmd(m=-1), ";".join(lib_items), mode)
        if rep:
            by_spec = t.probes_by(rep, "spec")
            for item in lib_items:
                one_load("%s, no reload: %s" % (label, item), by_spec.get(item, []), N)


# ---------------------------------------------------------------- plugins

def plugin(name):
    return os.path.join(PLUGINS, "libsp_%s.so" % name)


def marker_calls(path):
    """The good plugin's "calls N", or None."""
    try:
        text = open(path).read()
    except OSError:
        return None
    parts = text.split()
    return int(parts[1]) if len(parts) == 2 and parts[0] == "calls" and parts[1].isdigit() else None


def plugin_run(label, spec, mode, cmd=None):
    marker = os.path.join(t.work_dir(), "marker-%d" % (plugin_run.n))
    plugin_run.n += 1
    if os.path.exists(marker):
        os.unlink(marker)
    cp, rep = t.run_probed(cmd or dl_cmd(), spec, mode, extra={"UPROBE_PLUGIN_ARGS": marker})
    return cp, rep, marker_calls(marker)


plugin_run.n = 0


def test_plugins():
    for p in ("plugin_good", "plugin_no_abi", "plugin_bad_abi", "plugin_bad_init"):
        if not t.check(os.path.exists(plugin(p)), "missing test plugin %s" % plugin(p)):
            return
    ref = reference()
    if not ref:
        return
    good = plugin("plugin_good") + ":on_hit"
    main_good = "uprobe:dl_main_func=" + good
    lib_good = "uprobe:libsp_dl_lib:dl_func=" + good
    bad = {
        "uprobe:dl_main_func=%s:no_such_handler" % plugin("plugin_good"): ("no_such_handler",),
        "uprobe:dl_main_func=%s:on_hit" % plugin("plugin_no_abi"): ("SELFPROBE_PLUGIN",),
        "uprobe:dl_main_func=%s:on_hit" % plugin("plugin_bad_abi"): ("ABI",),
        "uprobe:dl_main_func=%s:on_hit" % plugin("plugin_bad_init"): ("init",),
        "uprobe:dl_main_func=/nonexistent/libsp_nope.so:on_hit": ("No such file",),
        "uprobe:dl_main_func=/etc/passwd:on_hit": (),
    }
    counted = "uprobe:libsp_dl_dep:dl_dep_func"
    for mode in MODES:
        # the good plugin alone, on the program and on the dlopen'ed library
        label = "good plugin (%s)" % mode
        cp, rep, calls = plugin_run(label, ";".join([main_good, lib_good]), mode)
        same_as_unprobed(label, dl_cmd(), cp, ref)
        if rep:
            t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"])
            by_spec = t.probes_by(rep, "spec")
            hits = {item: sum(e["hits"] for e in by_spec.get(item, [])) for item in (main_good, lib_good)}
            t.check(hits[main_good] == K, "%s: %s: %d hits, want %d" % (label, main_good, hits[main_good], K))
            t.check(hits[lib_good] == N + M, "%s: %s: %d hits, want %d"
                    % (label, lib_good, hits[lib_good], N + M))
            t.check(all(e["action"] == "plugin" for e in rep["probes"]),
                    "%s: action is not 'plugin'" % label, [t.fmt_probe(e) for e in rep["probes"]])
        t.check(calls == K + N + M, "%s: the handler was called %r times (fini's marker), want %d"
                % (label, calls, K + N + M))

        # every bad item next to good ones
        label = "bad plugins (%s)" % mode
        spec = ";".join(list(bad) + [main_good, counted])
        cp, rep, calls = plugin_run(label, spec, mode)
        same_as_unprobed(label, dl_cmd(), cp, ref)
        stderr = cp.stderr.decode(errors="replace")
        if rep:
            errs = {}
            for e in rep["errors"]:
                errs.setdefault(e["spec"], []).append(e["message"])
            for item, words in bad.items():
                msgs = errs.get(item, [])
                if t.check(len(msgs) == 1, "%s: %d errors for %s, want 1" % (label, len(msgs), item),
                           rep["errors"]):
                    path = item.split("=", 1)[1].rsplit(":", 1)[0]
                    t.check(path in msgs[0], "%s: the error for %s does not name %s" % (label, item, path),
                            msgs[0])
                    for w in words:
                        t.check(w in msgs[0], "%s: the error for %s does not say %r" % (label, item, w),
                                msgs[0])
                    t.check(msgs[0] not in stderr, "%s: the error for %s is on the program's stderr "
                            "(UPROBE_LOG unset)" % (label, item),
                            "message: %s\nstderr:\n%s" % (msgs[0], t.clip(stderr)))
            t.check(set(errs) == set(bad), "%s: errors for other items" % label,
                    sorted(set(errs) - set(bad)))
            by_spec = t.probes_by(rep, "spec")
            for item in bad:
                t.check(item not in by_spec, "%s: %s has report entries" % (label, item))
            g = by_spec.get(main_good, [])
            t.check(len(g) == 1 and g[0]["hits"] == K, "%s: %s: want one entry with %d hits"
                    % (label, main_good, K), [t.fmt_probe(e) for e in g])
            c = by_spec.get(counted, [])
            t.check([e["hits"] for e in c] == [N + M], "%s: %s: want one entry with %d + %d hits"
                    % (label, counted, N, M), [t.fmt_probe(e) for e in c])
        t.check(calls == K, "%s: the good handler was called %r times, want %d" % (label, calls, K))


# ---------------------------------------------------------------- kernel

SQLITE_PY = r"""
import sqlite3
c = sqlite3.connect(":memory:")
c.execute("create table t(a integer primary key, b text, v real)")
c.executemany("insert into t(b, v) values(?, ?)", [("x%d" % i, i * 0.5) for i in range(3000)])
c.commit()
print(c.execute("select count(*), sum(v), max(b) from t where a % 7 = 3").fetchone())
for row in c.execute("select a, b from t where b like 'x12%' order by v desc limit 5"):
    print(row)
c.execute("update t set v = v * 2 where a < 100")
print(c.total_changes)
c.close()
"""

LZMA_PY = r"""
import lzma
data = b"".join(b"line %d of something compressible\n" % i for i in range(20000))
z = lzma.compress(data, preset=3)
assert lzma.decompress(z) == data
x = lzma.compress(data[:5000], format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)
print(len(data), len(lzma.decompress(x)))
"""


_kernel_runs = {}


def kernel_case(name, code, spec):
    cmd = [PYTHON, "-c", code]
    ref = t.run(cmd)
    if not t.check(ref.returncode == 0, "%s: unprobed python3.11 failed (%d)" % (name, ref.returncode),
                   t.clip(ref.stderr)):
        return
    for mode in MODES:
        label = "python3.11 %s [%s] (%s)" % (name, spec, mode)
        cp, rep = t.run_probed(cmd, spec, mode)
        same_as_unprobed(label, cmd, cp, ref)
        if not rep:
            continue
        t.check(not rep["errors"], "%s: errors reported" % label, rep["errors"][:10])
        probes = rep["probes"]
        t.check(len(probes) > 20, "%s: only %d probes" % (label, len(probes)))
        hit = [e for e in probes if e["hits"] > 0]
        t.check(len(hit) > 5, "%s: only %d probes were hit" % (label, len(hit)))
        objs = {e["object"] for e in probes}
        t.check(len(objs) == 1, "%s: probes in several objects" % label, sorted(objs))
        jmp = sum(1 for e in probes if e["mode"] == "jmp")
        t.info("%s: %d probes (%d on the jmp path), %d hit, %d hits in all"
               % (label, len(probes), jmp, len(hit), sum(e["hits"] for e in probes)))
        if mode == "int3":
            t.check(jmp == 0, "%s: %d probes on the jmp path in int3 mode" % (label, jmp))
        ok, reason = t.kernel_uprobes()
        if not ok:
            t.skip("kernel uprobes unavailable: %s" % reason)
            continue
        kprobes, elfs = [], {}
        for e in probes:
            obj = e["object"]
            elf = elfs.get(obj) or elfs.setdefault(obj, t.Elf(obj))
            sym = elf.symbol(e["symbol"] or "")
            if not t.check(sym is not None and not sym[2], "%s: %s is not a plain symbol of %s"
                           % (label, e["symbol"], obj)):
                continue
            kprobes.append(("%s:%s" % (obj, e["symbol"]), e))
        # one kernel run per probe set (registering hundreds of kernel
        # uprobes takes seconds; both modes name the same functions)
        key = (name, tuple(p for p, _ in kprobes))
        if key not in _kernel_runs:
            kcp, kc = t.kcount([p for p, _ in kprobes], cmd)
            t.check(kcp.returncode == ref.returncode and kcp.stdout == ref.stdout,
                    "%s: the kcount run differs from the plain run (exit %d)" % (label, kcp.returncode),
                    t.clip(kcp.stderr))
            _kernel_runs[key] = kc
        kc = _kernel_runs[key]
        if kc is None:
            continue
        diff = ["%s: preload %d, kernel %r" % (e["symbol"], e["hits"], kc.get(p))
                for p, e in kprobes if kc.get(p) != e["hits"]]
        t.info("%s: %d functions compared with the kernel, %d differ"
               % (label, len(kprobes), len(diff)))
        t.check(not diff, "%s: %d functions' counts differ from the kernel's" % (label, len(diff)),
                "\n".join(diff))


def test_kernel():
    if not t.check(os.path.exists(PYTHON), "%s is not installed" % PYTHON):
        return
    kernel_case("import sqlite3", SQLITE_PY, "uprobe:libsqlite3:sqlite3_*")
    kernel_case("import lzma", LZMA_PY, "uprobe:liblzma:lzma_*")


def main():
    t.require_build()
    for path in (DL_TARGET, DL_LIB, DL_DEP):
        t.check(os.path.exists(path), "missing build output %s" % path)
    parts = sys.argv[1:] or ["dlopen", "plugins", "kernel"]
    tests = {"dlopen": test_dlopen, "plugins": test_plugins, "kernel": test_kernel}
    for p in parts:
        if p not in tests:
            sys.exit("usage: e2e_load.py [dlopen|plugins|kernel]...")
    if os.path.exists(DL_TARGET):
        for p in parts:
            tests[p]()
    t.finish()


if __name__ == "__main__":
    main()
