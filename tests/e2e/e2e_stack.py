#!/usr/bin/python3
"""e2e_stack — the `stack` action names the real callers, in order, with
exact counts.

sp_stacks (tests/targets) has a known call graph, built at -O0 without
inlining so that every call is a real frame:

  main -> st_a -> st_b -> st_leaf
  main -> st_c -> st_leaf
  main -> st_via_lib -> stlib_outer -> stlib_inner -> st_leaf   (a .so)
  main -> st_sort -> qsort (libc's frames) -> st_cmp

and prints how many times it took each path.  Folded stacks ("root;...;
leaf;LABEL N", UPROBE_OUTPUT=x.folded) must have exactly those stacks from
main down (frames above main, __libc_start_call_main and so on, are
allowed), the counts exact: in both modes, for uprobe, uretprobe (the
callers of the returned function) and usession (both), with the preload
and through `selfprobe run -o x.folded`.  No frame may be ours (a return
trampoline, a jmp trampoline, the runtime).  A return probe's stack is the
entry stack of the same call less the probed function's frame.  The same
run's text report (@stacks) and JSON "stacks" must hold the same stacks as
its folded file.  And a report reads only the stacks that exist, not the
whole table (which would allocate every page of the launcher's shared file).
A handler leaves the program's errno as it was (sp_retsafe errno).  A fork
while other threads walk their stacks gives a child that walks too
(sp_retsafe forkwalk).

C++ frames (sp_bt_cxx): named demangled in the folded file, the text
report and the JSON "stacks", as bpftrace's ustack names them (the folded
file's ' ' made '_'), under the preload and `selfprobe run`.
"""
import glob
import json
import os
import re

import sptest as t

LAUNCHER = t.CLI
STACKS = os.path.join(os.path.dirname(t.TARGET), "sp_stacks")

LIBC = "<libc>"   # one or more frames of libc, the first one qsort's
# the callers of each probed function, main first, and which of the
# program's counts says how often that path was taken
CALLERS = {
    "st_leaf": [(["main", "st_a", "st_b"], "ab"), (["main", "st_c"], "c"),
                (["main", "st_via_lib", "stlib_outer", "stlib_inner"], "lib")],
    "st_a": [(["main"], "ab")],
    "st_b": [(["main", "st_a"], "ab")],
    "stlib_outer": [(["main", "st_via_lib"], "lib")],
    "st_cmp": [(["main", "st_sort", LIBC], "cmp")],
}
CONFIGS = {
    "entry": "uprobe:st_leaf=stack;uprobe:st_cmp=stack;uprobe:libsp_stacks_lib:stlib_outer=stack",
    # entry stacks taken while the callers' return addresses are swapped
    # for the return trampoline, and return stacks to set against them
    "return": "uretprobe:st_leaf=stack;uretprobe:st_cmp=stack;uretprobe:st_a=stack;"
              "uretprobe:st_b=stack;uretprobe:libsp_stacks_lib:stlib_outer=stack;"
              "uprobe:st_leaf=stack;uprobe:st_cmp=stack",
    "session": "usession:st_leaf=stack;usession:st_cmp=stack",
}
TEXT_TOP, JSON_TOP = 10, 20   # the stacks each report shows per probe (stack.c)
OURS = re.compile(r"^(sp_|selfprobe|_sp_)|tramp|libselfprobe")
FRAME = re.compile(r"^(.+)\+(0|0x[0-9a-f]+)$")
OWN = {"main", "st_a", "st_b", "st_c", "st_leaf", "st_via_lib", "st_sort", "st_cmp",
       "stlib_outer", "stlib_inner"}


def name(frame):
    m = FRAME.match(frame)
    return m.group(1) if m else frame


