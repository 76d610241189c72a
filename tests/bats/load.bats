#!/usr/bin/env bats
# image:load on a sandbox Dokku host against the real Docker engine: archive formats, which
# image of an archive is deployed, refusals that import nothing, stdin checks, no-op and
# changed redeploys, --build-dir, rollback of a failed deploy, and upload progress.
#
# The engine is shared with whatever else runs on the machine, so "nothing imported" is
# checked on what this test could have imported: the archive's image IDs stay absent, and
# no image built for the test's app appears.
# shellcheck disable=SC2016 # scripts for bash -c are single-quoted on purpose
# shellcheck disable=SC2154 # stderr and stderr_lines are set by run_split and finish_bg (test_helper.bash)

load test_helper

app_per_test app

# engine_images: every image ID of the engine, sorted.
engine_images() {
  docker image ls -aq --no-trunc | sort -u
}

# save_archive IMAGE…: `docker image save IMAGE…` into a new file of this test; prints its path.
save_archive() {
  local file
  file="$(mktemp "$BATS_TEST_TMPDIR/archive.XXXXXX")"
  docker image save "$@" >"$file" || return 1
  echo "$file"
}

# load_file FILE ARGS…: dokku image:load ARGS… with FILE on stdin.
load_file() {
  local file="$1"
  shift 1
  dokku image:load "$@" <"$file"
}

# save_and_load FILTER IMAGE ARGS…: docker image save IMAGE | FILTER | dokku image:load ARGS…
save_and_load() {
  local filter="$1" image="$2"
  shift 2
  # shellcheck disable=SC2086 # FILTER is a command with its arguments
  docker image save "$image" | $filter | dokku image:load "$@"
}

# assert_deployed ID IMAGE [CONTENT]: the app's branch head deploys IMAGE with image ID ID (commit
# trailers, Dockerfile, source-image), IMAGE on the engine is ID, the built dokku/APP:latest has
# ID's layers and source label, nothing is pending, and the app serves CONTENT.
assert_deployed() {
  local id="$1" image="$2" content="${3:-}" head built_layers image_layers
  head="$(app_branch_rev "$APP")" || fail "$APP has no deploy branch"
  assert_equal "$(trailer "$head" Image-Id)" "$id"
  assert_equal "$(trailer "$head" Image-Source)" "$image"
  assert_equal "$(trailer "$head" Image-Command)" "image:load"
  run repo_git show "$head:Dockerfile"
  assert_success
  assert_line "FROM $image"
  assert_line "LABEL com.dokku.image-source-id=$id"
  assert_equal "$(app_property git "$APP" source-image)" "$image"
  assert_equal "$(image_id "$image")" "$id"
  assert_equal "$(docker image inspect -f '{{index .Config.Labels "com.dokku.image-source-id"}}' "dokku/$APP:latest")" "$id"
  # built FROM the image: its layers first (ONBUILD steps may add more)
  built_layers="$(docker image inspect -f '{{range .RootFS.Layers}}{{println .}}{{end}}' "dokku/$APP:latest")"
  image_layers="$(docker image inspect -f '{{range .RootFS.Layers}}{{println .}}{{end}}' "$id")"
  [[ -n "$image_layers" && "$built_layers" == "$image_layers"* ]] \
    || fail "dokku/$APP:latest is not built on $id: layers $built_layers, not starting with $image_layers"
  assert_equal "$(repo_git symbolic-ref HEAD)" "refs/heads/$(app_deploy_branch "$APP")"
  refute_pending
  if [[ -n "$content" ]]; then
    assert_equal "$(app_http_get "$APP")" "$content"
  fi
}

# assert_no_deploy: the app has never been deployed: no ref, no commit object, no source-image,
# no dokku/APP:latest.
assert_no_deploy() {
  assert_equal "$(repo_git for-each-ref)" ""
  assert_equal "$(repo_git cat-file --batch-all-objects --batch-check='%(objecttype)' | grep -c '^commit$')" "0"
  if app_property git "$APP" source-image >/dev/null; then
    fail "source-image is set: $(app_property git "$APP" source-image)"
  fi
  if docker image inspect "dokku/$APP:latest" >/dev/null 2>&1; then
    fail "dokku/$APP:latest was built"
  fi
}

