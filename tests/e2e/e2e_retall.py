#!/usr/bin/python3
"""e2e_retall — return probes on every function of real programs (issue 13).

  e2e_retall.py [rules] [programs|few] [uretprobe|usession|latency]... [int3|auto]...
  (default: rules and programs under the three specs, both modes)

rules: sp_retsafe and sp_ret_target_cxx under the return probes that must
be refused or handled, with exact counts:
  vfork            uretprobe:libc:vfork refused (returns twice), the run
                   unchanged; uprobe:libc:vfork counts every call
  setjmp           uretprobe:libc:_setjmp / __sigsetjmp refused; rs_leaf,
                   called from setjmp's frame before each longjmp, counted
  threads          uretprobe:libc:__nptl_deallocate_tsd: once per thread
                   (the shadow stack outlives the key destructors) and the
                   address space does not grow with the threads
  cold             uretprobe:mid*: mid.cold (not a function entry) refused,
                   mid counted
  unwinder         uretprobe:libgcc_s:* (and libstdc++, libc) under C++
                   throws: the unwinder's walkers refused, throws caught
  _start          uretprobe:_start refused (entered by the kernel: argc,
                   not a return address, on the stack top)
  lazy             uretprobe/usession on ld.so's functions under a program
                   bound lazily: the PLT resolver (entered by a jump, the
                   link map on its stack top) refused, the run unchanged
  spawn            posix_spawn, posix_spawnp, system, popen with entry probes
                   on what posix_spawn's parent calls with every signal
                   blocked (munmap, waitpid) and its child after the
                   handlers are reset (execve): the run unchanged; in int3
                   mode those sites refused with the reason, in auto mode
                   counted on the jmp path; posix_spawnp's search of PATH
                   (getenv, strchr, strlen ... mempcpy) the same; and in
                   int3 mode under uprobe/uretprobe/usession:libc:*
  caller           uretprobe/usession/=latency on libc's dlopen and dlsym
                   refused (they read their return address to know their
                   caller): dlopen by bare name still searches the
                   program's RUNPATH, a library's dlsym(RTLD_NEXT) of its
                   own symbol still finds none; uprobe on them counts
                   every call
programs: sptest.real_programs() (shared with e2e_unchanged.py) and a C++
throw, each run unprobed and under uretprobe:libc:*,
usession:libc:* and uprobe:libc:*=latency must print the same stdout, the
same stderr (apart from the runtime's own "selfprobe: " lines) and exit the
same way, with no missed hit; python3.11 also under
uretprobe:<python3.11>:_Py* and usession:<python3.11>:*.  "few": only
uretprobe:libc:* and the programs of INT3_SET (for int3 mode, which traps at
every probed entry).
"""
import os
import sys

import sptest as t

TDIR = os.path.dirname(t.TARGET)
RETSAFE = os.path.join(TDIR, "sp_retsafe")
RETXX = os.path.join(TDIR, "sp_ret_target_cxx")
PY = t.PY311
LIBC_SPECS = ("uretprobe:libc:*", "usession:libc:*", "uprobe:libc:*=latency")


def same_run(label, cp, ref, compare_stderr=True):
    ok = t.check(cp.returncode == ref.returncode, "%s: exit %d, unprobed %d"
                 % (label, cp.returncode, ref.returncode), t.clip(cp.stderr))
    ok &= t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run" % label,
                  "got:\n%s\nwant:\n%s\nstderr:\n%s" % (t.clip(cp.stdout, 800), t.clip(ref.stdout, 800),
                                                       t.clip(cp.stderr, 800)))
    if compare_stderr:
        err = t.own_lines_removed(cp.stderr)
        ok &= t.check(err == ref.stderr, "%s: stderr differs from the unprobed run" % label,
                      "got:\n%s\nwant:\n%s" % (t.clip(err, 800), t.clip(ref.stderr, 400)))
    return ok


def entry(rep, symbol, spec=None):
    es = [e for e in (rep or {}).get("probes", [])
          if e["symbol"] == symbol and (spec is None or e["spec"] == spec)]
    return es[0] if len(es) == 1 else None


def refused(rep, symbol, words):
    """The report's errors name SYMBOL with a reason containing WORDS."""
    return any(symbol + " at " in e["message"] and words in e["message"]
               for e in (rep or {}).get("errors", []))


