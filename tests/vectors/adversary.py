#!/usr/bin/env python3
"""adversary.py — the attacker of doc/SECURITY.md who holds the service key
and an old backup of the cipher directory, written against doc/FORMAT.md
and python3-cryptography only (no cmkfs code), for tests/mount/t_handover.sh.

  adversary.py probe OLDCONF SERVICE_KEY BACKUP CURRENT
      Derive the old KEKs, volume secret, name key and transient-list key
      from OLDCONF (a service-managed config from the backup) and the
      service key. Control: everything in BACKUP must open with them.
      Probe: try every current backing name, long-name side file, header,
      block (under the old DEKs of the backup file with the same file id),
      user.* xattr name and value, symlink target and the transient list
      of CURRENT. Prints "control ..." and "probe CATEGORY opened/tried"
      lines and one "LEAK ..." line per opened item (at most 20 a category).
      Exit 0: control complete, nothing opened; 1: something opened;
      2: the control failed (the decoder is wrong, not the volume).
  adversary.py backing CIPHERDIR
      A listing of what `cmk rotate` and `cmk disable` must not change:
      "name PATH", "tail FILEID SHA" (the bytes after the header), "link",
      "xattr" and "file" (other files) lines, sorted.
  adversary.py oldheaders BACKUP CURRENT
      Copy onto every file of CURRENT that has a header the backup's
      148-byte header with the same file id. Prints "replaced N kept M".
  adversary.py replay OLDCONF SERVICE_KEY BACKUPCOPY CURRENT
      The attacker's full replay, in BACKUPCOPY (a `cp -a` of the backup):
      every file keeps its old name and old header and gets the current
      file's tail (matched by file id); current files without an old
      counterpart are added to the root under names sealed with the old
      name key ("replay-N"), with their current header. Prints one
      "PATH\tCURRENT" line per file (volume path -> current backing path).
"""
import base64
import binascii
import os
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import volkeys  # noqa: E402  (same directory)

HDR = 148
OVH = 56
LABELS = ["cmkfs v1 local wrap S", "cmkfs v1 local wrap C"]
RESERVED_SKIP = {"cmkfs.quarantine"}


def b64d(s):
    if not s or any(c not in
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                    for c in s):
        return None
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError):
        return None


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unpad16(b):
    if not b or b[-1] < 1 or b[-1] > 16 or b[-b[-1]:] != bytes([b[-1]]) * b[-1]:
        return None
    return b[:-b[-1]]


def pad16(b):
    p = 16 - len(b) % 16
    return b + bytes([p]) * p


def siv_open(key, blob, aad):
    if blob is None or len(blob) < 16:
        return None
    try:
        return AESSIV(key).decrypt(blob, [aad])
    except (InvalidTag, ValueError):
        return None


def gcm_open(key, blob, aad):
    if len(blob) < 28:
        return None
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], aad)
    except (InvalidTag, ValueError):
        return None


class OldKeys:
    """Everything the attacker derives from an old service-managed config."""

    def __init__(self, conf, skey):
        self.vol_id, self.gen, layers, secret = volkeys.parse_conf(conf)
        self.bs = struct.unpack(">I", conf[28:32])[0]
        keks = []
        for i, (prov, _, blob) in enumerate(layers):
            if prov != 1:
                sys.exit("adversary: the old config must be service-managed")
            wk = volkeys.hkdf(skey, self.vol_id, LABELS[i], 32)
            keks.append(volkeys.kek_unwrap(wk, self.vol_id, self.gen, i, blob))
        self.keks = keks
        m = keks[0] + keks[1] if secret is None else \
            volkeys.secret_unwrap(keks, self.vol_id, self.gen, secret)
        self.name_key = volkeys.hkdf(m, self.vol_id, "cmkfs v1 name key", 64)
        self.tkey = volkeys.hkdf(m, self.vol_id, "cmkfs v1 transient zones", 32)

    def header_deks(self, h):
        """Both DEKs of a header, trying the header's own bytes and the
        same bytes with the old generation in place of its own. Bytes 6..7
        are the sealing count (doc/FORMAT.md §3.3), any value: part of
        the AAD like the rest of bytes 0..27."""
        if len(h) < HDR or h[:4] != b"CMKH":
            return None
        out = None
        for head in (h[:28], h[:8] + struct.pack(">I", self.gen) + h[12:28]):
            d1 = gcm_open(self.keks[0], h[28:88], head + b"\x01")
            d2 = gcm_open(self.keks[1], h[88:148], head + b"\x02")
            if d1 is not None or d2 is not None:
                out = (d1, d2)
                if d1 is not None and d2 is not None:
                    return out
        return out


def walk(root):
    """(dirpath, entry, full path) of every backing object, skipping the
    quarantine; yields directories too."""
    for dp, dns, fns in os.walk(root):
        dns[:] = [d for d in dns if d not in RESERVED_SKIP]
        for n in dns + fns:
            yield dp, n, os.path.join(dp, n)


def read(p, n=None):
    with open(p, "rb") as f:
        return f.read() if n is None else f.read(n)


