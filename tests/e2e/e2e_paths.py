#!/usr/bin/python3
"""e2e_paths — the end-to-end tests find everything from CTest's environment,
wherever the checkout and the build are (issue 16).

A checkout may be cloned to any folder and built anywhere: a test that
guesses a path from its own location (build/ beside the sources) or names a
fixed one fails there.  This test copies sptest.py and the tests that run
the launcher into a folder of another name, with no build beside them, and
runs them there with CTest's environment: each must pass (or skip) as it
does in place.  .ci/run proves the same for the whole suite from a fresh
clone in a temporary folder.
"""
import os
import shutil
import sys

import sptest as t

HERE = os.path.dirname(os.path.abspath(__file__))
MOVED = ["e2e_timeline.py", "e2e_utf8.py"]


def main():
    t.require_build()
    t.check("SP_BUILD" in os.environ and "SP_CLI" in os.environ,
            "CTest's environment names no build directory or launcher (SP_BUILD, SP_CLI)")
    dest = os.path.join(t.work_dir(), "another-name", "tests", "e2e")
    os.makedirs(dest)
    for name in ["sptest.py"] + MOVED:
        shutil.copy(os.path.join(HERE, name), dest)
    t.check(not os.path.exists(os.path.join(dest, "..", "..", "build")), "a build beside the copy")
    env = dict(os.environ, SP_WORK=os.path.join(t.work_dir(), "moved-work"))
    for name in MOVED:
        cp = t.run([sys.executable, os.path.join(dest, name)], env=env, timeout=300)
        t.check(cp.returncode in (0, t.SKIP), "%s, moved to a folder of another name: exit %d"
                % (name, cp.returncode), t.clip(cp.stdout + cp.stderr, 3000))
    t.finish()


if __name__ == "__main__":
    main()
