"""sptest — shared helpers of the end-to-end tests (python3, stdlib only).

Paths come from the environment CTest sets (tests/e2e/CMakeLists.txt):
  SP_BUILD   the build directory CTest runs from (wherever it is)
  SP_CLI     the launcher (build/bin/selfprobe)
  SP_LIB     the preload library (build/lib/libselfprobe.so)
  SP_TARGET  the target program (build/tests/sp_target)
  SP_KCOUNT  the kernel-uprobe oracle (build/bin/kcount)
  SP_WORK    a scratch directory for this test
Run by hand, they default to build/ at the repository's root, found from
this file's own location: never a fixed path (the checkout may be anywhere,
under any name; .ci/run proves it from a temporary clone).

A test calls check() for every assertion (it records and prints failures and
goes on, so one run shows every problem), and finish() at the end: exit 1 if
anything failed, else 77 (CTest's skip) if skip() was called, else 0.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys

BUILD = os.environ.get("SP_BUILD", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
LIB = os.environ.get("SP_LIB", os.path.join(BUILD, "lib/libselfprobe.so"))
TARGET = os.environ.get("SP_TARGET", os.path.join(BUILD, "tests/sp_target"))
KCOUNT = os.environ.get("SP_KCOUNT", os.path.join(BUILD, "bin/kcount"))
CLI = os.environ.get("SP_CLI", os.path.join(BUILD, "bin/selfprobe"))
SKIP = 77

_failures = []
_skips = []
_checks = 0
_work = None


def work_dir():
    """This test's scratch directory, emptied on first use."""
    global _work
    if _work is None:
        base = os.environ.get("SP_WORK") or os.path.join(
            "/tmp", "sp-e2e-%s-%d" % (os.path.basename(sys.argv[0]), os.getpid()))
        name = "-".join([os.path.splitext(os.path.basename(sys.argv[0]))[0]] + sys.argv[1:])
        _work = os.path.join(base, re.sub(r"[^A-Za-z0-9_.-]", "_", name))
        shutil.rmtree(_work, ignore_errors=True)
        os.makedirs(_work)
    return _work


def check(cond, what, detail="", lines=40):
    """Record one assertion; print it when it fails, with DETAIL's first
    LINES lines (None: all of them)."""
    global _checks
    _checks += 1
    if not cond:
        _failures.append(what)
        print("FAIL: %s" % what)
        if detail:
            for line in str(detail).rstrip("\n").split("\n")[:lines]:
                print("      " + line)
    return bool(cond)


def info(msg):
    print(msg)
    sys.stdout.flush()


def skip(reason):
    _skips.append(reason)
    print("SKIP: %s" % reason)


def finish():
    if _failures:
        print("\n%d of %d checks FAILED:" % (len(_failures), _checks))
        for f in _failures[:60]:
            print("  - " + f)
        sys.exit(1)
    if _skips:
        print("\n%d checks passed, but part of the test was skipped: %s"
              % (_checks, "; ".join(_skips)))
        sys.exit(SKIP)
    print("\nall %d checks passed" % _checks)
    sys.exit(0)


def require_build():
    """The files every test needs; a missing one is a failure, not a skip."""
    for path in (LIB, TARGET, KCOUNT):
        if not os.path.exists(path):
            check(False, "missing build output %s" % path)
    if _failures:
        finish()


def clip(data, n=2000):
    s = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    return s if len(s) <= n else s[:n] + "\n... (%d more chars)" % (len(s) - n)


# ---------------------------------------------------------------- running

def base_env():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("UPROBE_") or k == "LD_PRELOAD":
            del env[k]
    env["LC_ALL"] = "C"
    return env


def run(cmd, env=None, stdin=None, timeout=300, cwd=None, preexec_fn=None):
    """Run CMD (PREEXEC_FN called in the child before the exec); returns the
    CompletedProcess (bytes), with .pid set."""
    p = subprocess.Popen(cmd, env=env or base_env(), stdin=subprocess.PIPE, cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec_fn)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += b"\n[sptest: killed after %d s]" % timeout
    cp = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    cp.pid = p.pid
    return cp


def own_lines_removed(stderr):
    """STDERR without the runtime's own lines."""
    return b"".join(l for l in stderr.splitlines(True) if not l.startswith(b"selfprobe: "))


