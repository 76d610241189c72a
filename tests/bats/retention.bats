#!/usr/bin/env bats
# A disk that stays bounded (docs/retention.md): after a deploy, the source images of older
# deploys that the plugin brought onto the host go, but for the live one and the last
# keep-images before it, and never one another app (deployed or deploying), a container or a
# foreign tag uses; a pulled image comes back by its registry digest for a rollback; image:set
# and the report.

# shellcheck disable=SC2154 # stderr is set by run_split (test_helper.bash)

load test_helper

app_per_test keep

file_setup() {
  registry_start
  export FILE_REGISTRY="$REGISTRY_HOST"
}

# load_new [APP]: builds a new image (unique tag, content = tag), deploys it to APP (default
# $APP) with image:load, and prints its tag.
load_new() {
  local app="${1:-$APP}" tag
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content "$tag" >/dev/null
  archive_of "$tag"
  dokku image:load "$app" "$tag" <"$ARCHIVE" >/dev/null || {
    fail "image:load $app $tag failed"
    return 1
  }
  track_image "$tag"
  echo "$tag"
}

# push_new REF CONTENT: pushes a new image with CONTENT as REPO to the registry, removes it
# locally, and prints its image ID.
push_new() {
  local ref="$1" id
  id="$(build_busybox_image "$ref" --content "$2")"
  docker image push "$ref" >/dev/null
  docker image rm "$ref" >/dev/null
  echo "$id"
}

on_host() {
  docker image inspect "$1" >/dev/null 2>&1
}

@test "12 loads with unique tags and keep-images 3 leave exactly the 4 newest source images" {
  local tags=() tag i
  run dokku image:set "$APP" keep-images 3
  assert_success
  assert_output "-----> Setting keep-images to 3"
  for ((i = 0; i < 12; i++)); do
    tags+=("$(load_new)")
  done
  for i in "${!tags[@]}"; do
    if ((i < 8)); then
      run on_host "${tags[i]}"
      assert_failure
    else
      on_host "${tags[i]}" || fail "${tags[i]}, of the last 4 deploys, was removed"
    fi
  done
  run dokku image:report "$APP" --image-computed-keep-images
  assert_output 3
  run dokku image:report "$APP" --image-keep-images
  assert_output 3
  run dokku image:report "$APP" --image-retained-size
  assert_output --regexp '^[0-9.]+ (KiB|MiB)$'
  # history still lists every deploy
  run dokku image:history "$APP" --format json
  assert_equal "$(jq length <<<"$output")" 12
}

@test "an image another app deploys or is deploying, a foreign tag, or a container keep an image" {
  local shared pending foreign used other waiting tag
  other="$(unique_name other)"
  waiting="$(unique_name waiting)"
  new_app "$other"
  new_app "$waiting"
  dokku image:set "$APP" keep-images 0 >/dev/null
  shared="$(load_new)"
  pending="$(load_new)"
  foreign="$(load_new)"
  used="$(load_new)"
  dokku image:from "$other" "$shared" >/dev/null
  docker image tag "$foreign" "$(unique_name mine):kept"
  track_image "$foreign"
  docker container create --name "$(unique_name holder)" --label "dokku-sandbox.id=$SANDBOX_ID" "$used" >/dev/null
  # a deploy of another app, under way: its receive-app will build FROM the image (held
  # there; the deploys of APP go through)
  PAUSE_FIRST="[[ \$1 == $waiting ]] || exit 0" start_held_deploy held "$waiting" "$pending"
  run dokku image:set "$APP" keep-images 1
  assert_success
  tag="$(load_new)"
  tag="$(load_new)"
  on_host "$shared" || fail "$shared, deployed by $other, was removed"
  on_host "$pending" || fail "$pending, which a deploy of $waiting is building from, was removed"
  on_host "$foreign" || fail "$foreign, with a tag of its own, was removed"
  on_host "$used" || fail "$used, used by a container, was removed"
  on_host "$tag" || fail "the live $tag was removed"
  release_pauses
  finish_bg held
  assert_equal "$status" 0
}

