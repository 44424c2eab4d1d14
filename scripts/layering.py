#!/usr/bin/env python3
"""scripts/layering.py — keep the dependency graph of src/ one-way.

Every header include/cmkfs/<name>.h belongs to the layer of the folder that
holds src/<layer>/<name>.c (doc/DESIGN.md, "Layers"). Each #include
"cmkfs/..." in src/ and include/ is an edge from the including file's layer
to the header's layer; an edge that ALLOWED does not list fails the check, as
does a header that belongs to no layer or an include cycle between modules.

Usage: scripts/layering.py [TOP]   (exit 0 clean, 1 violations)
"""
import os
import re
import sys

# Who may include whom. Read it as the picture in doc/DESIGN.md:
#   cli -> daemon -> fuse | maint -> cipherdir -> keys
#       -> azure | format | audit -> util | crypto
BASE = {"util"}
ALLOWED = {
    "util": BASE,
    "crypto": BASE | {"crypto"},
    "format": BASE | {"crypto", "format"},
    "azure": BASE | {"crypto", "azure"},
    "audit": BASE | {"audit"},
    "keys": BASE | {"crypto", "format", "azure", "audit", "keys"},
    "cipherdir": BASE | {"crypto", "format", "audit", "keys", "cipherdir"},
    "maint": BASE | {"crypto", "format", "azure", "audit", "keys",
                     "cipherdir", "maint"},
    "fuse": BASE | {"crypto", "format", "audit", "keys", "cipherdir",
                    "fuse"},
    "daemon": BASE | {"crypto", "format", "azure", "audit", "keys",
                      "cipherdir", "maint", "fuse", "daemon"},
    "cli": BASE | {"crypto", "format", "azure", "audit", "keys",
                   "cipherdir", "maint", "daemon", "cli"},
}
# Headers with no .c of their own: shared definitions at the bottom.
HEADER_ONLY = {"common": "util", "exitcodes": "util", "reserved": "format"}

INC = re.compile(r'^\s*#\s*include\s+"(?:cmkfs/)?([A-Za-z0-9_]+)\.h"', re.M)


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..")
    src = os.path.join(top, "src")
    layer_of = dict(HEADER_ONLY)
    files = []  # (path, layer, module)
    for layer in sorted(os.listdir(src)):
        d = os.path.join(src, layer)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f.endswith((".c", ".h")):
                mod = f[:-2]
                files.append((os.path.join(d, f), layer, mod))
                if mod in layer_of and layer_of[mod] != layer and \
                        f.endswith(".c"):
                    print(f"layering: module name {mod} is used in two "
                          f"layers ({layer_of[mod]}, {layer})")
                    return 1
                layer_of.setdefault(mod, layer)
    bad = []
    for layer in ALLOWED:
        if not os.path.isdir(os.path.join(src, layer)):
            bad.append(f"layer {layer} has no folder src/{layer}")
    for layer in sorted({f[1] for f in files}):
        if layer not in ALLOWED:
            bad.append(f"src/{layer}/ is not a layer of the table")
    inc = os.path.join(top, "include", "cmkfs")
    for f in sorted(os.listdir(inc)):
        if f.endswith(".h"):
            mod = f[:-2]
            if mod not in layer_of:
                bad.append(f"include/cmkfs/{f}: no src/<layer>/{mod}.c")
                continue
            files.append((os.path.join(inc, f), layer_of[mod], mod))
    graph = {}
    for path, layer, mod in files:
        text = open(path, encoding="utf-8").read()
        rel = os.path.relpath(path, top)
        for m in INC.finditer(text):
            dep = m.group(1)
            if dep == "config" or dep == mod:
                continue
            dl = layer_of.get(dep)
            if dl is None:
                bad.append(f"{rel}: includes {dep}.h of no layer")
                continue
            if dl not in ALLOWED.get(layer, set()):
                bad.append(f"{rel}: {layer} -> {dl} ({dep}.h) is not allowed")
            graph.setdefault(mod, set()).add(dep)
    # Module cycles inside a layer are circles too.
    seen, stack, cycles = {}, [], []

    def visit(n):
        seen[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if seen.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in seen:
                visit(m)
        stack.pop()
        seen[n] = 2

    for n in sorted(graph):
        if n not in seen:
            visit(n)
    for c in cycles:
        bad.append("include cycle: " + " -> ".join(c))
    for b in bad:
        print("layering: " + b)
    print(f"layering: {len(files)} files, "
          f"{sum(len(v) for v in graph.values())} module edges, "
          f"{len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