def probed_env(spec, mode=None, output=None, extra=None):
    env = base_env()
    env["LD_PRELOAD"] = LIB
    env["UPROBE_SPEC"] = spec
    if mode:
        env["UPROBE_MODE"] = mode
    if output:
        env["UPROBE_OUTPUT"] = output
    env.update(extra or {})
    return env


def run_probed(cmd, spec, mode="int3", stdin=None, output=None, extra=None, timeout=300):
    """Run CMD under the preload with a JSON report (unless OUTPUT is given).
    Returns (CompletedProcess, report dict or None)."""
    if output is None:
        run_probed.n = getattr(run_probed, "n", 0) + 1
        output = os.path.join(work_dir(), "report-%d.json" % run_probed.n)
    if os.path.exists(output):
        os.unlink(output)
    cp = run(cmd, probed_env(spec, mode, output, extra), stdin, timeout)
    report = None
    if output.endswith(".json") and "%p" not in output:
        report = load_report(output, "report of %s (spec %r)" % (" ".join(cmd), spec))
    return cp, report


def load_report(path, what):
    if not check(os.path.exists(path), "%s: no report written at %s" % (what, path)):
        return None
    text = read_utf8(path, what)
    try:
        report = json.loads(text)
    except ValueError as e:
        check(False, "%s: invalid JSON (%s)" % (what, e), clip(text))
        return None
    problems = schema_problems(report)
    check(not problems, "%s: does not follow the report schema" % what,
          "\n".join(problems[:20]) + "\n" + clip(text, 1500))
    return report if not problems else None


def read_utf8(path, what):
    """PATH's text.  JSON must be UTF-8 (RFC 8259: a parser may reject the
    whole file for one bad byte), so anything else is a failure here; the
    text is still returned, bad bytes replaced, for the other checks."""
    data = open(path, "rb").read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        check(False, "%s: not valid UTF-8 (%s)" % (what, e), repr(data[max(0, e.start - 80):e.end + 80]))
        return data.decode("utf-8", "replace")


# ---------------------------------------------------------------- report

PROBE_FIELDS = {
    "spec": (str,), "kind": (str,), "object": (str,), "symbol": (str, type(None)),
    "address": (str,), "mode": (str,), "patch": (str,), "reason": (str, type(None)), "action": (str,),
    "hits": (int,), "missed": (int,),
}
ERROR_FIELDS = {"spec": (str,), "message": (str,)}
_noted_extra = set()


def _typed(v, types):
    return isinstance(v, types) and not (isinstance(v, bool) and bool not in types)


def schema_problems(r):
    """The ways R differs from the documented JSON report (design.md,
    "Report").  Fields may be added by the contract: extras are noted once,
    not counted as problems."""
    p = []
    if not isinstance(r, dict):
        return ["top level is %s, not an object" % type(r).__name__]
    for k, t in (("version", (int,)), ("pid", (int,)), ("probes", (list,)), ("errors", (list,))):
        if k not in r:
            p.append("missing top-level field %r" % k)
        elif not _typed(r[k], t):
            p.append("top-level %r has type %s" % (k, type(r[k]).__name__))
    if p:
        return p
    if r["version"] != 1:
        p.append("version is %r, want 1" % r["version"])
    if r["pid"] <= 0:
        p.append("pid is %r" % r["pid"])
    extra = set(r) - {"version", "pid", "probes", "errors"}
    for i, e in enumerate(r["probes"]):
        p += _entry_problems("probes[%d]" % i, e, PROBE_FIELDS)
        if isinstance(e, dict) and not p:
            if e["kind"] not in ("uprobe", "uretprobe", "usession", "usdt"):
                p.append("probes[%d].kind is %r" % (i, e["kind"]))
            if e["mode"] not in ("jmp", "int3"):
                p.append("probes[%d].mode is %r" % (i, e["mode"]))
            if e["patch"] not in (("jmp5", "hop") if e["mode"] == "jmp" else ("int3",)):
                p.append("probes[%d].patch is %r with mode %r" % (i, e["patch"], e["mode"]))
            if not re.fullmatch(r"0x[0-9a-fA-F]+", e["address"]):
                p.append("probes[%d].address is %r" % (i, e["address"]))
            if e["hits"] < 0 or e["missed"] < 0:
                p.append("probes[%d] has negative counts" % i)
            extra |= {"probes[]." + k for k in set(e) - set(PROBE_FIELDS)}
    for i, e in enumerate(r["errors"]):
        p += _entry_problems("errors[%d]" % i, e, ERROR_FIELDS)
        if isinstance(e, dict) and not p:
            if not e["message"]:
                p.append("errors[%d].message is empty" % i)
            extra |= {"errors[]." + k for k in set(e) - set(ERROR_FIELDS)}
    new = extra - _noted_extra
    if new:
        info("note: report has fields beyond the contract (allowed): %s" % ", ".join(sorted(new)))
        _noted_extra.update(new)
    return p


