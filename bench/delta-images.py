#!/usr/bin/env python3
"""bench/delta-images.py ARCHIVE NAME EPOCH [SEED [CASES]]: the images of bench/delta-push, as one
`docker image save`-style archive (legacy layout) to `docker image load` on a client engine.

For each case (CASES, comma-separated: default all three), three images FROM scratch of two layers: the base (Debian's busybox-static as
/bin/busybox, the same bytes in every image) and the case's layer, tagged NAME-CASE:v1,
NAME-CASE:v2 (a rebuild of v1's layer, sent as a recipe) and NAME-CASE:v2-whole (the same
rebuild once more, a second later: the same contents, its own digest, sent whole for the
comparison):

  fresh-checkout  /app: 3,000 files, 52 MiB, half generated source text, half random bytes
                  (assets); v2 has every mtime new and 30 files (1%) edited (a few lines
                  replaced in one to three places each)
  reinstall       /app/node_modules: 20,000 files of a node_modules-like tree (packages,
                  scopes, nested node_modules, lib/dist/src folders; sizes lognormal around
                  2.5 KiB, mostly 1 to 10 KiB, generated JavaScript text, package.json,
                  README.md and the same LICENSE in many packages); v2 has the same contents
                  and every mtime new
  binary          /app/server: one 50 MiB executable-like file (instruction-like bytes built
                  from recurring snippets, string tables, pointer tables, zero padding and 25%
                  random bytes: zstd -3 takes it to about 0.4); v2 has 1% of its bytes
                  rewritten in place in five contiguous runs, and a new mtime

The contents depend only on SEED (default 19): every run makes the same files. EPOCH (seconds)
sets the mtimes (v1 from EPOCH, v2 a day later, v2-whole a day and a second later), so that
images made with another EPOCH have other layer digests. Layer tars are written as POSIX pax
(extended headers only where a name needs one), every parent folder its own entry, sorted, as
an engine writes a layer. Prints one line per case, tab-separated: the case, the v2 case
layer's diff ID, its size in bytes and the size of its `zstd -3` (zstd's command line).
"""
import hashlib
import io
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tarfile

MIB = 1024 * 1024
DAY = 86400
BUSYBOX = "/bin/busybox"
# mtime of the base layer's entries: the base never changes
BASE_MTIME = 1767225600
CASES = ("fresh-checkout", "reinstall", "binary")

KEYWORDS_JS = ["const", "let", "var", "function", "return", "if", "else", "for", "while",
               "new", "this", "typeof", "null", "undefined", "true", "false", "async",
               "await", "throw", "try", "catch", "break", "continue", "switch", "case"]
COMMON = ["value", "options", "result", "error", "callback", "index", "length", "data",
          "name", "type", "key", "config", "args", "path", "module", "exports", "require",
          "object", "string", "number", "buffer", "stream", "self", "state", "item", "list",
          "node", "parent", "child", "target", "source", "event", "handler", "context",
          "props", "next", "prev", "count", "size", "offset", "start", "end", "id", "map"]
SYLLABLES = ["ab", "ac", "ad", "al", "an", "ar", "as", "at", "be", "ca", "ce", "co", "de",
             "di", "do", "el", "en", "er", "ex", "fi", "fo", "ge", "ha", "he", "in", "is",
             "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne", "no", "or", "pa",
             "pe", "po", "pr", "qu", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "st",
             "ta", "te", "ti", "to", "tr", "un", "ur", "va", "ve", "vi", "wa", "xe", "za"]
COMMENTS = ["TODO: handle the empty case", "keep the order stable", "see the spec",
            "fast path", "fall back to the slow path", "normalise the input first",
            "the caller owns the buffer", "never null here", "cache the result",
            "retry once on failure", "avoid a copy", "legacy behaviour, keep it"]
LICENSE = ("MIT License\n\nCopyright (c) {year} {who}\n\n"
           "Permission is hereby granted, free of charge, to any person obtaining a copy\n"
           "of this software and associated documentation files (the \"Software\"), to deal\n"
           "in the Software without restriction, including without limitation the rights\n"
           "to use, copy, modify, merge, publish, distribute, sublicense, and/or sell\n"
           "copies of the Software, and to permit persons to whom the Software is\n"
           "furnished to do so, subject to the following conditions:\n\n"
           "The above copyright notice and this permission notice shall be included in all\n"
           "copies or substantial portions of the Software.\n\n"
           "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\n"
           "IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\n"
           "FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\n"
           "AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\n"
           "LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,\n"
           "OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE\n"
           "SOFTWARE.\n")


