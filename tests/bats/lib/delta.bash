# shellcheck shell=bash
# Layer recipes and the host's content packs (docs/delta.md), for delta.bats.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

# content_dir APP: the folder of APP's packs on the host.
content_dir() {
  echo "$DOKKU_LIB_ROOT/data/image/$1/content"
}

# packs_of APP: the diff IDs (hex) APP keeps a pack and an idx for, sorted, one a line.
packs_of() {
  local dir
  dir="$(content_dir "$1")"
  [[ -d "$dir" ]] || return 0
  find "$dir" -maxdepth 1 -name '*.pack' -printf '%f\n' | sed 's/\.pack$//' | LC_ALL=C sort \
    | while read -r hex; do
      [[ -f "$dir/$hex.idx" ]] && echo "$hex"
    done
}

# content_state APP: every file of APP's content folder with its size and SHA-256, to compare
# before and after.
content_state() {
  local dir
  dir="$(content_dir "$1")"
  [[ -d "$dir" ]] || return 0
  (cd "$dir" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -r sha256sum)
}

# diff_ids ENGINE IMAGE: IMAGE's diff IDs on ENGINE, bottom first, hex, one a line.
diff_ids() {
  on_engine "$1" docker image inspect -f '{{range .RootFS.Layers}}{{println .}}{{end}}' "$2" \
    | sed -n 's/^sha256://p'
}

# top_diff_id ENGINE IMAGE: the diff ID (hex) of IMAGE's top layer on ENGINE.
top_diff_id() {
  diff_ids "$1" "$2" | tail -n 1
}

# top_layer ENGINE IMAGE FILE: writes IMAGE's top layer (from ENGINE's `docker image save`) to
# FILE.
top_layer() {
  local archive="$3.archive"
  on_engine "$1" docker image save -o "$archive" "$2" || return 1
  python3 -c '
import json, shutil, sys, tarfile
with tarfile.open(sys.argv[1]) as archive, open(sys.argv[2], "wb") as out:
    name = json.load(archive.extractfile("manifest.json"))[0]["Layers"][-1]
    shutil.copyfileobj(archive.extractfile(name), out)' "$archive" "$3" || return 1
  rm -f "$archive"
}

# delta_images KIND: a base and two rebuilds of one layer on it (helpers/delta-trees.py KIND),
# built on the client's engine (partner_engine): ENGINE, BASE, V1, V2 (tags) and TREES (the
# folder of the trees, V1 in $TREES/v1, V2 in $TREES/v2).
delta_images() {
  ENGINE="$(partner_engine)"
  require_engine "$ENGINE"
  TREES="$BATS_TEST_TMPDIR/trees"
  mkdir -p "$TREES"
  "$TEST_HELPERS/delta-trees.py" "$1" "$TREES/v1" "$TREES/v2"
  BASE="$(unique_name base):1"
  V1="$(unique_name "$1"):v1"
  V2="$(unique_name "$1"):v2"
  client_build "$ENGINE" build_busybox_image "$BASE" --content "base" >/dev/null
  client_build "$ENGINE" build_tree_image "$V1" "$BASE" "$TREES/v1" >/dev/null
  client_build "$ENGINE" build_tree_image "$V2" "$BASE" "$TREES/v2" >/dev/null
}

# query_answer APP DIR: the answer of `image:layers APP` over ssh, after its line of JSON, to
# the client's greeting and a query of the keys of DIR's files (every one under 4 KiB: a file is
# one chunk, its key the first 8 bytes of its SHA-256), in the order of their paths: the `have`
# line (docs/delta.md, the query).
query_answer() {
  python3 -c '
import hashlib, os, sys
keys = []
for root, folders, files in os.walk(sys.argv[1]):
    folders.sort()
    for name in sorted(files):
        with open(os.path.join(root, name), "rb") as f:
            data = f.read()
        if not 0 < len(data) < 4096:
            sys.exit(f"{name} is not one chunk")
        keys.append(hashlib.sha256(data).digest()[:6])
sys.stdout.buffer.write(b"chunk-queries 1\nquery %d\n" % len(keys) + b"".join(keys))' "$2" \
    | over_ssh image:layers "$1" | sed -n '2,$p'
}

# have_line COUNT BIT: the start of the `have` line for COUNT keys, its first bitmap, all of
# whose bits are BIT (0 or 1).
have_line() {
  local count="$1" byte=00 bytes
  [[ "$2" == 1 ]] && byte=ff
  bytes="$(printf "%$(((count + 7) / 8))s" "" | sed "s/ /$byte/g")"
  if (($2 == 1 && count % 8 != 0)); then
    # the last byte's bits past COUNT are 0
    bytes="${bytes:0:-2}$(printf '%02x' $((0xff << (8 - count % 8) & 0xff)))"
  fi
  echo "have $count $bytes"
}
