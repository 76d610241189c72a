#!/usr/bin/env python3
"""Rewrites a `docker image save` archive of one image as a multi-platform OCI layout.

usage: multi-platform.py IN.tar OUT.tar TAG {both|foreign-only} [--oci-only]

Reads the image of IN.tar (any layout docker writes: legacy, Engine 25+, containerd store),
and writes OUT.tar, an OCI image layout whose index.json names TAG as an image index of:
  both          the image itself (this host's platform, linux/amd64) and a made-up linux/arm64
                image (the same config with architecture arm64 and one small layer of its own);
  foreign-only  the linux/arm64 image alone.
Layers are written uncompressed (blob digest = diff_id). Beside index.json, a manifest.json
names the image a classic engine loads (the amd64 one, or the arm64 one when foreign-only),
unless --oci-only.
"""

import gzip
import hashlib
import io
import json
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def qualified(tag):
    """TAG as containerd names images: docker.io/library/app:1, registry:5000/team/app:1."""
    first, _, rest = tag.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return tag
    return "docker.io/" + (tag if rest else "library/" + tag)


def read_image(path):
    """The config bytes and the uncompressed layer tars of the archive's only image."""
    with tarfile.open(path) as archive:
        def read(name):
            return archive.extractfile(archive.getmember(name.lstrip("./"))).read()
        manifest = json.loads(read("manifest.json"))
        if len(manifest) != 1:
            sys.exit(f"multi-platform.py: {path} holds {len(manifest)} images, not one")
        item = manifest[0]
        layers = []
        for name in item["Layers"]:
            data = read(name)
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            layers.append(data)
        return read(item["Config"]), layers


def small_layer():
    """A one-file tar, reproducible."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as layer:
        content = b"made-up arm64 layer\n"
        info = tarfile.TarInfo("arm64.txt")
        info.size, info.mtime, info.mode = len(content), 1700000000, 0o644
        layer.addfile(info, io.BytesIO(content))
    return out.getvalue()


class Layout:
    def __init__(self):
        self.blobs = {}

    def add(self, data, media_type):
        name = digest(data)
        self.blobs[name] = data
        return {"mediaType": media_type, "digest": name, "size": len(data)}

    def image(self, config, layers):
        """Adds config, layers and their manifest; returns the manifest's descriptor."""
        layer_descriptors = [self.add(layer, OCI_LAYER) for layer in layers]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.add(config, OCI_CONFIG),
            "layers": layer_descriptors,
        }
        return self.add(json.dumps(manifest, separators=(",", ":")).encode(), OCI_MANIFEST)


def main():
    args = sys.argv[1:]
    oci_only = "--oci-only" in args
    args = [a for a in args if a != "--oci-only"]
    if len(args) != 4 or args[3] not in ("both", "foreign-only"):
        sys.exit(__doc__)
    source, target, tag, mode = args

    config, layers = read_image(source)
    layout = Layout()
    descriptors = []
    loadable = None
    if mode == "both":
        host = layout.image(config, layers)
        host["platform"] = {"architecture": "amd64", "os": "linux"}
        descriptors.append(host)
        loadable = (config, layers)

    foreign_config = json.loads(config)
    foreign_layer = small_layer()
    foreign_config["architecture"] = "arm64"
    foreign_config["variant"] = "v8"
    foreign_config["rootfs"] = {"type": "layers", "diff_ids": [digest(foreign_layer)]}
    foreign_config = json.dumps(foreign_config, separators=(",", ":")).encode()
    foreign = layout.image(foreign_config, [foreign_layer])
    foreign["platform"] = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    descriptors.append(foreign)
    if loadable is None:
        loadable = (foreign_config, [foreign_layer])

    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    top = layout.add(json.dumps(index, separators=(",", ":")).encode(), OCI_INDEX)
    name = qualified(tag)
    top["annotations"] = {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[-1],
    }
    entries = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    entries += [("blobs/sha256/" + d[len("sha256:"):], data) for d, data in layout.blobs.items()]
    entries.append(("index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                              "manifests": [top]}).encode()))
    if not oci_only:
        loadable_config, loadable_layers = loadable
        item = {
            "Config": "blobs/sha256/" + digest(loadable_config)[len("sha256:"):],
            "RepoTags": [tag],
            "Layers": ["blobs/sha256/" + digest(layer)[len("sha256:"):] for layer in loadable_layers],
        }
        entries.append(("manifest.json", json.dumps([item]).encode()))

    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as out:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            out.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