def word(rng, parts=(1, 4)):
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(*parts)))


def identifiers(rng, count):
    """A module's own names, camelCase or snake_case."""
    names = []
    for _ in range(count):
        head, tail = word(rng, (1, 3)), word(rng, (1, 2))
        names.append(head + tail.capitalize() if rng.random() < 0.6 else f"{head}_{tail}")
    return names


class SourceText:
    """Source-like lines: a module's own identifiers among common ones, in a handful of
    statement shapes, indented by nesting."""

    def __init__(self, rng):
        self.rng = rng
        self.local = identifiers(rng, 60) + COMMON
        self.cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(self.local))))

    def names(self, count):
        return self.rng.choices(self.local, cum_weights=self.cumulative, k=count)

    def line(self, depth):
        rng = self.rng
        a, b, c, d = self.names(4)
        shape = rng.randrange(12)
        if shape == 0:
            text = f"const {a} = {b}.{c}({d}, {rng.randrange(1000)});"
        elif shape == 1:
            text = f"if ({a} {rng.choice(['===', '!==', '<', '>='])} {b}.{c}) {{"
        elif shape == 2:
            text = f"return {a}({b}, {c});"
        elif shape == 3:
            text = f"{a}.{b} = {c} || {rng.choice(['null', '{}', '[]', '0', repr(d)])};"
        elif shape == 4:
            text = f"// {rng.choice(COMMENTS)}"
        elif shape == 5:
            text = f"function {a}({b}, {c}) {{"
        elif shape == 6:
            text = f"for (let {a} = 0; {a} < {b}.length; {a}++) {{"
        elif shape == 7:
            text = f"throw new Error('{a} {b}: ' + {c});"
        elif shape == 8:
            text = f"{a} = await {b}.{c}({d});"
        elif shape == 9:
            text = f"module.exports.{a} = {b};"
        elif shape == 10:
            text = f"let {a} = {rng.choice(KEYWORDS_JS)} {b}[{c}];"
        else:
            text = "}"
        return "  " * depth + text + "\n"

    def text(self, size):
        parts, total, depth = [], 0, 0
        while total < size:
            line = self.line(depth)
            depth = max(0, min(6, depth + (1 if line.endswith("{\n") else -1 if line.strip() == "}" else 0)))
            parts.append(line)
            total += len(line)
        return "".join(parts).encode()[:size]


def scaled_sizes(rng, count, total, sigma, low=1):
    """count lognormal sizes of at least `low` that add up to total exactly."""
    weights = [rng.lognormvariate(0, sigma) for _ in range(count)]
    scale = (total - low * count) / sum(weights)
    sizes = [low + int(weight * scale) for weight in weights]
    sizes[sizes.index(max(sizes))] += total - sum(sizes)
    return sizes


def fresh_checkout(rng):
    """(files, edited): path -> bytes of v1, and of the 30 files edited for v2."""
    text_total = binary_total = 26 * MIB
    text_count, binary_count = 2550, 450
    modules = [word(rng, (2, 3)) for _ in range(40)]
    files = {}
    for size in scaled_sizes(rng, text_count, text_total, 1.0):
        while True:
            path = (f"app/src/{rng.choice(modules)}/{rng.choice(modules)}/"
                    f"{word(rng, (2, 4))}.{rng.choice(['js', 'ts', 'py', 'go', 'md', 'css'])}")
            if path not in files:
                break
        files[path] = SourceText(rng).text(size)
    for size in scaled_sizes(rng, binary_count, binary_total, 0.8):
        while True:
            path = f"app/assets/{rng.choice(modules)}/{word(rng, (2, 4))}.{rng.choice(['png', 'woff2', 'jpg', 'gz'])}"
            if path not in files:
                break
        files[path] = rng.randbytes(size)
    edited = {}
    text_paths = sorted(path for path in files if not path.startswith("app/assets/"))
    for path in rng.sample(text_paths, 30):
        lines = files[path].decode().splitlines(keepends=True)
        source = SourceText(rng)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(lines))
            cut = rng.randint(1, 6)
            lines[at:at + cut] = [source.line(2) for _ in range(rng.randint(1, 10))]
        edited[path] = "".join(lines).encode()
    return files, edited