def parse_folded(text, what):
    """{label: {frames tuple (root first): count}}."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\S+) (\d+)", line)
        if not t.check(m, "%s: not a folded line: %r" % (what, line)):
            continue
        parts = m.group(1).split(";")
        stacks = out.setdefault(parts[-1], {})
        t.check(tuple(parts[:-1]) not in stacks, "%s: stack listed twice: %s" % (what, line))
        stacks[tuple(parts[:-1])] = int(m.group(2))
    return out


def program_counts(stdout):
    counts = {k: int(v) for k, v in re.findall(r"^(\w+) (\d+)$", stdout.decode(), re.M)}
    return counts if set(counts) == {"ab", "c", "lib", "cmp"} else None


def matches(names, pattern):
    """NAMES (main first) follow PATTERN, where LIBC stands for one or
    more libc frames, the first one qsort's."""
    if LIBC not in pattern:
        return names == pattern
    i = pattern.index(LIBC)
    head, tail = pattern[:i], pattern[i + 1:]
    mid = names[len(head):len(names) - len(tail)]
    return (names[:len(head)] == head and names[len(names) - len(tail):] == tail and len(mid) >= 1
            and (mid[0] in ("qsort", "qsort_r", "__qsort_r") or mid[0].startswith("libc.so"))
            and not any(n in OWN for n in mid))


def check_label(what, label, stacks, counts):
    """The stacks of LABEL against the call graph.  Returns (entry stacks,
    return stacks) as frames tuples."""
    kind, fn = label.split(":")[0], label.split(":")[-1]
    want = []    # (pattern, count, at entry)
    for callers, key in CALLERS[fn]:
        if kind in ("uprobe", "usession"):
            want.append((callers + [fn], counts[key], True))
        if kind in ("uretprobe", "usession"):
            want.append((callers, counts[key], False))
    got = {i: 0 for i in range(len(want))}
    entry, ret = [], []
    for frames, n in stacks.items():
        bad = [f for f in frames if OURS.search(name(f)) or not FRAME.match(f)]
        t.check(not bad, "%s: %s: frames not of the program (ours, or unnamed): %s"
                % (what, label, bad), ";".join(frames))
        names = [name(f) for f in frames]
        if not t.check(names.count("main") == 1, "%s: %s: main %d times"
                       % (what, label, names.count("main")), ";".join(frames)):
            continue
        names = names[names.index("main"):]
        hit = [i for i, (p, _, at_entry) in enumerate(want)
               if matches(names, p) and (not at_entry or frames[-1] == fn + "+0")]
        if t.check(len(hit) == 1, "%s: %s: a stack not in the call graph: %s %d"
                   % (what, label, ";".join(names), n), ";".join(frames)):
            got[hit[0]] += n
            (entry if want[hit[0]][2] else ret).append(frames)
            t.check(LIBC in want[hit[0]][0] or n == want[hit[0]][1],
                    "%s: %s: %s counted %d, want %d" % (what, label, ";".join(names), n, want[hit[0]][1]))
    for i, (p, n, at_entry) in enumerate(want):
        t.check(got[i] == n, "%s: %s: %s (%s) counted %d in all, want %d"
                % (what, label, ";".join(p), "entry" if at_entry else "return", got[i], n))
    return entry, ret


def check_returns(what, entry, ret):
    """A return stack is an entry stack of the same run less its last
    frames: the same return addresses, found the same way."""
    for frames in ret:
        t.check(any(len(e) > len(frames) and e[:len(frames)] == frames for e in entry),
                "%s: return stack is no entry stack's prefix: %s" % (what, ";".join(frames)))


def fmt(stacks):
    return "\n".join("%s %s %d" % (label, ";".join(fr), n)
                     for label, s in sorted(stacks.items()) for fr, n in sorted(s.items()))


def parse_text(text):
    """The text report's @stacks blocks → {label: {frames (root first): count}}."""
    out = {}
    for label, body, n in re.findall(r"^@stacks\[([^,\]\n]+),\n((?:    \S+\n)*)\]: (\d+)$", text, re.M):
        frames = tuple(reversed([f.strip() for f in body.splitlines()]))
        out.setdefault(label, {})[frames] = int(n)
    return out


