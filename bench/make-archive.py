#!/usr/bin/env python3
"""Writes a `docker image save`-style archive (legacy layout: manifest.json, config, one folder
per layer) of LAYERS layers of incompressible random data, SIZE_MIB in all, tagged TAG, to OUT.
Used by bench/load-archive and bench/slim-push: generating the archive directly is faster and
steadier than building a gigabyte image with docker, and leaves nothing in BuildKit's cache."""
import hashlib
import io
import json
import os
import sys
import tarfile
import time

CHUNK = 4 * 1024 * 1024


def random_file_tar(path, size):
    """Writes a layer tar holding one file of `size` random bytes; returns its sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        def write(data):
            digest.update(data)
            out.write(data)
        info = tarfile.TarInfo("data/blob.bin")
        info.size = size
        info.mtime = int(time.time())
        info.mode = 0o644
        write(info.tobuf(format=tarfile.GNU_FORMAT))
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            write(chunk)
            left -= len(chunk)
        padding = (512 - size % 512) % 512
        write(b"\0" * (padding + 1024))
    return digest.hexdigest()


def add_bytes(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    archive.addfile(info, io.BytesIO(data))


def main():
    out_path, tag, size_mib, layers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    work = out_path + ".parts"
    os.makedirs(work, exist_ok=True)
    layer_size = size_mib * 1024 * 1024 // layers
    diff_ids, layer_names = [], []
    with tarfile.open(out_path, "w", format=tarfile.GNU_FORMAT) as archive:
        for index in range(layers):
            part = os.path.join(work, f"layer{index}.tar")
            hexdigest = random_file_tar(part, layer_size)
            diff_ids.append("sha256:" + hexdigest)
            name = f"{hexdigest}/layer.tar"
            layer_names.append(name)
            archive.add(part, arcname=name)
            os.remove(part)
        config = json.dumps({
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["/data/blob.bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "bench"}] * layers,
        }).encode()
        config_hex = hashlib.sha256(config).hexdigest()
        add_bytes(archive, f"{config_hex}.json", config)
        manifest = [{"Config": f"{config_hex}.json", "RepoTags": [tag], "Layers": layer_names}]
        add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    os.rmdir(work)
    print("sha256:" + config_hex)


if __name__ == "__main__":
    main()