def reinstall(rng):
    files = {}
    packages = []
    for index in range(600):
        name = word(rng, (2, 4))
        if index % 9 == 0:
            name = f"@{word(rng, (2, 3))}/{name}"
        parent = rng.choice(packages) if packages and rng.random() < 0.25 else None
        packages.append(f"{parent}/node_modules/{name}" if parent else f"app/node_modules/{name}")
    sizes = [min(256 * 1024, max(64, int(rng.lognormvariate(math.log(2560), 1.0))))
             for _ in range(20000)]
    shares = [rng.lognormvariate(0, 1.0) for _ in packages]
    owners = rng.choices(range(len(packages)), weights=shares, k=len(sizes))
    per_package = {}
    for size, owner in zip(sizes, owners):
        per_package.setdefault(owner, []).append(size)
    for owner, package_sizes in per_package.items():
        package = packages[owner]
        source = SourceText(rng)
        subdirs = ["lib", "dist", "src", "lib/internal", "dist/esm", "dist/cjs", "lib/utils"]
        for number, size in enumerate(package_sizes):
            if number == 0:
                path = f"{package}/package.json"
                body = json.dumps({"name": package.rsplit("node_modules/", 1)[1],
                                   "version": f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}",
                                   "main": "lib/index.js", "license": "MIT",
                                   "dependencies": {word(rng): f"^{rng.randint(1, 9)}.0.0" for _ in range(rng.randint(0, 6))}},
                                  indent=2).encode()
            elif number == 1:
                path = f"{package}/LICENSE"
                body = LICENSE.format(year=rng.choice(range(2012, 2026)), who=word(rng, (2, 3)).capitalize()).encode()
            elif number == 2:
                path = f"{package}/README.md"
                body = source.text(size)
            else:
                while True:
                    path = f"{package}/{rng.choice(subdirs)}/{word(rng, (2, 4))}.{rng.choice(['js', 'js', 'js', 'mjs', 'd.ts', 'map'])}"
                    if path not in files:
                        break
                body = source.text(size)
            files[path] = body
    return files, {}


def code_bytes(rng, size, snippets, skew):
    """Instruction-like bytes: recurring snippets, with fresh skewed bytes between them."""
    parts, total = [], 0
    while total < size:
        part = rng.choice(snippets) if rng.random() < 0.7 else rng.randbytes(rng.randint(4, 24)).translate(skew)
        parts.append(part)
        total += len(part)
    return b"".join(parts)[:size]


