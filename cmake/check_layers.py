#!/usr/bin/env python3
"""Checks that src/ follows the module layering declared in CMakeLists.txt (atrium_module calls).

Every folder of src/ is a module; a module may include only its own headers and those of the modules it names
(DEPENDS). The declared graph must be acyclic, so no module includes one above it and no two include each other.
Run by the build before any module compiles (target atrium_layers) and by tests/layering/check_layers_test.py.

Usage: check_layers.py SRC_DIR STAMP MODULE...
Each MODULE is "name:dep,dep" (what CMake passes, in declaration order); STAMP is written when all is well ("-":
none). Exit status 1 lists every violation.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"/]+)/[^"]*"')


def parse_table(items):
    modules = {}
    for item in filter(None, items):
        name, _, deps = item.partition(":")
        modules[name] = set(filter(None, deps.split(",")))
    return modules


def cycles(modules):
    """The first cycle found in the declared graph, as a list of names, or None."""
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(modules.get(m, ())):
            if state.get(d) == "open":
                return path[path.index(d):] + [d] if d in path else [m, d]
            if d not in state:
                found = visit(d, path + [d])
                if found:
                    return found
        state[m] = "done"
        return None

    for m in sorted(modules):
        if m not in state:
            found = visit(m, [m])
            if found:
                return found
    return None


def check(src, modules):
    problems = []
    for m, deps in sorted(modules.items()):
        for d in sorted(deps - modules.keys()):
            problems.append(f"module {m} depends on {d}, which is not a module")
    cycle = cycles(modules)
    if cycle:
        problems.append("the declared modules form a cycle: " + " -> ".join(cycle))
    for folder in sorted(os.listdir(src)):
        path = os.path.join(src, folder)
        if not os.path.isdir(path):
            continue
        if folder not in modules:
            problems.append(f"src/{folder} is not a declared module (add atrium_module({folder} ...) to CMakeLists.txt)")
            continue
        allowed = modules[folder] | {folder}
        for root, _, files in os.walk(path):
            for name in sorted(files):
                if not name.endswith((".hpp", ".cpp", ".h")):
                    continue
                file = os.path.join(root, name)
                with open(file, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        match = INCLUDE.match(line)
                        if match and match.group(1) not in allowed and os.path.isdir(os.path.join(src, match.group(1))):
                            rel = os.path.relpath(file, os.path.dirname(src))
                            problems.append(f"{rel}:{number}: module {folder} includes {match.group(1)}/, which it "
                                            f"does not depend on (allowed: {', '.join(sorted(allowed))})")
    return problems


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(argv[1], parse_table(argv[3:]))
    for p in problems:
        print("layering: " + p, file=sys.stderr)
    if problems:
        return 1
    if argv[2] != "-":
        with open(argv[2], "w", encoding="utf-8") as f:
            f.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
