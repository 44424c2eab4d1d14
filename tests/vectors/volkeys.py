#!/usr/bin/env python3
"""volkeys.py — derive a volume's key material independently of the C code
(doc/FORMAT.md §1-2), for tests that must search a daemon's memory for it.

  volkeys.py CIPHERDIR SERVICE_KEY [--kek-c HEX] [--headers] [FILE...]

Prints one line per key: "<label> <hex>". KEK_S always comes from the
service key; KEK_C too when the customer layer is `local`, else pass it
with --kek-c (a test obtains it by asking Key Vault to unwrap the stored
blob, as any authorised client could). FILEs are backing files whose two
DEKs are printed; with --headers each file's DEKs come after a line
"HEADER <file id hex> <KEK generation> <sealing count units> FILE" (the
count is bytes 6..7 of the header, once "flags": 0 in files written before
it existed; both wraps' AAD cover it, so the DEKs unwrap only if it is
intact). Test tooling only: it needs the same keys a mount does.
"""
import struct
import sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def hkdf(ikm, salt, label, n):
    return HKDF(hashes.SHA256(), n, salt or None, label.encode()).derive(ikm)


def parse_conf(b):
    assert b[:8] == b"CMKFSVOL"
    version = struct.unpack(">H", b[8:10])[0]
    vol_id = b[12:28]
    gen = struct.unpack(">I", b[34:38])[0]
    pos, layers = 46, []
    for _ in range(2):
        prov = b[pos]
        n = struct.unpack(">H", b[pos + 1:pos + 3])[0]
        key_id = b[pos + 3:pos + 3 + n].decode()
        pos += 3 + n
        w = struct.unpack(">H", b[pos:pos + 2])[0]
        layers.append((prov, key_id, b[pos + 2:pos + 2 + w]))
        pos += 2 + w
    secret = None
    if version >= 2:  # format 2: the wrapped volume secret M follows
        n = struct.unpack(">H", b[pos:pos + 2])[0]
        secret = b[pos + 2:pos + 2 + n]
    return vol_id, gen, layers, secret


def secret_unwrap(keks, vol_id, gen, blob):
    """Format 2: M = open(KEK_S, open(KEK_C, blob)), doc/FORMAT.md §1."""
    def aad(layer):
        return b"cmkfs secret v2" + vol_id + struct.pack(">I", gen) + bytes([layer + 1])
    inner = AESGCM(keks[1]).decrypt(blob[:12], blob[12:], aad(1))
    return AESGCM(keks[0]).decrypt(inner[:12], inner[12:], aad(0))


def dek_unwrap(kek, h, layer, head=None):
    """One DEK of a file header (doc/FORMAT.md §2): version 1 wraps with
    GCM under the KEK, AAD bytes 0..27 ‖ layer; version 3 with AES-SIV under
    HKDF(KEK, "cmkfs v3 dek wrap"), AAD bytes 0..51 ‖ layer, tag ‖ ct.
    `head` replaces the AAD's header bytes (a guessed generation)."""
    version = struct.unpack(">H", h[4:6])[0]
    if version == 3:
        head = h[:52] if head is None else head
        blob = h[52:100] if layer == 1 else h[100:148]
        return AESSIV(hkdf(kek, b"", "cmkfs v3 dek wrap", 64)).decrypt(
            blob, [head + bytes([layer])])
    head = h[:28] if head is None else head
    blob = h[28:88] if layer == 1 else h[88:148]
    return AESGCM(kek).decrypt(blob[:12], blob[12:], head + bytes([layer]))


def kek_unwrap(wrap_key, vol_id, gen, layer, blob):
    aad = b"cmkfs kek v1" + vol_id + bytes([layer + 1]) + struct.pack(">I", gen)
    return AESGCM(wrap_key).decrypt(blob[:12], blob[12:], aad)


def main(argv):
    cdir, skey_path = argv[1], argv[2]
    rest = argv[3:]
    kek_c = None
    if rest[:1] == ["--kek-c"]:
        kek_c = bytes.fromhex(rest[1])
        rest = rest[2:]
    headers = rest[:1] == ["--headers"]
    if headers:
        rest = rest[1:]
    skey = open(skey_path, "rb").read()
    vol_id, gen, layers, secret = parse_conf(open(cdir + "/cmkfs.conf", "rb").read())
    labels = ["cmkfs v1 local wrap S", "cmkfs v1 local wrap C"]
    keks = []
    for i, (prov, _, blob) in enumerate(layers):
        if prov == 1:
            keks.append(kek_unwrap(hkdf(skey, vol_id, labels[i], 32), vol_id,
                                   gen, i, blob))
        elif kek_c is not None:
            keks.append(kek_c)
        else:
            sys.exit("volkeys: customer layer is in Key Vault: pass --kek-c")
    print("KEK_S", keks[0].hex())
    print("KEK_C", keks[1].hex())
    m = keks[0] + keks[1] if secret is None else secret_unwrap(keks, vol_id, gen, secret)
    print("SECRET_A", m[:32].hex())
    print("SECRET_B", m[32:].hex())
    name_key = hkdf(m, vol_id, "cmkfs v1 name key", 64)
    print("NAME_KEY_A", name_key[:32].hex())
    print("NAME_KEY_B", name_key[32:].hex())
    for f in rest:
        h = open(f, "rb").read(148)
        magic, version, units, fgen = struct.unpack(">4sHHI", h[:12])
        if len(h) != 148 or magic != b"CMKH" or version not in (1, 3):
            sys.exit("volkeys: %s: not a version 1 or 3 file header" % f)
        if headers:
            print("HEADER", h[12:28].hex(), fgen, units, f)
        for layer in (1, 2):
            dek = dek_unwrap(keks[layer - 1], h, layer)
            print("DEK%d" % layer, dek.hex(), f)


if __name__ == "__main__":
    main(sys.argv)
