#!/usr/bin/env bats
# Layer recipes (docs/delta.md): a rebuilt layer crosses the wire as what changed in it, the
# rest as references to the chunks of content the host keeps for the app, in packs; the host
# rebuilds the layer and refuses, in one line and before anything is imported, a recipe that
# does not add up, and the client then sends the layer whole. Pushed by the real client
# (lib/client.bash) from another engine than the host's; hostile recipes are made by hand
# (helpers/recipe-archive.py) and sent straight to image:load.

# shellcheck disable=SC2154 # stderr is set by run_split (test_helper.bash)

load test_helper

app_per_test delta

client_hooks

# refusal_line NAME REASON: the host's line refusing the recipe for the layer entry NAME.
refusal_line() {
  echo " !     the layer recipe for $1 cannot be used: $2; nothing was loaded"
}

# push_v1: pushes V1 (delta_images) to $APP, which then runs it and keeps a pack of its top
# layer (a base the host held already, from another app's push, was left out: no pack of it).
push_v1() {
  local hex
  run_split push_from "$ENGINE" "$V1" "$SSH_DEST" "$APP"
  assert_success
  assert_pushed "$V1" "$(<"$TREES/v1/index.html")"
  hex="$(top_diff_id "$ENGINE" "$V1")"
  assert_path -f "$(content_dir "$APP")/$hex.pack"
  assert_path -f "$(content_dir "$APP")/$hex.idx"
}

# v2_layer: V2's top layer, saved on the client's engine, in $V2_LAYER; its size in bytes,
# $V2_SIZE, and in zstd -3, $V2_ZSTD, what a whole-layer push of it costs on the wire.
v2_layer() {
  V2_LAYER="$BATS_TEST_TMPDIR/v2-layer.tar"
  top_layer "$ENGINE" "$V2" "$V2_LAYER"
  V2_SIZE="$(stat -c %s "$V2_LAYER")"
  V2_ZSTD="$(zstd -3 -c "$V2_LAYER" | wc -c)"
}

# assert_v2_deployed: V2 runs, with the ID a full load of it gives, and the app keeps a pack of
# its top layer.
assert_v2_deployed() {
  assert_pushed "$V2" "$(<"$TREES/v2/index.html")"
  assert_equal "$(image_id "$V2")" "$(full_load_id "$ENGINE" "$V2")"
  packs_of "$APP" | grep -qxF "$(top_diff_id "$ENGINE" "$V2")" \
    || fail "$APP keeps no pack of $V2's top layer; it keeps: $(packs_of "$APP")"
}

# assert_recipe_redeploy KIND: V1 pushed, then V2, whose top layer goes as a recipe: most of the
# layer's bytes by reference, the whole push at most a tenth of the layer's zstd size; V2
# deploys as a full load would.
assert_recipe_redeploy() {
  local literal referenced
  delta_images "$1"
  push_v1
  v2_layer

  run_split push_from "$ENGINE" "$V2" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --regexp "^-----> Sent [0-9]+ bytes .*; left out 1 of 2 layers, "
  assert_stderr_line --regexp "^-----> 1 layer of $V2_SIZE bytes went as a recipe: [0-9]+ bytes literal, [0-9]+ referenced$"
  read -r literal referenced < <(sed -n \
    's/^-----> 1 layer of .* a recipe: \([0-9]*\) bytes literal, \([0-9]*\) referenced$/\1 \2/p' <<<"$stderr")
  assert_equal "$((literal + referenced))" "$V2_SIZE"
  echo "# $1: sent $(sent_bytes) bytes for a layer of $V2_SIZE ($V2_ZSTD in zstd): $literal literal, $referenced referenced" >&3
  ((literal * 2 < V2_SIZE)) || fail "$literal of the layer's $V2_SIZE bytes went as literals"
  (($(sent_bytes) * 10 <= V2_ZSTD)) || fail "sent $(sent_bytes) bytes; the layer in zstd is $V2_ZSTD"
  assert_v2_deployed
}

@test "a fresh checkout with 1% of its files changed and every mtime new goes as a recipe" {
  assert_recipe_redeploy checkout
}

@test "2,000 small files reinstalled with the same contents go as a recipe" {
  assert_recipe_redeploy reinstall
}

@test "a 4 MiB binary with 2 KiB changed in place goes as a recipe" {
  assert_recipe_redeploy binary
}

@test "--whole-layers sends the changed layer whole" {
  delta_images checkout
  push_v1
  v2_layer

  run_split push_from "$ENGINE" --whole-layers "$V2" "$SSH_DEST" "$APP"
  assert_success
  refute_stderr_line --partial "went as a recipe"
  (($(sent_bytes) * 2 > V2_ZSTD)) || fail "sent $(sent_bytes) bytes; the layer in zstd is $V2_ZSTD"
  assert_v2_deployed
}

@test "a recipe whose rebuilt layer does not match is refused in one line; the client sends the layer whole" {
  delta_images checkout
  push_v1
  v2_layer
  "$TEST_HELPERS/recipe-archive.py" damage-packs "$(content_dir "$APP")"

  run_split push_from "$ENGINE" "$V2" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --regexp "^ !     the layer recipe for [^ ]+ cannot be used: a kept chunk is damaged; nothing was loaded$"
  assert_stderr_line "-----> The host cannot use a layer recipe; sending the changed layers whole"
  refute_stderr_line --partial "went as a recipe"
  (($(sent_bytes) * 2 > V2_ZSTD)) || fail "sent $(sent_bytes) bytes; the layer in zstd is $V2_ZSTD"
  assert_v2_deployed
}

