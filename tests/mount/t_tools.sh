#!/bin/bash
# tests/mount/t_tools.sh - standard tools end to end on a cmkfs mount.
#
# Content written through the mount is always compared with a reference copy
# kept outside the mount, and read back after an unmount/remount.
#   tar     tar a real tree (/usr/include + edge cases) in, remount, tar it out
#   rsync   rsync -aHAX in (no warnings allowed), remount, rsync out, xattrs
#   sqlite  4 concurrent writers x 200 transactions, DELETE then WAL journal
#   git     init/add/commit/modify/commit, fsck, status, identical hashes
# Run a subset with T_PARTS="tar git".

# shellcheck source=../lib/lib.sh
. "$(dirname "$0")/../lib/lib.sh"

t_init
t_need tar rsync sqlite3 git setfattr getfattr sha256sum diff find awk
T_PARTS=${T_PARTS:-tar rsync sqlite git}
REF=$T/ref
NFILES=${T_NFILES:-5000}

# ---------------------------------------------------------------- helpers

# manifest DIR OUT: sorted manifests of DIR written to OUT.{sha,meta,links,hl}
manifest() {
	(
		cd "$1" || exit 1
		find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2 >"$2.sha"
		# type, mode, owner, [nlink size] mtime (whole seconds), path
		find . -mindepth 1 \
			\( -type d -printf 'd %m %U:%G %T@ %p\n' \) -o \
			\( -type f -printf 'f %m %U:%G %n %s %T@ %p\n' \) -o \
			\( -type l -printf 'l %U:%G %p\n' \) -o -printf '? %y %p\n' |
			sed -E 's/ ([0-9]+)\.[0-9]+ / \1 /' | LC_ALL=C sort >"$2.meta"
		find . -type l -printf '%p -> %l\n' | LC_ALL=C sort >"$2.links"
		# hard link groups: "a|b|c" per inode, independent of inode numbers
		find . -type f -links +1 -printf '%p\t%i\n' | LC_ALL=C sort |
			awk -F'\t' '{ g[$2] = g[$2] "|" $1 } END { for (i in g) print g[i] }' |
			LC_ALL=C sort >"$2.hl"
	)
}

# compare_trees A B WHAT: diff -r plus sha256/metadata/symlink/hard link manifests
compare_trees() {
	local m
	if ! diff -r --no-dereference "$1" "$2" >"$T/diff.out" 2>&1; then
		head -n 40 "$T/diff.out" >&2
		t_fail "$3: diff -r reports differences"
	fi
	manifest "$1" "$T/m1"
	manifest "$2" "$T/m2"
	for m in sha meta links hl; do
		if ! diff -u "$T/m1.$m" "$T/m2.$m" >"$T/diff.out"; then
			head -n 40 "$T/diff.out" >&2
			t_fail "$3: $m manifest differs"
		fi
	done
	t_ok "$3: identical ($(wc -l <"$T/m1.sha") files, $(wc -l <"$T/m1.links") symlinks, $(wc -l <"$T/m1.hl") hard link groups; contents, modes, owners, mtimes, link counts)"
}

# xattr_dump DIR: user.* xattrs of the whole tree as sorted "path<TAB>name=0xvalue"
xattr_dump() {
	(cd "$1" && getfattr -R -P -h -d -m '^user\.' -e hex .) |
		awk '/^# file: / { f = substr($0, 9); next } NF { print f "\t" $0 }' |
		LC_ALL=C sort
}

compare_xattrs() {
	xattr_dump "$1" >"$T/x1"
	xattr_dump "$2" >"$T/x2"
	[ -s "$T/x1" ] || t_fail "$3: reference has no user xattrs (test bug)"
	if ! diff -u "$T/x1" "$T/x2" >"$T/diff.out"; then
		head -n 40 "$T/diff.out" >&2
		t_fail "$3: user xattrs differ"
	fi
	local v
	v=$(getfattr --absolute-names --only-values -n user.cmkfs.test "$2/extra/with space.txt")
	[ "$v" = "hello xattr" ] || t_fail "$3: getfattr user.cmkfs.test = '$v'"
	t_ok "$3: $(wc -l <"$T/x1") user xattrs identical"
}