def parse_json(rep):
    out = {}
    for p in rep.get("probes", []):
        label = p["spec"].rpartition("=")[0]
        for s in p.get("stacks", []):
            frames = tuple(reversed(s["frames"]))
            out.setdefault(label, {})[frames] = s["count"]
    return out


def sanitized(stacks):
    """As the folded output writes frames (';' and ' ' made '_')."""
    return {label: {tuple(re.sub(r"[; ]", "_", f) for f in fr): n for fr, n in s.items()}
            for label, s in stacks.items()}


def check_top(what, shown, folded, top, more=None):
    """SHOWN, a report's stacks, are the TOP most counted of the FOLDED
    ones of each probe, exactly as counted there; MORE, when given, is the
    report's {label: stacks left out}."""
    for label in sorted(set(shown) | set(folded)):
        s, f = shown.get(label, {}), folded.get(label, {})
        t.check(all(f.get(fr) == n for fr, n in s.items()),
                "%s: %s: stacks or counts not in the folded file" % (what, label),
                fmt({label: {fr: n for fr, n in s.items() if f.get(fr) != n}}) + "\n--- folded:\n"
                + fmt({label: f}))
        t.check(len(s) == min(top, len(f)), "%s: %s: %d stacks shown of %d (top %d)"
                % (what, label, len(s), len(f), top))
        left = [n for fr, n in f.items() if fr not in s]
        t.check(not left or not s or max(left) <= min(s.values()),
                "%s: %s: a stack counted %d left out for one counted %d"
                % (what, label, max(left or [0]), min(s.values() or [0])))
        if more is not None:
            t.check(more.get(label, 0) == len(left), "%s: %s: the text says %d more stacks, %d left out"
                    % (what, label, more.get(label, 0), len(left)))


def check_reports(what, prefix, folded, mode, spec):
    """The same run's text and JSON reports against its folded stacks."""
    text_path, json_path = prefix + ".txt", prefix + ".json"
    rep = t.load_report(json_path, "%s: JSON report" % what)
    if rep:
        check_top(what + " JSON", sanitized(parse_json(rep)), folded, JSON_TOP)
        for p in rep["probes"]:
            total = sum(folded.get(p["spec"].rpartition("=")[0], {}).values())
            want = p["hits"] + (p.get("returns", 0) if p["kind"] == "usession" else 0)
            t.check(total == want, "%s: %s: stacks count %d, hits (and returns) %d"
                    % (what, p["spec"], total, want))
            t.check(mode != "jmp" or p["mode"] == "jmp", "%s: %s not on the jmp path: %s"
                    % (what, p["spec"], p["reason"]))
        t.check(len(rep["probes"]) == len(spec.split(";")) and not rep["errors"],
                "%s: probes %d, errors %r" % (what, len(rep["probes"]), rep["errors"]))
    if t.check(os.path.exists(text_path), "%s: no text report %s" % (what, text_path)):
        text = open(text_path, errors="replace").read()
        more = {label: int(n) for label, n in
                re.findall(r"^@stacks\[([^\]\n]+)\]: (\d+) more distinct stacks", text, re.M)}
        check_top(what + " text", sanitized(parse_text(text)), folded, TEXT_TOP, more)


