#!/usr/bin/env bats
# Tags on a host several teams share (docs/tags.md): a deploy to one app never re-points what
# another app runs, keeps, rebuilds from, or Dokku's own dokku/* tags. A load tags IMAGE only;
# a load, a pull or a rollback that would move a tag off another app's image is refused with
# nothing changed. An archive entry behind a link of the archive is refused too.
#
# One host for the file: the victim app, deployed twice (its first image is kept to roll back
# to, its second runs), and a fresh app of the test's own that does the deploying, destroyed
# by its teardown.
# shellcheck disable=SC2154 # stderr is set by run_split (test_helper.bash)

load test_helper

app_per_test mine

file_setup() {
  export VICTIM OLD_TAG OLD_ID LIVE_TAG LIVE_ID
  VICTIM="$(unique_name victim)"
  new_app "$VICTIM"
  OLD_TAG="$(unique_name victim-img):1"
  LIVE_TAG="$(unique_name victim-img):2"
  build_busybox_image "$OLD_TAG" >/dev/null
  build_busybox_image "$LIVE_TAG" >/dev/null
  OLD_ID="$(image_id "$OLD_TAG")"
  LIVE_ID="$(image_id "$LIVE_TAG")"
  deploy "$VICTIM" "$OLD_TAG" >/dev/null && deploy "$VICTIM" "$LIVE_TAG" >/dev/null
}


test_setup() {
  BEFORE="$(victim_state)"
}

test_cleanup() {
  local id
  # What the test's app deployed or recorded is no claim in the next test.
  dokku --force apps:destroy "$APP" >/dev/null 2>&1 || true
  if [[ -f "$BATS_TEST_TMPDIR/containers" ]]; then
    while read -r id; do
      docker container rm -f "$id" >/dev/null 2>&1 || true
    done <"$BATS_TEST_TMPDIR/containers"
  fi
}

# victim_state: what the victim app runs, keeps and is deployed from.
victim_state() {
  echo "release: $(image_id "dokku/$VICTIM:latest")"
  echo "$OLD_TAG: $(image_id "$OLD_TAG" 2>&1)"
  echo "$LIVE_TAG: $(image_id "$LIVE_TAG" 2>&1)"
  echo "branch: $(app_branch_rev "$VICTIM")"
  echo "source-image: $(app_property git "$VICTIM" source-image)"
}

# archive_naming FILE NAME: an archive of a fresh image (its ID in ARCHIVED_ID) whose names are
# a tag of its own and NAME, the image not left on the engine.
# shellcheck disable=SC2034 # ARCHIVED_ID is read by the caller
archive_naming() {
  local file="$1" name="$2" own
  own="$(unique_name evil):1"
  build_busybox_image "$own" --content "not the victim's" >/dev/null
  ARCHIVED_ID="$(image_id "$own")"
  docker image save -o "$BATS_TEST_TMPDIR/own.tar" "$own"
  docker image rm "$own" >/dev/null
  "$TEST_HELPERS/hostile-archive.py" add-name "$BATS_TEST_TMPDIR/own.tar" "$file" "$name"
}

# refute_image ID: the engine has no image ID.
refute_image() {
  if docker image inspect "$1" >/dev/null 2>&1; then
    fail "image $1 is on the engine"
  fi
}

# forged_commit APP IMAGE ID LABEL: commits on APP's deploy branch what a git push can: a
# Dockerfile FROM IMAGE (with a com.dokku.image-source-id label LABEL unless empty) and a
# message with image:from's trailers for IMAGE and ID. Prints the commit.
forged_commit() {
  local app="$1" image="$2" id="$3" label="$4" repo="$DOKKU_ROOT/$1" dockerfile blob tree commit
  local parent=()
  dockerfile="FROM $image"
  [[ -z "$label" ]] || dockerfile+=$'\n'"LABEL com.dokku.image-source-id=$label"
  blob="$(printf '%s\n' "$dockerfile" | git --git-dir="$repo" hash-object -w --stdin)"
  tree="$(printf '100644 blob %s\tDockerfile\n' "$blob" | git --git-dir="$repo" mktree)"
  if commit="$(app_branch_rev "$app")"; then
    parent=(-p "$commit")
  fi
  commit="$(git --git-dir="$repo" commit-tree "$tree" "${parent[@]}" \
    -m "Deploy $image" -m "Image-Source: $image
Image-Id: $id
Image-Command: image:from")"
  git --git-dir="$repo" update-ref "refs/heads/$(app_deploy_branch "$app")" "$commit"
  echo "$commit"
}

