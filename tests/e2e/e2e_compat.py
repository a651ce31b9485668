#!/usr/bin/python3
"""e2e_compat — real Debian programs with broad probes, against the kernel.

  e2e_compat.py [CASE]...      (default: every case; see CASES)

Each case is a program run as one or more steps (commands) in a directory
of generated inputs (a fixed seed), with one spec:

  sqlite3   a generated SQL workload on a database file   uprobe:libsqlite3:*
  xz        compress, test, decompress a file               uprobe:liblzma:*
  git       init, add, commit (twice), gc, log, cat-file    uprobe:libz:*
  python    python3.11 running a generated script           usdt:python:function__entry
  sort      sort a generated file                           uprobe:libc:*
  ls        ls -lan of a generated tree                     uprobe:libc:*
  tar       create an archive of a generated tree, list it  uprobe:libc:*

Every case runs unprobed, under kernel uprobes (kcount: BPF uprobe_multi
links, counting, following children), and under the preload in UPROBE_MODE
auto, int3 and jmp, every variant on the same inputs (INPUTS).  Checked:

- every step's exit status, stdout and stderr (less the runtime's
  "selfprobe:" lines) equal the unprobed run's, and so do the files the case
  produces (the database, the .xz, git's objects and refs, the archive);
- the probed sites are exactly the ones the spec names, computed here from
  the ELF file (the object's .symtab, or its build-id debug file's, and
  .dynsym; IFUNCs as the dynamic linker resolves them in this process) or
  its stapsdt notes: each site is either probed in every process or named
  by an error of the report, whose message is printed;
- per site, the hits summed over every process of every step are the same
  in the three modes, and equal to the kernel's count on every site (see
  KERNEL_SITES for the exceptions).

INPUTS: a case's inputs are made once, in one directory where every
variant runs; between variants everything a step made is removed and the
inputs' times are put back, so each variant reads the same files with the
same inode numbers (checked before its steps run).  Fresh copies per
variant got whatever inode numbers the filesystem handed out, and a
program's calls may depend on them: ls -R keeps the directories it is
listing in a hash table of 37 buckets keyed by inode number, and two of
them in one bucket cost one more malloc and free (an overflow entry, freed
at exit).  With other processes creating files meanwhile, the kernel's run
and a mode's now and then differed by that one pair (ls, int3: malloc and
free one more than the kernel's).

Processes: UPROBE_OUTPUT=DIR/r-%p.json gives one report per process that
exits (git gc runs seven git children); a fork child that execs writes none,
which loses nothing here: the only code such a child runs before its exec is
libc's, and the libc cases do not fork.  Sites are keyed by their ELF
address (report address less the load base), so processes add up.

The kernel counts every site that a mode probed: kcount's uprobe_multi
backend takes libc:* (3600 sites) in one link per process, a few seconds a
program.  KERNEL_SITES: only when that backend is unavailable (before Linux
6.6, `kcount --check --multi` fails; the output says so) does the kernel
count a subset through perf events, which cost 0.1-0.35 s each (most of it
at close: the kernel waits for an RCU-tasks grace period per event, under a
global mutex), one per probe per task: libc:* would take 10-20 minutes per
program.  The subset: every site where the modes disagree, then up to
KERNEL_SITES sites drawn with a fixed seed from those hit (in the auto run)
and a few never hit; the three modes agree with each other on every site,
and these with the kernel.

Sites the kernel is not asked to count: those whose first instruction is
EVEX-encoded (Spec.kernel_safe: the kernel single-steps them wrongly, for
uprobe_multi links as for perf events) or has a prefix the kernel's uprobes
refuse (LOCK, segment overrides).
Differences that the preload's presence explains (EXPLAINED: libc's
allocator internals, __unregister_atfork per loaded object at exit) are
printed as notes; every other difference fails.

Skipped (exit 77, "SKIP:") only for the kernel part, when `kcount --check`
fails; a program that is missing is a failure (.ci/deps installs them).

  go        tests/go/sp_go (goroutines, stack copies, panics, a jump-table
            switch)        uprobe and uretprobe on main.* functions (GO_*)

Go is compared otherwise: a kernel uretprobe swaps the return address,
which Go's stack copying and tracebacks reject, so the kernel counts only
with uprobes.  Our entry probe (past the stack check) against the kernel's
uprobe on that same instruction; our uretprobe's returns against the sum of
the kernel's uprobes on every RET of the function (go tool objdump's), and
its `lost` against the kernel's entries less those returns (frames a panic
unwound).  Modes auto and int3 must agree, with exit status and stdout as
unprobed.  Skipped when golang-go is not installed (sptest.go_build) or
kernel uprobes are unavailable, as above.
"""
import ctypes
import fnmatch
import glob
import hashlib
import json
import os
import random
import re
import shutil
import stat
import sys
import time

import sptest as t

