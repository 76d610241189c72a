#!/usr/bin/env python3
"""Writes image archives built to escape, exhaust or lie, for hostile.bats.

usage: hostile-archive.py KIND SOURCE OUT
       hostile-archive.py bomb OUT [BYTES]

KIND SOURCE OUT: OUT is SOURCE (a `docker image save` archive) made hostile:
  absolute        an extra entry /tmp/image-hostile-absolute first
  dotdot          an extra entry blobs/../../image-hostile-dotdot first
  huge-manifest   manifest.json padded with 4 KiB of blanks
  absent-layer    manifest.json names a layer 0{64}/layer.tar that is not there
  absent-config   manifest.json names a config f{64}.json that is not there
  two-manifests   a second ./manifest.json, right after the first, tagging somebody/else

bomb OUT [BYTES]: OUT is a gzip tar of one entry, 0{64}/layer.tar, of BYTES zeros
(default 200 MiB), streamed: it compresses to about a thousandth of that.
"""

import io
import json
import sys
import tarfile

KINDS = ("absolute", "dotdot", "huge-manifest", "absent-layer", "absent-config", "two-manifests")


def add(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))


def mutate(kind, source, out):
    with tarfile.open(source) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        if kind == "absolute":
            add(dst, "/tmp/image-hostile-absolute", b"x")
        elif kind == "dotdot":
            add(dst, "blobs/../../image-hostile-dotdot", b"x")
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
                if kind == "huge-manifest":
                    data = json.dumps(manifest).encode() + b" " * 4096
                elif kind == "absent-layer":
                    manifest[0]["Layers"] = ["0" * 64 + "/layer.tar"]
                    data = json.dumps(manifest).encode()
                elif kind == "absent-config":
                    manifest[0]["Config"] = "f" * 64 + ".json"
                    data = json.dumps(manifest).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
            if member.name == "manifest.json" and kind == "two-manifests":
                other = json.loads(data)
                other[0]["RepoTags"] = ["somebody/else:latest"]
                add(dst, "./manifest.json", json.dumps(other).encode())


class Zeros(io.RawIOBase):
    """BYTES zeros, read without holding them in memory."""

    def __init__(self, count):
        self.count = count

    def readable(self):
        return True

    def readinto(self, buffer):
        size = min(len(buffer), self.count)
        buffer[:size] = bytes(size)
        self.count -= size
        return size


def bomb(out, size):
    with tarfile.open(out, "w:gz", format=tarfile.GNU_FORMAT) as dst:
        info = tarfile.TarInfo("0" * 64 + "/layer.tar")
        info.size = size
        dst.addfile(info, io.BufferedReader(Zeros(size)))


def main(args):
    if len(args) in (2, 3) and args[0] == "bomb":
        bomb(args[1], int(args[2]) if len(args) == 3 else 200 << 20)
    elif len(args) == 3 and args[0] in KINDS:
        mutate(*args)
    else:
        sys.exit(__doc__.strip())


if __name__ == "__main__":
    main(sys.argv[1:])