build_ref() {
	local r=$1 s
	mkdir -p "$r/inc" "$r/extra"
	# a real tree: the first $NFILES files/symlinks of /usr/include
	(cd /usr/include && find . \( -type f -o -type l \) -print0) | LC_ALL=C sort -z >"$T/inc.all"
	head -z -n "$NFILES" "$T/inc.all" >"$T/inc.list"
	tar -C /usr/include --null -T "$T/inc.list" -cf - | tar -C "$r/inc" -xpf -

	# edge cases
	cd "$r/extra" || exit 1
	mkdir empty "empty dir" -p a/b/c/d/e/f/g/h sizes 'dir ünï 日本'
	echo deep >a/b/c/d/e/f/g/h/file
	for s in 0 1 511 4095 4096 4097 65535 65536 65537 131072 1048579; do
		head -c "$s" /dev/urandom >"sizes/$s"
	done
	for s in "with space.txt" " leading space" "trailing space " "ünïcödé-日本語-🙂.txt" \
		"quote'single\"double" 'glob*?[x]' -dash '$dollar' 'back\slash' 'dir ünï 日本/inner file'; do
		printf 'name: %s\n' "$s" >"./$s"
	done
	printf '#!/bin/sh\necho hi\n' >script.sh && chmod 755 script.sh
	echo secret >secret && chmod 600 secret
	echo ro >read-only && chmod 444 read-only
	mkdir private && echo p >private/p && chmod 700 private
	echo nobody >owned-by-nobody && chown 65534:65534 owned-by-nobody
	# hard links: a group of 3 across directories, and a pair
	echo "hard link group" >hl-orig && ln hl-orig hl-second && ln hl-orig a/b/hl-third
	echo "pair" >"hl pair 1" && ln "hl pair 1" "dir ünï 日本/hl pair 2"
	# symlinks
	ln -s sizes/4096 rel-link
	ln -s /usr/include/stdio.h abs-link
	ln -s does/not/exist dangling-link
	ln -s sizes dir-link
	ln -s "ünïcödé-日本語-🙂.txt" "link to ünï"
	ln -s rel-link link-to-link
	ln -s ../../../../../../../../file a/b/c/d/e/f/g/h/up-link
	# user xattrs (value text, empty, binary; on a file, a dir, a hard link)
	setfattr -n user.cmkfs.test -v "hello xattr" "with space.txt"
	setfattr -n user.cmkfs.empty "with space.txt"
	setfattr -n user.cmkfs.bin -v "0x$(head -c 1000 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" sizes/4097
	setfattr -n user.cmkfs.dir -v "dir value" "empty dir"
	setfattr -n user.cmkfs.hl -v "on a hard link" hl-second
	cd /
	t_log "reference tree: $(find "$r" -type f | wc -l) files, $(find "$r" -type l | wc -l) symlinks, $(find "$r" -type d | wc -l) dirs, $(du -sh "$r" | cut -f1)"
}

# ---------------------------------------------------------------- tar

part_tar() {
	t_log "tar: ref -> mount"
	mkdir "$MNT/x"
	tar -C "$REF" -cf - . | tar -C "$MNT/x" -xpf -
	compare_trees "$REF" "$MNT/x" "tar: ref vs mount"
	t_remount
	t_log "tar: remounted, mount -> out-tar"
	mkdir "$T/out-tar"
	tar -C "$MNT/x" -cf - . | tar -C "$T/out-tar" -xpf -
	compare_trees "$REF" "$T/out-tar" "tar: ref vs copy taken out of the remounted mount"
}

# ---------------------------------------------------------------- rsync

run_rsync() {
	if ! rsync -aHAX "$@" 2>"$T/rsync.err" || [ -s "$T/rsync.err" ]; then
		sed 's/^/  > /' "$T/rsync.err" >&2
		t_fail "rsync -aHAX $* failed or printed warnings (xattr/ACL support?)"
	fi
}

part_rsync() {
	t_log "rsync -aHAX: ref -> mount"
	run_rsync "$REF/" "$MNT/r/"
	compare_trees "$REF" "$MNT/r" "rsync: ref vs mount"
	compare_xattrs "$REF" "$MNT/r" "rsync: ref vs mount"
	t_remount
	t_log "rsync: remounted, checking nothing to transfer"
	rsync -aHAXni --delete "$REF/" "$MNT/r/" >"$T/rsync.dry" 2>&1
	if [ -s "$T/rsync.dry" ]; then
		head -n 40 "$T/rsync.dry" >&2
		t_fail "rsync: dry run after remount wants to change files"
	fi
	t_ok "rsync: dry run after remount: nothing to do"
	t_log "rsync -aHAX: mount -> out-rsync"
	run_rsync "$MNT/r/" "$T/out-rsync/"
	compare_trees "$REF" "$T/out-rsync" "rsync: ref vs copy taken out of the remounted mount"
	compare_xattrs "$REF" "$T/out-rsync" "rsync: ref vs copy taken out of the remounted mount"
	compare_xattrs "$REF" "$MNT/r" "rsync: ref vs remounted mount"
}