# hostile_reason KIND NAME SIZE DIFF_ID: the reason the host gives for a recipe of
# helpers/recipe-archive.py KIND, for layer entry NAME of SIZE bytes and DIFF_ID.
hostile_reason() {
  local name="$2" size="$3" diff_id="$4"
  case "$1" in
    unknown-key) echo "it refers to content this host does not keep" ;;
    wrong-length) echo "a reference's length is not its chunk's" ;;
    size-larger) echo "its bytes add up to $size, not the $((size + 1)) it declares" ;;
    size-smaller) echo "its bytes add up to more than the $((size - 1)) it declares" ;;
    wrong-diff-id)
      echo "it rebuilds $diff_id, not the diff ID sha256:$(printf 'another layer' | sha256sum | cut -c1-64) it declares"
      ;;
    cut-short) echo "it is cut short" ;;
    trailing) echo "it goes on after its end" ;;
    unnamed) echo "the archive names no layer $name of diff ID $diff_id" ;;
  esac
}

@test "hostile recipes sent to image:load: one line naming the cause each, nothing imported" {
  local archive crafted before pack_state full_id kind name count size diff_id
  delta_images reinstall
  push_v1
  archive="$BATS_TEST_TMPDIR/v2.tar"
  on_engine "$ENGINE" docker image save -o "$archive" "$V2"
  full_id="$(full_load_id "$ENGINE" "$V2")"
  before="$(host_state "$APP" "$V2" "$full_id")"
  pack_state="$(content_state "$APP")"

  for kind in unknown-key wrong-length size-larger size-smaller wrong-diff-id cut-short trailing unnamed; do
    crafted="$BATS_TEST_TMPDIR/$kind.tar"
    read -r name count size diff_id < <("$TEST_HELPERS/recipe-archive.py" "$kind" "$archive" "$crafted" "$(content_dir "$APP")")
    ((count > 0)) || fail "the $kind recipe refers to no kept chunk"
    run_split over_ssh image:load "$APP" "$V2" <"$crafted"
    assert_failure
    assert_equal "$stderr" "$(refusal_line "$name" "$(hostile_reason "$kind" "$name" "$size" "$diff_id")")"
    assert_equal "$(host_state "$APP" "$V2" "$full_id")" "$before"
    assert_equal "$(content_state "$APP")" "$pack_state"
    assert_equal "$(app_http_get "$APP")" "$(<"$TREES/v1/index.html")"
  done

  # the control: the same recipe, made right, loads and deploys V2 as a full load would
  crafted="$BATS_TEST_TMPDIR/valid.tar"
  read -r name count size diff_id < <("$TEST_HELPERS/recipe-archive.py" valid "$archive" "$crafted" "$(content_dir "$APP")")
  ((count >= 2000)) || fail "the recipe refers to $count kept chunks, not every file's"
  run_split over_ssh image:load "$APP" "$V2" <"$crafted"
  assert_success
  assert_equal "$stderr" ""
  assert_line "-----> Rebuilt 1 layer from recipes and the app's kept content"
  assert_v2_deployed
}

@test "an app's packs serve only that app" {
  local before
  delta_images reinstall
  push_v1
  OTHER_APP="$(unique_name other)"
  new_app "$OTHER_APP"
  before="$(content_state "$APP")"

  # the host takes recipes of formats 1 and 2 and answers chunk queries (version 2)
  run over_ssh image:layers "$APP" </dev/null
  assert_success
  assert_equal "$(jq -c .delta <<<"$output")" 2
  # every file of V2 is a chunk of V1's layer: the app keeps them all, the other app none (the
  # answer's first bitmap; the second says which follow the one before in the host's pack)
  assert_equal "$(query_answer "$APP" "$TREES/v2/node_modules" | cut -d' ' -f1-3)" "$(have_line 2000 1)"
  assert_equal "$(query_answer "$OTHER_APP" "$TREES/v2/node_modules")" "$(have_line 2000 0) $(have_line 2000 0 | cut -d' ' -f3)"

  run_split push_from "$ENGINE" "$V2" "$SSH_DEST" "$OTHER_APP"
  assert_success
  refute_stderr_line --partial "went as a recipe"
  APP="$OTHER_APP" assert_v2_deployed
  assert_equal "$(content_state "$APP")" "$before"
}

# save_and_load ENGINE IMAGE: `docker image save IMAGE | ssh dokku@host image:load $APP IMAGE`,
# a raw load, from ENGINE.
save_and_load() {
  on_engine "$1" docker image save "$2" | over_ssh image:load "$APP" "$2"
}

@test "an app no recipe-sending client has pushed to keeps no pack" {
  delta_images binary
  run_split save_and_load "$ENGINE" "$V1"
  assert_success
  assert_pushed "$V1" "binary v1"
  refute_path -e "$(content_dir "$APP")"
}

@test "the packs of layers of images retention removed go with them" {
  local children=() tops=() i
  ENGINE="$(partner_engine)"
  require_engine "$ENGINE"
  BASE="$(unique_name base):1"
  client_build "$ENGINE" build_busybox_image "$BASE" >/dev/null
  run dokku image:set "$APP" keep-images 1
  assert_success
  for i in 0 1 2 3; do
    children+=("$(unique_name child):v$i")
    client_build "$ENGINE" build_child_image "${children[i]}" "$BASE" 128 >/dev/null
    tops+=("$(top_diff_id "$ENGINE" "${children[i]}")")
    run_split push_from "$ENGINE" "${children[i]}" "$SSH_DEST" "$APP"
    assert_success
    track_image "${children[i]}"
  done

  # the live deploy and the one before it stay, with their packs and the base's
  for i in 0 1; do
    run docker image inspect "${children[i]}"
    assert_failure
  done
  assert_equal "$(packs_of "$APP")" \
    "$(printf '%s\n' "$(diff_ids "$ENGINE" "$BASE")" "${tops[2]}" "${tops[3]}" | LC_ALL=C sort)"
}
