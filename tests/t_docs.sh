#!/usr/bin/env bash
# tests/t_docs.sh — `--help`, the man pages, bash completion and the source
# agree (issue #18). For every command of main.c's table, the options
# (long and short) taken from
#   (a) `cmkfs CMD --help`: its option lines ("  -f, --foreground  ...")
#   (b) its man page: the tags of the OPTIONS section, and the SYNOPSIS
#   (c) completions/cmkfs: what <TAB> offers after "cmkfs CMD [ACTION] -"
#   (d) the source: the getopt_long table of src/cli/cmd_CMD.c (or, for a
#       command without one, the options it compares argv with)
# must be the same sets; every option --help mentions anywhere must be a
# real one; a --help Usage line names every option or says [OPTIONS]. The
# same for cmkfs itself (--help, --version), and the command lists of
# main.c, `cmkfs --help`, cmkfs(1) (SYNOPSIS and COMMANDS), completion
# and Makefile.am's man pages agree. Every difference is printed; needs
# neither root nor /dev/fuse.
set -uo pipefail

: "${top_builddir:=${TOP_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}}"
: "${TOP_SRCDIR:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${CMKFS:=$top_builddir/src/cmkfs}"
S=$TOP_SRCDIR
[ -x "$CMKFS" ] || { echo "FAIL: cmkfs not found: $CMKFS" >&2; exit 1; }
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }

bad=0
fail() { printf 'FAIL: %s\n' "$*" >&2; bad=$((bad + 1)); }

# A sorted, unique list of the words on stdin.
set_of() { tr ' ' '\n' | sed '/^$/d' | LC_ALL=C sort -u; }

