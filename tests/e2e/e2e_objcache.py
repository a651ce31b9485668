#!/usr/bin/python3
"""e2e_objcache — the on-disk cache of per-object results (runtime/core/objcache.h).

`ls -la` (of a tree of its own) with `uprobe:libc:*` under UPROBE_CACHE=DIR:
  - the first run writes an entry per object it indexed (mode 0600, in a
    0700 directory); the next run uses them;
  - every probe gets the same mode and reason as with the cache off, cold,
    warm, and after each bad entry below (the cache changes nothing but
    the time it takes);
  - a corrupt entry (a flipped payload byte, a truncated file, another
    key), one that others can write, a symlink, or a directory that others
    can write are ignored, never used; bad entries are replaced by good
    ones, a symlink's target is never written;
  - UPROBE_CACHE=off writes nothing.
Entries: the branch-target index (btindex-), the symbols (elfsym-), the
jmp plans' function decodes (scan-) and the sites' decisions (site-) of
each object.  A warm run replays every site's decision: its scan- entries
are not even read (they are for sites not decided before).
Which entry was used or ignored is read from UPROBE_LOG=debug's lines; with
UPROBE_LOG set, each refused entry is also in the report's errors with its
reason; without it, a refused entry says nothing anywhere (stderr empty,
no error).
"""
import os
import re
import shutil
import stat

import sptest as t

SPEC = "uprobe:libc:*"
LINE = re.compile(r"selfprobe: debug: cache: (\S+?): (used|written|(.*): ignored)$")


last_errors = []
last_hits = {}

# glibc malloc's internal helpers: how often the program's malloc and free
# reach them depends on the heap's state, which the runtime's own
# allocations (different with the cache on or off) change
HEAP_STATE = re.compile(r"_int_|unlink_chunk|alloc_perturb|free_perturb|malloc_consolidate|sysmalloc|"
                        r"tcache|systrim|heap_trim|_heap|arena|mremap_chunk|munmap_chunk|_mid_memalign")


# What ls lists: a tree of this test's own, its times fixed.  `ls -la /`
# made glibc's printf pad differently when another test changed /tmp's
# link count or size meanwhile (_IO_padn 18 / 28: not the cache's doing).
LISTED = []


def fixed_tree(wd):
    top = os.path.join(wd, "tree")
    listed = os.path.join(top, "listed")
    for i in range(4):
        os.makedirs(os.path.join(listed, "dir%d" % i))
    for i in range(12):
        with open(os.path.join(listed, "file%02d" % i), "wb") as f:
            f.write(b"x" * (i * 997))
    os.symlink("file00", os.path.join(listed, "link"))
    for root, dirs, files in os.walk(top, topdown=False):
        for n in files + dirs:
            os.utime(os.path.join(root, n), (1577836800, 1577836800), follow_symlinks=False)
        os.utime(root, (1577836800, 1577836800))
    return listed


def cache_run(d, what, extra=None):
    """(report's {(symbol, address): (mode, reason)}, {entry: [events]})."""
    env = {"UPROBE_CACHE": d, "UPROBE_LOG": "debug"}
    env.update(extra or {})
    cp, r = t.run_probed(["ls", "-la", LISTED[0]], SPEC, mode="auto", extra=env)
    last_errors[:] = [e for e in (r or {}).get("errors", []) if e.get("spec") == "cache"]
    t.check(cp.returncode == 0, "%s: ls exited %d" % (what, cp.returncode), t.clip(cp.stderr))
    events = {}
    for line in cp.stderr.decode(errors="replace").splitlines():
        m = LINE.match(line)
        if m:
            events.setdefault(os.path.basename(m.group(1)), []).append(m.group(3) or m.group(2))
    modes = {(e["symbol"], e["address"]): (e["mode"], e["reason"]) for e in (r or {}).get("probes", [])}
    last_hits.clear()
    for e in (r or {}).get("probes", []):
        last_hits[e["symbol"]] = last_hits.get(e["symbol"], 0) + e["hits"]
    return modes, events


def same_hits(what, ref, got):
    """The program's calls counted exactly as without the cache."""
    diff = [(s, ref.get(s), got.get(s)) for s in sorted(set(ref) | set(got))
            if ref.get(s) != got.get(s) and not HEAP_STATE.search(s)]
    t.check(got and not diff, "%s: %d probes count differently from the run without the cache" % (what, len(diff)),
            "\n".join("%s: %s / %s" % d for d in diff[:20]))


def entries(d):
    return sorted(f for f in os.listdir(d) if not f.endswith(".tmp")) if os.path.isdir(d) else []


def same_modes(what, ref, got):
    # addresses move between runs (ASLR): compare per symbol, in order
    def per_symbol(m):
        out = {}
        for (sym, _addr), v in sorted(m.items()):
            out.setdefault(sym, []).append(v)
        return out
    a, b = per_symbol(ref), per_symbol(got)
    diff = [s for s in sorted(set(a) | set(b)) if a.get(s) != b.get(s)]
    t.check(got and not diff, "%s: %d probes differ in mode or reason from the run without the cache"
            % (what, len(diff)), "\n".join("%s: %s / %s" % (s, a.get(s), b.get(s)) for s in diff[:20]))