def binary_blocks(rng, size):
    # byte values as instructions use them: a few very common, most rare
    common = [0x00, 0x48, 0x89, 0x8b, 0xff, 0x0f, 0xe8, 0x24, 0x44, 0x85, 0xc0, 0x74, 0x75, 0x83, 0x41, 0x4c]
    skew = bytes(common[value % 16] if value < 160 else value for value in range(256))
    snippets = [rng.randbytes(rng.randint(8, 48)).translate(skew) for _ in range(3000)]
    source = SourceText(rng)
    kinds = ["code"] * 45 + ["strings"] * 15 + ["table"] * 10 + ["zeros"] * 5 + ["random"] * 25
    out, total = [], 0
    while total < size:
        length = min(size - total, rng.randint(4096, 65536))
        kind = rng.choice(kinds)
        if kind == "code":
            block = code_bytes(rng, length, snippets, skew)
        elif kind == "strings":
            block = source.text(length).replace(b"\n", b"\0")
        elif kind == "table":
            base, step = rng.randrange(1 << 40), rng.choice([8, 16, 24, 32])
            block = b"".join((base + step * i + rng.randrange(4)).to_bytes(8, "little")
                             for i in range(length // 8 + 1))[:length]
        elif kind == "zeros":
            block = bytes(length)
        else:
            block = rng.randbytes(length)
        out.append(block)
        total += length
    return bytearray(b"".join(out)), snippets, skew


def binary(rng):
    size = 50 * MIB
    data, snippets, skew = binary_blocks(rng, size)
    v1 = bytes(data)
    # 1% of the bytes in five runs, at offsets far apart, rewritten with new instruction-like
    # bytes of the same length
    runs = scaled_sizes(rng, 5, size // 100, 0.5, low=4096)
    slots = sorted(rng.sample(range(5 * 4), 5))
    for slot, length in zip(slots, runs):
        at = slot * (size // 20) + rng.randrange(size // 20 - length)
        data[at:at + length] = code_bytes(rng, length, snippets, skew)
    return {"app/server": v1}, {"app/server": bytes(data)}


def parents(paths):
    seen = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            seen.add("/".join(parts[:depth]))
    return seen


def write_layer(path, files, mtime_of, executables=()):
    """A layer tar of `files` (path -> bytes) and their parent folders; returns its sha256."""
    entries = [(folder, None) for folder in parents(files)] + list(files.items())
    entries.sort(key=lambda entry: entry[0])
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as layer:
        for index, (name, body) in enumerate(entries):
            info = tarfile.TarInfo(name)
            info.mtime = mtime_of(index, len(entries))
            info.uname = info.gname = ""
            if body is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                layer.addfile(info)
            else:
                info.size, info.mode = len(body), 0o755 if name in executables else 0o644
                layer.addfile(info, io.BytesIO(body))
    return file_sha256(path)


def file_sha256(path):
    with open(path, "rb") as layer:
        return hashlib.file_digest(layer, "sha256").hexdigest()


def zstd_size(path):
    with subprocess.Popen(["zstd", "-3", "-q", "-c", path], stdout=subprocess.PIPE) as zstd:
        total = 0
        while chunk := zstd.stdout.read(1 << 20):
            total += len(chunk)
    if zstd.returncode != 0:
        sys.exit(f"zstd failed on {path}")
    return total


def base_layer(path):
    with open(BUSYBOX, "rb") as busybox:
        body = busybox.read()
    digest = write_layer(path, {"bin/busybox": body}, lambda index, count: BASE_MTIME,
                         executables={"bin/busybox"})
    return digest


def add_bytes(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), BASE_MTIME
    archive.addfile(info, io.BytesIO(data))


def image_config(diff_ids, case):
    return json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "WorkingDir": "/app", "Cmd": ["/bin/busybox", "sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + digest for digest in diff_ids]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "COPY busybox /bin/busybox"},
                    {"created": "2026-01-01T00:00:00Z", "created_by": f"bench/delta-images.py {case}"}],
    }, sort_keys=True).encode()


def main():
    if len(sys.argv) not in (4, 5, 6):
        sys.exit("usage: bench/delta-images.py ARCHIVE NAME EPOCH [SEED [CASES]]")
    out_path, name, epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) >= 5 else 19
    cases = sys.argv[5].split(",") if len(sys.argv) == 6 else CASES
    makers = {"fresh-checkout": fresh_checkout, "reinstall": reinstall, "binary": binary}
    if unknown := set(cases) - set(makers):
        sys.exit(f"no such case: {', '.join(sorted(unknown))}; the cases are {', '.join(CASES)}")
    work = out_path + ".parts"
    os.makedirs(work)
    manifest = []
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as archive:
        base_path = os.path.join(work, "base.tar")
        base = base_layer(base_path)
        archive.add(base_path, arcname=f"{base}/layer.tar")
        os.remove(base_path)
        for case in cases:
            rng = random.Random(f"{seed}/{case}")
            files, changed = makers[case](rng)
            executables = {"app/server"}
            versions = [("v1", files, epoch), ("v2", {**files, **changed}, epoch + DAY),
                        ("v2-whole", {**files, **changed}, epoch + DAY + 1)]
            for tag, contents, start in versions:
                # a checkout or an install writes its files over a few seconds
                spread = 1 + len(contents) // 2000
                path = os.path.join(work, f"{case}-{tag}.tar")
                digest = write_layer(path, contents, lambda index, count: start + index * spread // count,
                                     executables)
                if tag == "v2":
                    print(f"{case}\tsha256:{digest}\t{os.path.getsize(path)}\t{zstd_size(path)}", flush=True)
                archive.add(path, arcname=f"{digest}/layer.tar")
                os.remove(path)
                config = image_config([base, digest], case)
                config_name = hashlib.sha256(config).hexdigest() + ".json"
                add_bytes(archive, config_name, config)
                manifest.append({"Config": config_name, "RepoTags": [f"{name}-{case}:{tag}"],
                                 "Layers": [f"{base}/layer.tar", f"{digest}/layer.tar"]})
        add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    os.rmdir(work)


if __name__ == "__main__":
    main()