# same WHAT NAME_A LIST_A NAME_B LIST_B: fail with the difference.
same() {
	local d
	d=$(diff <(printf '%s\n' "$3" | set_of) <(printf '%s\n' "$5" | set_of) |
		awk -v a="$2" -v b="$4" '/^</ { print "  only in " a ": " $2 }
			/^>/ { print "  only in " b ": " $2 }')
	[ -z "$d" ] || fail "$1: $2 and $4 differ:"$'\n'"$d"
}

# The commands of main.c's table.
cmds=$(sed -n '/subcmds\[\] = {/,/^};/p' "$S/src/cli/main.c" |
	grep -oE '^[[:space:]]*\{ "[a-z][a-z-]*",' | grep -oE '[a-z][a-z-]*')
[ -n "$cmds" ] || { echo "FAIL: no commands found in src/cli/main.c" >&2; exit 1; }

# --- man page helpers (python: roff is easier to take apart there) ---
# man_opts PAGE SECTION: options named in SECTION (OPTIONS: the .TP tags
# only; SYNOPSIS: everything).
man_opts() {
	python3 - "$1" "$2" <<'PY'
import re, sys
page, want = sys.argv[1], sys.argv[2]
lines = open(page, encoding="utf-8").read().split("\n")
sec, out, tag_next = None, set(), False
for l in lines:
    if l.startswith(".SH"):
        sec = l[3:].strip().strip('"')
        tag_next = False
        continue
    if sec != want:
        continue
    if want == "OPTIONS":
        if l.startswith(".TP"):
            tag_next = True
            continue
        if not tag_next:
            continue
        tag_next = False
    t = re.sub(r"\\f[BIRP]", " ", l).replace("\\-", "-").replace('"', " ")
    for m in re.finditer(r"(?:^|[\s\[|,])(--?[A-Za-z][A-Za-z0-9-]*)", t):
        out.add(m.group(1))
print(" ".join(sorted(out)))
PY
}

# The man page of command $1: man/cmkfs-CMD.1, else the page whose NAME
# names cmkfs-CMD (cmkfs-lock.1 is also cmkfs-unlock).
man_page() {
	local p=$S/man/cmkfs-$1.1 f
	[ -f "$p" ] && { echo "$p"; return; }
	for f in "$S"/man/cmkfs-*.1; do
		sed -n '/^\.SH NAME/,/^\.SH/p' "$f" | grep -q "cmkfs\\\\-$1\\b" &&
			{ echo "$f"; return; }
	done
}

# --- --help helpers ---
# Options on the option lines of a --help text (stdin): lines that start
# with blanks and a dash; the option column ends at two blanks.
help_opts() {
	grep -E '^ +-' | sed -E 's/^ +//; s/  .*//' |
		grep -oE '(^|[ ,])--?[A-Za-z][A-Za-z0-9-]*' | sed -E 's/^[ ,]//' | set_of
}
# Every long option mentioned anywhere in a --help text (stdin).
help_mentioned() { grep -oE '(^|[^A-Za-z0-9-])--[a-z][a-z0-9-]*' | sed -E 's/^[^-]//' | set_of; }
# The Usage lines of a --help text (stdin): from "Usage:" to a blank line.
help_usage() { sed -n '/^Usage:/,/^$/p'; }

# --- completion ---
# What completion offers for the words "$@" (the last one being the word
# under the cursor).
comp() {
	bash -c '. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_cmkfs; printf "%s\n" "${COMPREPLY[@]}"' _ "$S/completions/cmkfs" "$@"
}

# --- the source ---
# Options of command $1 from src/cli/cmd_*.c: its getopt_long table (the
# KEYOPTS_OPT_* entries resolved through keyopts.h) and optstring; for a
# command without a table, the "-x"/"--xx" literals of its function.
src_opts() {
	python3 - "$S" "$1" "${2:-}" <<'PY'
import re, sys, glob
S, cmd, mode = sys.argv[1], sys.argv[2], sys.argv[3]
# the function main.c's table runs for cmd
tab = open(S + "/src/cli/main.c", encoding="utf-8").read()
m = re.search(r'\{\s*"' + re.escape(cmd) + r'",\s*(?:"(?:[^"\\]|\\.)*"\s*)+,\s*(\w+)\s*\}', tab)
fn = m.group(1) if m else "cmd_" + cmd.replace("-", "_")
keyopts = {}
kh = open(S + "/src/cli/keyopts.h", encoding="utf-8").read().replace("\\\n", " ")
# a macro may stand for more than one entry (--service-key, -fd)
for m in re.finditer(r'#define (KEYOPTS_OPT_\w+)([^\n]*)', kh):
    keyopts[m.group(1)] = re.findall(r'\{\s*"([a-z0-9-]+)"', m.group(2))
body = None
for f in sorted(glob.glob(S + "/src/cli/cmd_*.c")):
    src = open(f, encoding="utf-8").read()
    m = re.search(r"^int " + fn + r"\(int argc, char \*\*argv\)\n\{\n(.*?)^\}", src, re.S | re.M)
    if m:
        body = m.group(1)
        break
if body is None:
    sys.exit("no function %s() in src/cli/cmd_*.c" % fn)
out = set()
t = re.search(r"struct option \w+\[\] = \{(.*?)\n\s*\};", body, re.S)
if t and mode == "aliases":
    # "-f --foreground": a table entry whose value is its short option
    for m in re.finditer(r'\{\s*"([a-z0-9-]+)",\s*\w+,\s*NULL,\s*\'(\w)\'', t.group(1)):
        g = re.search(r'getopt_long\(\s*\w+,\s*\w+,\s*"([^"]*)"', body)
        if g and m.group(2) in g.group(1):
            print("-%s --%s" % (m.group(2), m.group(1)))
    sys.exit(0)
if t:
    for m in re.finditer(r'\{\s*"([a-z0-9-]+)"', t.group(1)):
        out.add("--" + m.group(1))
    for m in re.finditer(r"\b(KEYOPTS_OPT_\w+)", t.group(1)):
        out.update("--" + o for o in keyopts[m.group(1)])
    g = re.search(r'getopt_long\(\s*\w+,\s*\w+,\s*"([^"]*)"', body)
    for ch in re.sub(r"[+:-]", "", g.group(1) if g else ""):
        out.add("-" + ch)
else:
    for m in re.finditer(r'"(--?[A-Za-z][a-z0-9-]*)"', body):
        out.add(m.group(1))
print(" ".join(sorted(out)))
PY
}

# canon ALIASES: stdin's options with each short one that has a long
# alias ("-f --foreground" lines in ALIASES) replaced by the long one.
canon() {
	local o
	while read -r o; do
		[ -n "$o" ] || continue
		awk -v o="$o" '$1 == o { print $2; f = 1 } END { if (!f) print o }' <<<"$1"
	done < <(set_of) | set_of
}

# --- every command ---
ncmd=0 bad0=$bad
for c in $cmds; do
	ncmd=$((ncmd + 1))
	help=$("$CMKFS" "$c" --help 2>&1) || fail "$c: 'cmkfs $c --help' exited $?"
	h=$(help_opts <<<"$help")
	src=$(src_opts "$c") || { fail "$c: no source options"; continue; }
	page=$(man_page "$c")
	if [ -z "$page" ]; then
		fail "$c: no man page man/cmkfs-$c.1 (nor one whose NAME names cmkfs-$c)"
		m='' syn=''
	else
		grep -qE "(^|[[:space:]])man/$(basename "$page")([[:space:]]|\$)" "$S/Makefile.am" ||
			fail "$c: $(basename "$page") is not in Makefile.am's dist_man_MANS"
		m=$(man_opts "$page" OPTIONS)
		syn=$(man_opts "$page" SYNOPSIS)
	fi
	# completion: after "cmkfs CMD -", or "cmkfs CMD ACTION -" for every
	# ACTION it offers
	actions=$(comp cmkfs "$c" "" | grep -v '^-' || true)
	if [ -n "$actions" ] && [ "$(comp cmkfs "$c" "" | grep -c .)" -le 4 ]; then
		cp=$(for a in $actions; do comp cmkfs "$c" "$a" -; done | set_of)
		cp=$(printf '%s\n%s\n' "$cp" "$(comp cmkfs "$c" -)" | set_of)
	else
		cp=$(comp cmkfs "$c" - | set_of)
	fi
	[ -n "$cp" ] || fail "$c: completion offers no options"

	same "$c" "source" "$src" "--help" "$h"
	same "$c" "source" "$src" "$(basename "${page:-none}") OPTIONS" "$m"
	# the SYNOPSIS may name an option by its short or its long name
	al=$(src_opts "$c" aliases)
	same "$c" "source" "$(canon "$al" <<<"$src")" \
		"$(basename "${page:-none}") SYNOPSIS" "$(canon "$al" <<<"$syn")"
	same "$c" "source" "$src" "completion" "$cp"
	# no option --help mentions is not a real one
	for o in $(help_mentioned <<<"$help"); do
		grep -qx -- "$o" <<<"$(set_of <<<"$src")" ||
			fail "$c: --help mentions $o, which 'cmkfs $c' does not take"
	done
	# a Usage line names every option, or says [OPTIONS]
	usage=$(help_usage <<<"$help")
	[ -n "$usage" ] || fail "$c: --help has no Usage line"
	if ! grep -q '\[OPTIONS\]' <<<"$usage"; then
		named=$(grep -oE -- '(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z0-9-]*' <<<"$usage" |
			sed -E 's/^[^-]//' | canon "$al")
		for o in $(canon "$al" <<<"$src"); do
			case $o in -h | --help) continue ;; esac
			grep -qx -- "$o" <<<"$named" ||
				fail "$c: --help Usage line omits $o (list it, or say [OPTIONS])"
		done
	fi