def counts(rep, symbol, label, **want):
    e = entry(rep, symbol)
    if not t.check(e is not None, "%s: no single report entry for %s" % (label, symbol)):
        return
    for k, v in want.items():
        t.check(e.get(k) == v, "%s: %s %s = %r, want %r" % (label, symbol, k, e.get(k), v), t.fmt_probe(e))


# ---------------------------------------------------------------- rules

def rules(mode):
    n = 50
    ref = t.run([RETSAFE, "vfork", str(n)])
    t.check(ref.returncode == 0, "sp_retsafe vfork fails unprobed", t.clip(ref.stderr))
    for spec in ("uretprobe:libc:vfork", "usession:libc:vfork", "uprobe:libc:vfork=latency"):
        label = "vfork [%s] (%s)" % (spec, mode)
        cp, rep = t.run_probed([RETSAFE, "vfork", str(n)], spec, mode)
        same_run(label, cp, ref)
        t.check(refused(rep, "vfork", "returns twice"), "%s: not refused with its reason" % label,
                rep and rep["errors"])
    cp, rep = t.run_probed([RETSAFE, "vfork", str(n)], "uprobe:libc:vfork", mode)
    same_run("vfork [uprobe] (%s)" % mode, cp, ref)
    counts(rep, "vfork", "vfork [uprobe] (%s)" % mode, hits=n)

    ref = t.run([RETSAFE, "setjmp", str(n)])
    for spec, sym in (("uretprobe:libc:_setjmp;uretprobe:rs_leaf", "_setjmp"),
                      ("uretprobe:libc:__sigsetjmp;uretprobe:rs_leaf", "__sigsetjmp"),
                      ("uprobe:libc:_setjmp=latency;uretprobe:rs_leaf", "_setjmp")):
        label = "setjmp [%s] (%s)" % (spec, mode)
        cp, rep = t.run_probed([RETSAFE, "setjmp", str(n)], spec, mode)
        same_run(label, cp, ref)
        t.check(refused(rep, sym, "returns twice"), "%s: %s not refused" % (label, sym), rep and rep["errors"])
        counts(rep, "rs_leaf", label, hits=2 * n, lost=0)
    # entry probes stay where they are safe: n calls each over what the
    # process start makes (glibc's own setjmp before main; _setjmp ends in a
    # jump to __sigsetjmp); but glibc's thread start calls them with every
    # signal blocked, so where the site cannot take the jmp the int3 is
    # refused, with that reason (runtime/core/hazard.c)
    spec = "uprobe:libc:_setjmp;uprobe:libc:__sigsetjmp"
    _, rep0 = t.run_probed([RETSAFE, "setjmp", "0"], spec, mode)
    cp, rep = t.run_probed([RETSAFE, "setjmp", str(n)], spec, mode)
    same_run("setjmp [uprobe] (%s)" % mode, cp, ref)
    for sym, per in (("_setjmp", 1), ("__sigsetjmp", 2)):
        e0 = entry(rep0, sym)
        if e0 is None:
            t.check(refused(rep0, sym, "every signal blocked"),
                    "setjmp 0 [uprobe] (%s): no entry for %s, and not refused for running with "
                    "every signal blocked" % (mode, sym), rep0 and rep0["errors"])
        else:
            t.check(mode != "int3", "setjmp 0 [uprobe] (int3): %s attached on the int3 path" % sym)
            counts(rep, sym, "setjmp [uprobe] (%s)" % mode, hits=e0["hits"] + per * n)

    nt = 300
    ref = t.run([RETSAFE, "threads", str(nt)])
    for spec in ("uretprobe:libc:__nptl_deallocate_tsd;uretprobe:rs_leaf",
                 "usession:libc:__nptl_deallocate_tsd;uprobe:rs_leaf=latency"):
        label = "threads [%s] (%s)" % (spec, mode)
        cp, rep = t.run_probed([RETSAFE, "threads", str(nt)], spec, mode)
        if not same_run(label, cp, ref, compare_stderr=False):
            continue
        counts(rep, "__nptl_deallocate_tsd", label, hits=nt, lost=0)
        counts(rep, "rs_leaf", label, hits=nt)
        grew = [int(l.split()[1]) for l in cp.stderr.decode().splitlines() if l.startswith("grew ")]
        # a shadow stack is 34 KiB: one kept per thread would be 5 MiB here
        t.check(grew and grew[0] < 1024, "%s: the address space grew by %s KiB over %d threads"
                % (label, grew, nt // 2))

    ref = t.run([RETSAFE, "cold", "100"])
    for spec in ("uretprobe:mid*", "usession:mid*", "uprobe:mid*=latency"):
        label = "cold [%s] (%s)" % (spec, mode)
        cp, rep = t.run_probed([RETSAFE, "cold", "100"], spec, mode)
        same_run(label, cp, ref)
        t.check(refused(rep, "mid.cold", "cold part"), "%s: mid.cold not refused" % label, rep and rep["errors"])
        counts(rep, "mid", label, hits=100, lost=0)
    cp, rep = t.run_probed([RETSAFE, "cold", "100"], "uretprobe:0x%x" % cold_address(), mode)
    t.check(refused(rep, "mid.cold", "cold part") or
            any("cold part" in e["message"] for e in (rep or {}).get("errors", [])),
            "cold by address (%s): not refused" % mode, rep and rep["errors"])

    ref = t.run([RETSAFE, "cold", "10"])
    for spec in ("uretprobe:_start", "usession:_st*;uprobe:mid"):
        label = "_start [%s] (%s)" % (spec, mode)
        cp, rep = t.run_probed([RETSAFE, "cold", "10"], spec, mode)
        same_run(label, cp, ref)
        t.check(refused(rep, "_start", "entered without a call"), "%s: _start not refused" % label,
                rep and rep["errors"])

    # sp_retsafe is linked -z lazy: its first call of each libc function
    # goes through ld.so's _dl_runtime_resolve_* (the variant the CPU picks)
    ref = t.run([RETSAFE, "cold", "10"])
    for spec in ("uretprobe:ld-linux-x86-64:_dl_runtime_resolve*", "usession:ld-linux-x86-64:*",
                 "uretprobe:ld-linux-x86-64:*"):
        label = "lazy [%s] (%s)" % (spec, mode)
        cp, rep = t.run_probed([RETSAFE, "cold", "10"], spec, mode)
        same_run(label, cp, ref)
        for sym in ("_dl_runtime_resolve_xsavec", "_dl_runtime_resolve_xsave", "_dl_runtime_resolve_fxsave"):
            t.check(refused(rep, sym, "entered without a call"), "%s: %s not refused with its reason"
                    % (label, sym), rep and rep["errors"])

    spawn(mode)

    n = 20
    ref = t.run([RETSAFE, "caller", str(n)])
    t.check(ref.returncode == 0, "sp_retsafe caller fails unprobed", t.clip(ref.stdout + ref.stderr))
    for spec in ("uretprobe:libc:dlopen;uretprobe:libc:dlsym",
                 "usession:libc:dlopen;usession:libc:dlsym",
                 "uprobe:libc:dlopen=latency;uprobe:libc:dlsym=latency"):
        label = "caller [%s] (%s)" % (spec, mode)
        cp, rep = t.run_probed([RETSAFE, "caller", str(n)], spec, mode)
        same_run(label, cp, ref)
        for sym in ("dlopen", "dlsym"):
            t.check(refused(rep, sym, "to know its caller"), "%s: %s not refused with its reason"
                    % (label, sym), rep and rep["errors"])
    spec = "uprobe:libc:dlopen;uprobe:libc:dlsym"
    _, rep0 = t.run_probed([RETSAFE, "caller", "0"], spec, mode)
    cp, rep = t.run_probed([RETSAFE, "caller", str(n)], spec, mode)
    same_run("caller [uprobe] (%s)" % mode, cp, ref)
    for sym in ("dlopen", "dlsym"):
        e0 = entry(rep0, sym)
        if t.check(e0 is not None, "caller 0 [uprobe] (%s): no entry for %s" % (mode, sym)):
            counts(rep, sym, "caller [uprobe] (%s)" % mode, hits=e0["hits"] + n)

    n = 20
    ref = t.run([RETXX, "throw", str(n)])
    for spec in ("uretprobe:libgcc_s:*", "usession:libgcc_s:*", "uprobe:libgcc_s:*=latency",
                 "uretprobe:libgcc_s:*;uretprobe:libstdc++:*;uretprobe:libc:*"):
        label = "C++ throw [%s] (%s)" % (spec, mode)
        cp, rep = t.run_probed([RETXX, "throw", str(n)], spec, mode)
        same_run(label, cp, ref)
        for sym in ("_Unwind_RaiseException", "_Unwind_Resume", "_Unwind_Backtrace"):
            t.check(refused(rep, sym, "walks the stack"), "%s: %s not refused" % (label, sym))
        counts(rep, "_Unwind_DeleteException", label, hits=n, lost=0)
        if "libstdc++" in spec:
            counts(rep, "__cxa_begin_catch", label, hits=n, lost=0)
            counts(rep, "__cxa_throw", label, hits=0, lost=n)
    cp, rep = t.run_probed([RETXX, "throw", str(n)], "uprobe:libgcc_s:_Unwind_RaiseException", mode)
    same_run("C++ throw [uprobe] (%s)" % mode, cp, ref)
    counts(rep, "_Unwind_RaiseException", "C++ throw [uprobe] (%s)" % mode, hits=n)


def spawn(mode):
    """posix_spawn's parent and child (the "spawn" rule)."""
    ref = t.run([RETSAFE, "spawn", "5"])
    # clone3: the public name of __clone3, which posix_spawn calls blocked;
    # posix_spawnp's child searching PATH calls getenv ... mempcpy (the
    # IFUNCs' implementations are the CPU's: refused under every name)
    path_search = ("getenv", "__libc_alloca_cutoff", "strchr", "strlen", "strncmp", "strnlen",
                   "strchrnul", "mempcpy")
    spec = ("uprobe:libc:munmap;uprobe:libc:waitpid;uprobe:libc:execve;uprobe:libc:clone3;"
            "uprobe:libc:getuid;uprobe:libc:getgid;" + ";".join("uprobe:libc:" + f for f in path_search))
    cp, rep = t.run_probed([RETSAFE, "spawn", "5"], spec, mode)
    same_run("spawn [%s] (%s)" % (spec, mode), cp, ref)
    for sym, why in (("munmap", "posix_spawn's parent"), ("waitpid", "posix_spawn's parent"),
                     ("execve", "posix_spawn child"), ("getuid", "posix_spawn/system child"),
                     ("getgid", "posix_spawn/system child")) + tuple((f, "posix_spawn child")
                                                                      for f in path_search):
        if mode == "int3":
            t.check(refused(rep, sym, why), "spawn (int3): %s not refused with its reason" % sym,
                    rep and rep["errors"])
        else:   # the int3 path only: the jmp stays allowed
            e = entry(rep, sym)
            t.check(e is not None and e["mode"] == "jmp" and e["hits"] > 0,
                    "spawn (%s): %s not counted on the jmp path" % (mode, sym), e and t.fmt_probe(e))
    t.check(refused(rep, "clone3", "every signal blocked"), "spawn (%s): clone3 not refused" % mode,
            rep and rep["errors"])
    # every libc function probed on the int3 path: posix_spawnp's child
    # ("true", found on PATH) lives to its exec
    if mode != "int3":
        return
    ref = t.run([RETSAFE, "spawn", "1"])
    for spec in ("uprobe:libc:*", "uretprobe:libc:*", "usession:libc:*"):
        cp, rep = t.run_probed([RETSAFE, "spawn", "1"], spec, mode)
        same_run("spawn [%s] (%s)" % (spec, mode), cp, ref)
    # a libc without its debug file names no implementation of an IFUNC
    # ("libc.so.6+0x9d670"): refused by the IFUNC's own name
    spec = "uprobe:libc:*"
    cp, rep = t.run_probed([RETSAFE, "spawn", "1"], spec, mode,
                           extra={"LD_LIBRARY_PATH": libc_without_debug_file()})
    same_run("spawn [%s] (%s, libc without its debug file)" % (spec, mode), cp, ref)
    e = entry(rep, "strcmp")
    t.check(e is not None and e.get("implementation", "").startswith("libc.so.6+"),
            "libc without its debug file: strcmp's implementation is named", e and t.fmt_probe(e))
    for sym in ("strlen", "strnlen", "strchrnul"):
        t.check(refused(rep, sym, "posix_spawn child"), "spawn (%s, libc without its debug file): "
                "%s not refused with its reason" % (mode, sym), rep and rep["errors"])


def libc_without_debug_file():
    """A directory holding a copy of the process's libc.so.6 whose build ID
    names no debug file (its bytes inverted): only its .dynsym is read."""
    path = next(l.split()[-1] for l in open("/proc/self/maps") if l.rstrip().endswith("/libc.so.6"))
    with open(path, "rb") as f:
        data = bytearray(f.read())
    bid = t._build_id(bytes(data), t._elf_sections(bytes(data), path))
    at = data.find(bytes.fromhex(bid)) if bid else -1
    t.check(at > 0, "%s: no build ID" % path)
    data[at:at + len(bid) // 2] = bytes(b ^ 0xff for b in data[at:at + len(bid) // 2])
    out = os.path.join(t.work_dir(), "libc-nodebug")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "libc.so.6"), "wb") as f:
        f.write(data)
    return out


def cold_address():
    """mid.cold's address in sp_retsafe (ELF virtual address)."""
    s = t.Elf(RETSAFE).symbol("mid.cold")
    t.check(s is not None, "sp_retsafe has no mid.cold (not built with -freorder-blocks-and-partition?)")
    return s[0] if s else 0


# ---------------------------------------------------------------- programs

def programs():
    """sptest's real programs (shared with e2e_unchanged), and a C++ throw."""
    return t.real_programs() + [("C++ throw", [RETXX, "throw", "20"], None)]


# int3 mode traps at every probed entry and costs seconds per process with
# every libc function probed: its run keeps one spec and these programs
INT3_SET = ("true", "python subprocess", "bash [ ]", "C++ throw", "sqlite3")


def run_programs(mode, few, specs):
    progs = [p for p in programs() if not few or p[0] in INT3_SET]
    env = t.real_env()
    refs = {label: t.run(cmd, env=env, stdin=stdin) for label, cmd, stdin in progs}
    for spec in specs:
        for label, cmd, stdin in progs:
            cp, rep = t.run_probed(cmd, spec, mode, stdin=stdin, extra={"HOME": env["HOME"]})
            what = "%s [%s] (%s)" % (label, spec, mode)
            if same_run(what, cp, refs[label]) and rep:
                # no handler runs, so nothing nests: a missed hit is the
                # runtime's own libc call counted (its clock under latency)
                missed = [t.fmt_probe(e) for e in rep["probes"] if e["missed"]]
                t.check(not missed, "%s: %d probes count missed hits" % (what, len(missed)),
                        "\n".join(missed[:5]))
    pyargs = (["-c", "pass"], ["-c", "import json; print(json.dumps({'a': [1, 2.5]}))"])
    for args in pyargs if not few and LIBC_SPECS[0] in specs else ():
        ref = t.run([PY] + args)
        for spec in ("uretprobe:%s:_Py*" % PY, "usession:%s:*" % PY):
            cp, rep = t.run_probed([PY] + args, spec, mode)
            same_run("python3.11 %s [%s] (%s)" % (" ".join(args), spec, mode), cp, ref)


def main():
    t.require_build()
    args = sys.argv[1:]
    modes = [a for a in args if a in ("int3", "auto")] or ["auto", "int3"]
    parts = [a for a in args if a in ("rules", "programs", "few")] or ["rules", "programs"]
    specs = [s for s in LIBC_SPECS if s.split(":")[0] in args or s.endswith(tuple("=" + a for a in args))]
    specs = specs or (LIBC_SPECS[:1] if "few" in parts else LIBC_SPECS)
    for path in (RETSAFE, RETXX):
        if not os.path.exists(path):
            t.check(False, "missing build output %s" % path)
    if not os.path.exists(PY):
        t.skip("%s is not installed" % PY)
    for mode in modes:
        if "rules" in parts:
            rules(mode)
        if ("programs" in parts or "few" in parts) and os.path.exists(PY):
            run_programs(mode, "few" in parts, specs)
    t.finish()


if __name__ == "__main__":
    main()
