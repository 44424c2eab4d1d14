#!/usr/bin/env python3
"""Independent reference of the cmkfs v1 block and name codecs
(doc/FORMAT.md §3-4), written against python3-cryptography, not against the
C code. It prints the known-answer vectors frozen in tests/unit/test_block.c
and tests/unit/test_names.c; `make check` does not need it, but a format
change must be made here too, which keeps the spec honest."""
import base64
import hashlib
import struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV


def fill(n, seed):
    """Same deterministic filler as tests/lib/tap.h t_fill()."""
    x = (seed * 2654435761 + 1) & 0xFFFFFFFF
    out = bytearray()
    for _ in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out.append(x & 0xFF)
    return bytes(out)


def block_seal(dek1, dek2, file_id, blockno, last, pt, n_in, n_out):
    def aad(layer):
        return file_id + struct.pack(">QBB", blockno, 1 if last else 0, layer)
    inner = n_in + AESGCM(dek1).encrypt(n_in, pt, aad(1))
    return n_out + AESGCM(dek2).encrypt(n_out, inner, aad(2))


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pad16(b):
    p = 16 - len(b) % 16
    return b + bytes([p]) * p


def name_encrypt(key, dirid, name):
    return b64(AESSIV(key).encrypt(pad16(name), [b"N" + dirid]))


def link_token(bname):
    return hashlib.sha256(b"cmkfs v3 link" + bname).digest()[:8]


def target_seal3(key, dirid, tok, nonce, target):
    """Format 3 symlink target (doc/FORMAT.md §4.3): AAD components
    "L3", dirid, token, nonce; nonce ‖ tag ‖ ciphertext, base64url."""
    st = AESSIV(key).encrypt(pad16(target), [b"L3", dirid, tok, nonce])
    return b64(nonce + st)


def xattr_value_seal3(key, owner, name, nonce, value):
    """Format 3 xattr value (doc/FORMAT.md §4.4)."""
    return nonce + AESSIV(key).encrypt(b"\x02" + value,
                                       [b"V3", owner, name, nonce])


def main():
    dek1, dek2, fid = fill(32, 11), fill(32, 12), fill(16, 13)
    n_in, n_out = fill(12, 14), fill(12, 15)
    print("block0_last_empty", block_seal(dek1, dek2, fid, 0, True, b"",
                                          n_in, n_out).hex())
    print("block5_notlast_100", block_seal(dek1, dek2, fid, 5, False,
                                           fill(100, 16), n_in, n_out).hex())
    key, dirid = fill(64, 21), fill(16, 22)
    print("name_hello", name_encrypt(key, dirid, b"hello.txt"))
    print("name_16", name_encrypt(key, dirid, b"0123456789abcdef"))
    print("target3", target_seal3(key, dirid, link_token(b"abc"),
                                  fill(16, 23), b"../target"))
    print("xval3", xattr_value_seal3(key, fill(16, 24), b"user.acl",
                                     fill(16, 25), b"role=admin").hex())


if __name__ == "__main__":
    main()