done
[ "$bad" != "$bad0" ] ||
	echo "ok $ncmd commands: --help, man page OPTIONS and SYNOPSIS, completion and getopt tables agree"

# --- cmkfs itself ---
bad0=$bad
help=$("$CMKFS" --help) || fail "'cmkfs --help' exited $?"
src=$(sed -n '/^int main(/,/^}/p' "$S/src/cli/main.c" |
	grep -oE 'strcmp\(argv\[1\], "--?[a-z][a-z-]*"\)' | grep -oE '"-[^"]*"' | tr -d '"' | set_of)
same "cmkfs" "main.c" "$src" "--help" "$(help_opts <<<"$help")"
same "cmkfs" "main.c" "$src" "cmkfs.1 OPTIONS" "$(man_opts "$S/man/cmkfs.1" OPTIONS)"
same "cmkfs" "main.c" "$src" "cmkfs.1 SYNOPSIS" \
	"$(man_opts "$S/man/cmkfs.1" SYNOPSIS | tr ' ' '\n' | grep -Fxf <(printf '%s\n' "$src"))"
same "cmkfs" "main.c" "$src" "completion" "$(comp cmkfs - | set_of)"
"$CMKFS" --version | grep -qE '^cmkfs [0-9]' || fail "cmkfs --version: $("$CMKFS" --version 2>&1)"
# the commands
same "commands" "main.c" "$cmds" "cmkfs --help" \
	"$(sed -n '/^Commands:/,/^$/p' <<<"$help" | grep -oE '^  [a-z][a-z-]*')"