MODES = ("auto", "int3", "jmp")
PYTHON = "/usr/bin/python3.11"     # by path: a python3.11 on PATH may be a wrapper script
KERNEL_SITES = 14                  # per case, without uprobe_multi only: see above
# libc functions whose counts may differ from the kernel's and between modes
# because the preload is in the process (not because a hit is lost): their
# differences are printed as notes, not failures.
EXPLAINED = [
    # called from malloc/free/realloc only, on paths that depend on the
    # heap's state: the runtime shares the application's heap (its own
    # allocations are not counted, but they change which chunks exist)
    (re.compile(r"^(_int_\w+|alloc_perturb|unlink_chunk(\.\w+)*|malloc_consolidate|sysmalloc\w*(\.\w+)*|"
                r"systrim(\.\w+)*|tcache_\w+(\.\w+)*|ptmalloc_init(\.\w+)*|mremap_chunk|munmap_chunk|"
                r"arena_get2(\.\w+)*|__default_morecore|__GI___default_morecore)$"),
     "allocator internal", None),
    # libc's start, before any constructor runs (the preload attaches in
    # the first one, as early as a preload can): the kernel counts from
    # execve.  Only fewer hits are explained so.
    (re.compile(r"^(__libc_early_init|__pthread_tunables_init|__lll_elision_init|(__GI_)?__getrandom|"
                r"(__GI_)?__getrlimit|__brk|(__GI_)?__sbrk|(__GI_)?__mmap|(__GI_)?__munmap)$"),
     "process start, before the first constructor", "fewer"),
    # at exit, __cxa_finalize runs for every shared object, the preload's
    # own (libselfprobe.so and the libraries it links) included
    (re.compile(r"^((__GI_)?__unregister_atfork|(__GI_)?__cxa_finalize)$"), "per loaded object at exit", "more"),
]
LEGACY_PREFIXES = b"\xf0\xf2\xf3\x2e\x36\x3e\x26\x64\x65\x66\x67"
KERNEL_BAD_PREFIXES = b"\xf0\x2e\x36\x3e\x26"     # LOCK, CS, SS, DS, ES
KERNEL_COLD = 4                    # of them never hit
SEED = 20240611