# ---------------------------------------------------------------- sqlite

SCHEMA='CREATE TABLE t(id INTEGER PRIMARY KEY, w INT NOT NULL, i INT NOT NULL,
  payload TEXT NOT NULL, UNIQUE(w, i)); CREATE INDEX t_payload ON t(payload);'

# writer_sql W FROM TO: one transaction per row, deterministic ~810-byte payload
writer_sql() {
	local i
	echo "PRAGMA busy_timeout=60000;"
	for ((i = $2; i <= $3; i++)); do
		echo "BEGIN IMMEDIATE; INSERT INTO t(w, i, payload) VALUES($1, $i, printf('w%d-i%d-', $1, $i) || replace(hex(zeroblob(400)), '0', char(65 + ($1 * 7 + $i) % 26))); COMMIT;"
	done
}

# run_writers MODE FROM TO: 4 concurrent writers on the mount, then the same
# statements sequentially on the reference database outside the mount
run_writers() {
	local w pids=()
	for w in 1 2 3 4; do
		writer_sql "$w" "$2" "$3" >"$T/w$w.sql"
	done
	for w in 1 2 3 4; do
		sqlite3 -bail "$DB" <"$T/w$w.sql" >"$T/w$w.out" 2>"$T/w$w.err" &
		pids+=($!)
	done
	for w in 1 2 3 4; do
		if ! wait "${pids[w - 1]}" || [ -s "$T/w$w.err" ]; then
			sed 's/^/  > /' "$T/w$w.err" >&2
			t_fail "sqlite ($1): writer $w failed"
		fi
	done
	for w in 1 2 3 4; do
		sqlite3 -bail "$DBREF" <"$T/w$w.sql" >/dev/null
	done
	t_ok "sqlite ($1): 4 concurrent writers x $(($3 - $2 + 1)) transactions done"
}

sq() { sqlite3 -bail "$@"; }

# sqlite_check DBFILE WHAT ROWS MODE
sqlite_check() {
	local v
	v=$(sq "$1" "PRAGMA integrity_check;")
	[ "$v" = ok ] || t_fail "sqlite ($2): integrity_check: $v"
	v=$(sq "$1" "SELECT count(*) FROM t;")
	[ "$v" = "$3" ] || t_fail "sqlite ($2): $v rows, want $3"
	v=$(sq "$1" "SELECT group_concat(n) FROM (SELECT count(*) AS n FROM t GROUP BY w ORDER BY w);")
	[ "$v" = "$(($3 / 4)),$(($3 / 4)),$(($3 / 4)),$(($3 / 4))" ] || t_fail "sqlite ($2): rows per writer: $v"
	v=$(sq "$1" "PRAGMA journal_mode;")
	[ "$v" = "$4" ] || t_fail "sqlite ($2): journal_mode is $v, want $4"
	if [ "$(sq "$1" "SELECT w, i, payload FROM t ORDER BY w, i;" | sha256sum)" != \
		"$(sq "$DBREF" "SELECT w, i, payload FROM t ORDER BY w, i;" | sha256sum)" ]; then
		t_fail "sqlite ($2): table contents differ from the reference database"
	fi
	t_ok "sqlite ($2): integrity ok, $3 rows, journal_mode=$4, contents match reference"
}

part_sqlite() {
	DB=$MNT/db/test.db
	DBREF=$T/sqlref.db
	mkdir "$MNT/db"
	[ "$(sq "$DB" "PRAGMA journal_mode=DELETE;")" = delete ] || t_fail "sqlite: cannot set journal_mode=DELETE"
	sq "$DB" "$SCHEMA"
	sq "$DBREF" "$SCHEMA"
	run_writers DELETE 1 200
	sqlite_check "$DB" "DELETE journal" 800 delete
	[ "$(sq "$DB" "PRAGMA journal_mode=WAL;")" = wal ] || t_fail "sqlite: cannot set journal_mode=WAL"
	run_writers WAL 201 400
	sqlite_check "$DB" "WAL journal" 1600 wal
	t_remount
	sqlite_check "$DB" "after remount" 1600 wal
	ls -la "$MNT/db" | sed 's/^/  /'
	cp "$DB" "$T/dbcopy.db"
	sqlite_check "$T/dbcopy.db" "copy taken out of the mount" 1600 wal
}

