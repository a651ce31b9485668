#!/usr/bin/python3
"""e2e_output — where the report goes (UPROBE_OUTPUT).

  unset            text on stderr: "@count[SPEC]: N" lines
  PATH.txt         text in the file, nothing on stderr
  PATH.json        JSON with the documented fields
  %p in the path   the pid: a forking program writes one report per process
"""
import glob
import json
import os
import re

import sptest as t

N = 1000
SPEC = "uprobe:t_nop;uprobe:t_call"


def count_lines(text, n):
    """The missing "@count[...]: N" lines of SPEC's items in TEXT."""
    return [item for item in SPEC.split(";")
            if not re.search(r"^@count\[%s\]: %d$" % (re.escape(item), n), text, re.M)]


def plain(args):
    cp = t.run([t.TARGET] + args)
    t.check(cp.returncode == 0, "unprobed sp_target %s failed" % args, t.clip(cp.stderr))
    return cp


def same_run(label, cp, ref):
    t.check(cp.returncode == ref.returncode, "%s: exit %d, unprobed %d"
            % (label, cp.returncode, ref.returncode), t.clip(cp.stderr))
    t.check(cp.stdout == ref.stdout, "%s: stdout differs from the unprobed run" % label,
            t.clip(cp.stdout, 600))


def test_stderr(ref):
    cp = t.run([t.TARGET, str(N)], t.probed_env(SPEC, "int3"))
    same_run("unset", cp, ref)
    err = cp.stderr.decode(errors="replace")
    t.check("@count[" in err and not count_lines(err, N),
            "unset: stderr lacks the text report lines %s" % count_lines(err, N), t.clip(err))


def test_text_file(ref):
    path = os.path.join(t.work_dir(), "report.txt")
    cp = t.run([t.TARGET, str(N)], t.probed_env(SPEC, "int3", path))
    same_run("txt", cp, ref)
    t.check("@count[" not in cp.stderr.decode(errors="replace"),
            "txt: the report also went to stderr", t.clip(cp.stderr))
    if t.check(os.path.exists(path), "txt: no file %s" % path):
        text = open(path, errors="replace").read()
        t.check(not count_lines(text, N), "txt: file lacks report lines %s" % count_lines(text, N),
                t.clip(text))
        t.check(not text.lstrip().startswith("{"), "txt: the .txt report is JSON", t.clip(text))
    # any path that does not end in .json is text, too
    path2 = os.path.join(t.work_dir(), "report.out")
    cp = t.run([t.TARGET, str(N)], t.probed_env(SPEC, "int3", path2))
    same_run("other extension", cp, ref)
    if t.check(os.path.exists(path2), "other extension: no file %s" % path2):
        text = open(path2, errors="replace").read()
        t.check(not count_lines(text, N), "other extension: not the text report", t.clip(text))


def test_json(ref):
    path = os.path.join(t.work_dir(), "report.json")
    cp, rep = t.run_probed([t.TARGET, str(N)], SPEC, "int3", output=path)
    same_run("json", cp, ref)
    t.check(not cp.stderr, "json: unexpected stderr", t.clip(cp.stderr))
    if not rep:
        return
    t.check(rep["version"] == 1 and rep["pid"] == cp.pid,
            "json: version %r pid %r, want 1 and %d" % (rep["version"], rep["pid"], cp.pid))
    t.check(rep["errors"] == [], "json: errors %r" % rep["errors"])
    t.check([e["spec"] for e in rep["probes"]] == SPEC.split(";"),
            "json: probe specs %r, want %r in spec order" % ([e["spec"] for e in rep["probes"]],
                                                             SPEC.split(";")))
    for e in rep["probes"]:
        sym = e["spec"].split(":")[1]
        t.check(e["symbol"] == sym and e["kind"] == "uprobe" and e["action"] == "count"
                and e["mode"] == "int3" and e["hits"] == N and e["missed"] == 0
                and os.path.realpath(e["object"]) == os.path.realpath(t.TARGET),
                "json: entry %s" % e["spec"], json.dumps(e))
        # the address is the run-time address of the symbol: page offset agrees with the ELF value
        want = t.Elf(t.TARGET).symbol(sym)[0]
        t.check(int(e["address"], 16) & 0xfff == want & 0xfff,
                "json: %s address %s does not end like its ELF value 0x%x" % (sym, e["address"], want))
    # errors entry, with JSON escaping of an awkward item
    bad = 'uprobe:t_"no\\such'
    path = os.path.join(t.work_dir(), "report-err.json")
    cp, rep = t.run_probed([t.TARGET, str(N)], SPEC + ";" + bad, "int3", output=path)
    same_run("json with error", cp, ref)
    if rep:
        t.check([e["spec"] for e in rep["errors"]] == [bad] and rep["errors"][0]["message"],
                "json: errors %r, want one entry for %r" % (rep["errors"], bad))
        t.check([e["hits"] for e in rep["probes"]] == [N, N],
                "json with error: hits %r" % [e["hits"] for e in rep["probes"]])


def test_pid(ref_fork):
    d = os.path.join(t.work_dir(), "pid")
    os.makedirs(d)
    for ext in ("json", "txt"):
        pattern = os.path.join(d, "r-%p." + ext)
        cp = t.run([t.TARGET, "fork", str(N)], t.probed_env("uprobe:t_nop", "int3", pattern))
        same_run("%%p.%s" % ext, cp, ref_fork)
        files = sorted(glob.glob(os.path.join(d, "r-*." + ext)))
        t.check(not os.path.exists(pattern), "%%p.%s: a file literally named %s" % (ext, pattern))
        pids = {}
        for f in files:
            m = re.fullmatch(r"r-(\d+)\." + ext, os.path.basename(f))
            if t.check(m, "%%p.%s: unexpected file %s" % (ext, f)):
                pids[int(m.group(1))] = f
        t.check(len(pids) == 2 and cp.pid in pids,
                "%%p.%s: want two reports, one named with pid %d; got %s" % (ext, cp.pid, files))
        for pid, f in pids.items():
            want = N if pid == cp.pid else 2 * N      # the child calls 2N times, after the fork
            if ext == "json":
                rep = t.load_report(f, "%%p report %s" % f)
                if rep:
                    t.check(rep["pid"] == pid, "%s: pid %d in the file" % (f, rep["pid"]))
                    hits = [e["hits"] for e in rep["probes"]]
                    t.check(hits == [want], "%s: hits %s, want [%d]" % (f, hits, want))
            else:
                text = open(f, errors="replace").read()
                t.check(re.search(r"^@count\[uprobe:t_nop\]: %d$" % want, text, re.M),
                        "%s: want @count[uprobe:t_nop]: %d" % (f, want), t.clip(text))


def main():
    t.require_build()
    ref = plain([str(N)])
    test_stderr(ref)
    test_text_file(ref)
    test_json(ref)
    test_pid(plain(["fork", str(N)]))
    t.finish()


if __name__ == "__main__":
    main()