# assert_nothing_imported BEFORE [ID…]: compared with BEFORE (a file of engine_images), no image
# with one of the IDs is on the engine, and no new image was built for the app.
assert_nothing_imported() {
  local before="$1" after new id app
  shift 1
  after="$(engine_images)"
  for id in "$@"; do
    if grep -qxF "$id" <<<"$after"; then
      fail "$id was imported into the engine"
    fi
  done
  new="$(comm -13 "$before" <(echo "$after"))"
  while read -r id; do
    [[ -n "$id" ]] || continue
    app="$(docker image inspect -f '{{index .Config.Labels "com.dokku.app-name"}}' "$id" 2>/dev/null)" || continue
    [[ "$app" != "$APP" ]] || fail "a new image $id was built for $APP"
  done <<<"$new"
}

# forget_images IMAGE…: removes the images from the engine (every tag) and prints their IDs.
forget_images() {
  local image id
  for image in "$@"; do
    id="$(image_id "$image")" || return 1
    docker image rm -f "$id" >/dev/null || return 1
    echo "$id"
  done
}

# deploy_with_filter FILTER: an image piped through FILTER (a compressor) deploys, and
# post-image-load gets APP IMAGE ID.
deploy_with_filter() {
  local filter="$1" tag id
  tag="$(unique_name img):v1"
  id="$(build_busybox_image "$tag" --content "served by $tag")"
  run_split save_and_load "$filter" "$tag" "$APP" "$tag"
  assert_success
  assert_line --index 0 "-----> Loading $tag from the archive on stdin"
  assert_line --regexp "^-----> Loaded $tag \(${id:7:12}\), [0-9.]+ (KiB|MiB) read$"
  assert_line --regexp "^-----> Deployed $tag \(${id:7:12}\) to $APP as commit [0-9a-f]{12}$"
  assert_equal "$stderr" ""
  assert_deployed "$id" "$tag" "served by $tag"
  assert_equal "$(app_triggers post-image-load)" "post-image-load $APP $tag $id"
  assert_equal "$(app_triggers pre-image-deploy)" "pre-image-deploy $APP $tag $id"
}

# ---------------------------------------------------------------------------------------
# Archive formats

@test "a plain archive piped from docker image save deploys, with no progress lines" {
  deploy_with_filter cat
}

@test "a gzip archive deploys" {
  deploy_with_filter "gzip -c"
}

@test "a bzip2 archive deploys" {
  deploy_with_filter "bzip2 -c"
}

@test "an xz archive deploys" {
  deploy_with_filter "xz -T1 -c"
}

@test "a zstd archive deploys, whatever the engine's version" {
  deploy_with_filter "zstd -q -c"
}

# ---------------------------------------------------------------------------------------
# Which image of the archive

@test "an archive with several tags: the image IMAGE names is deployed" {
  local base tag_a tag_b id_a id_b archive rev_b
  base="$(unique_name img)"
  tag_a="$base-a:1"
  tag_b="$base-b:2"
  id_a="$(build_busybox_image "$tag_a" --content "content a")"
  id_b="$(build_busybox_image "$tag_b" --content "content b")"
  assert_not_equal "$id_a" "$id_b"
  archive="$(save_archive "$tag_a" "$tag_b")"

  run load_file "$archive" "$APP" "$tag_b"
  assert_success
  assert_deployed "$id_b" "$tag_b" "content b"
  rev_b="$(app_branch_rev "$APP")"
  assert_equal "$(app_triggers post-image-load)" "post-image-load $APP $tag_b $id_b"

  run load_file "$archive" "$APP" "$tag_a"
  assert_success
  assert_deployed "$id_a" "$tag_a" "content a"
  assert_equal "$(repo_git rev-parse "$(app_branch_rev "$APP")^")" "$rev_b"
}