# ---------------------------------------------------------------- git

# git with a fixed identity and no system/global config
git_t() {
	GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
		git -c user.name="cmkfs test" -c user.email=cmkfs-test@example.invalid \
		-c init.defaultBranch=main -c gc.auto=0 -c core.fsync=all "$@"
}

# git_ops DIR: build the same two-commit repository (fixed dates, so the
# commit hashes are reproducible) in DIR
git_ops() {
	local d=$1 f i
	local -a files
	mkdir "$d"
	git_t -C "$d" init -q
	head -z -n 300 "$T/inc.list" | tar -C "$REF/inc" --null -T - -cf - | tar -C "$d" -xpf -
	tar -C "$REF" -cf - extra | tar -C "$d" -xpf -
	git_t -C "$d" add -A
	GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z' \
		git_t -C "$d" commit -q -m "first commit"
	mapfile -d '' files < <(git_t -C "$d" ls-files -z)
	for f in "${files[@]:0:60}"; do
		[ -f "$d/$f" ] && [ ! -L "$d/$f" ] && printf 'modified by cmkfs test\n' >>"$d/$f"
	done
	git_t -C "$d" rm -q -- "${files[@]:100:20}"
	for f in "${files[@]:150:10}"; do
		git_t -C "$d" mv -- "$f" "$f.renamed"
	done
	for f in "${files[@]:200:5}"; do
		[ -f "$d/$f" ] && [ ! -L "$d/$f" ] && chmod +x "$d/$f"
	done
	mkdir "$d/new dir"
	for ((i = 1; i <= 30; i++)); do
		printf 'new file %d\n' "$i" >"$d/new dir/f$i"
	done
	git_t -C "$d" add -A
	GIT_AUTHOR_DATE='2024-01-02T00:00:00Z' GIT_COMMITTER_DATE='2024-01-02T00:00:00Z' \
		git_t -C "$d" commit -q -m "second commit"
}

# git_check DIR WHAT
git_check() {
	local n out
	n=$(git_t -C "$1" log --oneline | wc -l)
	[ "$n" = 2 ] || t_fail "git ($2): git log has $n commits, want 2"
	if ! out=$(git_t -C "$1" fsck --full --strict --no-progress 2>&1) || [ -n "$out" ]; then
		printf '%s\n' "$out" | head -n 40 >&2
		t_fail "git ($2): git fsck not clean"
	fi
	out=$(git_t -C "$1" status --porcelain --untracked-files=all)
	if [ -n "$out" ]; then
		printf '%s\n' "$out" | head -n 40 >&2
		t_fail "git ($2): git status --porcelain not empty"
	fi
	if [ "$(git_t -C "$1" rev-parse HEAD)" != "$(git_t -C "$T/gitref" rev-parse HEAD)" ]; then
		diff <(git_t -C "$T/gitref" ls-tree -r HEAD) <(git_t -C "$1" ls-tree -r HEAD) | head -n 40 >&2 || true
		t_fail "git ($2): HEAD differs from the reference repository"
	fi
	if ! diff -r --no-dereference -x .git "$T/gitref" "$1" >"$T/diff.out" 2>&1; then
		head -n 40 "$T/diff.out" >&2
		t_fail "git ($2): work tree differs from the reference repository"
	fi
	t_ok "git ($2): 2 commits, fsck clean, status clean, HEAD $(git_t -C "$1" rev-parse --short HEAD) = reference, work tree = reference"
}

part_git() {
	git_ops "$T/gitref"
	t_log "git: reference repo: $(git_t -C "$T/gitref" ls-files | wc -l) tracked files"
	git_ops "$MNT/git"
	git_t -C "$MNT/git" gc -q --prune=now
	git_check "$MNT/git" "mount"
	t_remount
	git_check "$MNT/git" "after remount"
}

# ---------------------------------------------------------------- main

# the reference copy needs user xattrs on the temp dir's filesystem
setfattr -n user.cmkfs.probe -v 1 "$T" 2>/dev/null ||
	t_skip "filesystem of $T does not support user xattrs (set TMPDIR)"
build_ref "$REF"
t_mkvol
t_mount
for p in $T_PARTS; do
	s=$SECONDS
	"part_$p"
	t_log "part $p done in $((SECONDS - s))s"
done
t_umount
t_ok "t_tools: parts: $T_PARTS"
