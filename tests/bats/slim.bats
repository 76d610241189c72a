#!/usr/bin/env bats
# Slim archives (docs/slim.md): image:layers says what the host holds by its store's rule, and
# image:load takes an archive that leaves out layers only when the host holds every one of
# them; otherwise it refuses in one line and imports nothing. On the containerd store the rule
# guards against the broken images of docs/engines.md §5, which a direct load makes.
# shellcheck disable=SC2154 # stderr is set by run_split (test_helper.bash)

load test_helper

REFUSED="the archive leaves out layers this host does not hold: "

app_per_test app

# layer_entry ARCHIVE N: the entry of layer N (from 0) of the first image in ARCHIVE's
# manifest.json.
layer_entry() {
  tar -xOf "$1" manifest.json | jq -r ".[0].Layers[$2]"
}

# missing_entries ARCHIVE: the layer entries manifest.json names that ARCHIVE lacks.
missing_entries() {
  local archive="$1" entry
  while read -r entry; do
    tar -tf "$archive" | sed 's#^\./##' | grep -qxF "$entry" || echo "$entry"
  done < <(tar -xOf "$archive" manifest.json | jq -r '.[].Layers[]')
}

# chain_ids IMAGE: the ChainIDs of IMAGE's layers, bottom first, as the engine computes them.
chain_ids() {
  local layer chain=""
  while read -r layer; do
    if [[ -z "$chain" ]]; then
      chain="$layer"
    else
      chain="sha256:$(printf '%s %s' "$chain" "$layer" | sha256sum | cut -d' ' -f1)"
    fi
    echo "$chain"
  done < <(docker image inspect -f '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" | sed '/^$/d')
}

# layers_json: the one line of `dokku image:layers $APP`, which must succeed with nothing on
# stderr.
layers_json() {
  run_split dokku image:layers "$APP"
  assert_success
  assert_equal "$stderr" ""
  assert_equal "${#lines[@]}" 1
}

# make_base_and_child BASE CHILD BASE_TAR CHILD_TAR: builds BASE (one layer) and CHILD (FROM
# BASE) on this engine, saves them to BASE_TAR and CHILD_TAR and removes both again; prints
# CHILD's ID.
make_base_and_child() {
  local base="$1" child="$2" base_tar="$3" child_tar="$4" id
  build_busybox_image "$base" >/dev/null || return 1
  id="$(build_child_image "$child" "$base" 1)" || return 1
  docker image save -o "$base_tar" "$base" || return 1
  docker image save -o "$child_tar" "$child" || return 1
  docker image rm "$child" "$base" >/dev/null || return 1
  echo "$id"
}

# base_and_child [ENGINE]: make_base_and_child on ENGINE (default: this run's) with new names:
# BASE, CHILD, BASE_TAR, CHILD_TAR, CHILD_ID.
base_and_child() {
  BASE="$(unique_name base):1"
  CHILD="$(unique_name child):1"
  BASE_TAR="$BATS_TEST_TMPDIR/base.tar"
  CHILD_TAR="$BATS_TEST_TMPDIR/child.tar"
  if [[ -n "${1:-}" ]]; then
    CHILD_ID="$(on_engine "$1" make_base_and_child "$BASE" "$CHILD" "$BASE_TAR" "$CHILD_TAR")"
  else
    CHILD_ID="$(make_base_and_child "$BASE" "$CHILD" "$BASE_TAR" "$CHILD_TAR")"
  fi
}

# short_layer ARCHIVE N diff|blob: the short diff ID (from the config) or blob digest (its
# entry's name) of layer N of ARCHIVE's first image.
short_layer() {
  local archive="$1" n="$2" config digest
  if [[ "$3" == diff ]]; then
    config="$(tar -xOf "$archive" manifest.json | jq -r '.[0].Config')"
    digest="$(tar -xOf "$archive" "$config" | jq -r ".rootfs.diff_ids[$n]")"
  else
    digest="$(layer_entry "$archive" "$n")"
    digest="${digest#blobs/sha256/}"
  fi
  digest="${digest#sha256:}"
  echo "${digest:0:12}"
}

# refused_line ARCHIVE N: the line image:load refuses ARCHIVE without its layer N with, on this
# engine's store (diff IDs on classic, blob digests on containerd).
refused_line() {
  local kind=blob
  [[ "$(store_here)" == classic ]] && kind=diff
  echo " !     ${REFUSED}$(short_layer "$1" "$2" "$kind"); nothing was loaded"
}

@test "image:layers prints the store and what it holds, in one line of JSON" {
  local tag id chain blobs
  tag="$(unique_name layers):1"
  id="$(build_busybox_image "$tag")"
  archive_of "$tag"
  run dokku image:load "$APP" "$tag" <"$ARCHIVE"
  assert_success

  layers_json
  if [[ "$(store_here)" == classic ]]; then
    assert_output --regexp '^\{"store":"classic","chains":\["sha256:[0-9a-f]{64}"(,"sha256:[0-9a-f]{64}")*\],"blobs":\[\],"version":"[^"]+","delta":2\}$'
    for chain in $(chain_ids "$id"); do
      assert_equal "$(jq --arg c "$chain" '.chains | index($c) != null' <<<"$output")" true
    done
  else
    assert_output --regexp '^\{"store":"containerd","chains":\[\],"blobs":\["sha256:[0-9a-f]{64}"(,"sha256:[0-9a-f]{64}")*\],"version":"[^"]+","delta":2\}$'
    # The blobs of the image manifest the archive's index names.
    blobs="$(tar -xOf "$ARCHIVE" manifest.json | jq -r '.[0].Layers[]' | sed 's#^blobs/sha256/#sha256:#')"
    assert [ -n "$blobs" ]
    for blob in $blobs; do
      assert_equal "$(jq --arg b "$blob" '.blobs | index($b) != null' <<<"$output")" true
    done
    # Sorted, each once.
    assert_equal "$(jq -c '.blobs' <<<"$output")" "$(jq -c '.blobs | unique' <<<"$output")"
    assert_path -f "$DOKKU_LIB_ROOT/data/image/--blobs/${id#sha256:}"

    docker image rm -f "$id" >/dev/null
    layers_json
    for blob in $blobs; do
      assert_equal "$(jq --arg b "$blob" '.blobs | index($b) != null' <<<"$output")" false
    done
    refute_path -e "$DOKKU_LIB_ROOT/data/image/--blobs/${id#sha256:}"
  fi
  assert_equal "$(jq -c '.chains' <<<"$output")" "$(jq -c '.chains | unique' <<<"$output")"
  assert_equal "$(jq -r .version <<<"$output")" \
    "$(sed -n 's/^version = "\(.*\)"/\1/p' "$PLUGIN_AVAILABLE_PATH/image/plugin.toml")"

  run dokku image:layers "$(unique_name missing)"
  assert_failure 20
  assert_output --partial "does not exist"
}

@test "a slim archive whose left-out layers the host holds deploys as the whole archive would" {
  local slim whole
  base_and_child
  run dokku image:load "$APP" "$BASE" <"$BASE_TAR"
  assert_success

  slim="$BATS_TEST_TMPDIR/slim.tar"
  "$TEST_HELPERS/slim-archive" "$CHILD_TAR" "$slim" "$(layer_entry "$CHILD_TAR" 0)"
  run_split dokku image:load "$APP" "$CHILD" <"$slim"
  assert_success
  assert_line "-----> The archive leaves out 1 layer the host holds"
  assert_equal "$(trailer "$(app_branch_rev "$APP")" Image-Id)" "$CHILD_ID"
  assert_equal "$(image_id "$CHILD")" "$CHILD_ID"

  # The engine holds the image whole: a save of it has every layer.
  whole="$BATS_TEST_TMPDIR/whole.tar"
  docker image save -o "$whole" "$CHILD"
  assert_equal "$(missing_entries "$whole")" ""
  if [[ "$(store_here)" == containerd ]]; then
    run docker image ls --all --quiet --no-trunc
    assert_line "$CHILD_ID"
  fi
}

@test "a slim archive leaving out a layer the host does not hold is refused and imports nothing" {
  local other slim head
  base_and_child
  # An earlier deploy, and CHILD's tag on that image: both must stay as they are.
  other="$(unique_name other):1"
  build_busybox_image "$other" >/dev/null
  head="$(deploy "$APP" "$other")"
  docker image tag "$other" "$CHILD"

  slim="$BATS_TEST_TMPDIR/slim.tar"
  "$TEST_HELPERS/slim-archive" "$CHILD_TAR" "$slim" "$(layer_entry "$CHILD_TAR" 0)"
  run_split dokku image:load "$APP" "$CHILD" <"$slim"
  assert_failure 1
  assert_equal "$stderr" "$(refused_line "$CHILD_TAR" 0)"
  refute_output --partial "the host holds"
  assert_equal "$(image_id "$CHILD")" "$(image_id "$other")"
  run docker image inspect "$CHILD_ID"
  assert_failure
  assert_untouched "$APP" "$head" "$other"
}

# child_on_classic BASE_TAR BASE CHILD CHILD_TAR: on a classic engine, loads BASE from BASE_TAR,
# builds CHILD FROM it, saves CHILD to CHILD_TAR (uncompressed layer blobs) and removes both.
child_on_classic() {
  local base_tar="$1" base="$2" child="$3" child_tar="$4"
  docker image load -i "$base_tar" >/dev/null || return 1
  build_child_image "$child" "$base" 1 >/dev/null || return 1
  docker image save -o "$child_tar" "$child" || return 1
  docker image rm "$child" "$base" >/dev/null
}

@test "containerd store: a slim archive naming another compression of a held layer is refused, not loaded broken" {
  local base child base_tar child_tar slim entry diff child_id
  [[ "$(store_here)" == containerd ]] || skip "the rule of the containerd store"
  require_engine 26
  base="$(unique_name base):1"
  child="$(unique_name child):1"
  base_tar="$BATS_TEST_TMPDIR/base-c8d.tar"
  child_tar="$BATS_TEST_TMPDIR/child-26.tar"
  # The base from a containerd-store archive: built (BuildKit writes gzip blobs), saved,
  # removed, loaded by the plugin; its snapshot exists.
  build_busybox_image "$base" "LABEL purpose=slim-base" >/dev/null
  docker image save -o "$base_tar" "$base"
  docker image rm "$base" >/dev/null
  run dokku image:load "$APP" "$base" <"$base_tar"
  assert_success
  # The child saved on engine 26 (classic) names the same layer by its uncompressed digest.
  on_engine 26 child_on_classic "$base_tar" "$base" "$child" "$child_tar"
  entry="$(layer_entry "$child_tar" 0)"
  diff="$(tar -xOf "$child_tar" "$(tar -xOf "$child_tar" manifest.json | jq -r '.[0].Config')" | jq -r '.rootfs.diff_ids[0]')"
  assert_equal "$entry" "blobs/sha256/${diff#sha256:}"
  [[ "$entry" != "$(layer_entry "$base_tar" 0)" ]] || fail "engine 26 saved the base's layer as the same blob $entry"
  slim="$BATS_TEST_TMPDIR/slim.tar"
  "$TEST_HELPERS/slim-archive" "$child_tar" "$slim" "$entry"
  child_id="$("$TEST_HELPERS/archive-id.py" "$child_tar" containerd)"

  run_split dokku image:load "$APP" "$child" <"$slim"
  assert_failure 1
  assert_equal "$stderr" " !     ${REFUSED}$(short_layer "$child_tar" 0 blob); nothing was loaded"
  run docker image inspect "$child"
  assert_failure

  # What the rule guards against: the engine's own load of it "succeeds", with a broken image
  # that docker image ls does not list.
  run docker image load -i "$slim"
  assert_success
  assert_output --partial "Loaded image"
  run docker image ls --all --quiet --no-trunc
  refute_line "$child_id"
  docker image rm "$child" >/dev/null
}

@test "containerd store: a slim legacy archive is refused" {
  local slim
  [[ "$(store_here)" == containerd ]] || skip "the rule of the containerd store"
  require_engine 20
  base_and_child 20
  run dokku image:load "$APP" "$BASE" <"$BASE_TAR"
  assert_success
  slim="$BATS_TEST_TMPDIR/slim.tar"
  "$TEST_HELPERS/slim-archive" "$CHILD_TAR" "$slim" "$(layer_entry "$CHILD_TAR" 0)"
  run_split dokku image:load "$APP" "$CHILD" <"$slim"
  assert_failure 1
  assert_equal "$stderr" " !     ${REFUSED}$(short_layer "$CHILD_TAR" 0 diff); nothing was loaded"
  run docker image inspect "$CHILD"
  assert_failure
}

@test "image:client writes the plugin's client binary to stdout, never to a terminal" {
  local client="$PLUGIN_AVAILABLE_PATH/image/bin/dokku-image" out="$BATS_TEST_TMPDIR/dokku-image"
  if [[ ! -e "$client" ]]; then
    run_split dokku image:client
    assert_failure 1
    assert_equal "$output" ""
    [[ "$stderr" == " !     this plugin has no dokku-image client binary ("*"/bin/dokku-image is missing)"* ]] \
      || fail "unexpected stderr: $stderr"
    # A stand-in for the client the release tarball ships.
    printf 'client\0bytes\n' >"$client"
    _added_to_host "$client"
  fi
  dokku image:client >"$out"
  cmp "$client" "$out"

  run script -qec "dokku image:client" /dev/null
  assert_failure 1
  assert_output --partial "image:client writes a binary to stdout; redirect it to a file"
  refute_output --partial "bytes"
}