@test "an archive without IMAGE is refused with its tags listed, and nothing is imported" {
  local base tag_a tag_b other archive before ids=()
  base="$(unique_name img)"
  tag_a="$base-a:1"
  tag_b="$base-b:2"
  other="$base-other:1"
  build_busybox_image "$tag_a" >/dev/null
  build_busybox_image "$tag_b" >/dev/null
  archive="$(save_archive "$tag_a" "$tag_b")"
  mapfile -t ids < <(forget_images "$tag_a" "$tag_b")
  assert_equal "${#ids[@]}" 2
  before="$BATS_TEST_TMPDIR/engine-before"
  engine_images >"$before"

  run_split load_file "$archive" "$APP" "$other"
  assert_failure 1
  assert_equal "$stderr" " !     the archive does not hold $other; it holds $tag_a, $tag_b; nothing was loaded"
  assert_nothing_imported "$before" "${ids[@]}"
  assert_no_deploy
  assert_equal "$(app_triggers post-image-load)" ""
  assert_equal "$(app_triggers receive-app)" ""

  # nothing is left locked: the right name then deploys from the same archive
  run load_file "$archive" "$APP" "$tag_a"
  assert_success
  assert_deployed "${ids[0]}" "$tag_a" "$tag_a"
}

@test "a local image with IMAGE's name but other content: the archive's image is deployed" {
  local tag archived local_id archive
  tag="$(unique_name img):v1"
  archived="$(build_busybox_image "$tag" --content "from the archive")"
  archive="$(save_archive "$tag")"
  local_id="$(build_busybox_image "$tag" --content "already on the host")"
  assert_not_equal "$local_id" "$archived"
  assert_equal "$(image_id "$tag")" "$local_id"

  run load_file "$archive" "$APP" "$tag"
  assert_success
  assert_line --regexp "^-----> Loaded $tag \(${archived:7:12}\), "
  assert_deployed "$archived" "$tag" "from the archive"
  assert_equal "$(app_triggers post-image-load)" "post-image-load $APP $tag $archived"
}

@test "names are normalised: foo:latest in the archive matches foo and docker.io/library/foo:latest" {
  local name id archive
  name="$(unique_name foo)"
  id="$(build_busybox_image "$name")"
  archive="$(save_archive "$name")"
  run bash -c 'tar -xOf "$1" manifest.json | jq -r ".[].RepoTags[]"' _ "$archive"
  assert_output "$name:latest"

  run load_file "$archive" "$APP" "$name"
  assert_success
  assert_deployed "$id" "$name" "$name"

  run load_file "$archive" "$APP" "docker.io/library/$name:latest"
  assert_success
  assert_deployed "$id" "docker.io/library/$name:latest" "$name"
  assert_equal "$(commit_count)" "2"
  run app_triggers post-image-load
  assert_line --index 0 "post-image-load $APP $name $id"
  assert_line --index 1 "post-image-load $APP docker.io/library/$name:latest $id"
}

# ---------------------------------------------------------------------------------------
# Bad input and early refusals

@test "a truncated archive, plain or gzip: one clear line, nothing imported, nothing committed" {
  local tag id archive size before
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  archive="$(save_archive "$tag")"
  id="$(forget_images "$tag")"
  gzip -c "$archive" >"$archive.gz"
  before="$BATS_TEST_TMPDIR/engine-before"
  engine_images >"$before"

  # all the layers but not the metadata written after them
  size="$(stat -c %s "$archive")"
  head -c "$((size - 4096))" "$archive" >"$archive.cut"
  run_split load_file "$archive.cut" "$APP" "$tag"
  assert_failure 1
  # (where the cut falls between two entries, as it may in an OCI layout, there is no
  # partial entry: only the end marker is missing)
  assert_regex "$stderr" "^ !     archive is truncated after $((size - 4096)) bytes( \(no end-of-archive marker\))?\$"

  head -c 1000 "$archive" >"$archive.short"
  run_split load_file "$archive.short" "$APP" "$tag"
  assert_failure 1
  assert_equal "$stderr" " !     archive is truncated after 1000 bytes"

  head -c 20000 "$archive.gz" >"$archive.gz.cut"
  run_split load_file "$archive.gz.cut" "$APP" "$tag"
  assert_failure 1
  assert_equal "${#stderr_lines[@]}" "1"
  assert_regex "$stderr" '^ !     archive is truncated after 20000 bytes'

  assert_nothing_imported "$before" "$id"
  assert_no_deploy
  assert_equal "$(app_triggers post-image-load)" ""
}