def _entry_problems(where, e, fields):
    if not isinstance(e, dict):
        return ["%s is %s, not an object" % (where, type(e).__name__)]
    p = []
    for k, t in fields.items():
        if k not in e:
            p.append("%s: missing field %r" % (where, k))
        elif not _typed(e[k], t):
            p.append("%s.%s has type %s" % (where, k, type(e[k]).__name__))
    return p


def probes_by(report, key):
    """{report entry's KEY: [entries]}."""
    out = {}
    for e in (report or {}).get("probes", []):
        out.setdefault(e.get(key), []).append(e)
    return out


def fmt_probe(e):
    return "%s sym=%s addr=%s mode=%s reason=%r hits=%s missed=%s" % (
        e.get("spec"), e.get("symbol"), e.get("address"), e.get("mode"), e.get("reason"),
        e.get("hits"), e.get("missed"))


# ---------------------------------------------------------------- target

def target_counts(stdout):
    """sp_target's "name calls" lines → {name: calls}."""
    counts = {}
    for line in stdout.decode().splitlines():
        name, _, n = line.partition(" ")
        if n.isdigit():
            counts[name] = int(n)
    return counts


def target_plain(args):
    """sp_target ARGS unprobed: (CompletedProcess, its counts).  A failing
    unprobed run ends the test: nothing probed could be compared with it."""
    cp = run([TARGET] + args)
    if not check(cp.returncode == 0 and not cp.stderr,
                 "unprobed sp_target %s: exit %d" % (" ".join(args), cp.returncode), clip(cp.stderr)):
        finish()
    return cp, target_counts(cp.stdout)


# ---------------------------------------------------------------- kernel

_kernel = None


def kernel_uprobes():
    """(True, "") when kcount --check passes, else (False, reason)."""
    global _kernel
    if _kernel is None:
        cp = run([KCOUNT, "--check"])
        reason = (cp.stdout + cp.stderr).decode(errors="replace").strip()
        reason = reason.replace("kernel uprobes unavailable: ", "")
        _kernel = (cp.returncode == 0, reason or "kcount --check exited %d" % cp.returncode)
    return _kernel


def kcount(probes, cmd, stdin=None, timeout=300, env=None, cwd=None, flags=()):
    """Count PROBES (kcount syntax) over CMD with kernel uprobes; FLAGS: more
    kcount options (--multi, --perf).
    Returns (CompletedProcess, {probe: count}) or (cp, None) on failure."""
    kcount.n = getattr(kcount, "n", 0) + 1
    out = os.path.join(work_dir(), "kcount-%d.txt" % kcount.n)
    args = [KCOUNT, "-o", out] + list(flags)
    for p in probes:
        args += ["-u", p]
    cp = run(args + ["--"] + cmd, env=env, stdin=stdin, timeout=timeout, cwd=cwd)
    if not os.path.exists(out):
        check(False, "kcount produced no counts for %s (exit %d)" % (" ".join(cmd), cp.returncode),
              clip(cp.stderr))
        return cp, None
    counts = {}
    for line in open(out):
        probe, _, n = line.rstrip("\n").rpartition(" ")
        counts[probe] = int(n)
    return cp, counts


# ---------------------------------------------------------------- ELF

STT_GNU_IFUNC = 10


DEBUG_ROOT = "/usr/lib/debug"


def _elf_sections(data, path):
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("%s: not a little-endian ELF64 file" % path)
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    (shentsize, shnum) = struct.unpack_from("<HH", data, 0x3a)
    return [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]


