#!/usr/bin/env python3
"""Writes image archives built to escape, exhaust or lie, for hostile.bats.

usage: hostile-archive.py KIND SOURCE OUT
       hostile-archive.py add-name SOURCE OUT NAME
       hostile-archive.py smuggle SOURCE OUT IMAGE NAME
       hostile-archive.py bomb OUT [BYTES]

KIND SOURCE OUT: OUT is SOURCE (a `docker image save` archive) made hostile:
  absolute        an extra entry /tmp/image-hostile-absolute first
  dotdot          an extra entry blobs/../../image-hostile-dotdot first
  huge-manifest   manifest.json padded with 4 KiB of blanks
  absent-layer    manifest.json names a layer 0{64}/layer.tar that is not there
  absent-config   manifest.json names a config f{64}.json that is not there
  two-manifests   a second ./manifest.json, right after the first, tagging somebody/else

add-name SOURCE OUT NAME: OUT is SOURCE whose first image is also called NAME, in
manifest.json's RepoTags and (when there is one) by a descriptor of index.json.

smuggle SOURCE OUT IMAGE NAME: OUT holds SOURCE's layers and config, an index.json (and OCI
manifest) naming the image IMAGE, no top-level manifest.json, a symlink x -> . and then
x/manifest.json: SOURCE's manifest.json, naming the image NAME too. An engine that extracts the
archive before reading it finds that manifest at the top.

bomb OUT [BYTES]: OUT is a gzip tar of one entry, 0{64}/layer.tar, of BYTES zeros
(default 200 MiB), streamed: it compresses to about a thousandth of that.
"""

import hashlib
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


def normalized(name):
    """docker.io/library/NAME:latest, as Docker's reference normalisation writes a name."""
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + ("library/" + name if not rest else name)
    if ":" not in name.rpartition("/")[2]:
        name += ":latest"
    return name


def add_name(source, out, name):
    with tarfile.open(source) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.loads(data)
                manifest[0]["RepoTags"] = (manifest[0].get("RepoTags") or []) + [name]
                data = json.dumps(manifest).encode()
            elif member.name == "index.json":
                index = json.loads(data)
                extra = dict(index["manifests"][0])
                full = normalized(name)
                extra["annotations"] = {
                    "io.containerd.image.name": full,
                    "org.opencontainers.image.ref.name": full.rpartition(":")[2],
                }
                index["manifests"].append(extra)
                data = json.dumps(index).encode()
            if data is not None:
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)


def smuggle(source, out, image, name):
    metadata = ("manifest.json", "index.json", "repositories", "oci-layout")
    with tarfile.open(source) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        manifest = json.loads(src.extractfile("manifest.json").read())
        config_name = manifest[0]["Config"]
        config = src.extractfile(config_name).read()
        config_digest = hashlib.sha256(config).hexdigest()
        names = set()
        for member in src.getmembers():
            if member.name in metadata:
                continue
            names.add(member.name)
            data = src.extractfile(member).read() if member.isfile() else None
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
        if "blobs/sha256/" + config_digest not in names:
            add(dst, "blobs/sha256/" + config_digest, config)
        oci_manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + config_digest, "size": len(config)},
            "layers": [],
        }).encode()
        manifest_digest = hashlib.sha256(oci_manifest).hexdigest()
        add(dst, "blobs/sha256/" + manifest_digest, oci_manifest)
        full = normalized(image)
        add(dst, "index.json", json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + manifest_digest, "size": len(oci_manifest),
            "annotations": {"io.containerd.image.name": full,
                            "org.opencontainers.image.ref.name": full.rpartition(":")[2]},
        }]}).encode())
        link = tarfile.TarInfo("x")
        link.type, link.linkname = tarfile.SYMTYPE, "."
        dst.addfile(link)
        manifest[0]["RepoTags"] = [image, name]
        add(dst, "x/manifest.json", json.dumps(manifest).encode())


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
    elif len(args) == 4 and args[0] == "add-name":
        add_name(*args[1:])
    elif len(args) == 5 and args[0] == "smuggle":
        smuggle(*args[1:])
    elif len(args) == 3 and args[0] in KINDS:
        mutate(*args)
    else:
        sys.exit(__doc__.strip())


if __name__ == "__main__":
    main(sys.argv[1:])