@test "garbage and empty input: one clear line, nothing imported, nothing committed" {
  local tag before garbage
  tag="$(unique_name img):v1"
  before="$BATS_TEST_TMPDIR/engine-before"
  engine_images >"$before"
  garbage="$BATS_TEST_TMPDIR/garbage"

  yes "not an archive" | head -c 100000 >"$garbage"
  run_split load_file "$garbage" "$APP" "$tag"
  assert_failure 1
  assert_equal "$stderr" " !     input is not a tar archive (or a gzip/bzip2/xz/zstd-compressed one)"

  # a tar stream of zero blocks: well-formed, but no image archive
  head -c 10240 /dev/zero >"$garbage"
  run_split load_file "$garbage" "$APP" "$tag"
  assert_failure 1
  assert_equal "$stderr" " !     archive holds no manifest.json or index.json: not a docker image archive"

  # gzip magic, then garbage
  { printf '\x1f\x8b'; yes junk | head -c 5000; } >"$garbage"
  run_split load_file "$garbage" "$APP" "$tag"
  assert_failure 1
  assert_equal "${#stderr_lines[@]}" "1"
  assert_regex "$stderr" '^ !     .*gzip'

  run_split load_file /dev/null "$APP" "$tag"
  assert_failure 1
  assert_equal "$stderr" " !     empty input: expected a tar archive (docker image save output) on stdin"
  run_split bash -c 'printf "" | dokku image:load "$1" "$2"' _ "$APP" "$tag"
  assert_failure 1
  assert_equal "$stderr" " !     empty input: expected a tar archive (docker image save output) on stdin"

  assert_nothing_imported "$before"
  assert_no_deploy
  assert_equal "$(app_triggers post-image-load)" ""
}

@test "a load stops before the engine gets more than its disk can take, however well the input compresses" {
  local free before
  free="$(stat -f -c '%a * %S' "$(docker info --format '{{.DockerRootDir}}')")"
  # 200 MiB of zeros gzipped to about 200 KiB, and a reserve that leaves 64 MiB of free space:
  # room for 32 MiB of archive, which the engine would hold twice.
  "$TEST_HELPERS/hostile-archive.py" bomb "$BATS_TEST_TMPDIR/bomb.tar.gz" $((200 << 20))
  before="$BATS_TEST_TMPDIR/engine-before"
  engine_images >"$before"
  run_split env DOKKU_IMAGE_DISK_RESERVE_BYTES=$((free - (64 << 20))) \
    dokku image:load "$APP" "$(unique_name img):v1" <"$BATS_TEST_TMPDIR/bomb.tar.gz"
  assert_failure 1
  assert_regex "$stderr" "^ !     the engine has no room on disk for this archive: [0-9.]+ [KMGT]iB is free where it keeps images, less a reserve of [0-9.]+ [KMGT]iB \(DOKKU_IMAGE_DISK_RESERVE_BYTES\), and it holds 2 copies of what it loads while it imports, so it can take [0-9.]+ MiB of archive; nothing was loaded$"
  assert_nothing_imported "$before"
  assert_no_deploy
}

@test "stdin is a terminal: refused before anything else" {
  local tag
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  run script -qec "dokku image:load $APP $tag" /dev/null </dev/null
  assert_failure 1
  assert_equal "${output//$'\r'/}" " !     Expecting tar archive containing docker image on STDIN"
  assert_no_deploy
  assert_equal "$(app_triggers post-image-load)" ""
}

# stdin_offset_after FILE ARGS…: runs dokku image:load ARGS… (through `run`) with stdin an open
# file description of FILE that this shell keeps; STDIN_OFFSET is its offset afterwards, i.e.
# how many bytes the command read.
stdin_offset_after() {
  local file="$1" fd
  shift 1
  exec {fd}<"$file"
  run_split dokku image:load "$@" <&"$fd"
  STDIN_OFFSET="$(awk '$1 == "pos:" { print $2 }' "/proc/$BASHPID/fdinfo/$fd")"
  exec {fd}<&-
}