def run_case(config, mode, launcher):
    what = "%s %s %s" % (config, mode, "selfprobe run" if launcher else "LD_PRELOAD")
    spec = CONFIGS[config]
    base = os.path.join(t.work_dir(), "%s-%s-%s" % (config, mode, "run" if launcher else "preload"))
    folded_path = base + ".folded"
    if launcher:
        cmd = [LAUNCHER, "run", "--mode", mode, "-o", folded_path]
        for item in spec.split(";"):
            cmd += ["-e", item]
        cp = t.run(cmd + ["--", STACKS, base])
    else:
        cp = t.run([STACKS, base], t.probed_env(spec, mode, folded_path))
    ref = t.run([STACKS])
    # beside a folded output, the text report goes to stderr (and nothing else)
    stray = [l for l in cp.stderr.decode(errors="replace").splitlines()
             if l.strip() and not l.startswith(("@", "]", " "))]
    report_only = not stray
    t.check(cp.returncode == 0 and cp.stdout == ref.stdout and report_only and b"@count[" in cp.stderr,
            "%s: exit %d, stdout differs from the unprobed run or stderr holds more than the report"
            % (what, cp.returncode), "\n".join(stray[:5]) + "\n" +
            t.clip(cp.stdout + cp.stderr))
    counts = program_counts(ref.stdout)
    if not t.check(counts and all(counts.values()), "%s: sp_stacks printed no counts" % what,
                   t.clip(ref.stdout)):
        return
    if not t.check(os.path.exists(folded_path), "%s: no folded file" % what):
        return
    folded = parse_folded(open(folded_path, errors="replace").read(), what)
    labels = [item.rpartition("=")[0] for item in spec.split(";")]
    t.check(sorted(folded) == sorted(labels), "%s: stacks for %s, want %s"
            % (what, sorted(folded), sorted(labels)))
    entry, ret = [], []
    for label in labels:
        e, r = check_label(what, label, folded.get(label, {}), counts)
        entry += e
        ret += r
    check_returns(what, entry, ret)
    check_reports(what, base, folded, mode, spec)
    if launcher:
        # the program's full reports, written for the launcher, are gone
        pid = json.load(open(base + ".json")).get("pid") if os.path.exists(base + ".json") else None
        left = glob.glob("/tmp/selfprobe-run-*/%s.*" % pid)
        t.check(pid and not left, "%s: the launcher left its report directory: %s" % (what, left))


CXX = os.path.join(os.path.dirname(t.TARGET), "sp_bt_cxx")
CXX_LEAF = "_ZN2ns3BoxIiE4leafEl"
# ns::over(int) -> ns::Box<int>::get(long) const (a local .isra clone: from
# the ELF symbols) -> ns::Box<int>::leaf(long), 3 times
CXX_FRAMES = ["main", "ns::over(int)", "ns::Box<int>::get(long) const [clone .isra.0]", "ns::Box<int>::leaf(long)"]


def cxx():
    spec = "uprobe:%s:%s=stack" % (CXX, CXX_LEAF)
    label = spec.rpartition("=")[0]
    for launcher in (False, True):
        what = "C++ frames (%s)" % ("selfprobe run" if launcher else "LD_PRELOAD")
        base = os.path.join(t.work_dir(), "cxx-%s" % launcher)
        if launcher:
            cp = t.run([LAUNCHER, "run", "-o", base + ".folded", "-e", spec, "--", CXX])
        else:
            cp = t.run([CXX], t.probed_env(spec, "jmp", base + ".folded"))
        # offsets made "+OFF": the names are what is checked
        text = re.sub(r"\+0x[0-9a-f]+", "+OFF", cp.stderr.decode(errors="replace"))
        folded = open(base + ".folded").read() if os.path.exists(base + ".folded") else ""
        folded = re.sub(r"\+0x[0-9a-f]+", "+OFF", folded)
        names = ["%s+%s" % (f, "0" if f == CXX_FRAMES[-1] else "OFF") for f in CXX_FRAMES]
        line = ";".join(re.sub(r"[; ]", "_", f) for f in names) + ";%s 3\n" % label
        t.check(line in folded, "%s: the folded stack demangled: %s" % (what, line), folded)
        block = "@stacks[%s,\n" % label + "".join("    %s\n" % f for f in reversed(names)) + "    "
        t.check(block in text, "%s: the text report's stack demangled" % what, text)
    env = t.probed_env(spec, "jmp", os.path.join(t.work_dir(), "cxx.json"))
    t.run([CXX], env)
    rep = t.load_report(os.path.join(t.work_dir(), "cxx.json"), "C++ frames: JSON report")
    frames = rep["probes"][0].get("stacks", [{}])[0].get("frames", []) if rep and rep["probes"] else []
    t.check([name(f) for f in frames[:4]] == list(reversed(CXX_FRAMES)),
            "C++ frames: the JSON stack demangled", frames)


