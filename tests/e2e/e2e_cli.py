#!/usr/bin/python3
"""e2e_cli — the launcher's `list`, `check` and `--help`, and the installed
package.

  e2e_cli.py            list, check, help, usage errors (files no process has
                        loaded: nothing is run under the preload; options
                        without a value, bad numbers: exit 2 before anything
                        runs or attaches)
  e2e_cli.py install    `cmake --install` into a temporary prefix; the
                        out-of-tree plugin of tests/install built against it
                        with find_package(selfprobe) and with pkg-config; `ls`
                        run with it as a plugin by the installed launcher

  list      sp_target: every t_* function with its decision (t_indjmp on
            int3 with its rule, t_jmp8 on the jmp path through a hop, the
            others the 5-byte jmp), addresses and
            sizes as readelf gives them; libc: known entries (malloc, free,
            an IFUNC, a hazard) and the jmp share; sp_usdt_target: every
            USDT note as readelf -n gives it
  check     every unsafe-window case of the test targets names its rule
            (sp_target's t_indjmp; t_jmp8's 5-byte window, taken by a hop;
            libsp_jmp_lp.so's mid-function
            window in an object with landing pads; libc's signal-return
            trampoline; an offset inside an instruction), the safe ones show
            their window and relocation plan; exit status 0 / 1 / 2
"""
import json
import os
import re
import shutil
import subprocess
import sys

import sptest as t

BUILD = os.path.dirname(os.path.dirname(t.LIB))
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = t.CLI
TESTS = os.path.dirname(t.TARGET)
USDT_TARGET = os.path.join(TESTS, "sp_usdt_target")
JMP_LP = os.path.join(BUILD, "lib", "libsp_jmp_lp.so")

# The design's unsafe cases in sp_target, and the rule each must name.
MUST_BE_INT3 = {
    "t_indjmp": "indirect jmp in the jmp window (not its last instruction)",
}
# The 5-byte window refused for this rule, the first instruction hops
# through the padding before the function instead.
MUST_BE_HOP = {"t_jmp8": "branch target inside the jmp window"}


def cli(args, env=None):
    return subprocess.run([CLI] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=env, timeout=300)


def text(b):
    return b.decode(errors="replace")


def cli_json(args):
    cp = cli(args)
    if not t.check(cp.returncode == 0, "selfprobe %s: exit %d" % (" ".join(args), cp.returncode),
                   text(cp.stderr)):
        return None
    try:
        return json.loads(cp.stdout)
    except ValueError as e:
        t.check(False, "selfprobe %s: output is not JSON: %s" % (" ".join(args), e), t.clip(cp.stdout))
        return None