@test "a digest reference is refused before stdin is read" {
  local tag id archive hex
  tag="$(unique_name img):v1"
  id="$(build_busybox_image "$tag")"
  archive="$(save_archive "$tag")"
  hex="${id#sha256:}"

  stdin_offset_after "$archive" "$APP" "${tag%:*}@sha256:$hex"
  assert_failure 1
  assert_equal "$STDIN_OFFSET" "0"
  assert_equal "${#stderr_lines[@]}" "1"
  assert_regex "$stderr" "^ !     image:load takes a tag reference \(NAME\[:TAG\]\), not ${tag%:*}@sha256:$hex"
  assert_regex "$stderr" 'usage: dokku image:load '

  stdin_offset_after "$archive" "$APP" "docker.io/library/$tag@sha256:$hex"
  assert_failure 1
  assert_equal "$STDIN_OFFSET" "0"
  assert_regex "$stderr" "^ !     image:load takes a tag reference"

  assert_no_deploy
  assert_equal "$(app_triggers post-image-load)" ""

  # the control: a tag reference reads the whole archive through the same file description
  stdin_offset_after "$archive" "$APP" "$tag"
  assert_success
  assert_equal "$STDIN_OFFSET" "$(stat -c %s "$archive")"
}

@test "a missing app exits 20 before stdin is read, even with endless stdin" {
  local tag archive
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  archive="$(save_archive "$tag")"

  stdin_offset_after "$archive" no-such-app "$tag"
  assert_failure 20
  assert_equal "$STDIN_OFFSET" "0"
  assert_equal "$stderr" " !     App no-such-app does not exist"
  assert_equal "$output" ""

  # were stdin read, this would never end (timeout would stop it, with status 124) or fail as
  # garbage with status 1
  run_split bash -c 'yes | timeout 20 dokku image:load no-such-app "$1"' _ "$tag"
  assert_failure 20
  assert_equal "$stderr" " !     App no-such-app does not exist"
  refute_path -e "$DOKKU_ROOT/no-such-app"
}

# ---------------------------------------------------------------------------------------
# Redeploys

@test "the same archive again: no changes, exit 0, no commit; --force redeploys; new content under the tag deploys" {
  local tag id1 id2 archive1 archive2 rev1 rev2
  tag="$(unique_name img):v1"
  id1="$(build_busybox_image "$tag" --content "first build")"
  archive1="$(save_archive "$tag")"
  run load_file "$archive1" "$APP" "$tag"
  assert_success
  rev1="$(app_branch_rev "$APP")"
  assert_deployed "$id1" "$tag" "first build"

  run_split load_file "$archive1" "$APP" "$tag"
  assert_success
  assert_line "-----> No changes detected, skipping deploy"
  refute_line --partial "-----> Deployed"
  assert_equal "$stderr" ""
  assert_equal "$(app_branch_rev "$APP")" "$rev1"
  assert_equal "$(commit_count)" "1"
  assert_equal "$(app_triggers receive-app | wc -l)" "1"
  # post-image-load fires after every successful load, a no-op included
  assert_equal "$(app_triggers post-image-load | wc -l)" "2"

  run load_file "$archive1" --force "$APP" "$tag"
  assert_success
  assert_line "-----> No changes detected, deploying $tag again (--force)"
  assert_equal "$(app_branch_rev "$APP")" "$rev1"
  assert_equal "$(commit_count)" "1"
  assert_equal "$(app_triggers receive-app | wc -l)" "2"

  # the containerd store drops an image whose last tag moves: a second tag keeps the first
  docker image tag "$tag" "$tag-one"
  id2="$(build_busybox_image "$tag" --content "second build")"
  assert_not_equal "$id2" "$id1"
  archive2="$(save_archive "$tag")"
  # as on a Dokku host, the tag still names the deployed content when the new archive comes
  docker image tag "$id1" "$tag"
  run load_file "$archive2" "$APP" "$tag"
  assert_success
  rev2="$(app_branch_rev "$APP")"
  assert_not_equal "$rev2" "$rev1"
  assert_equal "$(repo_git rev-parse "$rev2^")" "$rev1"
  assert_deployed "$id2" "$tag" "second build"
  assert_equal "$(commit_count)" "2"
}