def _elf_functions(data, secs, want):
    """[(name, value, size, type, bind, hidden)] of the function symbols in
    the symbol tables of types WANT (2 SHT_SYMTAB, 11 SHT_DYNSYM).  hidden:
    a .dynsym entry of a non-default version (its .gnu.version entry has
    bit 15), which dlsym does not return."""
    versym = next((s for s in secs if s[1] == 0x6fffffff), None)    # SHT_GNU_versym
    out = []
    for (_n, stype, _fl, _a, off, size, link, _i, _al, entsize) in secs:
        if stype not in want or not entsize:
            continue
        stroff = secs[link][4]
        for j in range(size // entsize):
            (name, st_info, _o, shndx, value, ssize) = struct.unpack_from(
                "<IBBHQQ", data, off + j * entsize)
            if shndx == 0 or value == 0 or (st_info & 0xf) not in (2, STT_GNU_IFUNC):
                continue
            end = data.index(b"\0", stroff + name)
            hidden = (stype == 11 and versym is not None and
                      struct.unpack_from("<H", data, versym[4] + 2 * j)[0] & 0x8000 != 0)
            out.append((data[stroff + name:end].decode(errors="replace"), value, ssize,
                        st_info & 0xf, st_info >> 4, hidden))
    return out


def _build_id(data, secs):
    for s in secs:
        if s[1] != 7:                                     # SHT_NOTE
            continue
        d, pos = data[s[4]:s[4] + s[5]], 0
        while pos + 12 <= len(d):
            namesz, descsz, ntype = struct.unpack_from("<III", d, pos)
            desc_at = pos + 12 + ((namesz + 3) & ~3)
            if ntype == 3 and d[pos + 12:pos + 12 + namesz].rstrip(b"\0") == b"GNU":
                return d[desc_at:desc_at + descsz].hex()
            pos = desc_at + ((descsz + 3) & ~3)
    return None


class Elf:
    """The little of an ELF64 file the tests need: PT_LOAD segments and
    function symbols.

    syms: {name: (value, size, type, bind)} from .symtab and .dynsym, one
    per name (a global beats a local, dlsym's default version beats another).
    functions: every function symbol the runtime reads (runtime/core/elfsym.c):
    the file's .symtab, else that of the separate debug file named by its
    build-id (Debian's -dbg packages), and .dynsym less the non-default
    versions of names that have a default one; debug_path names the debug
    file used, or is None."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        secs = _elf_sections(data, path)
        (phoff,) = struct.unpack_from("<Q", data, 0x20)
        (phentsize, phnum) = struct.unpack_from("<HH", data, 0x36)
        self.loads = []
        for i in range(phnum):
            (ptype, flags, off, vaddr, _pa, filesz, memsz, _al) = struct.unpack_from(
                "<IIQQQQQQ", data, phoff + i * phentsize)
            if ptype == 1:
                self.loads.append((vaddr, memsz, off, filesz, flags))
        own = _elf_functions(data, secs, (2, 11))
        self.syms = {}
        for (name, value, size, stype, bind, hidden) in own:
            old = self.syms.get(name)
            if old is None or (old[3] == 0 and bind != 0) or (old[4] and not hidden):
                self.syms[name] = (value, size, stype, bind, hidden)
        dyn = _elf_functions(data, secs, (11,))
        defaults = {f[0] for f in dyn if not f[5] and f[4] != 0}
        dyn = [f for f in dyn if not (f[5] and f[0] in defaults)]
        tab = _elf_functions(data, secs, (2,))
        self.debug_path = None
        bid = None if tab else _build_id(data, secs)
        if bid:
            dpath = os.path.join(DEBUG_ROOT, ".build-id", bid[:2], bid[2:] + ".debug")
            if os.path.exists(dpath):
                with open(dpath, "rb") as f:
                    ddata = f.read()
                tab = _elf_functions(ddata, _elf_sections(ddata, dpath), (2,))
                self.debug_path = dpath
        self.functions = [(f[0], f[1], f[3] == STT_GNU_IFUNC) for f in tab + dyn]

    def symbol(self, name):
        """(vaddr, size, is_ifunc) or None."""
        s = self.syms.get(name)
        return None if s is None else (s[0], s[1], s[2] == STT_GNU_IFUNC)

    def vaddr_to_offset(self, vaddr, text_only=True):
        for (va, memsz, off, filesz, flags) in self.loads:
            if va <= vaddr < va + filesz and (flags & 1 or not text_only):
                return vaddr - va + off
        return None


def sql_workload(rows, selects=None):
    """sqlite3 statements on a table of ROWS generated rows: inserts in a
    transaction, aggregates, updates, deletes, a join, a recursive CTE, then
    SELECTS counts by group (ROWS // 15 unless given)."""
    s = ["CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL, grp INTEGER);",
         "CREATE INDEX t_grp ON t(grp);", "BEGIN;"]
    for i in range(rows):
        s.append("INSERT INTO t(name, v, grp) VALUES('name-%d', %d.25, %d);" % (i, (i * 7919) % 1000, i % 17))
    s += ["COMMIT;",
          "SELECT grp, count(*), sum(v), min(name), max(name) FROM t GROUP BY grp ORDER BY grp;",
          "UPDATE t SET v = v * 2 WHERE grp IN (1, 3, 5);",
          "DELETE FROM t WHERE id % 11 = 0;",
          "CREATE TABLE u AS SELECT grp, group_concat(id) AS ids FROM t GROUP BY grp;",
          "SELECT grp, length(ids) FROM u ORDER BY grp;",
          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) "
          "SELECT sum(x), count(*) FROM c;",
          "SELECT name FROM t WHERE name LIKE 'name-1%' ORDER BY v DESC, id LIMIT 20;",
          "SELECT count(*) FROM t a JOIN t b ON a.grp = b.grp AND a.id < b.id WHERE a.id < 300;"]
    for i in range(rows // 15 if selects is None else selects):
        s.append("SELECT %d, count(*) FROM t WHERE grp = %d;" % (i, i % 17))
    return ("\n".join(s) + "\n").encode()


def sort_input(n, seed=12345):
    """A file of N deterministic pseudo-random lines (a fixed LCG) for sort."""
    x, lines = seed, []
    for i in range(n):
        x = (x * 1103515245 + 12345) % (1 << 31)
        lines.append("%08x %d line-%d\n" % (x, x % 977, i))
    path = os.path.join(work_dir(), "sort-input-%d-%d.txt" % (seed, n))
    with open(path, "w") as f:
        f.writelines(lines)
    return path


# ---------------------------------------------------------------- real programs

PY311 = "/usr/bin/python3.11"


def _git_repo(path):
    """A repository at PATH with one commit and an untracked file."""
    if os.path.isdir(os.path.join(path, ".git")):
        return
    env = dict(real_env(), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    for cmd in (["git", "init", "-q", path], ["git", "-C", path, "commit", "-q", "--allow-empty", "-m", "x"]):
        run(cmd, env=env)
    with open(os.path.join(path, "new.txt"), "w") as f:
        f.write("new\n")


def real_env(env=None):
    """ENV (default base_env()) for the real programs: HOME is this test's
    work directory, so git and the shells read no user configuration."""
    env = dict(env or base_env())
    env["HOME"] = work_dir()
    return env


# ---------------------------------------------------------------- Go

GO_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "go")


def go_tool():
    """The go command (Debian's golang-go: /usr/lib/go-1.19/bin/go, linked
    as /usr/bin/go), or None."""
    for g in (shutil.which("go"), "/usr/lib/go/bin/go", "/usr/lib/go-1.19/bin/go"):
        if g and os.access(g, os.X_OK):
            return g
    return None


def go_build(name, static=False, out=None):
    """tests/go/NAME built into this test's work directory (cgo, so
    dynamically linked and reachable by the preload; STATIC: CGO_ENABLED=0,
    a static executable), or None after a skip when golang-go is missing.
    Go's build cache is the build tree's (tests/cache/go-build)."""
    go = go_tool()
    if not go:
        skip("golang-go is not installed (.ci/deps installs it): no Go program")
        return None
    out = out or os.path.join(work_dir(), name + ("-static" if static else ""))
    if os.path.exists(out):
        return out
    env = base_env()
    env.update(GOCACHE=os.path.join(os.path.abspath(BUILD), "tests", "cache", "go-build"),
               GOPATH=os.path.join(work_dir(), "gopath"), GOFLAGS="-mod=mod", GO111MODULE="on",
               CGO_ENABLED="0" if static else "1", GOTOOLCHAIN="local")
    cp = run([go, "build", "-o", out, "."], env=env, cwd=os.path.join(GO_SRC, name), timeout=600)
    if not check(cp.returncode == 0 and os.path.exists(out), "go build of tests/go/%s" % name,
                 clip(cp.stdout + cp.stderr)):
        return None
    return out


def go_disasm(prog, func):
    """FUNC's instructions in the Go program PROG, as `go tool objdump`
    prints them: [(address, code bytes, text)], e.g. (0x487fa6,
    b"\\xff\\x24\\xc1", "JMP 0(CX)(AX*8)"); [] after a failure check."""
    go = go_tool()
    cp = run([go, "tool", "objdump", "-s", "^%s$" % re.escape(func), prog], env=base_env())
    out = []
    for line in cp.stdout.decode("utf-8", "replace").splitlines():
        f = line.split("\t")
        f = [x.strip() for x in f if x.strip()]
        if len(f) >= 4 and f[1].startswith("0x"):
            out.append((int(f[1], 16), bytes.fromhex(f[2]), f[3]))
    check(cp.returncode == 0 and out, "go tool objdump of %s in %s" % (func, prog), clip(cp.stderr))
    return out


def go_rets(prog, func):
    """The addresses of FUNC's RET instructions in the Go program PROG."""
    return [a for a, code, _ in go_disasm(prog, func) if code[:1] in (b"\xc3", b"\xc2")]


def go_table_jmp(prog, func):
    """FUNC's indirect jmp through a jump table (go1.19's switch: JMP
    0(CX)(AX*8)) in the Go program PROG, as go tool objdump shows it, or None."""
    return next((text for _, code, text in go_disasm(prog, func)
                 if code[:1] == b"\xff" and text.startswith("JMP") and "(" in text), None)


def real_programs():
    """The real programs the tests run probed and compare, byte for byte,
    with their unprobed run (e2e_unchanged, e2e_retall): [(label, cmd,
    stdin)], to run with real_env() (or extra={"HOME": work_dir()}).  Their
    files are made once in this test's work directory; a tool that is not
    installed is a skip.  Deterministic: the same output every run."""
    w = work_dir()
    # two levels down: reports written to the work directory change its
    # time, which ls -la would show for ".."
    listing = os.path.join(w, "listing", "files")
    if not os.path.isdir(listing):
        os.makedirs(listing)
        for i in range(40):
            with open(os.path.join(listing, "f%02d" % i), "wb") as f:
                f.write(b"y" * i)
    posix = os.path.join(w, "tests.sh")
    with open(posix, "w") as f:
        f.write('x=abc; n=3\n'
                'if [ "$x" = abc ] && [ $n -gt 2 ] && [ -n "$x" ] && [ ! -z "$x" ]; then echo ok1; fi\n'
                '[ -d / ] && [ -f /etc/passwd ] && echo ok2\n'
                'for i in 1 2 3; do [ $i -eq 2 ] && echo two; done\n'
                'test "$(echo a b | wc -w)" -eq 2 && echo ok3\n')
    bash = os.path.join(w, "tests.bash")
    with open(bash, "w") as f:
        f.write('X=""\n[ -n "$X" ] && echo nonempty\n[ -z "$X" ] && echo empty\n'
                '[ "a" = "a" ] && echo eq\nif [ 3 -lt 5 ]; then echo lt; fi\n'
                'test -d / && echo dir\n[[ $X == "" ]] && echo dbl\n'
                'for i in 1 2 3; do [ $i -eq 2 ] && echo two; done\n'
                'v=$(echo sub); echo "$v"; exit 3\n')
    progs = [
        ("ls", ["ls", "-la", listing], None),
        ("ls /usr/bin", ["ls", "-la", "/usr/bin"], None),
        ("true", ["/bin/true"], None),
        ("sh [ ]", ["sh", posix], None),
        ("bash [ ]", ["bash", bash], None),
    ]
    if os.path.exists(PY311):
        progs += [
            ("python", [PY311, "-c", "pass"], None),
            ("python subprocess", [PY311, "-c", "import subprocess, sys; r = subprocess.run(['true']); "
                                   "print(subprocess.getoutput('echo hi; ls /nonexistent'), r.returncode)"], None),
        ]
    else:
        skip("%s is not installed" % PY311)
    if shutil.which("git"):
        repo = os.path.join(w, "repo")
        _git_repo(repo)
        progs.append(("git status", ["git", "-C", repo, "status"], None))
    else:
        skip("git is not installed")
    gop = go_build("sp_go")   # Go: goroutines, stack copies, panics, cgo, os.Exit
    if gop:
        progs.append(("go", [gop, "quick"], None))
    data = b"".join(b"line %d of the sample, %s\n" % (i, b"x" * (i % 37)) for i in range(3000))
    for tool in ("perl", "sqlite3", "zstd", "xz"):
        if not shutil.which(tool):
            skip("%s is not installed" % tool)
        elif tool == "perl":
            progs.append(("perl", ["perl", "-e", 'my %h; $h{$_} = $_ * 2 for 1..2000; '
                                   'my @k = sort { $a <=> $b } keys %h; printf("%d %d %.4f\\n", '
                                   '$k[-1], $h{500}, sqrt(2)); print join(",", map { uc } qw(a b)), "\\n";'],
                          None))
        elif tool == "sqlite3":
            progs.append(("sqlite3", ["sqlite3", ":memory:"], sql_workload(400)))
        else:
            packed = run([tool, "-q", "-c"], stdin=data).stdout
            progs.append((tool, [tool, "-q", "-c"], data))
            progs.append((tool + " -d", [tool, "-d", "-q", "-c"], packed))
            if tool == "xz":   # a pipeline: three processes
                progs.append(("xz pipeline", ["sh", "-c", "xz -6 -c %s | xz -dc | sha256sum"
                                              % sort_input(20000)], None))
    return progs


# ---------------------------------------------------------------- USDT notes

class Notes:
    """The stapsdt notes of an ELF64 file, with what kcount needs: each
    site's file offset and its semaphore's file offset."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            data = f.read()
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        (shentsize, shnum, shstrndx) = struct.unpack_from("<HHH", data, 0x3a)
        secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
        names_off = secs[shstrndx][4]

        def sec_name(s):
            return data[names_off + s[0]:data.index(b"\0", names_off + s[0])].decode()

        self.loads = []
        (phoff,) = struct.unpack_from("<Q", data, 0x20)
        (phentsize, phnum) = struct.unpack_from("<HH", data, 0x36)
        for i in range(phnum):
            (ptype, flags, off, vaddr, _pa, filesz, _memsz, _al) = struct.unpack_from(
                "<IIQQQQQQ", data, phoff + i * phentsize)
            if ptype == 1:
                self.loads.append((vaddr, filesz, off, flags))
        base_addr = None
        for s in secs:
            if sec_name(s) == ".stapsdt.base":
                base_addr = s[3]
        self.notes = []       # dicts: provider, name, pc, sem, args
        self.objects = {}     # dynsym OBJECT symbols: name -> vaddr
        for s in secs:
            if s[1] == 7 and sec_name(s) == ".note.stapsdt":
                self._parse_notes(data[s[4]:s[4] + s[5]], base_addr)
            if s[1] == 11:     # SHT_DYNSYM
                self._parse_objects(data, s, secs[s[6]][4])

    def _parse_notes(self, d, base_addr):
        pos = 0
        while pos + 12 <= len(d):
            namesz, descsz, ntype = struct.unpack_from("<III", d, pos)
            name = d[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            desc_at = pos + 12 + ((namesz + 3) & ~3)
            desc = d[desc_at:desc_at + descsz]
            pos = desc_at + ((descsz + 3) & ~3)
            if name != b"stapsdt" or ntype != 3:
                continue
            pc, base, sem = struct.unpack_from("<QQQ", desc, 0)
            provider, pname, args = desc[24:].split(b"\0")[:3]
            if base_addr is not None:    # prelinked or moved: correct as the runtime does
                pc += base_addr - base
                if sem:
                    sem += base_addr - base
            self.notes.append({"provider": provider.decode(), "name": pname.decode(),
                               "pc": pc, "sem": sem, "args": args.decode()})

    def _parse_objects(self, data, s, stroff):
        off, size, entsize = s[4], s[5], s[9]
        for j in range(size // entsize):
            (name, info, _o, shndx, value, _sz) = struct.unpack_from("<IBBHQQ", data, off + j * entsize)
            if shndx and (info & 0xf) == 1:   # STT_OBJECT
                n = data[stroff + name:data.index(b"\0", stroff + name)].decode()
                self.objects[n] = value

    def offset(self, vaddr, executable):
        for (va, filesz, off, flags) in self.loads:
            if va <= vaddr < va + filesz and bool(flags & 1) == executable:
                return vaddr - va + off
        return None

    def find(self, provider, name):
        return [n for n in self.notes if n["provider"] == provider and n["name"] == name]

    def kprobe(self, note):
        """kcount's PROBE for NOTE: the site, and the semaphore as ref_ctr."""
        p = "%s:%#x" % (self.path, self.offset(note["pc"], True))
        if note["sem"]:
            p += ":ref=%#x" % self.offset(note["sem"], False)
        return p