@test "a load tags IMAGE only: the archive's other names, another app's release image among them, are left out and listed" {
  local tag other archive="$BATS_TEST_TMPDIR/named.tar"
  tag="$(unique_name mine):1"
  other="$(unique_name other):1"
  build_busybox_image "$tag" >/dev/null
  docker image tag "$tag" "$other"
  docker image save -o "$BATS_TEST_TMPDIR/two-names.tar" "$tag" "$other"
  docker image rm "$other" >/dev/null
  "$TEST_HELPERS/hostile-archive.py" add-name "$BATS_TEST_TMPDIR/two-names.tar" "$archive" "dokku/$VICTIM:latest"

  run dokku image:load "$APP" "$tag" <"$archive"
  assert_success
  assert_line "-----> Tagged $tag only; left out of the load: the names dokku/$VICTIM:latest, $other"
  assert_equal "$(victim_state)" "$BEFORE"
  refute_image "$other"
  assert_equal "$(trailer "$(app_branch_rev "$APP")" Image-Id)" "$(image_id "$tag")"
}

@test "IMAGE in dokku/ is refused by load before stdin is read, by from and by rollback" {
  local name expected head
  for name in "dokku/$VICTIM:latest" "docker.io/dokku/$VICTIM"; do
    expected=" !     $name is in dokku/, Dokku's own namespace of app release images; deploy from an image of your own"
    run_split bash -c 'yes | dokku image:load "$1" "$2"' _ "$APP" "$name"
    assert_failure 1
    assert_equal "$stderr" "$expected"
    run_split dokku image:from "$APP" "$name"
    assert_failure 1
    assert_equal "$stderr" "$expected"
  done
  refute app_branch_rev "$APP"
  # A record naming a dokku/ tag, written by a git push, is no rollback target either.
  head="$(forged_commit "$APP" "dokku/$VICTIM:latest" "$LIVE_ID" "$LIVE_ID")"
  app_commit "$APP" "later=1" >/dev/null
  run_split dokku image:rollback "$APP" "$head"
  assert_failure 1
  assert_equal "$stderr" " !     dokku/$VICTIM:latest is in dokku/, Dokku's own namespace of app release images; deploy from an image of your own"
  assert_equal "$(victim_state)" "$BEFORE"
}

@test "a load that would move a tag off an image another app runs or keeps is refused; the same image loads" {
  local archive="$BATS_TEST_TMPDIR/evil.tar"
  archive_naming "$archive" "$LIVE_TAG"
  run_split dokku image:load "$APP" "$LIVE_TAG" <"$archive"
  assert_failure 1
  assert_equal "$stderr" " !     $LIVE_TAG names ${LIVE_ID:7:12}, the image app $VICTIM runs: loading the archive would move that tag; load it under a unique tag; nothing was loaded"
  refute_image "$ARCHIVED_ID"

  archive_naming "$archive" "$OLD_TAG"
  run_split dokku image:load "$APP" "$OLD_TAG" <"$archive"
  assert_failure 1
  assert_equal "$stderr" " !     $OLD_TAG names ${OLD_ID:7:12}, the image of a deploy app $VICTIM keeps to roll back to: loading the archive would move that tag; load it under a unique tag; nothing was loaded"
  refute_image "$ARCHIVED_ID"
  refute app_branch_rev "$APP"
  assert_equal "$(victim_state)" "$BEFORE"

  # The very image the tag names: nothing moves, and the deploy goes on.
  docker image save -o "$BATS_TEST_TMPDIR/same.tar" "$LIVE_TAG"
  run dokku image:load "$APP" "$LIVE_TAG" <"$BATS_TEST_TMPDIR/same.tar"
  assert_success
  assert_line --partial "-----> Deployed $LIVE_TAG (${LIVE_ID:7:12}) to $APP"
  assert_equal "$(victim_state)" "$BEFORE"
}

