#!/usr/bin/env bats
# Archives across the engine matrix (scripts/engines, docs/engines.md): an image saved on each
# engine (20, 26, 26-c8d) deploys with image:load on the engine this run uses (DOCKER_HOST),
# with the image ID that engine's store gives it; over the three runs of scripts/test-engines,
# the nine pairs. And multi-platform archives: the host's image is deployed, an archive of
# foreign platforms only is refused before anything is imported.

load test_helper

HELPERS="$REPO_ROOT/tests/bats/helpers"

# save_on ENGINE TAG FILE: builds TAG (serving "saved on ENGINE") on ENGINE, saves it to FILE
# and removes it there again.
save_on() {
  local engine="$1" tag="$2" file="$3"
  on_engine "$engine" _build_save_remove "$tag" "saved on $engine" "$file"
}

_build_save_remove() {
  local tag="$1" content="$2" file="$3" id
  id="$(build_busybox_image "$tag" --content "$content")" || return 1
  docker image save "$tag" >"$file" || return 1
  docker image rm -f "$id" >/dev/null
}

# commit_image_id APP: the Image-Id trailer of the deploy branch's head.
commit_image_id() {
  git --git-dir="$DOKKU_ROOT/$1" log -1 --format=%B master | sed -n 's/^Image-Id: //p'
}

# assert_archive_deploys SOURCE: an image saved on SOURCE deploys here, with the ID this
# engine's store gives the archive's image, and deploying it again changes nothing.
assert_archive_deploys() {
  local source="$1" app tag archive id
  require_engine "$source"
  app="$(unique_name "from-$source")"
  tag="$(unique_name img):v1"
  archive="$BATS_TEST_TMPDIR/archive.tar"
  save_on "$source" "$tag" "$archive"
  dokku apps:create "$app" >/dev/null

  run_split dokku image:load "$app" "$tag" <"$archive"
  assert_success
  assert_equal "$stderr" ""
  id="$(docker image inspect -f '{{.Id}}' "$tag")"
  track_image "$tag"
  assert_equal "$id" "$("$HELPERS/archive-id.py" "$archive" "$(store_here)")"
  assert_line --regexp "^-----> Loaded $tag \(${id:7:12}\), .+ read$"
  assert_line --regexp "^-----> Deployed $tag \(${id:7:12}\) to $app as commit [0-9a-f]{12}$"
  assert_equal "$(commit_image_id "$app")" "$id"
  assert_equal "$(app_http_get "$app")" "saved on $source"

  run dokku image:load "$app" "$tag" <"$archive"
  assert_success
  assert_line "-----> No changes detected, skipping deploy"
}

@test "an archive saved on engine 20 (legacy layout) deploys with image:load here" {
  assert_archive_deploys 20
}

@test "an archive saved on engine 26 (OCI layout, classic store) deploys with image:load here" {
  assert_archive_deploys 26
}

@test "an archive saved on engine 26-c8d (containerd store, gzip layers, attestation) deploys here" {
  assert_archive_deploys 26-c8d
}

# multi_platform_archive TAG FILE MODE [--oci-only]: an image built here, rewritten by
# helpers/multi-platform.py (MODE both or foreign-only), the original image removed.
multi_platform_archive() {
  local tag="$1" file="$2" id
  shift 2
  id="$(build_busybox_image "$tag" --content "multi-platform $tag")"
  docker image save "$tag" >"$BATS_TEST_TMPDIR/single.tar"
  docker image rm -f "$id" >/dev/null
  "$HELPERS/multi-platform.py" "$BATS_TEST_TMPDIR/single.tar" "$file" "$tag" "$@"
}

@test "a multi-platform archive (linux/amd64 and linux/arm64) deploys the host's image" {
  local app tag archive id expected
  app="$(unique_name multi)"
  tag="$(unique_name img):v1"
  archive="$BATS_TEST_TMPDIR/multi.tar"
  multi_platform_archive "$tag" "$archive" both
  dokku apps:create "$app" >/dev/null

  run_split dokku image:load "$app" "$tag" <"$archive"
  assert_success
  id="$(docker image inspect -f '{{.Id}}' "$tag")"
  track_image "$tag"
  if [[ "$(store_here)" == containerd ]]; then
    # the containerd store keeps the whole index: the ID is the index's digest
    expected="$(tar -xOf "$archive" index.json | jq -r '.manifests[0].digest')"
  else
    expected="$("$HELPERS/archive-id.py" "$archive" classic)"
  fi
  assert_equal "$id" "$expected"
  assert_equal "$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$tag")" "linux/amd64"
  assert_equal "$(commit_image_id "$app")" "$id"
  assert_equal "$(app_http_get "$app")" "multi-platform $tag"
}

@test "an archive of foreign platforms only is refused before import, naming what it holds" {
  local app tag archive layout
  app="$(unique_name foreign)"
  dokku apps:create "$app" >/dev/null
  for layout in docker-save oci-only; do
    tag="$(unique_name img):v1"
    archive="$BATS_TEST_TMPDIR/foreign-$layout.tar"
    if [[ "$layout" == oci-only ]]; then
      multi_platform_archive "$tag" "$archive" foreign-only --oci-only
    else
      multi_platform_archive "$tag" "$archive" foreign-only
    fi

    run_split dokku image:load "$app" "$tag" <"$archive"
    assert_failure 1
    if [[ "$layout" == oci-only ]]; then
      assert_equal "$stderr" " !     the archive holds docker.io/library/$tag only for linux/arm64/v8, not for this host's platform linux/amd64; nothing was loaded"
    else
      assert_equal "$stderr" " !     the archive holds $tag only for linux/arm64, not for this host's platform linux/amd64; nothing was loaded"
    fi
    run docker image inspect "$tag"
    assert_failure
  done
  run git --git-dir="$DOKKU_ROOT/$app" rev-parse --verify --quiet refs/heads/master
  assert_failure
}
