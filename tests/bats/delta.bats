#!/usr/bin/env bats
# Layer recipes (docs/delta.md): a rebuilt layer crosses the wire as what changed in it, the
# rest as references to the chunks of content the host keeps for the app, in packs; the host
# rebuilds the layer and refuses, in one line and before anything is imported, a recipe that
# does not add up, and the client then sends the layer whole. Pushed by the real client
# (lib/client.bash) from another engine than the host's; hostile recipes are made by hand
# (helpers/recipe-archive.py) and sent straight to image:load.

# shellcheck disable=SC2154 # stderr and stderr_lines are set by run_split (test_helper.bash)

load test_helper

app_per_test delta

file_setup() {
  client_setup
}

file_teardown() {
  sshd_stop
}

test_cleanup() {
  dokku --force apps:destroy "$APP" >/dev/null 2>&1 || true
  [[ -z "${OTHER_APP:-}" ]] || dokku --force apps:destroy "$OTHER_APP" >/dev/null 2>&1 || true
  client_cleanup
}

# refusal_line NAME REASON: the host's line refusing the recipe for the layer entry NAME.
refusal_line() {
  echo " !     the layer recipe for $1 cannot be used: $2; nothing was loaded"
}

# push_v1: pushes V1 (delta_images) to $APP, which then runs it and keeps a pack of each of
# its layers.
push_v1() {
  local hex
  run_split push_from "$ENGINE" "$V1" "$SSH_DEST" "$APP"
  assert_success
  assert_pushed "$V1" "$(<"$TREES/v1/index.html")"
  for hex in $(diff_ids "$ENGINE" "$V1"); do
    assert_path -f "$(content_dir "$APP")/$hex.pack"
    assert_path -f "$(content_dir "$APP")/$hex.idx"
  done
}

# assert_v2_deployed: V2 runs, with the ID a full load of it gives, and the app keeps a pack of
# its top layer.
assert_v2_deployed() {
  assert_pushed "$V2" "$(<"$TREES/v2/index.html")"
  assert_equal "$(image_id "$V2")" "$(full_load_id "$ENGINE" "$V2")"
  packs_of "$APP" | grep -qxF "$(top_diff_id "$ENGINE" "$V2")" \
    || fail "$APP keeps no pack of $V2's top layer; it keeps: $(packs_of "$APP")"
}

# assert_recipe_redeploy KIND: V1 pushed, then V2, whose top layer goes as a recipe of at most a
# tenth of the layer's zstd size: V2 deploys as a full load would.
assert_recipe_redeploy() {
  local whole
  delta_images "$1"
  push_v1
  whole="$(top_layer_zstd_bytes "$ENGINE" "$V2")"

  run_split push_from "$ENGINE" "$V2" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --regexp "^-----> Sent [0-9]+ bytes .*; left out 1 of 2 layers, "
  (($(sent_bytes) * 10 <= whole)) || fail "sent $(sent_bytes) bytes; the layer in zstd is $whole"
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
  local whole
  delta_images checkout
  push_v1
  whole="$(top_layer_zstd_bytes "$ENGINE" "$V2")"

  run_split push_from "$ENGINE" --whole-layers "$V2" "$SSH_DEST" "$APP"
  assert_success
  (($(sent_bytes) * 2 > whole)) || fail "sent $(sent_bytes) bytes; the layer in zstd is $whole"
  assert_v2_deployed
}

@test "a recipe whose rebuilt layer does not match is refused in one line; the client sends the layer whole" {
  local whole
  delta_images checkout
  push_v1
  whole="$(top_layer_zstd_bytes "$ENGINE" "$V2")"
  "$TEST_HELPERS/recipe-archive.py" damage-packs "$(content_dir "$APP")"

  run_split push_from "$ENGINE" "$V2" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --regexp "^ !     the layer recipe for [^ ]+ cannot be used: .+; nothing was loaded$"
  (($(sent_bytes) * 2 > whole)) || fail "sent $(sent_bytes) bytes; the layer in zstd is $whole"
  assert_v2_deployed
}

@test "hostile recipes sent to image:load: one line naming the cause each, nothing imported" {
  local archive crafted before pack_state full_id kind reason name count
  delta_images reinstall
  push_v1
  archive="$BATS_TEST_TMPDIR/v2.tar"
  on_engine "$ENGINE" docker image save -o "$archive" "$V2"
  full_id="$(full_load_id "$ENGINE" "$V2")"
  before="$(host_state "$APP" "$V2" "$full_id")"
  pack_state="$(content_state "$APP")"

  while IFS='|' read -r kind reason; do
    crafted="$BATS_TEST_TMPDIR/$kind.tar"
    read -r name count < <("$TEST_HELPERS/recipe-archive.py" "$kind" "$archive" "$crafted" "$(content_dir "$APP")")
    ((count > 0)) || fail "the $kind recipe refers to no kept chunk"
    run_split over_ssh image:load "$APP" "$V2" --keep-content <"$crafted"
    assert_failure
    assert_equal "$stderr" "$(refusal_line "$name" "$reason")"
    assert_equal "$(host_state "$APP" "$V2" "$full_id")" "$before"
    assert_equal "$(content_state "$APP")" "$pack_state"
    assert_equal "$(app_http_get "$APP")" "$(<"$TREES/v1/index.html")"
  done <<'EOF'
unknown-key|it refers to content this host does not keep
wrong-length|it refers to content this host does not keep
size-larger|its bytes do not add up to its size
size-smaller|its bytes do not add up to its size
wrong-diff-id|the rebuilt layer is not its diff ID
cut-short|it is cut short
trailing|it has bytes after its end
unnamed|the image names no such layer
EOF

  # the control: the same recipe, made right, loads and deploys V2 as a full load would
  crafted="$BATS_TEST_TMPDIR/valid.tar"
  read -r name count < <("$TEST_HELPERS/recipe-archive.py" valid "$archive" "$crafted" "$(content_dir "$APP")")
  ((count >= 2000)) || fail "the recipe refers to $count kept chunks, not every file's"
  run_split over_ssh image:load "$APP" "$V2" --keep-content <"$crafted"
  assert_success
  assert_equal "$stderr" ""
  assert_v2_deployed
}

@test "an app's packs serve only that app" {
  local before
  delta_images reinstall
  push_v1
  OTHER_APP="$(unique_name other)"
  new_app "$OTHER_APP"
  before="$(content_state "$APP")"

  # every file of V2 is a chunk of V1's layer: the app keeps them all, the other app none
  assert_equal "$(query_answer "$APP" "$TREES/v2/node_modules")" "$(have_line 2000 1)"
  assert_equal "$(query_answer "$OTHER_APP" "$TREES/v2/node_modules")" "$(have_line 2000 0)"

  run_split push_from "$ENGINE" "$V2" "$SSH_DEST" "$OTHER_APP"
  assert_success
  refute_line --partial "the layer recipe for"
  APP="$OTHER_APP" assert_v2_deployed
  assert_equal "$(content_state "$APP")" "$before"
}

# save_and_load ENGINE IMAGE: `docker image save IMAGE | ssh dokku@host image:load $APP IMAGE`,
# the raw load, from ENGINE.
save_and_load() {
  on_engine "$1" docker image save "$2" | over_ssh image:load "$APP" "$2"
}

@test "a plain image:load keeps no pack" {
  delta_images binary
  run_split save_and_load "$ENGINE" "$V1"
  assert_success
  assert_pushed "$V1" "binary v1"
  assert_equal "$(packs_of "$APP")" ""
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
    client_build "$ENGINE" build_child_image "${children[i]}" "$BASE" 64 >/dev/null
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