def main():
    t.require_build()
    wd = t.work_dir()
    d = os.path.join(wd, "cache")
    LISTED.append(fixed_tree(wd))

    off_dir = os.path.join(wd, "off")
    ref, _ = cache_run(off_dir, "UPROBE_CACHE=off", {"UPROBE_CACHE": "off"})
    ref_hits = dict(last_hits)
    t.check(not os.path.exists(off_dir), "UPROBE_CACHE=off: nothing is written")
    t.check(len(ref) > 1000, "uprobe:libc:* made %d probes" % len(ref))

    cold, ev = cache_run(d, "cold")
    names = entries(d)
    t.check(names and all(e == ["written"] for e in ev.values()) and sorted(ev) == names,
            "cold: an entry written per object", "%s\n%s" % (names, ev))
    if not names:
        t.finish()
    t.check(stat.S_IMODE(os.stat(d).st_mode) == 0o700, "the cache directory is 0700")
    t.check(all(stat.S_IMODE(os.stat(os.path.join(d, n)).st_mode) == 0o600 for n in names), "entries are 0600")
    same_modes("cold", ref, cold)
    same_hits("cold", ref_hits, last_hits)

    t.check(any(n.startswith("site-") for n in names), "cold: the sites' decisions are stored", str(names))
    # a warm run replays every decision: the function decodes are not read
    needed = [n for n in names if not n.startswith("scan-")]
    warm, ev = cache_run(d, "warm")
    t.check(needed and all(ev.get(n) == ["used"] for n in needed), "warm: every entry used", str(ev))
    t.check(all(ev.get(n) in (None, ["used"]) for n in names if n.startswith("scan-")),
            "warm: the function decodes are not needed", str(ev))
    same_modes("warm", ref, warm)
    same_hits("warm", ref_hits, last_hits)

    def bad(what, damage, why):
        for n in names:
            damage(os.path.join(d, n))
        got, ev = cache_run(d, what)
        for n in names:
            t.check(ev.get(n, [None])[0] == why and "used" not in ev.get(n, []),
                    "%s: %s ignored (%s)" % (what, n, why), str(ev.get(n)))
            t.check(any(n in e["message"] and why in e["message"] for e in last_errors),
                    "%s: the report's errors say why %s was refused" % (what, n), str(last_errors))
        same_modes(what, ref, got)
        return ev

    def flip(p):
        with open(p, "r+b") as f:
            f.seek(os.path.getsize(p) - 3)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x40]))

    ev = bad("a flipped byte", flip, "checksum mismatch")
    t.check(all(ev.get(n) == ["checksum mismatch", "written"] for n in names), "a corrupt entry is replaced", str(ev))

    bad("a truncated entry", lambda p: os.truncate(p, os.path.getsize(p) - 8), "wrong length")

    # the same without UPROBE_LOG: refused and rebuilt in silence
    for n in names:
        flip(os.path.join(d, n))
    cp, r = t.run_probed(["ls", "-la", LISTED[0]], SPEC, mode="auto", extra={"UPROBE_CACHE": d})
    t.check(cp.returncode == 0 and not cp.stderr, "without UPROBE_LOG a corrupt entry prints nothing",
            t.clip(cp.stderr))
    t.check(not [e for e in (r or {}).get("errors", []) if e.get("spec") == "cache"],
            "without UPROBE_LOG a corrupt entry is not a report error", str((r or {}).get("errors")))
    warm, ev = cache_run(d, "rebuilt in silence")
    t.check(all(ev.get(n) == ["used"] for n in needed), "the silent run rebuilt every entry", str(ev))

    def rekey(p):     # a whole, valid-looking entry under another key's name
        with open(p, "r+b") as f:
            f.seek(8 + 16)
            k = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([k[0] ^ 1]))
    bad("another key", rekey, "another format or key")

    bad("an entry others can write", lambda p: os.chmod(p, 0o666),
        "not a regular file of this user's that only it can write")

    # a symlink to a file of ours: not followed on read, and the rename
    # that replaces it leaves the target alone
    target = os.path.join(wd, "precious")
    with open(target, "w") as f:
        f.write("keep me")
    for n in names:
        os.unlink(os.path.join(d, n))
        os.symlink(target, os.path.join(d, n))
    got, ev = cache_run(d, "symlinks")
    t.check(all(ev.get(n) == ["written"] for n in names), "symlinked entries are not read", str(ev))
    t.check(open(target).read() == "keep me", "a symlink's target is never written")
    t.check(all(not os.path.islink(os.path.join(d, n)) for n in names), "symlinks are replaced by entries")
    same_modes("symlinks", ref, got)

    os.chmod(d, 0o777)
    got, ev = cache_run(d, "a directory others can write")
    t.check(not ev, "a directory others can write is not used", str(ev))
    same_modes("open directory", ref, got)
    shutil.rmtree(d)
    t.finish()


if __name__ == "__main__":
    main()