same "commands" "main.c" "$cmds" "cmkfs.1 SYNOPSIS" \
	"$(sed -n '/^\.SH SYNOPSIS/,/^\.SH/p' "$S/man/cmkfs.1" |
		sed -n 's/^\.B cmkfs \([a-z][a-z-]*\).*/\1/p')"
same "commands" "main.c" "$cmds" "cmkfs.1 COMMANDS" \
	"$(sed -n '/^\.SH COMMANDS/,/^\.SH [A-Z]/p' "$S/man/cmkfs.1" |
		grep -A1 '^\.TP' | sed -n 's/^\.B \([a-z][a-z-]*\)$/\1/p')"
same "commands" "main.c" "$cmds" "completion" "$(comp cmkfs '' | grep -v '^-')"
# mount.cmkfs's -o names for cmkfs's own options (fstab spelling): the
# helper's tables == doc/OPERATIONS.md's table, and cmkfs-mount(1) names each
fst=$( { sed -n '/ours\[\] = {/,/};/p' "$S/src/cli/mount_helper.c"
	sed -n '/fstab_names\[\] = {/,/};/p' "$S/src/cli/keyopts.c"; } |
	grep -oE '\{ "[a-z_]+=",' | grep -oE '[a-z_]+=')
fst=$(printf '%s\n%s\n' "$fst" "$(grep -oE 'strcmp\(o, "[a-z_]+"\) == 0' "$S/src/cli/mount_helper.c" |
	grep -oE '"[a-z_]+"' | tr -d '"')" | set_of)
[ -n "$fst" ] || fail "no -o names found in src/cli/mount_helper.c"
same "mount -o" "mount_helper.c" "$fst" "doc/OPERATIONS.md" \
	"$(grep -oE '^\| `[a-z_]+=?' "$S/doc/OPERATIONS.md" | sed 's/^| `//')"
for o in $fst; do
	grep -q "\\\\fB$o" "$S/man/cmkfs-mount.1" || fail "mount -o: cmkfs-mount.1 does not name $o"
done
# every man page is installed
for f in "$S"/man/*.1; do
	grep -qE "(^|[[:space:]])man/$(basename "$f")([[:space:]]|\$)" "$S/Makefile.am" ||
		fail "man/$(basename "$f") is not in Makefile.am's dist_man_MANS"
done
[ "$bad" != "$bad0" ] ||
	echo "ok cmkfs: --help, cmkfs(1), completion and main.c agree on options and commands"

if [ "$bad" = 0 ]; then
	echo "# t_docs.sh: PASS"
	exit 0
fi
echo "# t_docs.sh: FAIL" >&2
exit 1
