#!/usr/bin/env python3
"""e2e_bt — bpftrace one-liners run in the process (issue 18).

Golden comparisons: each program text below is run by bpftrace 0.17 (kernel
uprobes, `-c` on the workload) and by selfprobe (UPROBE_SPEC, the same text,
in int3 and in jmp mode) on the same deterministic workload (sp_bt); the map
output (stdout after bpftrace's "Attaching N probes..." line) must be byte
for byte the same.  BIN stands for the workload's path in both.  The
expected output is also checked against the workload's known calls where
it is simple, so a missing bpftrace does not leave the test blind: with no
bpftrace, no root or no kernel uprobes the comparisons are skipped (SKIP,
exit 77) but those checks still run.

C++ frames (sp_bt_cxx): ustack's names demangled as bpftrace prints them
(its cpp_demangle), compared with bpftrace run with -p on a live child.

Per-thread pairing: 4 threads, entry and return of bt_pair matched through
@start[tid], 20000 calls, every one paired.

Argument "errors": the error cases instead (every one named by line, column
and construct in the report; the program runs unprobed).

Argument "compiled": blocks compiled to native code in the trampoline
(bt_jit.h) under 4 threads: exact figures, and the same output in int3
mode, in jmp mode, and in jmp mode with SELFPROBE_BTJIT=0 (the evaluator);
in jmp mode the debug log must say the block was compiled.  Keyed maps
kept as per-thread parts (bt_shard.h) under 4 threads, exact; and under
`selfprobe run` compiled blocks and keyed maps whose per-thread parts live
in the launcher's file: the same maps at a normal exit and after a
SIGKILL (the launcher merges them).
"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sptest as t  # noqa: E402

BT_TARGET = os.environ.get("SP_BT_TARGET", os.path.join(t.BUILD, "tests/sp_bt"))

# (program, expected output or None).  Counts: bt_work(k, 37*k*k) runs k
# times for k = 1..20 (210 calls), bt_name("alpha") once ... ("epsilon") 5 times.
PROGRAMS = [
    ("uprobe:BIN:bt_work { @c = count(); }", "\n\n@c: 210\n"),
    ("uprobe:BIN:bt_work { @[arg0 % 5] = count(); }",
     "\n\n@[1]: 34\n@[2]: 38\n@[3]: 42\n@[4]: 46\n@[0]: 50\n"),
    ("uprobe:BIN:bt_work { @s = sum(arg0); }", "\n\n@s: %d\n" % sum(k * k for k in range(1, 21))),
    ("uprobe:BIN:bt_work { @h = hist(arg1); }", None),
    ("uprobe:BIN:bt_work { @l = lhist(arg0, 0, 20, 4); }", None),
    ("uprobe:BIN:bt_work /arg0 > 10/ { @c = count(); }", "\n\n@c: %d\n" % sum(range(11, 21))),
    ("uprobe:BIN:bt_work { @mn = min(arg1); @mx = max(arg1); }", "\n\n@mn: 37\n@mx: 14800\n"),
    ("uprobe:BIN:bt_work { @a = avg(arg0); @st = stats(arg0); }", None),
    ("uretprobe:BIN:bt_work { @r[retval] = count(); }", None),
    ("uprobe:BIN:bt_name { @n[str(arg0)] = count(); }",
     "\n\n@n[alpha]: 1\n@n[beta]: 2\n@n[gamma]: 3\n@n[delta]: 4\n@n[epsilon]: 5\n"),
    ("uprobe:BIN:bt_name { @n[str(arg0, 3)] = count(); }",
     "\n\n@n[alp]: 1\n@n[bet]: 2\n@n[gam]: 3\n@n[del]: 4\n@n[eps]: 5\n"),
    ('uprobe:BIN:bt_name { printf("%s %d|%5d|%-4x|\\n", str(arg0), arg0 != 0, 42, 255); }', None),
    ("uprobe:BIN:bt_work /arg0 % 2 == 0 && arg0 > 4 || arg0 == 1/ { @c = count(); }",
     "\n\n@c: %d\n" % (1 + sum(k for k in range(6, 21, 2)))),
    ("uprobe:BIN:bt_work { @k[arg0 > 10 ? 1 : 0] = sum(arg0); }", None),
    ("uprobe:BIN:bt_work { $x = arg0 * 2; if ($x > 20) { @big = count(); } else { @small = count(); } }",
     "\n\n@big: %d\n@small: %d\n" % (sum(k for k in range(11, 21)), sum(range(1, 11)))),
    ("uprobe:BIN:bt_work { @m[arg0 % 3, arg0 % 2] = count(); }", None),
    ("uprobe:BIN:bt_work { @x[arg0] = arg1; }", None),
    ("uprobe:BIN:bt_work { @h[arg0 % 2] = hist(arg1); }", None),
    ("uprobe:BIN:bt_work { @c[comm] = count(); }", "\n\n@c[sp_bt]: 210\n"),
    ("uprobe:BIN:bt_work { @[arg0 % 4]++; }", "\n\n@[1]: 45\n@[2]: 50\n@[3]: 55\n@[0]: 60\n"),
    ("uprobe:BIN:bt_work { @s[arg0 % 3] = sum(arg1 / 37); @n = count(); }", None),
    ("uprobe:BIN:bt_work /arg0 == 3 || arg0 == 5/ { @w[arg0, arg1] = count(); }",
     "\n\n@w[3, 333]: 3\n@w[5, 925]: 5\n"),
    ("uprobe:BIN:bt_name /str(arg0) == \"gamma\"/ { @g = count(); }", "\n\n@g: 3\n"),
    ("uprobe:BIN:bt_work { @start[tid] = arg0; } uretprobe:BIN:bt_work "
     "{ @ok = sum(retval == @start[tid] * 4 ? 1 : 0); delete(@start[tid]); }", "\n\n@ok: 210\n\n"),
    # args->NAME (0.17's spelling; args.NAME is ours too): bt_work(long a, long b), from DWARF
    ("uprobe:BIN:bt_work /args->a < 4/ { @[args->a, args->b] = count(); }",
     "\n\n@[1, 37]: 1\n@[2, 148]: 2\n@[3, 333]: 3\n"),
    ("uprobe:BIN:bt_work { @s = sum(args->b - args->a); }", None),
    # BEGIN and END: before the first hit, and after the last, before the maps
    ('BEGIN { printf("begin %s\\n", probe); } uprobe:BIN:bt_work { @c = count(); @last = arg0; } '
     'END { printf("end %d\\n", @last); }', "begin BEGIN\nend 20\n\n\n@c: 210\n@last: 20\n"),
]

# -f json (UPROBE_BT_FORMAT=json): bpftrace's JSON lines, after its first
# ("attached_probes") line.
JSON_PROGRAMS = [
    ("uprobe:BIN:bt_work { @c = count(); @k[arg0 % 3, \"x\"] = sum(arg1); @h = hist(arg1); "
     "@l[arg0 % 2] = lhist(arg0, 0, 20, 4); @st = stats(arg0); @a = avg(arg0); @mn = min(arg0); @neg = sum(-5); }",
     None),
    ('BEGIN { printf("a \\"q\\"\\t%d\\n", 1); } uprobe:BIN:bt_name { @s[str(arg0)] = count(); @t[arg0 > 0] = comm; }',
     None),
]

# ustack: sp_bt's "stack" mode (frame pointers: bpftrace's walk).  bpftrace
# 0.17 prints a -c child's frames as bare addresses once the child is gone,
# so its addresses in the program are named here (nm) before comparing:
# "main+304" is what bcc prints while the process lives.  Stacks cut to
# frames of the program: libc has no frame pointers, where bpftrace's walk
# ends and ours (DWARF CFI) goes on to _start.
STACK_PROGRAMS = [
    "uprobe:BIN:bt_leaf { @[ustack(3)] = count(); }",
    "uprobe:BIN:bt_leaf { @n[ustack(2), arg0] = count(); @b[arg0] = count(); }",
    "uprobe:BIN:bt_leaf { @v[arg0] = ustack(3); }",
]
STACK_FULL = "uprobe:BIN:bt_leaf { @[ustack] = count(); }"

# ustack of C++ frames (sp_bt_cxx): bpftrace 0.17 prints them demangled
# (its cpp_demangle, on by default), parameter lists included.  Named by
# bpftrace only while the process lives: it runs with -p on a child the
# test started, which makes its calls once bpftrace's BEGIN said it is
# attached and lives on until bpftrace has printed (exit() at cx_end).
CXX_TARGET = os.path.join(t.BUILD, "tests/sp_bt_cxx")
LEAVES = "uprobe:BIN:_ZN2ns3BoxIiE4leafEl,uprobe:BIN:_ZN2ns3BoxIcE4leafEl"
CXX_PROGRAMS = [
    LEAVES + " { @[ustack(4)] = count(); }",
    LEAVES + " { @k[ustack(2), arg0 > 1] = count(); @v = ustack(3); }",
]
CXX_NAMES = ["ns::Box<int>::leaf(long)+0\n", "ns::Box<char>::get(long) const [clone .isra.0]+",
             "ns::over(int)+", "ns::over(char const*, double)+"]


# Checked against the expected output only.  func: bpftrace 0.17 prints
# `func` of a -c child's uprobe as an address once the child is gone.
# print/clear/exit: bpftrace reads the map for print() later, in user
# space, so its figures there are not the ones at the hit; ours are.
OURS_ONLY = [
    ("uprobe:BIN:bt_work { @c = count(); if (arg0 == 20) { if (@c == 191) { print(@c); clear(@c); } } }",
     "@c: 191\n\n\n@c: 19\n"),
    ("uprobe:BIN:bt_work { @c = count(); if (arg0 == 3) { exit(); } } uretprobe:BIN:bt_work { @r = count(); }",
     "\n\n@c: 4\n@r: 3\n"),
    ("uprobe:BIN:bt_work,uprobe:BIN:bt_name { @f[func] = count(); }", "\n\n@f[bt_name]: 15\n@f[bt_work]: 210\n"),
]

# USDT: argN are the note's arguments (sptest:args3 fires with -7, 65535,
# -100000; sp_usdt_target prints its own lines on stdout, filtered out).
USDT_TARGET = os.path.join(t.BUILD, "tests/sp_usdt_target")
USDT = ('usdt:BIN:sptest:args3 { printf("args3 %d %d %d\\n", arg0, arg1, arg2); @s = sum(arg2); }',
        "args3 -7 65535 -100000\n\n\n@s: 18446744073709451616\n")   # 0.17: argN unsigned

PAIRING = ("uprobe:BIN:bt_pair { @start[tid] = arg0; } uretprobe:BIN:bt_pair "
           "{ @ok = sum(retval == @start[tid] + 1 ? 1 : 0); @n = count(); delete(@start[tid]); }")


def ours(program, args, mode, target=BT_TARGET, fmt=None):
    env = t.probed_env(program.replace("BIN", target), mode, os.path.join(t.work_dir(), "r.json"))
    if fmt:
        env["UPROBE_BT_FORMAT"] = fmt
    cp = t.run([target] + args, env=env)
    t.check(cp.returncode == 0, "%s (%s): workload exited %d" % (program, mode, cp.returncode), t.clip(cp.stderr))
    rep = t.load_report(os.path.join(t.work_dir(), "r.json"), program)
    if rep:
        t.check(not rep.get("errors"), "%s (%s): no errors in the report" % (program, mode), rep.get("errors"))
    return cp.stdout.decode(errors="replace")


def theirs(program, args, target=BT_TARGET, fmt=None):
    cmd = ["bpftrace"] + (["-f", fmt] if fmt else []) + ["-e", program.replace("BIN", target),
                                                         "-c", " ".join([target] + args)]
    cp = t.run(["sh", "-c", 'ulimit -l unlimited 2>/dev/null; exec "$@"', "sh"] + cmd, timeout=120)
    out = cp.stdout.decode(errors="replace")
    lines = out.split("\n", 1)
    if not lines[0].startswith(("Attaching ", '{"type": "attached_probes"')):
        t.check(False, "bpftrace ran %s" % program, t.clip(cp.stdout + cp.stderr))
        return None
    return lines[1]


def bpftrace_usable():
    if not shutil.which("bpftrace"):
        return "bpftrace is not installed (.ci/deps installs it)"
    if os.geteuid() != 0:
        return "bpftrace needs root"
    ok, why = t.kernel_uprobes()
    if not ok:
        return "kernel uprobes unavailable: %s" % why
    v = subprocess.run(["bpftrace", "--version"], capture_output=True, text=True).stdout.strip()
    if not v.startswith("bpftrace v0.17"):
        return "bpftrace is %s, the golden outputs are 0.17's" % v
    return None


def golden():
    why = bpftrace_usable()
    if why:
        t.skip("bpftrace comparisons: " + why)
    compared = 0
    for program, expected in PROGRAMS + OURS_ONLY + [(PAIRING, None)]:
        args = ["threads", "5000"] if program is PAIRING else []
        got = {m: ours(program, args, m) for m in ("int3", "jmp")}
        t.check(got["int3"] == got["jmp"], "%s: int3 and jmp give the same output" % program,
                "int3:\n%s\njmp:\n%s" % (got["int3"], got["jmp"]))
        if expected is not None:
            t.check(got["jmp"] == expected, "%s: the expected output" % program,
                    "got:\n%r\nexpected:\n%r" % (got["jmp"], expected))
        if program is PAIRING:
            t.check(got["jmp"] == "\n\n@n: 20000\n@ok: 20000\n\n",
                    "4 threads: every return paired with its own entry", got["jmp"])
        if why or (program, expected) in OURS_ONLY:
            continue
        ref = theirs(program, args)
        if ref is None:
            continue
        t.check(got["jmp"] == ref, "%s: same output as bpftrace" % program,
                "selfprobe:\n%s\nbpftrace:\n%s" % (got["jmp"], ref))
        compared += 1
    if os.path.exists(USDT_TARGET):
        program, expected = USDT
        strip = lambda out: "".join(l for l in out.splitlines(True) if not l.startswith(("expect ", "count ")))
        for mode in ("int3", "jmp"):
            got = strip(ours(program, [], mode, USDT_TARGET))
            t.check(got == expected, "%s (%s): the note's arguments" % (program, mode),
                    "got:\n%r\nexpected:\n%r" % (got, expected))
        if not why:
            ref = theirs(program, [], USDT_TARGET)
            if ref is not None:
                t.check(strip(ref) == expected, "%s: same output as bpftrace" % program, ref)
                compared += 1
    compared += json_golden(why) + stack_golden(why) + cxx_golden(why)
    interval()
    killed()
    t.info("%d programs compared with bpftrace" % compared)


def json_golden(why):
    compared = 0
    for program, expected in JSON_PROGRAMS:
        got = ours(program, [], "jmp", fmt="json")
        for line in got.splitlines():
            if line:
                t.check(json.loads(line)["type"] in ("map", "hist", "stats", "printf"), "%s: JSON lines" % program, line)
        if why:
            continue
        ref = theirs(program, [], fmt="json")
        if ref is not None:
            t.check(got == ref, "%s (-f json): same output as bpftrace" % program,
                    "selfprobe:\n%s\nbpftrace:\n%s" % (got, ref))
            compared += 1
    return compared


def symbols(path):
    """[(start, end, name)] of PATH's functions (nm), by start."""
    out = subprocess.run(["nm", "-S", "--defined-only", path], capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwW":
            syms.append((int(f[0], 16), int(f[0], 16) + int(f[1], 16), f[3]))
    return sorted(syms)


def name_frames(text, target):
    """bpftrace's bare addresses in TEXT named as bcc names them (sym+offset),
    the program's load address found from its first frame, bt_leaf+0."""
    syms = symbols(target)
    leaf = [s for s in syms if s[2] == "bt_leaf"][0][0]
    addrs = re.findall(r"^ +(0x[0-9a-f]+)$", text, re.M)
    if not addrs:
        return text
    base = int(addrs[0], 16) - leaf

    def name(m):
        a = int(m.group(2), 16) - base
        for lo, hi, sym in syms:
            if lo <= a < hi:
                return "%s%s+%d" % (m.group(1), sym, a - lo)
        return m.group(0)
    return re.sub(r"^( +)(0x[0-9a-f]+)$", name, text, flags=re.M)


def stack_golden(why):
    compared = 0
    for program in STACK_PROGRAMS:
        got = {m: ours(program, ["stack"], m) for m in ("int3", "jmp")}
        t.check(got["int3"] == got["jmp"], "%s: int3 and jmp give the same stacks" % program,
                "int3:\n%s\njmp:\n%s" % (got["int3"], got["jmp"]))
        t.check("bt_leaf+0\n" in got["jmp"] and "bt_mid+" in got["jmp"] and "bt_top+" in got["jmp"],
                "%s: the frames named" % program, got["jmp"])
        if why:
            continue
        ref = theirs(program, ["stack"])
        if ref is not None:
            ref = name_frames(ref, BT_TARGET)
            t.check(got["jmp"] == ref, "%s: same stacks as bpftrace" % program,
                    "selfprobe:\n%s\nbpftrace (named):\n%s" % (got["jmp"], ref))
            compared += 1
    # the whole stack: ours goes on through libc (CFI) to _start
    got = ours(STACK_FULL, ["stack"], "jmp")
    heads = re.findall(r"^@\[\n((?:    .*\n)+)\]: (\d+)$", got, re.M)
    t.check(len(heads) == 2, "%s: two distinct stacks" % STACK_FULL, got)
    for frames, count in heads:
        names = [f.strip().split("+")[0] for f in frames.splitlines()]
        want = ["bt_leaf", "bt_mid", "bt_top", "main"] if count == "2" else ["bt_leaf", "bt_top", "main"]
        t.check(names[:len(want)] == want and names[-1] == "_start",
                "%s: %s stack %s ... _start" % (STACK_FULL, count, want), frames)
    return compared


def theirs_live(program, target):
    """PROGRAM's output from bpftrace -p on TARGET (a private copy: the
    probes are on the file, system-wide; and filtered by pid) while TARGET
    lives, after the line its BEGIN prints once attached."""
    child = subprocess.Popen([target, "wait"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    blocks = program.replace("BIN", target).split(" { ", 1)
    text = ('BEGIN { printf("ready\\n"); } %s /pid == %d/ { %s uprobe:%s:cx_end /pid == %d/ { exit(); }'
            % (blocks[0], child.pid, blocks[1], target, child.pid))
    bt = subprocess.Popen(["sh", "-c", 'ulimit -l unlimited 2>/dev/null; exec "$@"', "sh",
                           "bpftrace", "-p", str(child.pid), "-e", text],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        head = bt.stdout.readline().decode() + bt.stdout.readline().decode()
        child.stdin.write(b"go\n")
        child.stdin.flush()
        out, err = bt.communicate(timeout=120)
    finally:
        bt.kill()
        child.stdin.close()
        child.wait(timeout=60)
    if not head.endswith("ready\n"):
        t.check(False, "bpftrace ran %s" % text, t.clip(head.encode() + out + err))
        return None
    return out.decode(errors="replace")


def cxx_golden(why):
    if not os.path.exists(CXX_TARGET):
        t.check(False, "the C++ workload is built", CXX_TARGET)
        return 0
    target = os.path.join(t.work_dir(), "sp_bt_cxx")
    shutil.copy2(CXX_TARGET, target)
    compared = 0
    for program in CXX_PROGRAMS:
        got = {m: ours(program, [], m, target) for m in ("int3", "jmp")}
        t.check(got["int3"] == got["jmp"], "%s: int3 and jmp give the same stacks" % program,
                "int3:\n%s\njmp:\n%s" % (got["int3"], got["jmp"]))
        t.check(all(n in got["jmp"] for n in CXX_NAMES[:2]) and "_Z" not in got["jmp"],
                "%s: the C++ frames demangled" % program, got["jmp"])
        if why:
            continue
        ref = theirs_live(program, target)
        if ref is not None:
            t.check(got["jmp"] == ref, "%s: same C++ stacks as bpftrace" % program,
                    "selfprobe:\n%s\nbpftrace:\n%s" % (got["jmp"], ref))
            compared += 1
    got = ours(CXX_PROGRAMS[0], [], "jmp", target)
    t.check(all(n in got for n in CXX_NAMES), "%s: every C++ frame demangled" % CXX_PROGRAMS[0], got)
    killed_cxx(target)
    return compared


def killed_cxx(target):
    """A killed process's ustack keys, named by the launcher from the ELF
    files (its own symboliser): the C++ names demangled there too."""
    program = ("uprobe:%s:_ZN2ns3BoxIcE4leafEl { @s[ustack(3)] = count(); } "
               "uprobe:%s:cx_end { printf(\"ready\\n\"); }" % (target, target))
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    launcher = subprocess.Popen([t.CLI, "run", "-o", os.path.join(t.work_dir(), "kx.json"), "-e", program,
                                 "--", target, "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    launcher.stdin.write(b"go\n")
    launcher.stdin.flush()
    first = launcher.stdout.readline().decode()
    children = open("/proc/%d/task/%d/children" % (launcher.pid, launcher.pid)).read().split()
    for c in children:
        os.kill(int(c), 9)
    rest = launcher.stdout.read().decode()
    launcher.stdin.close()
    launcher.wait(timeout=60)
    t.check(first == "ready\n" and len(children) == 1, "killed C++ process: the block ran before the kill",
            first + " ".join(children))
    want = ("@s[\n    ns::Box<char>::leaf(long)+0\n    ns::Box<char>::get(long) const [clone .isra.0]+16\n"
            "    ns::over(char const*, double)+17\n]: 4\n")
    t.check(want in rest, "killed C++ process: the launcher prints its ustack keys demangled", rest)


def killed():
    """Under `selfprobe run` the maps live in the launcher's shared file: a
    process killed by SIGKILL prints nothing, the launcher prints its maps
    (text, and --bt-format json).  The block on bt_end says when every hit
    is in; then the test kills the paused workload."""
    program = ('uprobe:BIN:bt_leaf { @c = count(); @h = hist(arg0); @s[ustack(2)] = count(); } '
               'uprobe:BIN:bt_end { printf("ready\\n"); }').replace("BIN", BT_TARGET)
    for fmt in ("text", "json"):
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        launcher = subprocess.Popen([t.CLI, "run", "--bt-format", fmt, "-o", os.path.join(t.work_dir(), "k.json"),
                                     "-e", program, "--", BT_TARGET, "stack", "wait"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        first = launcher.stdout.readline().decode()
        children = open("/proc/%d/task/%d/children" % (launcher.pid, launcher.pid)).read().split()
        t.check(len(children) == 1, "killed (%s): the workload runs under the launcher" % fmt, children)
        for c in children:
            os.kill(int(c), 9)
        rest = launcher.stdout.read().decode()
        launcher.wait(timeout=60)
        if fmt == "text":
            t.check(first == "ready\n", "killed: the block ran before the kill", first)
            t.check(rest.startswith("\n\n@c: 5\n@h: \n[1]                    2 |") and "@s[\n    bt_leaf+0\n    bt_" in rest,
                    "killed: the launcher prints the killed process's maps from its shared file", rest)
        else:
            lines = [json.loads(l) for l in rest.splitlines() if l]
            t.check(json.loads(first)["data"] == "ready\n" and
                    {"type": "map", "data": {"@c": 5}} in lines and len(lines) == 3,
                    "killed (--bt-format json): the maps as bpftrace's JSON lines", first + rest)


def interval():
    """interval:ms:20 runs in a thread of ours while the program waits on its
    stdin; the test closes stdin once a tick was printed (no timing)."""
    program = ("uprobe:BIN:bt_work { @c = count(); } interval:ms:20 { printf(\"tick %d\\n\", @c); } "
               "END { printf(\"end\\n\"); }")
    env = t.probed_env(program.replace("BIN", BT_TARGET), "jmp", os.path.join(t.work_dir(), "i.json"))
    p = subprocess.Popen([BT_TARGET, "stdin"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    first = p.stdout.readline().decode()
    p.stdin.close()
    rest = p.stdout.read().decode()
    p.wait(timeout=60)
    t.check(first == "tick 210\n", "interval: a tick while the program runs, with the map so far", first)
    t.check(rest.endswith("end\n\n\n@c: 210\n") and set(rest.split("end\n")[0].split()) <= {"tick", "210"},
            "interval: ticks, then END, then the maps", rest)


ERRORS = [
    # (program, where the error points (its first occurrence), what the message says)
    ("uprobe:BIN:bt_work { @c = count() }\nuprobe:BIN:bt_work { @c = nosuch; }", "nosuch",
     "unknown builtin 'nosuch'"),
    ("uprobe:BIN:bt_work { @c = count(); @c = hist(arg0); }", "@c = hist", "map @c: used with two different types"),
    ("uprobe:BIN:bt_work { @c = count(); \n  @d = arg0 + \"x\"; }", "\"x\"", "+: a string where a number is needed"),
    ("uprobe:BIN:bt_work { @c = count(; }", "; }", "expression: expected a value, found ';'"),
    ("uprobe:BIN:bt_work { @c = args.size; }", "args", "args.size: bt_work has no parameter named size"),
    ("uprobe:BIN:bt_w* { @c[args->a] = count(); }", "args",
     "args.a: the probe is not one function by name (no glob, offset or address)"),
    ("uprobe:NODEBUG:bt_work { @c[args.a] = count(); }", "args",
     "args.a: no debug information (DWARF) for bt_work in NODEBUG"),
    ("uprobe:BIN:bt_work { @c = args.a.b; }", ".b;", "field access '.': args.a is an integer"),
    ("BEGIN { @c = arg0; } uprobe:BIN:bt_work { @d = count(); }", "arg0",
     "arg0: no probe hit in a BEGIN block"),
    ("BEGIN { @c = 1; }", "BEGIN", "program: no uprobe, uretprobe or usdt probe"),
    ("interval:s:x { @c = 1; } uprobe:BIN:bt_work { @d = count(); }", "interval",
     "probe 'interval:s:x': interval: expected a count from 1 after 's:'"),
    ("BEGIN, uprobe:BIN:bt_work { @c = 1; }", "uprobe", "probe 'uprobe:BIN:bt_work': BEGIN, END and interval each need a block of their own"),
    ("uprobe:BIN:bt_work { printf(\"%s\\n\", ustack); }", "ustack",
     "printf(): a ustack is printed only as a map key or value"),
    ("uprobe:BIN:bt_work { @x = ustack(2) + 1; }", "ustack", "+: a ustack where a number is needed"),
    ("uprobe:BIN:bt_work { @x[ustack(2)] = count(); @x[ustack(3)] = count(); }", "ustack(3)",
     "map @x: key 1 is ustack(3) here, ustack(2) before"),
    ("uprobe:BIN:bt_work { @x[ustack(0)] = count(); }", "0)", "ustack(): frames from 1 to 127"),
    ("uprobe:BIN:bt_work { @c = count(); ", None, "block: '{' at line 1, column %(brace)d is never closed"),
    ("uprobe:BIN:bt_work { @c = retval; }", "retval", "builtin 'retval': only in uretprobe blocks"),
    ("kprobe:do_nanosleep { @c = count(); }", "kprobe", "probe 'kprobe:do_nanosleep': not supported"),
    ("uprobe:BIN:bt_work { @c[kstack] = count(); }", "kstack", "builtin 'kstack': no kernel stacks in the process"),
    ("uprobe:BIN:bt_work { printf(\"%d %d\\n\", arg0); }", "printf",
     "printf(): the format has 2 conversions and 1 argument follows"),
    ("uprobe:BIN:bt_work { foo(1); }", "foo", "unknown function 'foo()'"),
    ("uprobe:BIN:bt work { @c = count(); }", "work {", "block: expected '{', found 'work'"),
    ("uprobe:BIN:bt_work { @c = count(); } usession:BIN:bt_work { @d = count(); }", "usession", "probe 'usession:BIN:bt_work': usession probes"),
    ("uprobe:BIN:bt_work { @c = count(); } uprobe:BIN:bt_work { @c[arg0] = count(); }", "@c[",
     "map @c: used with 1 key here, 0 before"),
    ("uprobe:BIN:bt_work { @s = sum(comm); }", "comm", "sum: a string where a number is needed"),
]


def position(text, marker):
    """(line, column) of MARKER's first occurrence in TEXT, 1-based."""
    i = text.index(marker)
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


def private_target():
    """A copy of the workload of this test's own: bpftrace's uprobes on
    BT_TARGET are system-wide (on the file), so the comparisons, run in
    parallel with the other cases, would count this case's calls too."""
    path = os.path.join(t.work_dir(), "sp_bt")
    if not os.path.exists(path):
        shutil.copy2(BT_TARGET, path)
    return path


def errors():
    BT_TARGET = private_target()
    # a copy of the workload without its DWARF: args.NAME has nothing to read
    nodebug = os.path.join(t.work_dir(), "sp_bt_nodebug")
    subprocess.run(["objcopy", "--strip-debug", BT_TARGET, nodebug], check=True)
    for program, marker, want in ERRORS:
        text = program.replace("BIN", BT_TARGET).replace("NODEBUG", nodebug)
        want = want.replace("BIN", BT_TARGET).replace("NODEBUG", nodebug) % {"brace": position(text, "{")[1]}
        if marker:
            want = "line %d, column %d: %s" % (position(text, marker) + (want,))
        env = t.probed_env(text, "jmp", os.path.join(t.work_dir(), "e.json"))
        cp = t.run([BT_TARGET], env=env)
        rep = t.load_report(os.path.join(t.work_dir(), "e.json"), program)
        t.check(cp.returncode == 0, "%r: the program runs on" % program, t.clip(cp.stderr))
        t.check(cp.stdout == b"", "%r: no map output" % program, t.clip(cp.stdout))
        if not rep:
            continue
        t.check(rep["probes"] == [], "%r: nothing attached" % program, rep["probes"])
        msgs = [e["message"] for e in rep.get("errors", [])]
        t.check(len(msgs) == 1 and want in msgs[0], "%r: the error says %r" % (program, want), msgs)


# 4 threads, thread t calling bt_pair(t * 1000000 + i) for i < 5000.
N = 5000
ALL = [t * 1000000 + i for t in range(1, 5) for i in range(N)]
COMPILED = [
    ("uprobe:BIN:bt_pair { @c = count(); @s = sum(arg0); }",
     "\n\n@c: %d\n@s: %d\n" % (len(ALL), sum(ALL))),
    ("uprobe:BIN:bt_pair /arg0 > 2500000/ { @big = count(); @m++; }",
     "\n\n@big: %d\n@m: %d\n" % (2 * N, 2 * N)),
    ("uprobe:BIN:bt_pair { @mx = max(arg0); @mn = min(arg0); @a = avg(arg0); }",
     "\n\n@a: %d\n\n@mn: %d\n@mx: %d\n" % (sum(ALL) // len(ALL), min(ALL), max(ALL))),
    ("uprobe:BIN:bt_pair /(arg0 & 1) == 0 && arg0 < 3000000 || arg0 >= 4004990/ { @e = count(); @t += arg0 >> 10; }",
     None),
    ("uprobe:BIN:bt_pair { @h = hist(arg0 - 1000000); @l = lhist(arg0 - 1000000, 0, 5000, 700); }", None),
    ("uprobe:BIN:bt_pair { @h = hist(arg0 - 1000000); @l = lhist(arg0 - 1000000, 0, 5000, 512); }", None),
    ("uprobe:BIN:bt_pair /tid != pid/ { @c = count(); @m = max(tid > pid); }", "\n\n@c: %d\n@m: 1\n" % len(ALL)),
    # compiled at the entry, the evaluator at the return, one map
    ("uprobe:BIN:bt_pair { @c = count(); } uretprobe:BIN:bt_pair { @c = count(); }", "\n\n@c: %d\n" % (2 * len(ALL))),
]


def compiled():
    BT_TARGET = private_target()
    for program, expected in COMPILED:
        got = {}
        for mode, extra in (("int3", {}), ("jmp", {"UPROBE_LOG": "debug"}), ("jmp-evaluator", {"SELFPROBE_BTJIT": "0"})):
            text = program.replace("BIN", BT_TARGET)
            out = os.path.join(t.work_dir(), "c.json")
            env = t.probed_env(text, mode.split("-")[0], out, extra)
            cp = t.run([BT_TARGET, "threads", str(N)], env=env)
            t.check(cp.returncode == 0, "%s (%s): workload exited %d" % (program, mode, cp.returncode), t.clip(cp.stderr))
            got[mode] = cp.stdout.decode(errors="replace")
            rep = t.load_report(out, program)
            entry = [p for p in rep["probes"] if p["kind"] == "uprobe"] if rep else []
            if mode == "jmp" and rep:
                if not entry or entry[0]["mode"] != "jmp":
                    t.skip("%s: bt_pair is not on the jmp path here: nothing compiled to check" % program)
                    continue
                t.check(b"compiled to native code" in cp.stderr, "%s: the block was compiled" % program,
                        t.clip(cp.stderr))
            # every mode: a lost hit and a lost update (a map's "dropped"
            # error) tell apart which one a differing output is
            if rep:
                t.check(entry and entry[0]["hits"] == len(ALL) and entry[0].get("missed", 0) == 0,
                        "%s (%s): the report counts every hit, none missed" % (program, mode), entry)
                t.check(not rep.get("errors"), "%s (%s): no errors in the report" % (program, mode),
                        rep.get("errors"))
        t.check(got["int3"] == got["jmp"] == got["jmp-evaluator"],
                "%s: int3, compiled and evaluator give the same output" % program,
                "int3:\n%s\ncompiled:\n%s\nevaluator:\n%s" % (got["int3"], got["jmp"], got["jmp-evaluator"]),
                lines=None)
        if expected is not None:
            t.check(got["jmp"] == expected, "%s: the expected output" % program,
                    "got:\n%r\nexpected:\n%r" % (got["jmp"], expected))


# Keyed maps the program never reads back: per-thread parts (bt_shard.h),
# 4 threads each adding to its own words; merged, exact.
KEYED = [
    ("uprobe:BIN:bt_pair { @t[tid] = count(); @k[arg0 % 3] = sum(arg0 / 1000000); @x[arg0 & 1]++; }",
     "@k[%d]: %d\n@k[%d]: %d\n@k[%d]: %d\n" % tuple(
         v for k, tot in sorted(((k, sum(a // 1000000 for a in ALL if a % 3 == k)) for k in range(3)),
                                key=lambda kv: kv[1]) for v in (k, tot)),
     "@x[0]: %d\n@x[1]: %d\n" % (len(ALL) // 2, len(ALL) // 2)),
]


def keyed():
    BT_TARGET = private_target()
    for program, k_lines, x_lines in KEYED:
        text = program.replace("BIN", BT_TARGET)
        env = t.probed_env(text, "jmp", os.path.join(t.work_dir(), "k.json"), {"UPROBE_LOG": "debug"})
        cp = t.run([BT_TARGET, "threads", str(N)], env=env)
        out = cp.stdout.decode(errors="replace")
        t.check(cp.returncode == 0, "%s: workload exited %d" % (program, cp.returncode), t.clip(cp.stderr))
        for m in ("@t", "@k", "@x"):
            t.check(("bpftrace map %s: per-thread parts" % m).encode() in cp.stderr,
                    "%s: %s is kept per thread" % (program, m), t.clip(cp.stderr))
        tids = re.findall(r"^@t\[(\d+)\]: (\d+)$", out, re.M)
        t.check(len(tids) == 4 and all(c == str(N) for _, c in tids),
                "%s: one key per thread, every hit counted" % program, out)
        t.check(k_lines in out and x_lines in out, "%s: the keyed sums and increments exact" % program,
                "got:\n%s\nexpected:\n%s%s" % (out, k_lines, x_lines))


# Under `selfprobe run`: a compiled block (its parts in the launcher's
# file) and keyed maps (theirs too), at a normal exit and after a SIGKILL,
# in a process that forked a child first (the child prints its own maps,
# from tables and parts of its own section, before "ready").
LAUNCHED = ("uprobe:BIN:bt_pair { @c = count(); @s = sum(arg0); @h = hist(arg0 - 1000000); } "
            "uretprobe:BIN:bt_pair { @r[retval / 1000000] = count(); @m[retval % 3] = sum(retval & 7); } "
            "uprobe:BIN:bt_end { printf(\"ready\\n\"); }")


def launched():
    BT_TARGET = private_target()
    program = LAUNCHED.replace("BIN", BT_TARGET)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["UPROBE_LOG"] = "debug"
    rep = os.path.join(t.work_dir(), "l.json")
    cp = subprocess.run([t.CLI, "run", "-o", rep, "-e", program, "--", BT_TARGET, "threads", str(N), "fork"],
                        capture_output=True, env=env, timeout=120)
    normal = cp.stdout.decode(errors="replace")
    t.check(cp.returncode == 0, "launched: the workload exited %d" % cp.returncode, t.clip(cp.stderr))
    with open(rep) as f:   # the launcher's: one report per process
        procs = json.load(f).get("processes", [])
    probes = [p for proc in procs if not proc.get("parent") for p in proc["report"]["probes"]
              if p.get("kind") == "uprobe" and p.get("symbol") == "bt_pair"]
    if not probes or probes[0].get("mode") != "jmp":
        t.skip("launched: bt_pair is not on the jmp path here: nothing compiled to check")
        return
    t.check(b"compiled to native code" in cp.stderr, "launched: the block was compiled under selfprobe run",
            t.clip(cp.stderr))
    t.check(b"bpftrace map @r: per-thread parts for" in cp.stderr and b"in the launcher's file" in cp.stderr,
            "launched: the keyed maps' parts are in the launcher's file", t.clip(cp.stderr))
    child, _, parent = normal.partition("ready\n")
    t.check(child.startswith("\n\n@c: 7\n") and "@r[0]: 7\n" in child,
            "launched: the fork child's maps, its own hits only", normal)
    t.check(parent.startswith("\n\n@c: %d\n@h: \n" % len(ALL)) and "@r[1]: %d\n" % N in parent and
            "@s: %d\n" % sum(ALL) in parent, "launched: the compiled and keyed maps exact at a normal exit", normal)
    launcher = subprocess.Popen([t.CLI, "run", "-o", os.path.join(t.work_dir(), "lk.json"), "-e", program, "--",
                                 BT_TARGET, "threads", str(N), "fork", "wait"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    first = ""
    while not first.endswith("ready\n"):
        line = launcher.stdout.readline().decode()
        if not line:
            break
        first += line
    children = open("/proc/%d/task/%d/children" % (launcher.pid, launcher.pid)).read().split()
    t.check(first == child + "ready\n" and len(children) == 1, "launched: the workload paused after its hits",
            (first, children))
    for c in children:
        os.kill(int(c), 9)
    rest = launcher.stdout.read().decode()
    launcher.wait(timeout=60)
    t.check(first + rest == normal, "launched: the killed process's maps as its normal exit printed them "
            "(compiled and keyed parts merged from the shared file)", "killed:\n%s\nnormal:\n%s" % (first + rest, normal))


if __name__ == "__main__":
    t.require_build()
    if not os.path.exists(BT_TARGET):
        t.check(False, "missing build output %s" % BT_TARGET)
        t.finish()
    if sys.argv[1:] == ["errors"]:
        errors()
    elif sys.argv[1:] == ["compiled"]:
        compiled()
        keyed()
        launched()
    else:
        golden()
    t.finish()
