#!/usr/bin/python3
"""Hand-made layer recipes (docs/delta.md), for delta.bats; and damage to a host's packs.

usage: recipe-archive.py KIND SOURCE OUT CONTENT
       recipe-archive.py damage-packs CONTENT

KIND SOURCE OUT CONTENT: OUT is SOURCE (a `docker image save` archive) whose top layer entry
NAME is replaced, in its place, by NAME.recipe: the layer's bytes as literals, but each regular
file whose whole contents are a chunk kept in CONTENT (an app's content folder: its *.idx) as a
reference to that chunk. Prints "NAME REFERENCES SIZE DIFF_ID": the layer entry the recipe is
for, how many references it holds, and the layer's true size and diff ID.
KIND:
  valid          that recipe, as a client would send it
  unknown-key    the first reference names a key CONTENT does not keep (same length)
  wrong-length   the first reference's length is one more than its chunk's
  size-larger    the size field is one more than the ops give
  size-smaller   the size field is one less than the ops give
  wrong-diff-id  the diff ID field is the SHA-256 of something else
  cut-short      the stream stops before the end operation
  trailing       a byte after the end operation
  unnamed        NAME stays whole; the recipe (valid for NAME's bytes) comes in beside it as an
                 entry of a layer no manifest names, of a random digest

damage-packs CONTENT: flips one byte in the middle of every frame of every pack in CONTENT.

Python 3 from Debian, for its python3-zstandard (scripts/setup-host).
"""

import hashlib
import io
import json
import os
import struct
import sys
import tarfile

import zstandard

MAGIC = b"dokku-image-recipe 1\n"
IDX_MAGIC = b"dokku-image-idx 1\n"
RECORD = struct.Struct(">32sQII")
KINDS = ("valid", "unknown-key", "wrong-length", "size-larger", "size-smaller",
         "wrong-diff-id", "cut-short", "trailing", "unnamed")


def records(content):
    """(idx path, [(sha256, frame offset, frame length, chunk length)]) of each pack."""
    for name in sorted(os.listdir(content)):
        if name.endswith(".idx"):
            with open(os.path.join(content, name), "rb") as idx:
                data = idx.read()
            if not data.startswith(IDX_MAGIC):
                sys.exit(f"recipe-archive: {name} does not start with the idx magic")
            body = data[len(IDX_MAGIC):]
            yield os.path.join(content, name), [
                RECORD.unpack_from(body, at) for at in range(0, len(body), RECORD.size)]


def leb128(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def operations(layer, kept):
    """The ops of LAYER: ("literal", bytes) or ("ref", key, length), in the layer's order."""
    ops, at = [], 0
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as archive:
        for member in archive:
            if not member.isreg() or member.size == 0:
                continue
            start, end = member.offset_data, member.offset_data + member.size
            digest = hashlib.sha256(layer[start:end]).digest()
            if kept.get(digest) == member.size:
                ops.append(("literal", layer[at:start]))
                ops.append(("ref", digest[:8], member.size))
                at = end
    ops.append(("literal", layer[at:]))
    return [op for op in ops if op[0] == "ref" or op[1]]


def recipe(kind, layer, kept):
    """The recipe entry's data for LAYER, made hostile by KIND; and its count of references."""
    ops = operations(layer, kept)
    refs = [i for i, op in enumerate(ops) if op[0] == "ref"]
    if kind in ("unknown-key", "wrong-length"):
        if not refs:
            sys.exit("recipe-archive: no file of the layer is a kept chunk")
        _, key, length = ops[refs[0]]
        if kind == "unknown-key":
            key = hashlib.sha256(b"a chunk this host never kept").digest()[:8]
            if any(digest[:8] == key for digest in kept):
                sys.exit("recipe-archive: the unknown key is kept")
        else:
            length += 1
        ops[refs[0]] = ("ref", key, length)
    size = len(layer) + {"size-larger": 1, "size-smaller": -1}.get(kind, 0)
    diff_id = hashlib.sha256(b"another layer" if kind == "wrong-diff-id" else layer).digest()
    out = bytearray(MAGIC + struct.pack(">Q", size) + diff_id)
    for op in ops:
        if op[0] == "literal":
            out += b"\x01" + leb128(len(op[1])) + op[1]
        else:
            out += b"\x02" + op[1] + leb128(op[2])
    if kind != "cut-short":
        out += b"\x00"
    if kind == "trailing":
        out += b"\x01"
    return zstandard.ZstdCompressor(level=3).compress(bytes(out)), len(refs)


def add(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))


def craft(kind, source, out, content):
    kept = {sha: length for _, recs in records(content) for sha, _, _, length in recs}
    with tarfile.open(source) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        name = json.loads(src.extractfile("manifest.json").read())[0]["Layers"][-1]
        layer = src.extractfile(name).read()
        data, count = recipe(kind, layer, kept)
        for member in src.getmembers():
            if member.name == name and kind != "unnamed":
                add(dst, name + ".recipe", data)
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        if kind == "unnamed":
            other = hashlib.sha256(b"a layer of no image").hexdigest()
            name = f"{other}/layer.tar" if name.endswith("/layer.tar") else f"blobs/sha256/{other}"
            add(dst, name + ".recipe", data)
    print(name, count, len(layer), "sha256:" + hashlib.sha256(layer).hexdigest())


def damage(content):
    for idx, recs in records(content):
        with open(idx.removesuffix(".idx") + ".pack", "r+b") as pack:
            for _, offset, length, _ in recs:
                pack.seek(offset + length // 2)
                byte = pack.read(1)[0]
                pack.seek(offset + length // 2)
                pack.write(bytes([byte ^ 0xFF]))


def main(args):
    if len(args) == 2 and args[0] == "damage-packs":
        damage(args[1])
    elif len(args) == 4 and args[0] in KINDS:
        craft(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
