#!/usr/bin/env python3
"""Writes the two file trees of a rebuilt layer, for delta.bats (docs/delta.md's three cases,
small).

usage: delta-trees.py KIND V1 V2

KIND:
  checkout    300 files of 1 to 24 KiB, half text, half random bytes, in 10 folders; V2 is a
              fresh checkout: 3 files (1%) changed, every mtime new
  reinstall   2,000 files of 100 to 3,000 bytes (each under the 4 KiB of a smallest chunk, so
              a file is one chunk); V2 holds the same contents, every mtime new
  binary      one 4 MiB file of random bytes; V2 has 2 KiB changed in place at 2 places, a
              new mtime

Each tree also has index.html, "KIND v1" or "KIND v2", the page the test image serves. The
contents come from a fixed seed; the mtimes are fixed too, V2's an hour after V1's.
"""

import os
import random
import sys

V1_MTIME = 1_700_000_000
V2_MTIME = V1_MTIME + 3600
WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def text(rng, size):
    out = bytearray()
    while len(out) < size:
        out += rng.choice(WORDS) + (b"\n" if rng.random() < 0.1 else b" ")
    return bytes(out[:size])


def contents(kind, rng):
    """(relative path, bytes) of V1's files."""
    if kind == "checkout":
        for i in range(300):
            size = rng.randint(1024, 24 * 1024)
            data = text(rng, size) if i % 2 == 0 else rng.randbytes(size)
            yield f"src/d{i % 10}/f{i:03}", data
    elif kind == "reinstall":
        for i in range(2000):
            size = rng.randint(100, 3000)
            data = text(rng, size) if i % 2 == 0 else rng.randbytes(size)
            yield f"node_modules/p{i % 40:02}/m{i:04}.js", data
    elif kind == "binary":
        yield "bin/app", rng.randbytes(4 << 20)
    else:
        sys.exit(__doc__)


def changed(kind, rng, index, path, data):
    """V2's contents of V1's file number INDEX at PATH."""
    if kind == "checkout" and index in (7, 150, 299):
        middle = len(data) // 2
        return data[:middle] + b"changed in v2 " + path.encode() + data[middle:]
    if kind == "binary":
        data = bytearray(data)
        for offset in (1 << 20, 3 << 20):
            data[offset : offset + 1024] = rng.randbytes(1024)
        return bytes(data)
    return data


def write(root, path, data, mtime):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as out:
        out.write(data)
    os.utime(full, (mtime, mtime))


def main(args):
    if len(args) != 3:
        sys.exit(__doc__)
    kind, v1, v2 = args
    rng = random.Random(f"delta-trees {kind}")
    for index, (path, data) in enumerate(contents(kind, rng)):
        write(v1, path, data, V1_MTIME)
        write(v2, path, changed(kind, rng, index, path, data), V2_MTIME)
    write(v1, "index.html", f"{kind} v1\n".encode(), V1_MTIME)
    write(v2, "index.html", f"{kind} v2\n".encode(), V2_MTIME)
    # folders too: their mtimes are in the layer's headers
    for root, mtime in ((v1, V1_MTIME), (v2, V2_MTIME)):
        for folder, _, _ in os.walk(root):
            os.utime(folder, (mtime, mtime))


if __name__ == "__main__":
    main(sys.argv[1:])
