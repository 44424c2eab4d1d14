#!/usr/bin/env python3
"""scripts/layering.py — keep the dependency graph of src/ one-way.

Every header include/cmkfs/<name>.h belongs to the layer of the folder that
holds src/<layer>/<name>.c (doc/DESIGN.md, "Layers"). Each #include
"cmkfs/..." in src/ and include/ is an edge from the including file's layer
to the header's layer; an edge that ALLOWED does not list fails the check, as
does a header that belongs to no layer or an include cycle between modules.

It also checks names (STYLE.md §4, file = module = prefix): every function
and global a src/<layer>/<mod>.c outside src/cli/ exports (not static) is
named <mod>_... or <mod>, unless PREFIX_OK below says otherwise.

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
HEADER_ONLY = {"common": "util", "exitcodes": "util", "engine": "maint", "reserved": "format"}

# Exported names that may differ from their file's name, and why.
PREFIX_OK = {
    # One module, two halves: the bounded reader (rd_*) and writer (wr_*)
    # every parser and serialiser uses; a longer prefix would not pay.
    "rdwr": ("rd_", "wr_"),
}
NAME_OK = {"main"}  # the program's entry point
PREFIX_SKIP = {"cli"}  # the CLI exports nothing below it: cmd_* + cli_*

# Every include, quoted or angled: a cmkfs header however it is spelled
# ("cmkfs/x.h", <cmkfs/x.h>, "x.h" beside the file, "../layer/x.h") counts.
INC = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def include_module(path, kind, target, top):
    """The module an include names; None for a system or config header;
    "?path" for a file of the tree outside src/ and include/."""
    if target == "config.h":
        return None
    name = os.path.basename(target)
    mod = name[:-2] if name.endswith(".h") else "?" + target
    if target.startswith("cmkfs/"):
        return mod
    if kind == "<":
        return None  # system and library headers
    here = os.path.normpath(os.path.join(os.path.dirname(path), target))
    inside = [os.path.normpath(os.path.join(top, d)) + os.sep
              for d in ("src", "include")]
    if not any(here.startswith(d) for d in inside):
        return "?" + os.path.relpath(here, top)
    return mod


def strip_c(text):
    """The text without comments, literals and preprocessor lines."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', '""',
                  text)
    return re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)


def top_paren(stmt):
    """stmt with everything inside parentheses dropped, '(' kept."""
    out, depth = [], 0
    for ch in stmt:
        if ch == "(":
            if depth == 0:
                out.append("(")
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


IDENT = re.compile(r"[A-Za-z_]\w*")


def exported_names(text):
    """(name, kind) of each function defined and each object declared at
    file scope without `static` (or `extern`, `typedef`)."""
    text = strip_c(text)
    names, stmt, i, n = [], [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch not in "{;":
            stmt.append(ch)
            i += 1
            continue
        s = "".join(stmt)
        stmt = []
        words = set(IDENT.findall(top_paren(s)))
        if ch == "{":
            # Skip the braces: a function body, or a struct / initializer
            # whose declaration goes on to the next ';'.
            depth = 0
            while i < n:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
                if depth == 0:
                    break
            head = top_paren(s).rstrip()
            if head.endswith("(") and "=" not in head:
                if "static" not in words:
                    fn = [m for m in re.findall(r"([A-Za-z_]\w*)\s*\(",
                                                head)
                          if m != "__attribute__"]
                    if fn:
                        names.append((fn[-1], "function"))
                continue
            stmt = list(s) + [" {} "]
            continue
        i += 1
        if words & {"static", "extern", "typedef"} or not s.strip():
            continue
        decl = s.split("=")[0]
        fp = re.search(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\)", decl)
        if fp:
            names.append((fp.group(1), "global"))
            continue
        if "(" in top_paren(decl):
            continue  # a prototype
        for d in top_paren(s.replace("{}", "")).split(","):
            ids = IDENT.findall(d.split("=")[0].split("[")[0])
            if ids and not (len(ids) <= 2 and
                            ids[0] in ("struct", "union", "enum")):
                names.append((ids[-1], "global"))
    return names


def check_prefixes(files, top):
    """Exported names that do not start with their module's name."""
    bad = []
    for path, layer, mod in files:
        if not path.endswith(".c") or layer in PREFIX_SKIP:
            continue
        ok = PREFIX_OK.get(mod, ()) + (mod + "_",)
        text = open(path, encoding="utf-8").read()
        for name, kind in exported_names(text):
            if name == mod or name in NAME_OK or name.startswith(ok):
                continue
            bad.append(f"{os.path.relpath(path, top)}: {kind} {name} "
                       f"is not named {mod}_*")
    return bad


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..")
    src = os.path.join(top, "src")
    layer_of = dict(HEADER_ONLY)
    files = []  # (path, layer, module)
    nested = []
    for layer in sorted(os.listdir(src)):
        d = os.path.join(src, layer)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if os.path.isdir(os.path.join(d, f)):
                nested.append(f"src/{layer}/{f}/: a layer has no sub-folders")
            if f.endswith((".c", ".h")):
                mod = f[:-2]
                files.append((os.path.join(d, f), layer, mod))
                if mod in layer_of and layer_of[mod] != layer:
                    print(f"layering: module name {mod} is used in two "
                          f"layers ({layer_of[mod]}, {layer})")
                    return 1
                layer_of.setdefault(mod, layer)
    bad = list(nested)
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
            dep = include_module(path, m.group(1), m.group(2), top)
            if dep is None or dep == mod:
                continue
            if dep.startswith("?"):
                bad.append(f"{rel}: includes {dep[1:]}, outside the layers")
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
    bad += check_prefixes(files, top)
    for b in bad:
        print("layering: " + b)
    print(f"layering: {len(files)} files, "
          f"{sum(len(v) for v in graph.values())} module edges, "
          f"{len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
