#!/usr/bin/python3
"""e2e_fdreuse — a program that closes every descriptor above 2 and opens a
file of its own at the numbers of the runtime's copies of stderr
(tests/targets/sp_fdreuse.c: a daemon's closefrom, then its own files) gets
none of the runtime's bytes in that file.

  preload   UPROBE_OUTPUT unset: the file holds only the program's line; the
            text report is on the stderr of the exit, its errors saying that
            the report's copy of stderr was gone and that the 6 =trace lines
            (3 buffered before the close, 3 after, one from a thread that
            exits) were dropped; no trace line anywhere.
  json      UPROBE_OUTPUT=x.json: the same file; the JSON report counts 6
            hits and says the 6 dropped lines in its errors; stderr empty.
  launcher  `selfprobe run`: the same file; the launcher's report says the
            dropped lines.
  control   UPROBE_CONTROL=1: the runtime's own counters file (a memfd at
            10 or more, made at the attach) is closed by the program and
            its number is the program's file; the fork child's handler
            must not close it (the target's child checks every number it
            holds, exiting 5 else).
  bt        a bpftrace program (printf and count() in fdreuse_work), its
            output on a copy of stdout at 512 or more, which the program
            takes too: the same file; stdout holds the 3 printf lines from
            before the close only; the JSON report counts 6 hits and says
            the 4 dropped outputs (3 printf, the maps at exit) in its errors.
"""
import json
import os

import sptest as t

FDREUSE = os.path.join(os.path.dirname(t.TARGET), "sp_fdreuse")
SPEC = "uprobe:%s:fdreuse_work=trace" % FDREUSE
DROPPED = "6 trace lines dropped: the program closed the copy of its stderr"
REPORT_COPY = "the program closed the copy of its stderr kept for this report"


def own_file(tag):
    path = os.path.join(t.work_dir(), "own-%s.txt" % tag)
    if os.path.exists(path):
        os.unlink(path)
    return path


def check_run(tag, cp, path, stdout=b"done 20\n"):
    t.check(cp.returncode == 0 and cp.stdout == stdout, "%s: exit %d, stdout %r"
            % (tag, cp.returncode, cp.stdout), t.clip(cp.stderr))
    with open(path, "rb") as f:
        data = f.read()
    t.check(data == b"program\n", "%s: the program's file holds bytes of the runtime's" % tag, t.clip(data))
    t.check(b"fdreuse_work(" not in cp.stderr, "%s: a trace line was written after all" % tag,
            t.clip(cp.stderr))


def check_json(tag, report, spec=None, said=None):
    """REPORT counts 6 hits; with SPEC, its errors hold one of SPEC's,
    starting with SAID."""
    if not t.check(report is not None, "%s: no report" % tag):
        return
    hits = [p.get("hits") for p in report.get("probes", [])]
    t.check(hits == [6], "%s: hits %r, want [6]" % (tag, hits), json.dumps(report)[:1500])
    if spec:
        msgs = [e.get("message", "") for e in report.get("errors", []) if e.get("spec") == spec]
        t.check(len(msgs) == 1 and msgs[0].startswith(said), "%s: the dropped output is not said" % tag,
                json.dumps(report.get("errors"))[:1500])


def preload():
    path = own_file("preload")
    cp = t.run([FDREUSE, path], t.probed_env(SPEC))
    check_run("preload", cp, path)
    err = cp.stderr.decode(errors="replace")
    t.check("@count[uprobe:%s:fdreuse_work]: 6" % FDREUSE in err, "preload: no text report on stderr", err)
    t.check("@error[report]: " + REPORT_COPY in err, "preload: the lost copy of stderr is not said", err)
    t.check("@error[trace]: " + DROPPED in err, "preload: the dropped trace lines are not said", err)


def json_report():
    path = own_file("json")
    out = os.path.join(t.work_dir(), "report.json")
    cp, report = t.run_probed([FDREUSE, path], SPEC, mode=None, output=out)
    check_run("json", cp, path)
    t.check(cp.stderr == b"", "json: stderr not empty", t.clip(cp.stderr))
    check_json("json", report, "trace", DROPPED)


def launcher():
    path = own_file("launcher")
    cp = t.run([t.CLI, "run", "-e", SPEC, "--", FDREUSE, path])
    check_run("launcher", cp, path)
    err = cp.stderr.decode(errors="replace")
    t.check("@error[trace]: " + DROPPED in err, "launcher: the dropped trace lines are not said", err)


def control():
    path = own_file("control")
    out = os.path.join(t.work_dir(), "report-control.json")
    cp, report = t.run_probed([FDREUSE, path], SPEC.replace("=trace", ""), mode=None, output=out,
                              extra={"UPROBE_CONTROL": "1"})
    check_run("control", cp, path)
    check_json("control", report)


BT = 'uprobe:%s:fdreuse_work { printf("work %%d\\n", arg0); @c = count(); }' % FDREUSE
BT_DROPPED = "4 outputs dropped (printf, print, the maps at exit): the program closed the copy of its stdout"


def bt():
    path = own_file("bt")
    out = os.path.join(t.work_dir(), "report-bt.json")
    cp, report = t.run_probed([FDREUSE, path], BT, mode=None, output=out)
    check_run("bt", cp, path, b"work 0\nwork 1\nwork 2\ndone 20\n")
    check_json("bt", report, "bpftrace", BT_DROPPED)


def main():
    t.require_build()
    if not t.check(os.path.exists(FDREUSE), "missing build output %s" % FDREUSE):
        t.finish()
    preload()
    json_report()
    launcher()
    control()
    bt()
    t.finish()


if __name__ == "__main__":
    main()