@test "--build-dir: an ONBUILD image fails without it, with nothing changed, and deploys with it" {
  local tag id archive dir container
  tag="$(unique_name onbuild):v1"
  id="$(build_onbuild_image "$tag" --content "onbuild app")"
  archive="$(save_archive "$tag")"

  run_split load_file "$archive" "$APP" "$tag"
  assert_failure 1
  assert_regex "$stderr" "the deploy of $tag to $APP failed \(receive-app exited with status 1\)"
  assert_untouched "$APP" "" ""

  dir="$BATS_TEST_TMPDIR/build-dir"
  mkdir -p "$dir"
  echo "from the build dir" >"$dir/app.txt"
  run load_file "$archive" --build-dir "$dir" "$APP" "$tag"
  assert_success
  assert_deployed "$id" "$tag" "onbuild app"
  assert_equal "$(repo_git show "$(app_branch_rev "$APP"):app.txt")" "from the build dir"
  container="sandbox-$SANDBOX_ID-$APP-web.1"
  assert_equal "$(docker container exec "$container" /bin/busybox cat /app.txt)" "from the build dir"
}

@test "a failed deploy rolls back branch and source-image and leaves no pending ref; a retry deploys" {
  local name tag1 tag2 id1 id2 archive2 rev1
  name="$(unique_name img)"
  tag1="$name:v1"
  tag2="$name:v2"
  id1="$(build_busybox_image "$tag1" --content "version one")"
  id2="$(build_busybox_image "$tag2" --content "version two")"
  run save_and_load cat "$tag1" "$APP" "$tag1"
  assert_success
  rev1="$(app_branch_rev "$APP")"
  assert_deployed "$id1" "$tag1" "version one"
  archive2="$(save_archive "$tag2")"

  sandbox_fail_receive_app "$APP" on
  run_split load_file "$archive2" "$APP" "$tag2"
  assert_failure 1
  assert_regex "$stderr" "the deploy of $tag2 to $APP failed \(receive-app exited with status 1\)"
  assert_equal "$(app_branch_rev "$APP")" "$rev1"
  assert_equal "$(app_property git "$APP" source-image)" "$tag1"
  refute_pending
  assert_equal "$(app_http_get "$APP")" "version one"
  # the load itself succeeded
  assert_equal "$(app_triggers post-image-load | tail -n 1)" "post-image-load $APP $tag2 $id2"

  sandbox_fail_receive_app "$APP" off
  run load_file "$archive2" "$APP" "$tag2"
  assert_success
  assert_deployed "$id2" "$tag2" "version two"
  assert_equal "$(repo_git rev-parse "$(app_branch_rev "$APP")^")" "$rev1"
  assert_equal "$(commit_count)" "2"
}

# ---------------------------------------------------------------------------------------
# Progress

@test "progress: a slow stream without a terminal logs Received lines, one an interval; --quiet logs nothing" {
  local tag id archive
  tag="$(unique_name img):v1"
  id="$(build_busybox_image "$tag")"
  archive="$(save_archive "$tag")"

  # A 1 s interval: the lines give whole seconds, so their spacing can be checked. The
  # stream flows until two lines are out.
  load_slowly() {
    feed_slowly "$archive" --lines 2 | DOKKU_IMAGE_PROGRESS_INTERVAL=1 dokku image:load "$APP" "$tag"
  }
  run_split load_slowly
  assert_success
  assert_deployed "$id" "$tag"
  ((${#stderr_lines[@]} >= 2)) || fail "expected two Received lines or more on stderr: $stderr"
  assert_progress_lines 1 "${stderr_lines[@]}"

  # Time for three lines at a 0.3 s interval, none logged.
  load_quietly() {
    feed_slowly "$archive" --seconds 1 |
      DOKKU_IMAGE_PROGRESS_INTERVAL=0.3 dokku --quiet image:load --force "$APP" "$tag"
  }
  run_split load_quietly
  assert_success
  assert_equal "$stderr" ""
  refute_line --partial "Loading"
  refute_line --partial "Loaded"
  refute_line --partial "Received"
  refute_line --partial "No changes detected"
}