GIT_ENV = {"GIT_AUTHOR_NAME": "Sp Test", "GIT_AUTHOR_EMAIL": "sp@example.org",
           "GIT_COMMITTER_NAME": "Sp Test", "GIT_COMMITTER_EMAIL": "sp@example.org",
           "GIT_AUTHOR_DATE": "@1700000000 +0000", "GIT_COMMITTER_DATE": "@1700000000 +0000",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"}
# single-threaded packing: deltas found by several threads depend on timing
GIT = ["git", "-c", "pack.threads=1", "-c", "gc.autoDetach=false", "-c", "maintenance.auto=false",
       "-c", "core.fsync=none", "-c", "init.defaultBranch=main"]


# ---------------------------------------------------------------- inputs

def rng_lines(rnd, n, words):
    return "".join(" ".join(rnd.choice(words) for _ in range(1 + rnd.randrange(12))) + "\n"
                   for _ in range(n))


WORDS = ["alpha", "beta", "gamma", "delta", "probe", "kernel", "trap", "jump", "site",
         "count", "libc", "zlib", "lzma", "sqlite", "tar", "sort", "0", "17", "4242"]


def tree(d, rnd, dirs, files):
    """DIRS directories of FILES generated text files under D, fixed mtimes."""
    for i in range(dirs):
        sub = os.path.join(d, "d%02d" % i)
        os.makedirs(sub)
        for j in range(files):
            p = os.path.join(sub, "f%03d.txt" % j)
            with open(p, "w") as f:
                f.write(rng_lines(rnd, 1 + rnd.randrange(80), WORDS))
            os.utime(p, (1700000000 + j, 1700000000 + j))
        os.utime(sub, (1700000000, 1700000000))
    os.utime(d, (1700000000, 1700000000))


def setup_xz(d, rnd):
    with open(os.path.join(d, "data.txt"), "w") as f:
        f.write(rng_lines(rnd, 30000, WORDS))


def setup_git(d, rnd):
    tree(os.path.join(d, "repo"), rnd, 4, 25)


def setup_tree(d, rnd):
    tree(os.path.join(d, "tree"), rnd, 6, 30)


PY_SCRIPT = r'''
import json, re, collections, hashlib
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def words(k):
    return ["w%d" % (i * 7919 % 997) for i in range(k)]
class Acc:
    def __init__(self):
        self.c = collections.Counter()
    def add(self, w):
        self.c[w] += 1
a = Acc()
for w in words(3000):
    a.add(w)
print(fib(16), len(a.c), a.c.most_common(2))
d = json.loads(json.dumps({"k%d" % i: [i, str(i)] for i in range(300)}))
print(len(d), hashlib.sha256(repr(sorted(d)).encode()).hexdigest()[:16])
print(len(re.findall(r"w1\d\b", " ".join(words(2000)))))
def gen(k):
    yield k
    yield k + 1
for i in range(300):       # 3.11 fires function__entry when close() resumes a generator
    g = gen(i)
    next(g)
    g.close()
'''


def setup_python(d, rnd):
    with open(os.path.join(d, "work.py"), "w") as f:
        f.write(PY_SCRIPT)


def setup_sort(d, rnd):
    shutil.copy(t.sort_input(8000, SEED), os.path.join(d, "input.txt"))


def setup_sqlite(d, rnd):
    pass


class Case:
    def __init__(self, name, spec, setup, steps, products=(), env=None, kernel_sites=KERNEL_SITES):
        self.name, self.spec, self.setup, self.steps = name, spec, setup, steps
        self.products, self.env, self.kernel_sites = products, env or {}, kernel_sites
        self.inputs = None       # {path: os.lstat} as setup made them (fresh_dir)
        self.ref_inputs = None   # inputs_seen() by the unprobed run (check_inputs)


CASES = [
    Case("sqlite3", "uprobe:libsqlite3:*", setup_sqlite,
         [(["sqlite3", "db.sqlite"], t.sql_workload(600)),
          (["sqlite3", "db.sqlite", "PRAGMA integrity_check; SELECT count(*), sum(v) FROM t;"], None)],
         products=["db.sqlite"]),
    Case("xz", "uprobe:liblzma:*", setup_xz,
         [(["xz", "-6", "-T1", "-k", "data.txt"], None),
          (["xz", "-t", "data.txt.xz"], None),
          (["xz", "-d", "-c", "data.txt.xz"], None)],
         products=["data.txt.xz"]),
    Case("git", "uprobe:libz:*", setup_git,
         [(GIT + ["init", "-q", "repo"], None),
          (GIT + ["-C", "repo", "add", "d00", "d01"], None),
          (GIT + ["-C", "repo", "commit", "-q", "-m", "first"], None),
          (GIT + ["-C", "repo", "add", "."], None),
          (GIT + ["-C", "repo", "commit", "-q", "-m", "second"], None),
          (GIT + ["-C", "repo", "gc", "-q"], None),
          (GIT + ["-C", "repo", "log", "--stat", "--format=%H %s"], None),
          (GIT + ["-C", "repo", "cat-file", "-p", "HEAD:d02/f007.txt"], None)],
         products=["repo/.git/objects/**", "repo/.git/refs/**", "repo/.git/packed-refs",
                   "repo/.git/HEAD"],
         env=GIT_ENV, kernel_sites=6),      # 15 processes: 6 sites are 90 events
    Case("python", "usdt:python:function__entry", setup_python,
         [([PYTHON, "work.py"], None)], env={"PYTHONHASHSEED": "0"}),
    Case("sort", "uprobe:libc:*", setup_sort,
         # one thread: with several, how often sort's threads wait on their
         # condition variables (and so enter libc's cleanup handlers) depends
         # on scheduling, and no two runs count the same
         [(["sort", "--parallel=1", "-o", "sorted.txt", "input.txt"], None),
          (["sort", "-c", "sorted.txt"], None)],
         products=["sorted.txt"]),
    Case("ls", "uprobe:libc:*", setup_tree,
         [(["ls", "-lanR", "--time-style=+%s", "tree"], None)]),
    Case("tar", "uprobe:libc:*", setup_tree,
         [(["tar", "-cf", "a.tar", "--sort=name", "--mtime=@1700000000", "--owner=0",
            "--group=0", "--numeric-owner", "--format=gnu", "tree"], None),
          (["tar", "-tvf", "a.tar"], None)],
         products=["a.tar"]),
]


def case_dir(case):
    return os.path.join(t.work_dir(), case.name, "run")


def tree_stat(d):
    """{path relative to D ("" for D): os.lstat} of D and everything under it."""
    out = {"": os.lstat(d)}
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            out[os.path.relpath(p, d)] = os.lstat(p)
    return out


def inputs_seen(d):
    """{path: identity} of what D holds before a variant's steps run: the
    inputs as a program may see them, inode numbers included (ls -R hashes
    directories by them, see INPUTS), a file's size and mtime."""
    def identity(st):
        if stat.S_ISDIR(st.st_mode):
            return (st.st_ino, "dir", st.st_mtime_ns)
        return (st.st_ino, stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
    return {rel: identity(st) for rel, st in tree_stat(d).items()}


def check_inputs(label, case, d):
    """The variant LABEL starts on exactly the inputs the unprobed run read."""
    seen = inputs_seen(d)
    if case.ref_inputs is None:
        case.ref_inputs = seen
        return
    diff = sorted(rel or "." for rel in set(seen) | set(case.ref_inputs)
                  if seen.get(rel) != case.ref_inputs.get(rel))
    t.check(not diff, "%s: %d inputs are not the ones the unprobed run read (another inode number, "
            "size or time): the counts may differ for that reason alone (see INPUTS)"
            % (label, len(diff)), "\n".join(diff[:20]))


def fresh_dir(case):
    """CASE's directory holding its inputs and nothing else: the same
    directory and the same files (inode numbers included) for every variant
    (see INPUTS).  Made once; afterwards everything a step made is removed
    and the inputs' times are put back."""
    d = case_dir(case)
    if case.inputs is None:
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        case.setup(d, random.Random(SEED))
        os.utime(d, (1700000000, 1700000000))
        case.inputs = tree_stat(d)
        return d
    for root, dirs, files in os.walk(d, topdown=False):
        for n in files + dirs:
            p = os.path.join(root, n)
            if os.path.relpath(p, d) not in case.inputs:
                # children first (bottom-up): a directory made by a step is empty here
                os.rmdir(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
    now = tree_stat(d)
    for rel, st in case.inputs.items():
        if rel in now and (now[rel].st_atime_ns, now[rel].st_mtime_ns) != (st.st_atime_ns, st.st_mtime_ns):
            os.utime(os.path.join(d, rel), ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return d


def case_env(case, d):
    env = t.base_env()
    env.update({"TZ": "UTC", "LC_ALL": "C", "HOME": d, "XDG_CONFIG_HOME": d,
                "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(case.env)
    return env


def products(case, d):
    """{relative path: sha256} of the files CASE produces in D."""
    out = {}
    for pat in case.products:
        for p in glob.glob(os.path.join(d, pat), recursive=True):
            if os.path.isfile(p):
                out[os.path.relpath(p, d)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def program_ok(cmd):
    return t.run(["sh", "-c", 'command -v "$0"', cmd[0]]).returncode == 0


# ---------------------------------------------------------------- sites

class Spec:
    """What the spec item names: the object (a library by basename prefix,
    as the runtime resolves it; a USDT item without one: the program) and
    its sites,
    {ELF address: names}, plus the IFUNC groups resolved in this process."""

    def __init__(self, spec, case):
        m = re.fullmatch(r"(uprobe|usdt):([^:]+):(.+)", spec)
        self.kind, obj, self.pattern = m.groups()
        if self.kind == "usdt" and ":" not in self.pattern:
            # usdt:PROVIDER:NAME, in any object: here, the program's own notes
            obj, self.pattern = shutil.which(case.steps[0][0][0]), spec.split(":", 1)[1]
        self.path = object_path(obj, case)
        self.sites, self.ifuncs, self.resolved, self.notes = {}, {}, {}, None
        if self.kind == "usdt":
            self.notes = t.Notes(self.path)
            prov, name = self.pattern.split(":")
            for n in self.notes.notes:
                if fnmatch.fnmatchcase(n["provider"], prov) and fnmatch.fnmatchcase(n["name"], name):
                    self.sites.setdefault(n["pc"], []).append("%s:%s" % (n["provider"], n["name"]))
            return
        self.elf = t.Elf(self.path)
        groups = {}
        for name, value, ifunc in self.elf.functions:
            if fnmatch.fnmatchcase(name, self.pattern):
                groups.setdefault(value, []).append((name, ifunc))
        for value, names in groups.items():
            ifn = sorted(n for n, i in names if i)
            if ifn:       # the IFUNC name wins its address: the site is where it resolves
                self.ifuncs[value] = ifn
            else:
                self.sites[value] = sorted(n for n, _ in names)
        self.resolved = resolve_ifuncs(self.path, self.ifuncs)

    def kernel_safe(self, vaddr):
        """kernel_can_count() of the spec's object (a USDT note: always)."""
        return self.kind == "usdt" or kernel_can_count(self.path, self.elf, vaddr)

    def kernel_probe(self, vaddr):
        if self.kind == "usdt":
            note = next(n for n in self.notes.notes if n["pc"] == vaddr)
            return self.notes.kprobe(note)
        return "%s:%#x" % (self.path, self.elf.vaddr_to_offset(vaddr))


def kernel_can_count(path, elf, vaddr):
    """False for a site whose first instruction the kernel cannot count:
    - EVEX-encoded (0x62): this kernel single-steps it wrongly (a kernel
      uprobe on libc's __strchr_evex, `vpbroadcastb %esi,%ymm17`, makes
      strchr fail and tar's getopt reject its options);
    - with a LOCK or ES/CS/SS/DS prefix (x86 uprobes' is_prefix_bad):
      the kernel refuses to probe it, silently when the object is mapped
      after the probe exists (sqlite3MemoryBarrier, `lock orq
      $0,(%rsp)`: kernel 0 hits, 164 in every mode)."""
    with open(path, "rb") as f:
        f.seek(elf.vaddr_to_offset(vaddr))
        code = f.read(15)
    i = 0
    while i < len(code) and code[i] in LEGACY_PREFIXES:
        if code[i] in KERNEL_BAD_PREFIXES:
            return False
        i += 1
    return code[i:i + 1] != b"\x62"


def object_path(obj, case):
    if obj.startswith("/"):
        return obj
    libdir = "/usr/lib/x86_64-linux-gnu"
    cands = sorted(os.path.join(libdir, f) for f in os.listdir(libdir) if f.startswith(obj + ".so"))
    elfs = [p for p in cands if open(p, "rb").read(4) == b"\x7fELF"]   # not libc.so, a linker script
    return os.path.realpath(elfs[0])


def load_base(path):
    """Where PATH is mapped in this process (its first mapping)."""
    for line in open("/proc/self/maps"):
        f = line.split()
        if len(f) >= 6 and os.path.realpath(f[5]) == path and int(f[2], 16) == 0:
            return int(f[0].split("-")[0], 16)
    return None


def resolve_ifuncs(path, ifuncs):
    """{IFUNC ELF address: its implementation's ELF address} for the global
    IFUNCs, as the dynamic linker resolves them here (dlsym)."""
    if not ifuncs:
        return {}
    lib = ctypes.CDLL(path)
    base = load_base(path)
    out = {}
    for value, names in ifuncs.items():
        for n in names:
            try:
                addr = ctypes.cast(getattr(lib, n), ctypes.c_void_p).value
            except AttributeError:
                continue
            out[value] = addr - base
            break
    return out


ERR_AT = re.compile(r"^(\S+) at 0x([0-9a-f]+): (.*)$")


def process_sites(sp, rep, label):
    """{ELF address: report entry} of one process's report, and
    {ELF address or IFUNC address: error message}.  The load base is found
    through an entry whose address is a plain symbol's."""
    entries = [e for e in rep["probes"] if e["object"] == sp.path]
    base = None
    if sp.kind == "usdt":
        pcs = sorted(sp.sites)
        addrs = sorted(int(e["address"], 16) for e in entries)
        if addrs and len(addrs) == len(pcs):
            base = addrs[0] - pcs[0]
    else:
        unique = {}
        for value, names in sp.sites.items():
            for n in names:
                unique[n] = value if n not in unique else None
        for e in entries:
            if not e.get("implementation") and unique.get(e["symbol"]) is not None:
                base = int(e["address"], 16) - unique[e["symbol"]]
                break
    if not t.check(base is not None, "%s: cannot find %s's load base in the report of pid %d"
                   % (label, sp.path, rep["pid"]), [t.fmt_probe(e) for e in entries[:5]]):
        return {}, {}
    got = {}
    for e in entries:
        v = int(e["address"], 16) - base
        t.check(v not in got, "%s: pid %d: two entries at %#x" % (label, rep["pid"], v))
        got[v] = e
    errs = {}
    by_name = {n: v for v, names in list(sp.sites.items()) + list(sp.ifuncs.items()) for n in names}
    for e in rep["errors"]:
        m = ERR_AT.match(e["message"])
        v = int(m.group(2), 16) - base if m else None
        if v is None:
            v = next((by_name[w] for w in re.findall(r"[\w.@]+", e["message"]) if w in by_name), None)
        if t.check(v is not None, "%s: pid %d: an error that names no site of the spec"
                   % (label, rep["pid"]), e):
            errs[v] = e["message"]
    return got, errs


def check_site_sets(sp, label, got, errs):
    """GOT (probed) and ERRS (refused) cover exactly the sites SP names."""
    problems = []
    for v, e in got.items():
        if e.get("implementation"):
            ok = e["symbol"] in {n for names in sp.ifuncs.values() for n in names}
            if ok and e["symbol"] in sp.elf.syms and sp.resolved.get(sp.elf.syms[e["symbol"]][0]) not in (None, v):
                problems.append("IFUNC %s probed at %#x, the dynamic linker resolves it to %#x"
                                % (e["symbol"], v, sp.resolved[sp.elf.syms[e["symbol"]][0]]))
        else:
            ok = v in sp.sites
        if not ok:
            problems.append("probed %s at %#x: not a site of the spec" % (e["symbol"], v))
    for v, names in sp.sites.items():
        if v not in got and v not in errs:
            problems.append("%s (%#x): neither probed nor refused" % ("/".join(names[:3]), v))
    for v, names in sp.ifuncs.items():
        if v in errs or v in got:
            continue
        if any(e.get("implementation") in names or e["symbol"] in names for e in got.values()):
            continue
        if sp.resolved.get(v) in got:       # shares its implementation with a probed site
            continue
        if sp.resolved.get(v) in errs:      # ... or with a refused one (int3-path hazards: __strlen_avx2)
            continue
        problems.append("IFUNC %s: neither probed nor refused (resolves to %s)"
                        % ("/".join(names), hex(sp.resolved[v]) if v in sp.resolved else "?"))
    t.check(not problems, "%s: %d sites of %s differ from what the spec names"
            % (label, len(problems), sp.path), "\n".join(problems[:20]))


# ---------------------------------------------------------------- runs

def compare_run(label, case, steps, ref, d, ref_products):
    for (cmd, _), cp, r in zip(case.steps, steps, ref):
        what = "%s: %s" % (label, " ".join(os.path.basename(c) for c in cmd[:6]))
        t.check(cp.returncode == r.returncode, "%s: exit %d, unprobed %d"
                % (what, cp.returncode, r.returncode), t.clip(cp.stderr))
        t.check(cp.stdout == r.stdout, "%s: stdout differs (%d vs %d bytes)"
                % (what, len(cp.stdout), len(r.stdout)),
                "got:\n%s\nwant:\n%s" % (t.clip(cp.stdout, 600), t.clip(r.stdout, 600)))
        t.check(t.own_lines_removed(cp.stderr) == r.stderr, "%s: stderr differs" % what,
                "got:\n%s\nwant:\n%s" % (t.clip(cp.stderr, 800), t.clip(r.stderr, 800)))
    got = products(case, d)
    diff = sorted(k for k in set(got) | set(ref_products) if got.get(k) != ref_products.get(k))
    t.check(not diff, "%s: %d produced files differ from the unprobed run's" % (label, len(diff)),
            "\n".join(diff[:20]))


def run_plain(case):
    d = fresh_dir(case)
    check_inputs("%s (unprobed)" % case.name, case, d)
    env = case_env(case, d)
    ref = [t.run(cmd, env=env, stdin=stdin, cwd=d) for cmd, stdin in case.steps]
    for (cmd, _), r in zip(case.steps, ref):
        t.check(r.returncode == 0, "%s: unprobed %s failed (%d)" % (case.name, " ".join(cmd), r.returncode),
                t.clip(r.stderr))
    return ref, products(case, d)


def run_mode(case, sp, mode, ref, ref_products):
    """Hits per site summed over every process of every step."""
    label = "%s [%s] (%s)" % (case.name, case.spec, mode)
    d = fresh_dir(case)
    check_inputs(label, case, d)
    rdir = os.path.join(t.work_dir(), case.name, "reports-" + mode)
    shutil.rmtree(rdir, ignore_errors=True)
    os.makedirs(rdir)
    env = case_env(case, d)
    env.update(t.probed_env(case.spec, mode, os.path.join(rdir, "r-%p.json")))
    t0 = time.monotonic()
    steps = [t.run(cmd, env=env, stdin=stdin, cwd=d) for cmd, stdin in case.steps]
    took = time.monotonic() - t0
    compare_run(label, case, steps, ref, d, ref_products)
    hits, probed, refused, nproc, jmp = {}, set(), {}, 0, 0
    for f in sorted(glob.glob(os.path.join(rdir, "r-*.json"))):
        rep = t.load_report(f, "%s: %s" % (label, os.path.basename(f)))
        if not rep:
            continue
        nproc += 1
        got, errs = process_sites(sp, rep, label)
        if sp.kind == "uprobe":
            check_site_sets(sp, "%s: pid %d" % (label, rep["pid"]), got, errs)
        else:
            t.check(set(got) | set(errs) == set(sp.sites), "%s: pid %d: USDT sites %s, notes %s"
                    % (label, rep["pid"], sorted(map(hex, got)), sorted(map(hex, sp.sites))))
        for v, e in got.items():
            hits[v] = hits.get(v, 0) + e["hits"]
            t.check(e["missed"] == 0, "%s: %s missed %d" % (label, e["symbol"], e["missed"]))
            if mode == "int3":
                t.check(e["mode"] == "int3", "%s: %s on the %s path" % (label, e["symbol"], e["mode"]))
            jmp += e["mode"] == "jmp"
        probed |= set(got)
        refused.update(errs)
    t.check(nproc > 0, "%s: no reports in %s" % (label, rdir))
    t.info("%s: %d processes, %d sites probed (%d jmp entries), %d refused, %d hits; %.1f s"
           % (label, nproc, len(probed), jmp, len(set(refused) - probed), sum(hits.values()), took))
    return hits, refused


def name_of(sp, v):
    names = sp.sites.get(v) or [n for iv, r in sp.resolved.items() if r == v for n in sp.ifuncs[iv]]
    return names[0] if names else hex(v)


# realloc moves a block (one memcpy) when it cannot grow it in place: how
# often depends on the heap's layout too, so these may differ by at most
# the number of realloc calls
REALLOC_COPY = re.compile(r"^__(memcpy|memmove|mempcpy)_\w+$")


def site_named(sp, names):
    return next((v for v, ns in sp.sites.items() if set(ns) & set(names)), None)


def explained(sp, v, a=None, b=None, reallocs=0):
    """Why site V's count may differ between counts A and B (see EXPLAINED),
    or None.  REALLOCS: realloc's hits in those runs."""
    if not sp.path.endswith("/libc.so.6"):
        return None
    names = list(sp.sites.get(v, ())) + [n for iv, r in sp.resolved.items() if r == v
                                         for n in sp.ifuncs.get(iv, ())]
    for rx, why, direction in EXPLAINED:
        if not any(rx.match(n) for n in names):
            continue
        if direction is None or a is None or b is None or \
                (direction == "fewer" and a < b) or (direction == "more" and a > b):
            return why
    if a is not None and b is not None and any(REALLOC_COPY.match(n) for n in sp.sites.get(v, ())) \
            and abs(a - b) <= reallocs:
        return "realloc's copies depend on the heap's layout (%d reallocs)" % reallocs
    return None


def split_notes(case, what, lines):
    """LINES ([(reason or None, text)]) less the explained ones, which are
    printed as notes."""
    for why, x in lines:
        if why:
            t.info("%s: note: %s: %s (%s, see EXPLAINED)" % (case.name, what, x, why))
    return [x for why, x in lines if not why]


_multi = None


def kernel_multi():
    """(True, "") when kcount's uprobe_multi backend works here, else
    (False, kcount's reason)."""
    global _multi
    if _multi is None:
        cp = t.run([t.KCOUNT, "--check", "--multi"])
        _multi = (cp.returncode == 0, (cp.stdout + cp.stderr).decode(errors="replace").strip())
    return _multi


def kernel_sites(sp, per_mode, budget):
    """The sites the kernel counts: every site a mode probed, or without
    uprobe_multi every disagreement, then a seeded draw (see KERNEL_SITES)."""
    allv = [v for v in sorted(set().union(*per_mode.values())) if sp.kernel_safe(v)]
    if kernel_multi()[0]:
        return allv
    disagree = [v for v in allv if len({h.get(v) for h in per_mode.values()}) > 1]
    hot = [v for v in allv if per_mode["auto"].get(v) and v not in disagree]
    cold = [v for v in allv if not per_mode["auto"].get(v) and v not in disagree]
    rnd = random.Random(SEED)
    n_cold = min(KERNEL_COLD, len(cold), budget // 4)
    pick = rnd.sample(hot, min(len(hot), budget - n_cold)) + rnd.sample(cold, n_cold)
    return disagree[:budget] + sorted(pick)


def run_kernel(case, sp, sites, ref, ref_products):
    label = "%s [%s] (kernel)" % (case.name, case.spec)
    d = fresh_dir(case)
    check_inputs(label, case, d)
    env = case_env(case, d)
    probes = [sp.kernel_probe(v) for v in sites]
    t0 = time.monotonic()
    flags = ["--multi" if kernel_multi()[0] else "--perf"]
    runs = [t.kcount(probes, cmd, stdin=stdin, env=env, cwd=d, flags=flags)
            for cmd, stdin in case.steps]
    took = time.monotonic() - t0
    compare_run(label, case, [cp for cp, _ in runs], ref, d, ref_products)
    counts = {v: 0 for v in sites}
    for _, kc in runs:
        if kc is None:
            return None, took
        for v, p in zip(sites, probes):
            counts[v] += kc[p]
    return counts, took


def test_case(case):
    missing = [c[0] for c, _ in case.steps if not program_ok(c)]
    if not t.check(not missing, "%s: %s not installed" % (case.name, ", ".join(sorted(set(missing))))):
        return
    t0 = time.monotonic()
    ref, ref_products = run_plain(case)
    sp = Spec(case.spec, case)
    t.check(sp.sites, "%s: %s names no site in %s" % (case.name, case.spec, sp.path))
    t.info("%s: %s in %s: %d sites%s%s" % (
        case.name, case.spec, sp.path, len(sp.sites) + len(getattr(sp, "ifuncs", {})),
        " (%d IFUNCs)" % len(sp.ifuncs) if sp.ifuncs else "",
        " (symbols from %s)" % sp.elf.debug_path if sp.kind == "uprobe" and sp.elf.debug_path else ""))
    per_mode, refused = {}, {}
    for mode in MODES:
        per_mode[mode], refused[mode] = run_mode(case, sp, mode, ref, ref_products)
    for v, msg in sorted(refused["auto"].items()):
        t.info("%s: refused: %s" % (case.name, msg))
    # a site refused in one mode only (runtime/core/hazard.c's int3-path
    # hazards: posix_spawn runs them with every signal blocked) is compared
    # in the modes that probe it
    for v, msg in sorted(refused["int3"].items()):
        if v not in refused["auto"]:
            t.info("%s: refused on the int3 path only: %s" % (case.name, msg))

    def probing(v):
        return [m for m in MODES if v not in refused[m]]
    allv = sorted(set().union(*per_mode.values()))
    v_realloc = site_named(sp, ("realloc", "__libc_realloc"))
    reallocs = max((per_mode[m].get(v_realloc, 0) for m in MODES), default=0)
    diff = split_notes(case, "the modes differ", [
        (explained(sp, v, min(per_mode[m].get(v, 0) for m in probing(v)),
                   max(per_mode[m].get(v, 0) for m in probing(v)), reallocs),
         "%s: %s" % (name_of(sp, v), ", ".join("%s %s" % (m, per_mode[m].get(v)) for m in probing(v))))
        for v in allv if len({per_mode[m].get(v) for m in probing(v)}) > 1])
    t.check(not diff, "%s: %d sites counted differently by the modes" % (case.name, len(diff)),
            "\n".join(diff[:20]))
    ok, reason = t.kernel_uprobes()
    if not ok:
        t.skip("%s: kernel uprobes unavailable: %s" % (case.name, reason))
        return
    multi, why = kernel_multi()
    if not multi:
        t.info("%s: kernel: uprobe_multi unavailable (%s): perf events, a sample of at most %d "
               "sites (see KERNEL_SITES)" % (case.name, why, case.kernel_sites))
    sites = kernel_sites(sp, per_mode, case.kernel_sites)
    unsafe = len(set().union(*per_mode.values())) - len(sites) if multi else 0
    kc, took = run_kernel(case, sp, sites, ref, ref_products)
    if kc is None:
        return
    for mode in MODES:
        bad = split_notes(case, "differs from the kernel", [
            (explained(sp, v, per_mode[mode].get(v, 0), kc[v], reallocs),
             "%s (%#x): %s %r, kernel %d" % (name_of(sp, v), v, mode, per_mode[mode].get(v), kc[v]))
            for v in sites if v not in refused[mode] and per_mode[mode].get(v) != kc[v]])
        t.check(not bad, "%s (%s): %d of %d sites' hits differ from the kernel's"
                % (case.name, mode, len(bad), len(sites)), "\n".join(bad[:20]))
    more = " (%d more it cannot probe: see Spec.kernel_safe)" % unsafe if unsafe else ""
    t.info("%s: kernel (%s): %d sites (%d hits) compared%s, %.1f s; case %.1f s"
           % (case.name, "uprobe_multi" if multi else "perf", len(sites), sum(kc.values()),
              more, took, time.monotonic() - t0))


# ---------------------------------------------------------------- Go

# entry probes: goroutines' work, deep recursion (stack copies), a panic
# thrown and the frame recovering it, the jump-table switch, a nosplit
# method (int3), a cgo call
GO_ENTRIES = ["main.Work", "main.Fib", "main.Deep", "main.Thrower", "main.Catch", "main.Kind",
              "main.(*Counter).Add", "main.Cadd"]
# return probes: the jump-table switch (its RETs reached through the
# table), a function that panics (its unwound frames count lost, not
# returns), the one recovering, recursion, a nosplit leaf; each needs its
# entry in GO_ENTRIES (the kernel's entries give the lost frames)
GO_RETURNS = ["main.Kind", "main.Thrower", "main.Catch", "main.Fib", "main.(*Counter).Add"]
GO_MODES = ("auto", "int3")


def go_mode(prog, plain, mode):
    """{spec: report entry} of one probed run of PROG in MODE, checked
    against the unprobed run PLAIN."""
    spec = ";".join(["uprobe:" + f for f in GO_ENTRIES] + ["uretprobe:" + f for f in GO_RETURNS])
    label = "go (%s)" % mode
    cp, rep = t.run_probed([prog], spec, mode=mode)
    t.check(cp.returncode == plain.returncode and cp.stdout == plain.stdout,
            "%s: exit %d and stdout as unprobed (%d)" % (label, cp.returncode, plain.returncode),
            t.clip(cp.stdout + cp.stderr))
    if not t.check(rep is not None, "%s: a report" % label):
        return {}
    t.check(not rep.get("errors"), "%s: no errors" % label, json.dumps(rep.get("errors"))[:2000])
    got = {p["spec"]: p for p in rep["probes"]}
    for s in spec.split(";"):
        p = got.get(s)
        if t.check(p is not None, "%s: %s in the report" % (label, s)):
            t.check(p.get("missed", 0) == 0, "%s: %s missed %s" % (label, s, p.get("missed")))
    return got


def test_go():
    prog = t.go_build("sp_go")
    if not prog:
        return   # go_build said why (a skip when golang-go is missing)
    with open(prog, "rb") as f:
        hdr = f.read(18)
    # report addresses are ELF addresses only in a non-PIE executable (Go's default)
    if not t.check(hdr[16] == 2, "go: sp_go is a non-PIE executable (ET_EXEC)"):
        return
    t.check(t.go_table_jmp(prog, "main.Kind"), "go: main.Kind holds a jump table's indirect jmp")
    plain = t.run([prog])
    t.check(plain.returncode == 3, "go: sp_go unprobed exits 3", t.clip(plain.stderr))
    per_mode = {m: go_mode(prog, plain, m) for m in GO_MODES}
    fields = ("address", "hits", "returns", "lost")
    diff = ["%s: %s" % (s, ", ".join("%s %s" % (m, [per_mode[m].get(s, {}).get(k) for k in fields])
                                     for m in GO_MODES))
            for s in sorted(set().union(*per_mode.values()))
            if len({json.dumps([per_mode[m].get(s, {}).get(k) for k in fields]) for m in GO_MODES}) > 1]
    t.check(not diff, "go: %d probes counted differently by the modes" % len(diff), "\n".join(diff))
    ok, reason = t.kernel_uprobes()
    if not ok:
        t.skip("go: kernel uprobes unavailable: %s" % reason)
        return
    elf = t.Elf(prog)
    auto = per_mode["auto"]
    # the kernel's uprobes: at each entry probe's site, and on every RET
    sites = {}
    for f in GO_ENTRIES:
        p = auto.get("uprobe:" + f)
        if p:
            sites[("entry", f)] = [int(p["address"], 16)]
    for f in GO_RETURNS:
        rets = t.go_rets(prog, f)
        t.check(rets, "go: %s's RETs found" % f)
        sites[("ret", f)] = rets
    addrs = sorted({a for v in sites.values() for a in v})
    unsafe = [hex(a) for a in addrs if not kernel_can_count(prog, elf, a)]
    if not t.check(not unsafe, "go: sites the kernel cannot count: %s" % unsafe):
        return
    probes = ["%s:%#x" % (prog, elf.vaddr_to_offset(a)) for a in addrs]
    cp, kc = t.kcount(probes, [prog], flags=["--multi" if kernel_multi()[0] else "--perf"])
    t.check(cp.returncode == plain.returncode and cp.stdout == plain.stdout,
            "go (kernel): exit %d and stdout as unprobed" % cp.returncode, t.clip(cp.stderr))
    if kc is None:
        return
    count = dict(zip(addrs, (kc[p] for p in probes)))
    bad = []
    for m in GO_MODES:
        for f in GO_ENTRIES:
            p = per_mode[m].get("uprobe:" + f)
            k = count.get(int(p["address"], 16)) if p else None
            if not p or p["hits"] != k:
                bad.append("%s: uprobe:%s hits %s, kernel %s" % (m, f, p and p["hits"], k))
        for f in GO_RETURNS:
            p = per_mode[m].get("uretprobe:" + f)
            entries = count.get(sites.get(("entry", f), [None])[0])
            rets = sum(count[a] for a in sites[("ret", f)])
            if not p or p["hits"] != rets or p.get("lost", 0) != entries - rets:
                bad.append("%s: uretprobe:%s returns %s lost %s; kernel: %d returns (uprobes on %d RETs), "
                           "%s entries" % (m, f, p and p["hits"], p and p.get("lost"), rets,
                                           len(sites[("ret", f)]), entries))
    t.check(not bad, "go: %d counts differ from the kernel's" % len(bad), "\n".join(bad))
    thrown = count.get(sites[("entry", "main.Thrower")][0], 0) - sum(count[a] for a in sites[("ret", "main.Thrower")])
    t.check(thrown > 0, "go: the kernel saw main.Thrower's frames unwound by panics (%d)" % thrown)
    t.info("go: kernel (%s): %d sites (%d hits) compared, %d of them RETs"
           % ("uprobe_multi" if kernel_multi()[0] else "perf", len(addrs), sum(count.values()),
              sum(len(sites[("ret", f)]) for f in GO_RETURNS)))


def main():
    t.require_build()
    names = sys.argv[1:] or [c.name for c in CASES] + ["go"]
    by_name = {c.name: c for c in CASES}
    for n in names:
        if n not in by_name and n != "go":
            sys.exit("usage: e2e_compat.py [%s]..." % "|".join(list(by_name) + ["go"]))
    for n in names:
        if n == "go":
            test_go()
        else:
            test_case(by_name[n])
    t.finish()


if __name__ == "__main__":
    main()
