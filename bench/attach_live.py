#!/usr/bin/python3
"""bench/attach_live.py — the latency of `selfprobe attach` and `detach` on a
process that is already running (issue 17), for 1, 100 and 10000 probes.

    bench/attach_live.py [BUILD...] [--reps N]

Several BUILDs (a main checkout's build and a branch's): measured in one
run, each repetition of each row taking the builds in turn, so that the
machine's load falls on all alike; a table each.

The target is python3.11 started without the preload, with libbench10000.so
loaded (ctypes) and waiting on stdin.  Rows, wall time of the CLI command
(the median of N repetitions, min and max beside it):

  inject+attach   the first `attach --no-wait` on a fresh process: the
                  ptrace loading of libselfprobe.so (a new thread dlopens it)
                  then the attach over the control channel
  attach          `attach --no-wait` again, the runtime already loaded
  detach          `detach -o /dev/null`: the report, then every byte restored
  session         `attach --duration 0.001 -o /dev/null`, runtime loaded: what
                  a waiting attach adds (taking the counters file, where the
                  build has one) and its detach, in one command
  cli             `selfprobe --version`: the cost of starting the CLI itself,
                  in every row above

N probes: uprobe:LIB:bench_f0 (1), bench_f[0-9] + bench_f[1-9][0-9] (100),
bench_f* (10000).  Prints only: no pass/fail.
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    args = sys.argv[1:]
    reps = 5
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i:i + 2]
    builds = [os.path.abspath(b) for b in (args or [os.path.join(HERE, "..", "build")])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPROBE_") and k != "LD_PRELOAD"}

    def timed(cmd):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        dt = (time.perf_counter() - t0) * 1e3
        if r.returncode != 0:
            sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
        return dt

    def target(lib):
        p = subprocess.Popen(["/usr/bin/python3.11", "-c",
                              "import ctypes, sys; ctypes.CDLL(%r); print('ready', flush=True); "
                              "sys.stdin.read()" % lib],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        p.stdout.readline()
        return p

    rows = {b: {} for b in builds}
    cli_ms = {b: [] for b in builds}
    for _ in range(reps):
        for b in builds:
            cli_ms[b].append(timed([os.path.join(b, "bin", "selfprobe"), "--version"]))
    for n in (1, 100, 10000):
        for b in builds:
            rows[b][n] = ([], [], [], [])
        for _ in range(reps):
            for b in builds:
                cli = os.path.join(b, "bin", "selfprobe")
                lib = os.path.join(b, "lib", "libbench10000.so")
                items = {1: ["uprobe:%s:bench_f0" % lib],
                         100: ["uprobe:%s:bench_f[0-9]" % lib, "uprobe:%s:bench_f[1-9][0-9]" % lib],
                         10000: ["uprobe:%s:bench_f*" % lib]}[n]
                spec = []
                for it in items:
                    spec += ["-e", it]
                first, again, det, sess = rows[b][n]
                p = target(lib)
                first.append(timed([cli, "attach", str(p.pid)] + spec + ["--no-wait"]))
                det.append(timed([cli, "detach", str(p.pid), "-o", "/dev/null"]))
                again.append(timed([cli, "attach", str(p.pid)] + spec + ["--no-wait"]))
                det.append(timed([cli, "detach", str(p.pid), "-o", "/dev/null"]))
                sess.append(timed([cli, "attach", str(p.pid)] + spec + ["--duration", "0.001", "-o", "/dev/null"]))
                p.stdin.close()
                p.wait()

    def fmt(v):
        return "%8.1f (%6.1f-%7.1f)" % (statistics.median(v), min(v), max(v))

    for b in builds:
        print("%s: wall ms, median (min-max) of %d; target python3.11 + libbench10000.so" % (b, reps))
        print("%-8s %-26s %-26s %-26s %-26s" % ("probes", "inject+attach", "attach (loaded)", "detach", "session"))
        for n, (first, again, det, sess) in rows[b].items():
            print("%-8d %-26s %-26s %-26s %-26s" % (n, fmt(first), fmt(again), fmt(det), fmt(sess)))
        print("cli      %s  (selfprobe --version, in every figure)" % fmt(cli_ms[b]))
    if len(builds) > 1:
        print("\nmedian ratios, %s / %s:" % (builds[1], builds[0]))
        print("%-8s %-16s %-16s %-16s %-16s" % ("probes", "inject+attach", "attach (loaded)", "detach", "session"))
        for n in rows[builds[0]]:
            r = [statistics.median(y) / statistics.median(x) for x, y in zip(rows[builds[0]][n], rows[builds[1]][n])]
            print("%-8d %-16.2f %-16.2f %-16.2f %-16.2f" % ((n,) + tuple(r)))


if __name__ == "__main__":
    main()