@test "images the plugin did not bring (built on the host) are never removed" {
  local built=() tag i
  dokku image:set "$APP" keep-images 1 >/dev/null
  for ((i = 0; i < 4; i++)); do
    tag="$(unique_name built):v1"
    build_busybox_image "$tag" >/dev/null
    built+=("$tag")
    dokku image:from "$APP" "$tag" >/dev/null
  done
  for tag in "${built[@]}"; do
    on_host "$tag" || fail "$tag, built on the host, was removed"
  done
}

@test "rollback to a removed, pulled image pulls it back by its registry digest" {
  local ref id1 c1 digest
  ref="$FILE_REGISTRY/$(unique_name app):v1"
  id1="$(push_new "$ref" "first content")"
  dokku image:set "$APP" keep-images 1 >/dev/null
  run dokku image:from "$APP" "$ref"
  assert_success
  c1="$(app_branch_rev "$APP")"
  digest="$(trailer "$c1" Image-Digest)"
  assert_regex "$digest" "^${ref%:v1}@sha256:[0-9a-f]{64}$"
  # the tag moves in the registry; two more pulled deploys push the first one out
  push_new "$ref" "second content" >/dev/null
  push_new "${ref%:v1}:v2" two >/dev/null
  push_new "${ref%:v1}:v3" three >/dev/null
  dokku image:from "$APP" "${ref%:v1}:v2" >/dev/null
  dokku image:from "$APP" "${ref%:v1}:v3" >/dev/null
  run docker image inspect "$id1"
  assert_failure

  run dokku image:rollback "$APP" "$c1"
  assert_success
  assert_line "-----> Pulling $digest: image sha256:${id1:7:12} of deploy ${c1:0:12} is no longer on the host"
  track_image "$ref"
  assert_equal "$(image_id "$ref")" "$id1"
  assert_equal "$(app_http_get "$APP")" "first content"
}

@test "rollback past the retention of a loaded image fails with one line, nothing changed" {
  local first c1 before
  dokku image:set "$APP" keep-images 1 >/dev/null
  first="$(load_new)"
  c1="$(app_branch_rev "$APP")"
  load_new >/dev/null
  load_new >/dev/null
  run on_host "$first"
  assert_failure
  before="$(host_state "$APP")"
  run_split dokku image:rollback "$APP" "$c1"
  assert_failure 1
  assert_regex "$stderr" "^ !     image sha256:[0-9a-f]{12} of deploy ${c1:0:12} is no longer on the host, and it was loaded from an archive, so no registry can give it back; load it again with image:load"
  assert_equal "${#stderr_lines[@]}" 1
  assert_equal "$(host_state "$APP")" "$before"
}

@test "image:set: per app, --global, unset; bad values and keys are refused" {
  run dokku image:set --global keep-images 2
  assert_success
  assert_output "-----> Setting keep-images to 2"
  _added_to_host "$DOKKU_LIB_ROOT/config/image/--global"
  run dokku image:report "$APP" --image-global-keep-images
  assert_output 2
  run dokku image:report "$APP" --image-computed-keep-images
  assert_output 2
  run dokku image:set "$APP" keep-images 7
  run dokku image:report "$APP" --image-computed-keep-images
  assert_output 7
  run dokku image:set "$APP" keep-images
  assert_output "-----> Unsetting keep-images"
  run dokku image:report "$APP" --image-computed-keep-images
  assert_output 2
  run dokku image:set --global keep-images
  run dokku image:report "$APP" --image-computed-keep-images
  assert_output 5

  run_split dokku image:set "$APP" keep-images many
  assert_failure 1
  assert_equal "$stderr" ' !     keep-images takes a whole number of image deploys (0 keeps every image), not "many"'
  run_split dokku image:set "$APP" colour blue
  assert_failure 1
  assert_regex "$stderr" '^ !     unknown setting "colour" \(image:set knows keep-images\); usage: dokku image:set '
  run_split dokku image:set no-such-app keep-images 1
  assert_failure 20
  run_split dokku image:set
  assert_failure 1
  assert_regex "$stderr" 'APP or --global is required'
  run dokku image:report "$APP" --image-keep-images
  assert_output ""
}