def elf_funcs(path, dynamic=False):
    """{name: (value, size)} of FUNC/IFUNC symbols, from readelf."""
    out = subprocess.run(["readelf", "-W", "--dyn-syms" if dynamic else "-s", path],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    syms = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 8 and f[3] in ("FUNC", "IFUNC") and f[6] != "UND":
            syms.setdefault(f[7].split("@")[0], (int(f[1], 16), int(f[2], 0)))
    return syms


def test_list_target():
    names = sorted(n for n in elf_funcs(t.TARGET) if n.startswith("t_"))
    t.check(len(names) >= 12, "readelf finds the t_* functions of sp_target", names)
    rep = cli_json(["list", "--json", t.TARGET, "t_*"])
    if not rep:
        return
    syms = elf_funcs(t.TARGET)
    got = {f["name"]: f for f in rep["functions"]}
    t.check(sorted(got) == names, "list t_*: exactly the t_* functions",
            "got %s\nwant %s" % (sorted(got), names))
    for name in names:
        f = got.get(name)
        if not f:
            continue
        t.check(int(f["address"], 16) == syms[name][0] and f["size"] == syms[name][1],
                "list: %s at %s size %d, readelf says %#x size %d"
                % (name, f["address"], f["size"], syms[name][0], syms[name][1]))
        if name in MUST_BE_INT3:
            t.check(f["mode"] == "int3" and MUST_BE_INT3[name] in (f["reason"] or ""),
                    "list: %s must be int3 because of \"%s\"" % (name, MUST_BE_INT3[name]), f)
        else:
            patch = "hop" if name in MUST_BE_HOP else "jmp5"
            t.check(f["mode"] == "jmp" and f["patch"] == patch and f["reason"] is None,
                    "list: %s must take the jmp (%s)" % (name, patch), f)
    t.check(rep["object"] == t.TARGET and rep["usdt"] == [], "list: object and (no) USDT notes", rep)
    # the text form: a header and one aligned row per function
    cp = cli(["list", t.TARGET, "t_*"])
    out = text(cp.stdout)
    t.check(cp.returncode == 0 and "FUNCTION" in out and "REASON" in out, "list (text): header", out)
    rows = {l.split()[0]: l for l in out.splitlines() if l.startswith("t_")}
    t.check(sorted(rows) == names, "list (text): one row per t_* function", out)
    cols = {l.index("0x") for l in rows.values()}
    t.check(len(cols) == 1, "list (text): the address column is aligned", out)
    for name, row in rows.items():
        want = ["int3", "int3"] if name in MUST_BE_INT3 else ["jmp", "hop" if name in MUST_BE_HOP else "jmp5"]
        t.check(row.split()[3:5] == want, "list (text): %s should say %s" % (name, " ".join(want)), row)
        if name in MUST_BE_INT3:
            t.check(MUST_BE_INT3[name] in row, "list (text): %s names its rule" % name, row)
    # a glob that matches nothing is not an error
    cp = cli(["list", t.TARGET, "no_such_*"])
    t.check(cp.returncode == 0 and "0 functions" in text(cp.stdout), "list: empty match", text(cp.stdout))


def test_list_libc():
    rep = cli_json(["list", "--json", "--functions", "libc"])
    if not rep:
        return
    t.check(os.path.basename(rep["object"]).startswith("libc.so"), "list libc: resolves to libc.so.*",
            rep["object"])
    t.check("usdt" not in rep, "list --functions: no usdt key", list(rep))
    got = {f["name"]: f for f in rep["functions"]}
    dyn = elf_funcs(rep["object"], dynamic=True)
    for name in ("malloc", "free", "fopen", "qsort"):
        f = got.get(name)
        if t.check(f is not None, "list libc: %s listed" % name):
            t.check(int(f["address"], 16) == dyn[name][0], "list libc: %s at %s, readelf says %#x"
                    % (name, f["address"], dyn[name][0]))
            t.check(f["mode"] == "jmp", "list libc: %s takes the jmp (as measured live)" % name, f)
    f = got.get("strlen")
    t.check(f and f["ifunc"] and f["mode"] == "ifunc" and f["reason"] == "ifunc (resolved at run time)",
            "list libc: strlen is an IFUNC resolved at run time", f)
    f = got.get("__restore_rt")
    t.check(f and f["mode"] == "none" and "signal-return" in (f["reason"] or ""),
            "list libc: __restore_rt cannot be probed (signal-return trampoline)", f)
    jmp = sum(f["mode"] == "jmp" for f in rep["functions"])
    plain = sum(f["mode"] in ("jmp", "int3") for f in rep["functions"])
    t.info("list libc: %d of %d non-IFUNC function sites on the jmp path" % (jmp, plain))
    t.check(plain > 1000 and jmp >= 0.8 * plain, "list libc: jmp share %d/%d below 80%%" % (jmp, plain))
    cp = cli(["list", "libc", "malloc"])
    t.check(cp.returncode == 0 and re.search(r"^malloc\s+0x[0-9a-f]{16}\s+\d+\s+jmp\s+jmp5$", text(cp.stdout), re.M),
            "list libc malloc (text): one jmp row", text(cp.stdout))


def readelf_notes(path):
    out = subprocess.run(["readelf", "-n", path], stdout=subprocess.PIPE, check=True).stdout.decode()
    notes, cur = [], None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Provider:"):
            cur = {"provider": line.split(":", 1)[1].strip()}
            notes.append(cur)
        elif cur is not None and line.startswith("Name:"):
            cur["name"] = line.split(":", 1)[1].strip()
        elif cur is not None and line.startswith("Location:"):
            m = re.match(r"Location: (0x[0-9a-f]+), Base: (0x[0-9a-f]+), Semaphore: (0x[0-9a-f]+)", line)
            cur["address"], cur["semaphore"] = int(m.group(1), 16), int(m.group(3), 16)
        elif cur is not None and line.startswith("Arguments:"):
            cur["args"] = line.split(":", 1)[1].strip()
    return notes


def test_list_usdt():
    want = readelf_notes(USDT_TARGET)
    t.check(len(want) >= 10, "readelf finds sp_usdt_target's notes", want)
    rep = cli_json(["list", "--json", "--usdt", USDT_TARGET])
    if not rep:
        return
    t.check("functions" not in rep, "list --usdt: no functions key", list(rep))
    got = [{"provider": n["provider"], "name": n["name"], "address": int(n["address"], 16),
            "semaphore": int(n["semaphore"], 16) if n["semaphore"] else 0, "args": n["args"] or ""}
           for n in rep["usdt"]]
    key = lambda n: (n["address"], n["name"])
    t.check(sorted(got, key=key) == sorted(want, key=key), "list --usdt: the notes readelf -n shows",
            "got  %s\nwant %s" % (sorted(got, key=key)[:4], sorted(want, key=key)[:4]))
    t.check(all(n["mode"] in ("jmp", "int3") for n in rep["usdt"]), "list --usdt: every note probeable",
            [n for n in rep["usdt"] if n["mode"] not in ("jmp", "int3")])
    cp = cli(["list", USDT_TARGET, "sptest:args1"])
    out = text(cp.stdout)
    t.check(cp.returncode == 0 and re.search(r"^sptest:args1\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+\w+\s+-4@\$-42$",
                                              out, re.M),
            "list (text): sptest:args1 with its semaphore and args", out)


def check_case(args, want_rc, want_path, want_text, label):
    cp = cli(["check"] + args)
    out = text(cp.stdout)
    ok = t.check(cp.returncode == want_rc, "check %s: exit %d, want %d" % (label, cp.returncode, want_rc),
                 out + text(cp.stderr))
    if want_path:
        m = re.search(r"^path:\s+(\w+)(.*)$", out, re.M)
        ok = t.check(m and m.group(1) == want_path and (not want_text or want_text in m.group(2)),
                     "check %s: path %s (%s)" % (label, want_path, want_text), out) and ok
    elif want_text:
        ok = t.check(want_text in text(cp.stderr), "check %s: message '%s'" % (label, want_text),
                     text(cp.stderr)) and ok
    return out


def test_check():
    tgt = "uprobe:%s:" % t.TARGET
    for name, rule in MUST_BE_INT3.items():
        out = check_case([tgt + name], 0, "int3", rule, name)
        t.check("[FAIL]" in out and "relocation plan: none" in out, "check %s: the failing check shown" % name,
                out)
    for name, rule in MUST_BE_HOP.items():
        out = check_case([tgt + name], 0, "jmp", "(patch hop): jmp rel8 to a jmp rel32 in the padding at 0x", name)
        t.check(re.search(r"^  \[FAIL\] jmp window plan.*: %s$" % re.escape(rule), out, re.M) and
                re.search(r"^  \[ok\]\s+hop ", out, re.M),
                "check %s: the 5-byte window's refusal and the hop shown" % name, out)
    out = check_case([tgt + "t_jmp8"], 0, "jmp", None, "t_jmp8")
    t.check(re.search(r"^  \* 0x[0-9a-f]+:\s+eb 02\s+jmp ", out, re.M) and out.count("\n  * ") == 1,
            "check t_jmp8: the jmp rel8 decoded, alone in the hop's window", out)
    # the landing-pad rule: a mid-function window of two instructions
    out = check_case(["uprobe:%s:jt_lp_mid+3" % JMP_LP], 0, "int3",
                     "mid-function window of several instructions in an object with exception landing pads",
                     "jt_lp_mid+3")
    t.check(out.count("\n  * ") == 2, "check jt_lp_mid+3: a window of two instructions", out)
    # safe: the window and its relocation
    out = check_case([tgt + "t_nop"], 0, "jmp", None, "t_nop")
    t.check(re.search(r"^  \* 0x[0-9a-f]+:\s+90\s+nop$", out, re.M) and "[FAIL]" not in out,
            "check t_nop: window starts with the nop, no failed check", out)
    t.check(re.search(r"relocation plan: 2 instructions, 5 bytes", out), "check t_nop: window nop;lea", out)
    out = check_case([tgt + "t_call"], 0, "jmp", None, "t_call")
    t.check(re.search(r"lea -0x08\(%rsp\), %rsp", out) and re.search(r"movl \$0x[0-9A-Fa-f]+, \(%rsp\)", out),
            "check t_call: the call relocated as a push of the original return address", out)
    out = check_case([tgt + "t_riprel"], 0, "jmp", None, "t_riprel")
    check_case(["-x", t.TARGET, "uprobe:t_mov"], 0, "jmp", None, "-x PROGRAM uprobe:t_mov")
    check_case(["usdt:%s:sptest:args1" % USDT_TARGET], 0, "jmp", None, "usdt sptest:args1")
    cp = cli(["check", "--json", tgt + "t_*"])
    try:
        sites = json.loads(cp.stdout)
    except ValueError:
        sites = []
    t.check(cp.returncode == 0 and len(sites) >= 12 and
            all((s["mode"] == "int3") == (s["symbol"] in MUST_BE_INT3) and
                (s["patch"] == "hop") == (s["symbol"] in MUST_BE_HOP) for s in sites),
            "check --json t_*: one entry per function, int3 exactly for the unsafe ones",
            text(cp.stdout)[:2000])
    # cannot be probed at all: exit 1
    check_case(["uprobe:libc:__restore_rt"], 1, "none", "signal-return", "__restore_rt")
    check_case(["uprobe:libc:malloc+1"], 1, None, "inside the", "malloc+1")
    check_case(["uprobe:libc:no_such_function"], 1, None, "not found", "missing symbol")
    check_case(["uprobe:%s:0x1" % t.TARGET], 1, None, "not inside any function", "address outside")
    check_case(["uprobe:no_such_library_xyz:f"], 1, None, "no_such_library_xyz", "missing object")
    check_case(["usdt:%s:sptest:nope" % USDT_TARGET], 1, None, "no USDT probe", "missing note")
    check_case(["uprobe:libc:strlen"], 0, "ifunc", "resolved at run time", "IFUNC")
    # usage errors: exit 2 with a message
    for bad, why in ((["check"], "no probe"), (["check", "bogus:x"], "bad probe kind"),
                     (["check", "uprobe:malloc"], "no object and no -x"),
                     (["check", "--frob", "uprobe:libc:malloc"], "unknown option"),
                     (["check", "-x"], "missing value"), (["list"], "no object"),
                     (["list", "--frob", "libc"], "unknown option"),
                     (["list", "libc", "a", "b"], "too many arguments"), (["help", "frob"], "unknown command"),
                     (["frob"], "unknown command"), ([], "no command")):
        cp = cli(bad)
        t.check(cp.returncode == 2 and b"selfprobe" in cp.stderr and not cp.stdout,
                "selfprobe %s (%s): exit %d, want 2 with a message" % (" ".join(bad), why, cp.returncode),
                text(cp.stderr)[:300])
    cp = cli(["list", "/no/such/file"])
    t.check(cp.returncode == 1 and b"/no/such/file" in cp.stderr, "list of a missing file: exit 1 naming it",
            text(cp.stderr))
    cp = cli(["list", "/etc/passwd"])
    t.check(cp.returncode == 1 and cp.stderr, "list of a file that is not ELF: exit 1", text(cp.stderr))


def test_help():
    for args in (["--help"], ["-h"], ["run", "--help"], ["list", "--help"], ["check", "--help"],
                 ["help", "list"], ["list", "-h"]):
        cp = cli(args)
        out = text(cp.stdout)
        t.check(cp.returncode == 0 and out.startswith("usage: selfprobe") and "Exit status" in out
                and "xample" in out, "selfprobe %s: complete help on stdout" % " ".join(args), out[:400])
    main = text(cli(["--help"]).stdout)
    for word in ("run", "list", "check", "UPROBE_SPEC", "UPROBE_OUTPUT", "UPROBE_MODE", "UPROBE_LOG"):
        t.check(word in main, "selfprobe --help mentions %s" % word)
    for cmd, opts in (("run", ["-e SPEC", "-f FILE", "-o OUT", "--mode"]), ("list", ["--json", "--usdt"]),
                      ("check", ["-x PROGRAM", "--json"])):
        out = text(cli([cmd, "--help"]).stdout)
        for o in opts:
            t.check(o in out, "selfprobe %s --help documents %s" % (cmd, o))
    cp = cli(["--version"])
    t.check(cp.returncode == 0 and re.match(rb"selfprobe \d+\.\d+", cp.stdout), "selfprobe --version", cp.stdout)


def no_pid():
    """A process id no process has: nothing can be attached by mistake."""
    pid = 4194000
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return str(pid)


def test_usage_errors():
    """Every option that takes a value says so when it has none, and every
    number (seconds, counts, PIDs, ports) is checked whole: a bad one is a
    usage error (exit 2, before anything runs or is attached) naming the
    option and the value."""
    pid = no_pid()
    takes_value = {"run": ["-e", "-f", "-o", "--mode", "--interval", "--metrics", "--bt-format"],
                   "attach": ["-e", "-f", "-o", "--duration", "--metrics"], "detach": ["-o"],
                   "top": ["-e", "-f", "--metrics", "--iterations"], "check": ["-x"]}
    for cmd, opts in takes_value.items():
        for o in opts:
            for args in ([cmd, o], [cmd, pid, o]) if cmd in ("attach", "detach", "top") else ([cmd, o],):
                cp = cli(args)
                t.check(cp.returncode == 2 and ("%s needs a value" % o).encode() in cp.stderr,
                        "selfprobe %s: exit 2, '%s needs a value'" % (" ".join(args), o), text(cp.stderr))
    spec = ["-e", "uprobe:libc:free"]
    bad = [(["run", "--interval", v] + spec + ["--", "true"], "--interval", v) for v in ("x", "0", "-1", "inf", "nan", "2s")]
    bad += [(["attach", pid] + spec + ["--duration", v], "--duration", v) for v in ("abc", "0", "nan", "1e999", "")]
    bad += [(["top", pid, "--iterations", v], "--iterations", v) for v in ("abc", "0", "-2", "3x", "+3", " 3",
                                                                             "99999999999999999999")]
    for cmd in (["run"] + spec, ["attach", pid] + spec, ["top", pid]):
        for v in ("127.0.0.1:abc", "127.0.0.1:80x", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "9464",
                  "127.0.0.1:-80"):
            bad.append((cmd + ["--metrics", v] + (["--", "true"] if cmd[0] == "run" else []), "--metrics", v))
    bad += [([cmd, v] + (spec if cmd == "attach" else []), None, v) for cmd in ("attach", "detach", "top")
            for v in ("abc", "12abc", "0", "-5", "0x10")]
    for args, opt, value in bad:
        cp = cli(args)
        err = text(cp.stderr)
        t.check(cp.returncode == 2 and (opt is None or opt in err) and ("'%s'" % value in err or value + ":" in err)
                and not cp.stdout, "selfprobe %s: exit 2 naming %s '%s' (exit %d)"
                % (" ".join(args), opt or "the PID", value, cp.returncode), err[:300])


def test_install():
    cmake = shutil.which("cmake")
    if not cmake:
        t.skip("cmake not found")
        return
    work = t.work_dir()
    prefix = os.path.join(work, "prefix")
    cp = subprocess.run([cmake, "--install", BUILD, "--prefix", prefix], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=300)
    if not t.check(cp.returncode == 0, "cmake --install: exit %d" % cp.returncode, t.clip(cp.stdout)):
        return
    for rel in ("lib/libselfprobe.so", "include/selfprobe.h", "bin/selfprobe", "lib/pkgconfig/selfprobe.pc",
                "lib/cmake/selfprobe/selfprobe-config.cmake", "lib/cmake/selfprobe/selfprobe-config-version.cmake",
                "lib/cmake/selfprobe/selfprobe-targets.cmake", "share/man/man1/selfprobe.1",
                "share/selfprobe/probes.d"):
        t.check(os.path.exists(os.path.join(prefix, rel)), "installed: %s" % rel)
    probes = [f for f in os.listdir(os.path.join(SRC, "probes.d")) if f.endswith(".probes")]
    for f in probes:
        t.check(os.path.exists(os.path.join(prefix, "share/selfprobe/probes.d", f)), "installed: probes.d/%s" % f)
    man = subprocess.run(["man", "-l", "-P", "cat", os.path.join(prefix, "share/man/man1/selfprobe.1")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, MANWIDTH="80"))
    if man.returncode == 0:
        t.check(b"EXIT STATUS" in man.stdout and b"selfprobe" in man.stdout, "man page renders", man.stderr)
    cp = subprocess.run([os.path.join(prefix, "bin/selfprobe"), "list", t.TARGET, "t_nop"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t.check(cp.returncode == 0 and b"t_nop" in cp.stdout, "installed launcher lists", cp.stderr)
    env = dict(os.environ)
    env.pop("PKG_CONFIG_PATH", None)
    for how in ("cmake", "pkgconfig"):
        bdir = os.path.join(work, "plugin-" + how)
        cfg = [cmake, "-S", os.path.join(SRC, "tests/install"), "-B", bdir, "-DSP_USE=" + how]
        e = dict(env)
        if how == "cmake":
            cfg.append("-DCMAKE_PREFIX_PATH=" + prefix)
        else:
            e["PKG_CONFIG_PATH"] = os.path.join(prefix, "lib/pkgconfig")
        cp = subprocess.run(cfg, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e, timeout=300)
        if not t.check(cp.returncode == 0, "plugin (%s): configure" % how, t.clip(cp.stdout)):
            continue
        cp = subprocess.run([cmake, "--build", bdir, "--verbose"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=e, timeout=300)
        if not t.check(cp.returncode == 0, "plugin (%s): build" % how, t.clip(cp.stdout)):
            continue
        # it must have compiled against the installed header, not the tree's
        t.check(os.path.join(prefix, "include").encode() in cp.stdout.replace(b"/lib/pkgconfig/../..", b"")
                and SRC.encode() + b"/include" not in cp.stdout,
                "plugin (%s): compiled with the installed include directory" % how, t.clip(cp.stdout, 1500))
        plugin = os.path.join(bdir, "libcount_plugin.so")
        out = os.path.join(work, "plugin-%s.txt" % how)
        report = os.path.join(work, "report-%s.json" % how)
        run = subprocess.run([os.path.join(prefix, "bin/selfprobe"), "run", "-e",
                              "uprobe:libc:malloc=%s:on_hit" % plugin, "-o", report, "--", "ls", "/"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(env, UPROBE_PLUGIN_ARGS=out), timeout=120)
        t.check(run.returncode == 0 and b"usr" in run.stdout, "plugin (%s): ls runs and lists /" % how,
                text(run.stderr))
        try:
            rep = json.load(open(report))
            with open(out) as f:
                line = f.read()
        except (OSError, ValueError) as e:
            t.check(False, "plugin (%s): report and plugin output: %s" % (how, e), text(run.stderr))
            continue
        m = re.match(r"count_plugin: hits=(\d+) largest=(\d+)", line)
        hits = rep["probes"][0]["hits"] if rep.get("probes") else -1
        t.check(rep["probes"] and rep["probes"][0]["object"].endswith(".so.6") and not rep["errors"],
                "plugin (%s): report has the probe and no errors" % how, rep)
        t.check(m and int(m.group(1)) == hits and hits > 0 and int(m.group(2)) > 0,
                "plugin (%s): the plugin counted every hit the report counted (%d)" % (how, hits), line)


def main():
    if not os.path.exists(CLI):
        t.check(False, "no launcher at %s" % CLI)
        t.finish()
    if sys.argv[1:] == ["install"]:
        test_install()
    else:
        test_help()
        test_usage_errors()
        test_list_target()
        test_list_libc()
        test_list_usdt()
        test_check()
    t.finish()


if __name__ == "__main__":
    main()
