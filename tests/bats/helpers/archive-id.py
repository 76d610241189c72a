#!/usr/bin/env python3
"""The image ID an engine gives the (only) image of a `docker image save` archive.

usage: archive-id.py ARCHIVE {classic|containerd}

classic: the config digest (manifest.json's Config).
containerd: the digest index.json names for the image; for a legacy archive without
index.json, the digest of the Docker schema 2 manifest containerd writes for it (compact JSON,
keys in this order; measured in docs/engines.md, section 3).
"""

import hashlib
import json
import sys
import tarfile


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("classic", "containerd"):
        sys.exit(__doc__)
    path, store = sys.argv[1:]
    with tarfile.open(path) as archive:
        names = set(archive.getnames())

        def read(name):
            return archive.extractfile(archive.getmember(name)).read()

        item = json.loads(read("manifest.json"))[0]
        config = read(item["Config"])
        if store == "classic":
            print(sha256(config))
        elif "index.json" in names:
            print(json.loads(read("index.json"))["manifests"][0]["digest"])
        else:
            layers = [read(name) for name in item["Layers"]]
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": sha256(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.docker.image.rootfs.diff.tar",
                        "digest": sha256(layer),
                        "size": len(layer),
                    }
                    for layer in layers
                ],
            }
            print(sha256(json.dumps(manifest, separators=(",", ":")).encode()))


if __name__ == "__main__":
    main()
