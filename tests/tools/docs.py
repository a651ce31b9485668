#!/usr/bin/env python3
"""docs — the user contract (README.md, docs/design.md, docs/selfprobe.1)
checked against the code, so that neither drifts without the other.

  docs.py --src SRC --exe SELFPROBE

  - environment: every UPROBE_*/SELFPROBE_* name the runtime, the preload
    or the launcher reads is in the man page's ENVIRONMENT section and in
    design.md's Environment table, and each of those names is read;
  - commands and flags: every subcommand and option the launcher parses
    (the strcmp of cli/*.c) is in the man page, the README and the
    `--help` of SELFPROBE (the main text and every `help COMMAND`);
  - C API: every function of include/selfprobe.h is in the README and in
    design.md, and no selfprobe_*() the docs name is missing from it;
  - report fields: every JSON key the report writers put out is in the man
    page and in design.md, and those of list/check --json in the man page;
  - spec grammar: every probe kind and action runtime/core/spec.c accepts
    is in the man page's PROBES and design.md's grammar, and those name no
    other;
  - paths: every repository path the docs name exists.

Exit 0 when all of it holds, 1 with one line per disagreement otherwise.
"""
import argparse
import os
import re
import subprocess
import sys

DOCS = ("README.md", "docs/design.md", "docs/selfprobe.1")
READERS = ("runtime", "preload", "cli")
# The files that write a report, the launcher's files or a timeline (not
# the control channel's replies, which only the CLI reads).
REPORT_WRITERS = ("runtime/api/report.c", "runtime/actions/stack.c", "runtime/hot/timeline_json.c",
                  "cli/run.c", "cli/section.c")
CONTROL = "runtime/api/control.c"   # its session_report is the attach report
LIST_CHECK = "cli/launcher.c"        # list --json and check --json: the man page's
ENV_NAME = re.compile(r'"((?:UPROBE|SELFPROBE)_[A-Z_]+)=?"')
OPTION = re.compile(r'strcmp\(\s*(?:a|cmd|argv\[i\])\s*,\s*"(-[-a-zA-Z]*|[a-z]+)"\s*\)')
JSON_KEY = re.compile(r'\\"([a-zA-Z_]+)\\":')
API_DECL = re.compile(r'\b(selfprobe_[a-z_0-9]+)\s*\(')
DOC_PATH = re.compile(r'\b((?:runtime|cli|tests|bench|docs|include|preload|probes\.d|cmake)/[A-Za-z0-9_./-]*[A-Za-z0-9_])')
# Named in the docs but not functions of the header: the plugin hooks a
# plugin defines, and the OpenMetrics families of --metrics.
NOT_API = {"selfprobe_plugin_init", "selfprobe_plugin_fini", "selfprobe_hits_total",
           "selfprobe_missed_total", "selfprobe_returns_lost_total", "selfprobe_latency_seconds"}


def read(src, rel):
    with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as f:
        return f.read()


def sources(src, top):
    for d, _, names in os.walk(os.path.join(src, top)):
        for n in sorted(names):
            if n.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(d, n), src)


def man_plain(text):
    """The man page with roff's escapes of '-' and quotes undone."""
    return text.replace("\\-", "-").replace("\\(dq", '"')


def man_section(man, name):
    m = re.search(r"^\.SH %s\n(.*?)(?=^\.SH )" % name, man, re.S | re.M)
    return m.group(1) if m else ""


def check_env(src, docs, problems):
    read_names = set()
    for top in READERS:
        for rel in sources(src, top):
            text = read(src, rel)
            read_names.update(ENV_NAME.findall(text))
    man_env = set(re.findall(r"^\.B(?:R)? ((?:UPROBE|SELFPROBE)_[A-Z_]+)", man_section(docs["man"], "ENVIRONMENT"), re.M))
    design_env = set(re.findall(r"^\| `((?:UPROBE|SELFPROBE)_[A-Z_]+)` \|", docs["design"], re.M))
    for name in sorted(read_names - man_env):
        problems.append(f"environment: {name} is read but not in the man page's ENVIRONMENT")
    for name in sorted(read_names - design_env):
        problems.append(f"environment: {name} is read but not in design.md's Environment table")
    for name in sorted((man_env | design_env) - read_names):
        problems.append(f"environment: {name} is documented but no code reads it")


def check_cli(src, exe, docs, problems):
    words = set()
    for rel in sources(src, "cli"):
        words.update(OPTION.findall(read(src, rel)))
    words.discard("-")
    words.discard("--")
    helps = [["--help"]] + [["help", w] for w in sorted(words) if not w.startswith("-") and w != "help"]
    help_text = ""
    for args in helps:
        cp = subprocess.run([exe] + args, capture_output=True, text=True)
        if cp.returncode != 0:
            problems.append(f"cli: selfprobe {' '.join(args)} exits {cp.returncode}")
        help_text += cp.stdout
    for w in sorted(words):
        pat = re.compile(r"(?<![-\w])%s(?![-\w])" % re.escape(w))
        for where, text in (("the man page", docs["man"]), ("README.md", docs["readme"]),
                            ("selfprobe --help", help_text)):
            if not pat.search(text):
                problems.append(f"cli: '{w}' is parsed by cli/ but not in {where}")