@test "a load does not move a tag another app rebuilds from, or whose image a container of no app uses" {
  local source used other container archive="$BATS_TEST_TMPDIR/evil.tar"
  source="$(unique_name source):1"
  build_busybox_image "$source" >/dev/null
  other="$(unique_name other)"
  new_app "$other"
  # Deployed by core's git:from-image: a source-image and no record of the plugin's.
  set_app_property git "$other" source-image "$source"
  archive_naming "$archive" "$source"
  run_split dokku image:load "$APP" "$source" <"$archive"
  assert_failure 1
  assert_equal "$stderr" " !     $source names $(image_id "$source" | cut -c8-19), the image app $other rebuilds from: loading the archive would move that tag; load it under a unique tag; nothing was loaded"
  refute_image "$ARCHIVED_ID"

  used="$(unique_name used):1"
  build_busybox_image "$used" >/dev/null
  container="$(docker container create "$used")"
  echo "$container" >>"$BATS_TEST_TMPDIR/containers"
  archive_naming "$archive" "$used"
  run_split dokku image:load "$APP" "$used" <"$archive"
  assert_failure 1
  assert_equal "$stderr" " !     $used names $(image_id "$used" | cut -c8-19), the image of container ${container:0:12}, which no Dokku app owns: loading the archive would move that tag; load it under a unique tag; nothing was loaded"
  refute_image "$ARCHIVED_ID"
  refute app_branch_rev "$APP"
}

@test "a pull that moves a tag off an image another app rebuilds from puts it back and is refused" {
  local tag kept other
  registry_start
  tag="$REGISTRY_HOST/$(unique_name shared):1"
  build_busybox_image "$tag" --content "from the registry" >/dev/null
  docker image push "$tag" >/dev/null
  build_busybox_image "$tag" --content "on the host" >/dev/null
  kept="$(image_id "$tag")"
  other="$(unique_name other)"
  new_app "$other"
  set_app_property git "$other" source-image "$tag"

  run_split dokku image:from --pull "$APP" "$tag"
  assert_failure 1
  assert_equal "$stderr" " !     $tag named ${kept:7:12}, the image app $other rebuilds from, and the pull moved it to another image: it was put back; deploy from a unique tag or a digest"
  assert_equal "$(image_id "$tag")" "$kept"
  refute app_branch_rev "$APP"
}

@test "a rollback re-points no tag for a record its commit's label does not confirm, nor off another app's image" {
  local evil forged
  evil="$(unique_name evil):1"
  build_busybox_image "$evil" --content "not the victim's" >/dev/null
  # A git push of a commit whose trailers say the victim's live tag was the pushed image.
  forged="$(forged_commit "$APP" "$LIVE_TAG" "$(image_id "$evil")" "")"
  app_commit "$APP" "later=1" >/dev/null
  run_split dokku image:rollback "$APP" "$forged"
  assert_failure 1
  assert_equal "$stderr" " !     deploy ${forged:0:12} records $LIVE_TAG as image $(image_id "$evil" | cut -c8-19), but its Dockerfile's com.dokku.image-source-id label does not: its record was not written by image:*, so $LIVE_TAG is left as it is; cannot roll back"
  assert_equal "$(victim_state)" "$BEFORE"

  # Its label forged too: the tag still names the image the victim runs.
  forged="$(forged_commit "$APP" "$LIVE_TAG" "$(image_id "$evil")" "$(image_id "$evil")")"
  app_commit "$APP" "later=2" >/dev/null
  run_split dokku image:rollback "$APP" "$forged"
  assert_failure 1
  assert_equal "$stderr" " !     $LIVE_TAG names ${LIVE_ID:7:12}, the image app $VICTIM runs: rolling back would move that tag; cannot roll back (deploy from a unique tag or a digest)"
  assert_equal "$(victim_state)" "$BEFORE"
}

@test "an entry behind a link of the archive is refused before the engine sees it, so a smuggled manifest tags nothing" {
  local tag smuggled
  tag="$(unique_name mine):1"
  build_busybox_image "$tag" >/dev/null
  docker image save -o "$BATS_TEST_TMPDIR/image.tar" "$tag"
  docker image rm "$tag" >/dev/null
  # index.json names the image $tag; x -> . then x/manifest.json names it $tag and the
  # victim's release tag: a classic engine extracts the archive and reads that manifest.
  smuggled="dokku/$VICTIM:latest"
  "$TEST_HELPERS/hostile-archive.py" smuggle "$BATS_TEST_TMPDIR/image.tar" "$BATS_TEST_TMPDIR/smuggle.tar" "$tag" "$smuggled"
  run_split dokku image:load "$APP" "$tag" <"$BATS_TEST_TMPDIR/smuggle.tar"
  assert_failure 1
  assert_equal "$stderr" " !     archive entry x/manifest.json runs through x, a link of the archive, so the engine would write it elsewhere than its name says; refused"
  refute docker image inspect "$tag"
  refute app_branch_rev "$APP"
  assert_equal "$(victim_state)" "$BEFORE"
}