def dirid_of(p):
    """The directory id in cmkfs.dirid p: the file itself (formats 1, 2),
    bytes 5..20 of a format-3 record (doc/FORMAT.md 4.1)."""
    b = read(p)
    return b[5:21] if len(b) == 53 and b[:4] == b"CMKD" else b


def dirids(root):
    ids = set()
    for dp, n, p in walk(root):
        if n == "cmkfs.dirid" and os.path.isfile(p):
            ids.add(dirid_of(p))
    return ids


def headers_by_id(root):
    """file id -> (path, header) of every file that starts with a header."""
    out = {}
    for _, _, p in walk(root):
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        h = read(p, HDR)
        if len(h) == HDR and h[:4] == b"CMKH":
            out.setdefault(h[12:28], (p, h))
    return out


def blocks(data, bs):
    tail = data[HDR:]
    cb = bs + OVH
    n = max(1, (len(tail) + cb - 1) // cb)
    return [tail[i * cb:(i + 1) * cb] for i in range(n)], n


def open_block(d1, d2, fid, b, last, blk):
    """(outer opened, plaintext or None)"""
    def aad(layer):
        return fid + struct.pack(">QBB", b, 1 if last else 0, layer)
    inner = gcm_open(d2, blk, aad(2)) if d2 is not None else None
    if inner is None:
        return False, None
    return True, gcm_open(d1, inner, aad(1)) if d1 is not None else None


class Tally:
    def __init__(self, kind):
        self.kind, self.tried, self.opened, self.leaks = kind, {}, {}, {}

    def add(self, cat, ok, what):
        self.tried[cat] = self.tried.get(cat, 0) + 1
        if ok:
            self.opened[cat] = self.opened.get(cat, 0) + 1
            self.leaks.setdefault(cat, []).append(what)


def scan(root, k, ids, old_hdrs, t, xnames):
    """Try the old keys on everything in root; record in tally t."""
    root_links = os.path.join(root, "cmkfs.links")
    for dp, n, p in walk(root):
        parts = os.path.relpath(dp, root).split(os.sep)
        if any(c in ("cmkfs.links", "cmkfs.journal") for c in parts):
            pass  # random ids and file ids, not names
        elif n.startswith("cmkfs."):
            if n.startswith("cmkfs.ln.") and n.endswith(".name") and os.path.isfile(p):
                enc = read(p).decode("ascii", "replace").strip()
                ok = any(siv_open(k.name_key, b64d(enc), b"N" + d) is not None for d in ids)
                t.add("long-name side file", ok, p)
        else:
            blob = b64d(n)
            ok = blob is not None and any(
                siv_open(k.name_key, blob, b"N" + d) is not None for d in ids)
            t.add("name", ok, p)
        if os.path.islink(p):
            tgt = os.readlink(p)
            if tgt.startswith("cmkfs.lt."):
                sp = os.path.join(root_links, tgt[len("cmkfs.lt."):])
                tgt = read(sp).decode("ascii", "replace") if os.path.isfile(sp) else ""
            t.add("symlink target", siv_open(k.name_key, b64d(tgt), b"L") is not None, p)
            continue
        try:
            attrs = [a for a in os.listxattr(p, follow_symlinks=False) if a.startswith("user.")]
        except OSError:
            attrs = []
        for a in attrs:
            x = siv_open(k.name_key, b64d(a[5:]), b"X")
            x = unpad16(x) if x is not None else None
            t.add("xattr name", x is not None, p + " " + a)
            if x is not None:
                xnames.add(x)
            val = os.getxattr(p, a, follow_symlinks=False)
            ok = any(siv_open(k.name_key, val, b"V" + b"user." + c) is not None
                     for c in xnames)
            t.add("xattr value", ok, p + " " + a)
        if not os.path.isfile(p):
            continue
        if n == "cmkfs.transient" and dp == root:
            t.add("transient list", gcm_open(k.tkey, read(p), b"cmkfs v1 transient zones")
                  is not None, p)
            continue
        h = read(p, HDR)
        if len(h) < HDR or h[:4] != b"CMKH":
            continue
        deks = k.header_deks(h)
        t.add("header", deks is not None, p)
        fid = h[12:28]
        old = old_hdrs.get(fid)
        if old is None:
            continue
        t.add("file matched by id", True, p)
        od = k.header_deks(old[1])
        if od is None or od[1] is None:
            continue
        data = read(p)
        blks, nb = blocks(data, k.bs)
        for b, blk in enumerate(blks):
            outer = plain = False
            for last in (b == nb - 1, b != nb - 1):
                o, pt = open_block(od[0], od[1], fid, b, last, blk)
                outer |= o
                plain |= pt is not None
            t.add("block (outer layer)", outer, "%s block %d" % (p, b))
            t.add("block (plaintext)", plain, "%s block %d" % (p, b))


def cmd_probe(conf, skey, backup, current):
    k = OldKeys(read(conf), read(skey))
    old_hdrs = headers_by_id(backup)
    ids = dirids(backup) | dirids(current)
    xnames = {b"note"}  # the attacker may guess names, too
    ctl = Tally("control")
    scan(backup, k, dirids(backup), old_hdrs, ctl, xnames)
    bad = False
    for cat in ("name", "long-name side file", "header", "file matched by id",
                "block (outer layer)", "block (plaintext)", "xattr name",
                "xattr value", "symlink target", "transient list"):
        tr, op = ctl.tried.get(cat, 0), ctl.opened.get(cat, 0)
        print("control %-20s %d/%d" % (cat, op, tr))
        if tr == 0 or op != tr:
            bad = True
    if bad:
        print("CONTROL FAILED: the old keys must open all of the backup")
        return 2
    t = Tally("probe")
    scan(current, k, ids, old_hdrs, t, xnames)
    cur_ids = set(h[12:28] for _, h in regular_files(current))
    print("ids backup %d current %d kept %d" % (len(old_hdrs), len(cur_ids),
                                                len(cur_ids & set(old_hdrs))))
    leaked = False
    for cat in sorted(t.tried):
        print("probe %-20s %d/%d" % (cat, t.opened.get(cat, 0), t.tried[cat]))
        if cat == "file matched by id":
            continue
        for w in t.leaks.get(cat, [])[:20]:
            print("LEAK %s: %s" % (cat, w))
            leaked = True
    return 1 if leaked else 0


def regular_files(root):
    for _, n, p in walk(root):
        if os.path.isfile(p) and not os.path.islink(p):
            h = read(p, HDR)
            if len(h) == HDR and h[:4] == b"CMKH":
                yield p, h


def cmd_oldheaders(backup, current):
    old = headers_by_id(backup)
    done = kept = 0
    seen = set()
    for p, h in regular_files(current):
        st = os.stat(p)
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        o = old.get(h[12:28])
        if o is None:
            kept += 1
            continue
        with open(p, "r+b") as f:
            f.write(o[1])
        done += 1
    print("replaced %d kept %d" % (done, kept))
    return 0


def plain_path(root, p, k):
    """The volume path of backing path p under the old name key."""
    rel = os.path.relpath(p, root).split(os.sep)
    d, out = root, []
    for comp in rel:
        did = dirid_of(os.path.join(d, "cmkfs.dirid"))
        enc = comp
        if comp.startswith("cmkfs.ln."):
            enc = read(os.path.join(d, comp + ".name")).decode().strip()
        out.append(unpad16(siv_open(k.name_key, b64d(enc), b"N" + did)).decode())
        d = os.path.join(d, comp)
    return "/" + "/".join(out)


def cmd_replay(conf, skey, dest, current):
    k = OldKeys(read(conf), read(skey))
    cur = headers_by_id(current)
    used = set()
    seen = set()
    for p, h in list(regular_files(dest)):
        st = os.stat(p)
        first = (st.st_dev, st.st_ino) not in seen
        seen.add((st.st_dev, st.st_ino))
        c = cur.get(h[12:28])
        if c is None:
            print("%s\t-" % plain_path(dest, p, k))
            continue
        used.add(h[12:28])
        if first:
            tail = read(c[0])[HDR:]
            with open(p, "r+b") as f:
                f.seek(HDR)
                f.write(tail)
                f.truncate(HDR + len(tail))
        print("%s\t%s" % (plain_path(dest, p, k), c[0]))
    rootid = dirid_of(os.path.join(dest, "cmkfs.dirid"))
    n = 0
    for fid, (cp, _) in sorted(cur.items()):
        if fid in used:
            continue
        n += 1
        name = b"replay-%d" % n
        enc = b64e(AESSIV(k.name_key).encrypt(pad16(name), [b"N" + rootid]))
        with open(os.path.join(dest, enc), "wb") as f:
            f.write(read(cp))
        print("/%s\t%s" % (name.decode(), cp))
    return 0


def cmd_backing(root):
    """What an O(1) key change must leave alone: every backing name, every
    file's bytes after the header (by file id), link targets, xattrs."""
    import hashlib

    def sha(b):
        return hashlib.sha256(b).hexdigest()[:32]
    out = []
    for _, n, p in walk(root):
        rel = os.path.relpath(p, root)
        if rel == "cmkfs.conf":
            continue
        out.append("name %s" % rel)
        if os.path.islink(p):
            out.append("link %s %s" % (rel, sha(os.readlink(p).encode())))
            continue
        for a in sorted(os.listxattr(p, follow_symlinks=False)):
            if a.startswith("user."):
                out.append("xattr %s %s %s" % (rel, a, sha(os.getxattr(p, a))))
        if os.path.isfile(p):
            data = read(p)
            if len(data) >= HDR and data[:4] == b"CMKH":
                out.append("tail %s %s" % (data[12:28].hex(), sha(data[HDR:])))
            else:
                out.append("file %s %s" % (rel, sha(data)))
    print("\n".join(sorted(set(out))))
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "backing":
        return cmd_backing(argv[2])
    if len(argv) >= 2 and argv[1] == "probe" and len(argv) == 6:
        return cmd_probe(*argv[2:])
    if len(argv) >= 2 and argv[1] == "oldheaders" and len(argv) == 4:
        return cmd_oldheaders(*argv[2:])
    if len(argv) >= 2 and argv[1] == "replay" and len(argv) == 6:
        return cmd_replay(*argv[2:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