def shared_kib(spec):
    """KiB of the launcher's shared file in use once `sp_stacks` has exited
    and written its report under SPEC (a sleeping child keeps the launcher
    and its file alive while we look)."""
    import subprocess
    import time
    out = os.path.join(t.work_dir(), "pages.json")
    p = subprocess.Popen([LAUNCHER, "run", "-o", out, "-e", spec, "--", "sh", "-c",
                          '"$0" >/dev/null; echo done; exec sleep 5', STACKS],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.base_env())
    try:
        p.stdout.readline()   # sp_stacks has exited
        time.sleep(0.3)
        for fd in os.listdir("/proc/%d/fd" % p.pid):
            path = "/proc/%d/fd/%s" % (p.pid, fd)
            try:
                if "selfprobe-counters" in os.readlink(path):
                    return os.stat(path).st_blocks // 2
            except OSError:
                pass
        return None
    finally:
        p.kill()
        p.communicate()


def report_pages():
    """A report reads only the stacks that exist: the table has room for
    65536 (19 MiB of the launcher's shared file per process), and reading
    all of it would allocate every page of it (and take seconds with
    thousands of stack probes)."""
    plain = shared_kib("uprobe:st_leaf;uprobe:st_cmp")
    stack = shared_kib("uprobe:st_leaf=stack;uprobe:st_cmp=stack")
    if not t.check(plain is not None and stack is not None, "the launcher's shared file not found"):
        return
    t.check(stack - plain < 4096, "the stack probes' report took %d KiB of the shared file more than "
            "the same probes counting (%d KiB): the whole table was read" % (stack - plain, plain))


RETSAFE = os.path.join(os.path.dirname(t.TARGET), "sp_retsafe")


def errno_kept():
    """A handler leaves errno as the program left it: the stack action's
    first walk (libunwind's) sets it, before the probed function reads it
    (an entry probe) or after it set it (a return probe)."""
    ref = t.run([RETSAFE, "errno", "50"])
    for spec in ("uprobe:rs_errno_read=stack", "uretprobe:rs_errno_set=stack",
                 "usession:rs_errno_set=stack;uprobe:rs_errno_read=latency"):
        for mode in ("int3", "jmp"):
            cp, _ = t.run_probed([RETSAFE, "errno", "50"], spec, mode)
            t.check(cp.returncode == 0 and cp.stdout == ref.stdout,
                    "errno [%s] (%s): changed by a handler" % (spec, mode),
                    "got:\n%s\nwant:\n%s" % (t.clip(cp.stdout + cp.stderr), t.clip(ref.stdout)))


def fork_while_walking():
    """Threads walk their stacks without pause while the main thread forks:
    no child inherits a lock of the unwinder's held by a thread it does not
    have (its first walk would hang with every signal blocked)."""
    ref = t.run([RETSAFE, "forkwalk", "200"])
    for mode in ("int3", "jmp"):
        cp, _ = t.run_probed([RETSAFE, "forkwalk", "200"], "uprobe:rs_leaf=stack", mode, timeout=600)
        t.check(cp.returncode == 0 and cp.stdout == ref.stdout,
                "forkwalk [uprobe:rs_leaf=stack] (%s): a fork child hung" % mode,
                "got:\n%s\nwant:\n%s" % (t.clip(cp.stdout + cp.stderr), t.clip(ref.stdout)))


def main():
    t.require_build()
    report_pages()
    errno_kept()
    fork_while_walking()
    for path in (LAUNCHER, STACKS):
        if not os.path.exists(path):
            t.check(False, "missing build output %s" % path)
            t.finish()
    for config in CONFIGS:
        for mode in ("int3", "jmp"):
            for launcher in (False, True):
                run_case(config, mode, launcher)
    cxx()
    t.finish()


if __name__ == "__main__":
    main()