def check_api(src, docs, problems):
    header = read(src, "include/selfprobe.h")
    code = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    api = set(API_DECL.findall(code))
    for name in sorted(api):
        for where in ("readme", "design"):
            if not re.search(r"\b%s\b" % name, docs[where]):
                problems.append(f"api: {name} (include/selfprobe.h) is not in {DOC_NAMES[where]}")
    for where, text in docs.items():
        for name in sorted(set(re.findall(r"\bselfprobe_[a-z_0-9]+", text))):
            if name not in api and name not in NOT_API and name not in header:
                problems.append(f"api: {DOC_NAMES[where]} names {name}, which include/selfprobe.h lacks")


def session_report(text):
    m = re.search(r"^static void session_report\(.*?^}", text, re.S | re.M)
    return m.group(0) if m else ""


def check_report(src, docs, problems):
    keys = set()
    for rel in REPORT_WRITERS:
        keys.update(JSON_KEY.findall(read(src, rel)))
    keys.update(JSON_KEY.findall(session_report(read(src, CONTROL))))
    for key in sorted(keys):
        for where in ("man", "design"):
            if f'"{key}"' not in docs[where] and f"`{key}`" not in docs[where]:
                problems.append(f'report: the field "{key}" is written but not in {DOC_NAMES[where]}')
    for key in sorted(set(JSON_KEY.findall(read(src, LIST_CHECK)))):
        if f'"{key}"' not in docs["man"]:
            problems.append(f'list/check --json: the field "{key}" is written but not in docs/selfprobe.1')


def names_of(text, table):
    m = re.search(r"%s\[\] = \{(.*?)\};" % table, text, re.S)
    return re.findall(r'\] = "([a-z]+)"', m.group(1)) if m else []


def check_grammar(src, docs, problems):
    spec = read(src, "runtime/core/spec.c")
    kinds = set(names_of(spec, "kind_names"))
    actions = set(names_of(spec, "action_names")) - {"plugin", "program"}   # not written as words
    man = man_section(docs["man"], "PROBES")
    m = re.search(r"### Spec grammar.*?```(.*?)```", docs["design"], re.S)
    design = m.group(1) if m else ""
    man_kinds = set(re.findall(r"^(u[a-z]+):", man, re.M))
    man_actions = set(re.findall(r"\.BR? =([a-z]+)", man))
    design_kinds = set(re.findall(r"'(u[a-z]+)'", design))
    m = re.search(r"^action\s*:=(.*?)(?=^\S|\Z)", design, re.S | re.M)
    design_actions = set(re.findall(r"'([a-z]+)'", m.group(1))) if m else set()
    for where, k, a in (("the man page's PROBES", man_kinds, man_actions),
                        ("design.md's spec grammar", design_kinds, design_actions)):
        for what, code, doc in (("probe kind", kinds, k), ("action", actions, a)):
            for name in sorted(code - doc):
                problems.append(f"grammar: spec.c accepts the {what} '{name}', {where} lacks it")
            for name in sorted(doc - code):
                problems.append(f"grammar: {where} names the {what} '{name}', spec.c has none")


def check_paths(src, docs, problems):
    docs_files = dict(docs)
    for d in ("runtime",):
        for n in sorted(os.listdir(os.path.join(src, d))):
            if os.path.isfile(os.path.join(src, d, n, "README.md")):
                docs_files[f"runtime/{n}/README.md"] = read(src, f"runtime/{n}/README.md")
    docs_files["runtime/README.md"] = read(src, "runtime/README.md")
    for where, text in docs_files.items():
        for path in sorted(set(DOC_PATH.findall(text))):
            if path.startswith("runtime/cgo"):
                continue   # Go's package, not ours
            stem = os.path.join(src, path.split("*")[0])
            parent = os.path.dirname(stem)
            if os.path.exists(stem) or (os.path.isdir(parent) and any(
                    f.startswith(os.path.basename(stem)) for f in os.listdir(parent))):
                continue   # a file, or a prefix of one (bench/soak-short: a ctest named after bench/soak)
            problems.append(f"paths: {DOC_NAMES.get(where, where)} names {path}, which does not exist")


DOC_NAMES = {"readme": "README.md", "design": "docs/design.md", "man": "docs/selfprobe.1"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", required=True)
    ap.add_argument("--exe", required=True)
    a = ap.parse_args()
    docs = {"readme": read(a.src, "README.md"), "design": read(a.src, "docs/design.md"),
            "man": man_plain(read(a.src, "docs/selfprobe.1"))}
    problems = []
    check_env(a.src, docs, problems)
    check_cli(a.src, a.exe, docs, problems)
    check_api(a.src, docs, problems)
    check_report(a.src, docs, problems)
    check_grammar(a.src, docs, problems)
    check_paths(a.src, docs, problems)
    for p in problems:
        print(p)
    print(f"docs: {len(problems)} disagreement(s)" if problems else "docs: the contract agrees with the code")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
