#!/usr/bin/env python3
"""layers — the runtime's layering, checked (runtime/README.md).

  layers.py modules --src SRC --objects LIST [--nm NM]
      Every runtime source lives in a layer folder runtime/<layer>/, whose
      README.md says which layers it may use, on a line "May use: a, b" (or
      "May use: nothing").  A module is the files of one stem (x.c, x.h,
      x.S).  Its dependencies are derived twice:
        - by include: the '#include "y.h"' lines of its files;
        - by call: each undefined symbol of its object files, resolved to
          the object that defines it (nm), LIST naming the objects.
      Fails on a dependency into a layer its layer may not use (upward), on
      a cycle between modules (by include or by call), on a cycle between
      layers' "May use" lines, and on a source outside any layer.

  layers.py cli --exe EXE --map MAP [--nm NM]
      The launcher defines none of the preload's interposers: the names,
      other than selfprobe_*, that the version script MAP exports.

Exit 0 when it holds, 1 with one line per violation otherwise.
"""
import argparse
import os
import re
import subprocess
import sys

SOURCE_EXT = (".c", ".h", ".S")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
MAY_USE = re.compile(r"^May use:\s*(.*)$", re.M | re.I)


def read_layers(runtime):
    """layer -> set of layers it may use; module -> layer; files per module."""
    problems, uses, layer_of, files = [], {}, {}, {}
    for entry in sorted(os.listdir(runtime)):
        path = os.path.join(runtime, entry)
        if not os.path.isdir(path):
            if entry.endswith(SOURCE_EXT):
                problems.append(f"runtime/{entry}: a source outside any layer folder")
            continue
        readme = os.path.join(path, "README.md")
        if not os.path.exists(readme):
            problems.append(f"runtime/{entry}/: no README.md saying what the layer may use")
            continue
        with open(readme, encoding="utf-8") as f:
            m = MAY_USE.search(f.read())
        if not m:
            problems.append(f"runtime/{entry}/README.md: no 'May use:' line")
            continue
        listed = m.group(1).strip().rstrip(".")
        uses[entry] = set() if listed.lower() == "nothing" else \
            {w.strip() for w in listed.split(",") if w.strip()}
        for name in sorted(os.listdir(path)):
            if not name.endswith(SOURCE_EXT):
                continue
            stem = os.path.splitext(name)[0]
            if layer_of.get(stem, entry) != entry:
                problems.append(f"module {stem}: files in both {layer_of[stem]}/ and {entry}/")
            layer_of[stem] = entry
            files.setdefault(stem, []).append(os.path.join(path, name))
    for layer, used in uses.items():
        for u in sorted(used - set(uses)):
            problems.append(f"runtime/{layer}/README.md: may use '{u}', which is no layer")
    return problems, uses, layer_of, files


def include_graph(files, layer_of):
    graph = {m: set() for m in files}
    for mod, paths in files.items():
        for p in paths:
            with open(p, encoding="utf-8", errors="replace") as f:
                for inc in INCLUDE.findall(f.read()):
                    dep = os.path.splitext(os.path.basename(inc))[0]
                    if dep in layer_of and dep != mod:
                        graph[mod].add(dep)
    return graph


def object_module(path):
    # <dir>/x.c.o, x.S.o (CMake) or x.o
    base = os.path.basename(path)
    for ext in (".c.o", ".S.o", ".o"):
        if base.endswith(ext):
            return base[: -len(ext)]
    return base


def nm_symbols(nm, path):
    out = subprocess.run([nm, path], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("U", "w"):
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRVWCGSiu":
            defined.add(parts[2])
    return defined, undefined


def interposer_names(map_path):
    """The libc and unwinder names the version script exports (not selfprobe_*)."""
    with open(map_path, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    m = re.search(r"global:(.*?)local:", text, re.S)
    names = {w.strip() for w in (m.group(1) if m else "").split(";")}
    return {n for n in names if n and not n.startswith("selfprobe_") and "*" not in n}


def call_graph(nm, objects, layer_of, transparent=frozenset()):
    """Who calls whom by symbols.  A call to a TRANSPARENT name (libc's
    longjmp, sigaction ...) is a call to libc, which the interposer only
    stands in for: no edge to interpose/."""
    problems, definer, needs = [], {}, {}
    for obj in objects:
        mod = object_module(obj)
        if mod not in layer_of:
            problems.append(f"{obj}: an object of no module in a layer folder")
            continue
        defined, undefined = nm_symbols(nm, obj)
        needs.setdefault(mod, set()).update(undefined - transparent)
        for s in defined:
            definer.setdefault(s, mod)
    graph, why = {m: set() for m in needs}, {}
    for mod, undefined in needs.items():
        for s in sorted(undefined):
            dep = definer.get(s)
            if dep and dep != mod:
                graph[mod].add(dep)
                why.setdefault((mod, dep), s)
    return problems, graph, why


def cycles(graph):
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check_modules(args):
    runtime = os.path.join(args.src, "runtime")
    problems, uses, layer_of, files = read_layers(runtime)
    for comp in cycles({l: u & set(uses) for l, u in uses.items()}):
        problems.append(f"layers may use each other in a cycle: {' '.join(comp)}")
    with open(args.objects, encoding="utf-8") as f:
        objects = [l.strip() for l in f.read().replace(";", "\n").splitlines() if l.strip()]
    if not objects:
        problems.append(f"{args.objects}: no object files listed")
    incs = include_graph(files, layer_of)
    transparent = interposer_names(os.path.join(runtime, "selfprobe.map"))
    cproblems, calls, why = call_graph(args.nm, objects, layer_of, transparent)
    problems += cproblems
    for kind, graph in (("include", incs), ("call", calls)):
        for mod in sorted(graph):
            for dep in sorted(graph[mod]):
                a, b = layer_of[mod], layer_of[dep]
                if a != b and b not in uses.get(a, set()):
                    via = f" ({why[(mod, dep)]})" if kind == "call" else ""
                    problems.append(f"upward {kind}: {a}/{mod} -> {b}/{dep}{via}: "
                                    f"{a} may use {', '.join(sorted(uses.get(a, ()))) or 'nothing'}")
        for comp in cycles(graph):
            problems.append(f"module cycle by {kind}: {' '.join(comp)}")
    return problems


def check_cli(args):
    interposers = interposer_names(args.map)
    if not interposers:
        return [f"{args.map}: no interposer names found"]
    out = subprocess.run([args.nm, "-D", "--defined-only", args.exe],
                         capture_output=True, text=True, check=True).stdout
    defined = {l.split()[-1].split("@")[0] for l in out.splitlines() if l.split()}
    return [f"{args.exe} defines the interposer {n}" for n in sorted(interposers & defined)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    m = sub.add_parser("modules")
    m.add_argument("--src", required=True)
    m.add_argument("--objects", required=True, help="file listing object files")
    m.add_argument("--nm", default="nm")
    c = sub.add_parser("cli")
    c.add_argument("--exe", required=True)
    c.add_argument("--map", required=True)
    c.add_argument("--nm", default="nm")
    args = ap.parse_args()
    problems = check_modules(args) if args.what == "modules" else check_cli(args)
    for p in problems:
        print(p)
    print(f"layers {args.what}: {'FAIL, ' + str(len(problems)) + ' problem(s)' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
