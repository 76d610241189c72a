#!/usr/bin/env bats
# Faults in the middle of a deploy: the plugin killed (SIGKILL) at several points, a failing
# build, full file systems, the Docker engine going away during a load, and the deploy branch
# moved by someone else. Afterwards the deploy branch is at the old commit or the new one,
# never anything else; `source-image` matches the branch head once the next deploy has
# repaired what a kill left; no lock blocks the next deploy, no temp file is left, and the
# next deploy works.

# shellcheck disable=SC2154 # stderr and stderr_lines are set by run_split and finish_bg (test_helper.bash)

load test_helper

# One host for the file, with the two images every test deploys; each test has an app of its
# own, deployed once (at C1) before the test starts. A host before Dokku 0.38 (no builds
# plugin): a kill here hits the deploy itself, not a build record's recorder (host.bats has
# those).
setup_file() {
  SANDBOX_WITHOUT=builds sandbox_setup
  V1="$(unique_name img):v1"
  V2="$(unique_name img):v2"
  build_busybox_image "$V1" >/dev/null
  build_busybox_image "$V2" >/dev/null
  export V1 V2
}


test_setup() {
  use_test_tmpdir
  APP="$(unique_name faults)"
  new_app "$APP"
  C1="$(deploy "$APP" "$V1")"
  MOUNTS="$BATS_TEST_TMPDIR/.mounts"
}

# The test's mounts go after test_teardown (which releases what is paused, waits for the
# sandbox's processes to end, removes the test's plugins).
teardown() {
  local mount
  test_teardown
  if [[ -f "$MOUNTS" ]]; then
    while read -r mount; do
      umount "$mount" 2>/dev/null || umount -l "$mount" || true
    done <"$MOUNTS"
  fi
}

# kill_plugin BINARY: SIGKILL of the running plugin binary (image-from, image-load), once.
kill_plugin() {
  local pids
  mapfile -t pids < <(plugin_pids "$1")
  [[ "${#pids[@]}" -eq 1 ]] || fail "expected one $1 process, found: ${pids[*]}"
  kill -KILL "${pids[0]}"
}

# plugin_child BINARY PATTERN: true when the running plugin BINARY has a child process
# whose command line matches PATTERN; prints its pid.
plugin_child() {
  local pid
  pid="$(plugin_pids "$1")"
  [[ -n "$pid" ]] && pgrep -P "$pid" -f "$2"
}

# image_source COMMIT: the Image-Source trailer of a commit.
image_source() {
  repo_git log -1 --format=%B "$1" | sed -n 's/^Image-Source: //p'
}

# temp_files: the plugin's scratch folders (image-tree-*) in TMPDIR, in its state folder or in
# the test's app's part of it (the other apps of the file are the other tests' business).
temp_files() {
  find "$TMPDIR" -name 'image-tree-*'
  find "$DOKKU_LIB_ROOT/data/image" -maxdepth 1 -name 'image-tree-*'
  find "$DOKKU_LIB_ROOT/data/image/$APP" -name 'image-tree-*' 2>/dev/null || true
}

# assert_branch_at COMMIT: the deploy branch is COMMIT, as the loose ref file Dokku reads.
assert_branch_at() {
  assert_equal "$(app_branch_rev "$APP")" "$1"
  assert_equal "$(tr -d '[:space:]' <"$DOKKU_ROOT/$APP/refs/heads/master")" "$1"
}

# assert_settled: what every successful deploy leaves: no pending ref, HEAD on the branch,
# source-image = the head's Image-Source trailer, no scratch or temp files of the plugin.
assert_settled() {
  local head
  head="$(app_branch_rev "$APP")"
  refute_pending
  assert_equal "$(cat "$DOKKU_ROOT/$APP/HEAD")" "ref: refs/heads/master"
  assert_equal "$(app_property git "$APP" source-image)" "$(image_source "$head")"
  assert_equal "$(temp_files)" ""
}

# deploy_again IMAGE [--repaired]: the next deploy works (after a repair warning when
# asked, without one otherwise) and settles; its commit's parent is the branch head before.
deploy_again() {
  local image="$1" before
  before="$(app_branch_rev "$APP")"
  run_split dokku image:from "$APP" "$image"
  assert_success
  if [[ "${2:-}" == --repaired ]]; then
    [[ "$stderr" =~ ^" !     An earlier deploy of $APP was interrupted: dropped its commit "[0-9a-f]{12}" and set source-image back to ".+$ ]] \
      || fail "expected one repair warning, got: $stderr"
  else
    refute_output --partial "interrupted"
    [[ "$stderr" != *" !     "* ]] || fail "unexpected warning: $stderr"
  fi
  [[ "$output" == *"-----> Deployed $image "* ]] || fail "not deployed: $output"
  assert_equal "$(repo_git rev-parse "$(app_branch_rev "$APP")^")" "$before"
  assert_equal "$(image_source "$(app_branch_rev "$APP")")" "$image"
  assert_settled
}

# ---------------------------------------------------------------------------------------
# SIGKILL

@test "SIGKILL while the archive streams in: nothing loaded or committed; the next load works" {
  local tag archive before fifo loader
  tag="$(unique_name loaded):v1"
  build_busybox_image "$tag" >/dev/null
  archive_of "$tag"
  # shellcheck disable=SC2153 # ARCHIVE is set by archive_of
  archive="$ARCHIVE"
  before="$(host_state "$APP" "$ARCHIVED_ID")"
  fifo="$BATS_TEST_TMPDIR/stdin"
  mkfifo "$fifo"
  BG_STDIN="$fifo" start_bg load dokku image:load "$APP" "$tag"
  exec 4>"$fifo"
  head -c 1000000 "$archive" >&4
  # The plugin is reading stdin and forwarding it to docker image load.
  wait_until 30 plugin_child image-load "docker image load" >/dev/null
  loader="$(plugin_child image-load "docker image load")"
  kill_plugin image-load
  exec 4>&-
  finish_bg load
  assert_equal "$status" 137
  # The load, orphaned, gets the end of a truncated archive and fails.
  wait_until 30 bash -c "! kill -0 $loader 2>/dev/null"
  wait_until 30 sandbox_idle
  assert_equal "$(host_state "$APP" "$ARCHIVED_ID")" "$before"
  assert_branch_at "$C1"

  run_split dokku image:load "$APP" "$tag" <"$archive"
  assert_success
  track_image "$tag"
  [[ "$stderr" != *" !     "* ]] || fail "unexpected warning: $stderr"
  assert_equal "$(image_id "$tag")" "$ARCHIVED_ID"
  assert_equal "$(repo_git rev-parse "$(app_branch_rev "$APP")^")" "$C1"
  assert_equal "$(image_source "$(app_branch_rev "$APP")")" "$tag"
  assert_settled
}

@test "SIGKILL in pre-image-deploy, with the lock held: nothing changed; the next deploy works" {
  local before
  before="$(host_state "$APP")"
  pause_in pre-image-deploy
  start_bg from dokku image:from "$APP" "$V2"
  wait_until 30 paused pre-image-deploy
  kill_plugin image-from
  finish_bg from
  assert_equal "$status" 137
  release_pauses
  wait_until 30 sandbox_idle
  assert_equal "$(host_state "$APP")" "$before"
  rm "$PLUGIN_ENABLED_PATH/zz-pause"
  deploy_again "$V2"
}

@test "SIGKILL while the tree is written: no commit, no temp file left once the next deploy ran" {
  local build="$BATS_TEST_TMPDIR/build" fifo scratch before
  mkdir -p "$build"
  printf 'data\n' >"$build/big"
  before="$(host_state "$APP")"
  # Once the build dir is validated, its file becomes a FIFO: git hash-object blocks on it,
  # which holds the plugin inside write_tree.
  printf -v fifo '%q' "$build/big"
  PAUSE_FIRST="rm $fifo && mkfifo $fifo" pause_in pre-image-deploy
  release_pauses
  start_bg from dokku image:from --build-dir "$build" "$APP" "$V2"
  wait_until 30 plugin_child image-from "hash-object" >/dev/null
  scratch="$(find "$DOKKU_LIB_ROOT/data/image/$APP" -maxdepth 1 -name 'image-tree-*')"
  assert_not_equal "$scratch" ""
  kill_plugin image-from
  finish_bg from
  assert_equal "$status" 137
  # Let the orphaned hash-object read its FIFO and end.
  exec 4>"$build/big"
  exec 4>&-
  wait_until 30 sandbox_idle
  # Killed before the commit: the scratch folder of the plugin is all that is left, and
  # never in TMPDIR.
  assert_equal "$(find "$TMPDIR" -mindepth 1)" ""
  assert_path -d "$scratch"
  assert_equal "$(host_state "$APP" | grep -v image-tree-)" "$before"
  assert_branch_at "$C1"
  rm "$PLUGIN_ENABLED_PATH/zz-pause"
  deploy_again "$V2"
  refute_path -e "$scratch"
}

@test "SIGKILL during receive-app: the branch stays, the next command repairs and deploys" {
  local pending
  # receive-app's post-extract holds it until released, whatever the machine's speed.
  start_held_deploy from "$APP" "$V2"
  pending="$(pending_ref)"
  kill_plugin image-from
  finish_bg from
  assert_equal "$status" 137
  # Dokku's receive-app, orphaned, carries on with the commit it was given and ends.
  release_pauses
  wait_until 60 sandbox_idle
  rm "$PLUGIN_ENABLED_PATH/zz-pause"
  assert_branch_at "$C1"
  # What a kill leaves: the pending commit, on top of the old head, and source-image ahead.
  assert_equal "$(pending_ref)" "$pending"
  assert_equal "$(repo_git rev-parse "$pending^")" "$C1"
  assert_equal "$(app_property git "$APP" source-image)" "$V2"
  assert_equal "$(temp_files)" ""
  # A read-only command takes no lock and repairs nothing: it reads the deploy branch, which
  # the killed deploy never moved. The next deploy repairs.
  run_split dokku image:report "$APP" --image-source-image
  assert_success
  assert_output "$V1"
  assert_equal "$stderr" ""
  assert_equal "$(pending_ref)" "$pending"
  deploy_again "$V2" --repaired
}

@test "a read-only command beside a running deploy changes nothing: its pending ref stays" {
  local pending
  start_held_deploy from "$APP" "$V2"
  pending="$(pending_ref)"
  run_split dokku image:history "$APP"
  assert_success
  assert_equal "$stderr" ""
  assert_equal "$(pending_ref)" "$pending"
  release_pauses
  finish_bg from
  assert_equal "$status" 0
  assert_branch_at "$pending"
}

@test "power loss during receive-app (the whole process group killed): repaired, redeploys" {
  local pgid
  # receive-app's post-extract holds the deploy until the whole group is killed.
  pause_in post-extract
  (
    exec setsid dokku image:from "$APP" "$V2" >"$BATS_TEST_TMPDIR/from.out" 2>&1
  ) 3>&- &
  pgid=$!
  # shellcheck disable=SC2034 # test_teardown waits for BG_PID
  BG_PID=$pgid
  wait_until 60 paused post-extract
  kill -KILL -- "-$pgid"
  wait "$pgid" || true
  wait_until 30 sandbox_idle
  assert_branch_at "$C1"
  assert_not_equal "$(pending_ref)" ""
  rm "$PLUGIN_ENABLED_PATH/zz-pause"
  deploy_again "$V2" --repaired
  deploy_again "$V1"
}

# ---------------------------------------------------------------------------------------
# Failures

@test "receive-app fails: everything as before, the app still serves; a retry deploys" {
  local before
  before="$(host_state "$APP" "$V1" "$V2")"
  sandbox_fail_receive_app "$APP"
  run_split dokku image:from "$APP" "$V2"
  assert_failure 1
  assert_equal "${stderr##*$'\n'}" " !     the deploy of $V2 to $APP failed (receive-app exited with status 1); the app repo and source-image are left as they were"
  assert_equal "$(host_state "$APP" "$V1" "$V2")" "$before"
  run app_http_get "$APP"
  assert_output "$V1"
  sandbox_fail_receive_app "$APP" off
  deploy_again "$V2"
  run app_http_get "$APP"
  assert_output "$V2"
}

# mount_tmpfs DIR: a 1 MiB tmpfs on DIR, unmounted by teardown.
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o size=1m tmpfs "$1" || skip "cannot mount a tmpfs here"
  echo "$1" >>"$MOUNTS"
}

@test "a full TMPDIR: the deploy fails clearly and changes nothing; with room it deploys" {
  local build="$BATS_TEST_TMPDIR/build" before
  mkdir -p "$build"
  # A 2 MiB Dockerfile: the plugin appends its lines, the checkout of the build needs room.
  for ((i = 0; i < 2048; i++)); do printf '#%01023d\n' 0; done >"$build/Dockerfile"
  before="$(host_state "$APP")"
  mount_tmpfs "$BATS_TEST_TMPDIR/tiny"
  TMPDIR="$BATS_TEST_TMPDIR/tiny" run_split dokku image:from --build-dir "$build" "$APP" "$V2"
  assert_failure
  [[ "$stderr" == *" !     "*"failed"* ]] || fail "no clear error: $stderr"
  assert_equal "$(host_state "$APP")" "$before"
  assert_equal "$(find "$BATS_TEST_TMPDIR/tiny" -name 'image-tree-*')" ""
  deploy_again "$V2"
}

@test "a full disk under the plugin's scratch folder: a clear error, nothing changed" {
  local build="$BATS_TEST_TMPDIR/build" before
  mkdir -p "$build"
  for ((i = 0; i < 2048; i++)); do printf '#%01023d\n' 0; done >"$build/Dockerfile"
  before="$(host_state "$APP" | grep -v '^  '"$APP"/)"
  mount_tmpfs "$DOKKU_LIB_ROOT/data/image/$APP"
  run_split dokku image:from --build-dir "$build" "$APP" "$V2"
  assert_failure 1
  [[ "$stderr" =~ ^" !     cannot write $DOKKU_LIB_ROOT/data/image/$APP/image-tree-"[^/]+"/generated-"[0-9]+": No space left on device" ]] \
    || fail "no clear error: $stderr"
  assert_equal "$(host_state "$APP" | grep -v '^  '"$APP"/)" "$before"
  assert_equal "$(temp_files)" ""
  umount "$DOKKU_LIB_ROOT/data/image/$APP"
  deploy_again "$V2"
}

@test "the Docker engine goes away during a load: a clear error, nothing imported or committed" {
  local tag archive before real wrapper state
  tag="$(unique_name loaded):v1"
  # About 10 MiB: more than the MiB the load gets plus what the plugin buffers (4 MiB)
  # and docker's pipe (1 MiB) hold, so the plugin is still writing when the load dies.
  build_busybox_image "$tag" "RUN dd if=/dev/zero of=/padding bs=1048576 count=8 2>/dev/null" >/dev/null
  archive_of "$tag"
  archive="$ARCHIVE"
  before="$(host_state "$APP" "$ARCHIVED_ID")"
  real="$(command -v docker)"
  state="$BATS_TEST_TMPDIR/engine"
  mkdir -p "$state"
  wrapper="$BATS_TEST_TMPDIR/docker-dies"
  # A docker client whose `image load` gets the first MiB through to the engine (head returns
  # once the load has read all of it but what the FIFO holds), then the engine connection
  # dies: the real load is killed mid-stream and the client fails.
  cat >"$wrapper" <<WRAPPER
#!/usr/bin/env bash
[[ "\$1 \$2" == "image load" ]] || exec $(printf '%q' "$real") "\$@"
# Bash reports a killed job on stderr whenever it notices, so only fd 4 reaches the plugin.
exec 4>&2 2>/dev/null
fifo=$(printf '%q' "$state")/fifo
mkfifo "\$fifo"
$(printf '%q' "$real") image load <"\$fifo" >$(printf '%q' "$state")/load.log 2>&1 &
load=\$!
exec 3>"\$fifo"
head -c 1048576 >&3
kill -KILL "\$load"
wait "\$load"
exec 3>&-
echo 'error during connect: Post "http://%2Fvar%2Frun%2Fdocker.sock/v1.41/images/load?quiet=0": EOF' >&4
exit 1
WRAPPER
  chmod 0755 "$wrapper"
  DOCKER_BIN="$wrapper" run_split dokku image:load "$APP" "$tag" <"$archive"
  assert_failure 1
  # The plugin names the load and passes on what the docker client said.
  # (It stopped reading, or, when the whole archive fit in the pipe, as the containerd
  # store's gzip-layered archives do, failed once the archive was written.)
  [[ "$stderr" =~ ^" !     docker image load "(stopped reading the archive|failed)": error during connect: "[^$'\n']*": EOF"$ ]] \
    || fail "no clear error: $stderr"
  assert_equal "$(host_state "$APP" "$ARCHIVED_ID")" "$before"
  run_split dokku image:load "$APP" "$tag" <"$archive"
  assert_success
  track_image "$tag"
  assert_equal "$(image_source "$(app_branch_rev "$APP")")" "$tag"
  assert_settled
}

@test "the branch moves during receive-app: the deploy says so and does not overwrite it" {
  local dir moved
  printf -v dir '%q' "$BATS_TEST_TMPDIR"
  # Runs before git's receive-app (plugins run in name order): a push lands meanwhile.
  sandbox_plugin aa-mover "receive-app=#!/usr/bin/env bash
set -eo pipefail
repo=\"\$DOKKU_ROOT/\$1\"
blob=\"\$(echo 'pushed during the deploy' | git --git-dir=\"\$repo\" hash-object -w --stdin)\"
tree=\"\$(printf '100644 blob %s\tREADME\n' \"\$blob\" | git --git-dir=\"\$repo\" mktree)\"
parent=\"\$(git --git-dir=\"\$repo\" rev-parse refs/heads/master)\"
commit=\"\$(GIT_AUTHOR_NAME=Pusher GIT_AUTHOR_EMAIL=p@example.com GIT_COMMITTER_NAME=Pusher \
  GIT_COMMITTER_EMAIL=p@example.com git --git-dir=\"\$repo\" commit-tree \"\$tree\" -p \"\$parent\" -m pushed)\"
git --git-dir=\"\$repo\" update-ref refs/heads/master \"\$commit\" \"\$parent\"
echo \"\$commit\" >$dir/moved-to"
  run_split dokku image:from "$APP" "$V2"
  assert_failure 1
  moved="$(<"$BATS_TEST_TMPDIR/moved-to")"
  [[ "$stderr" == *" !     the master branch of $APP moved during the deploy; the deploy is not recorded"* ]] \
    || fail "the moved branch is not reported: $stderr"
  assert_branch_at "$moved"
  refute_pending
  assert_equal "$(app_property git "$APP" source-image)" "$V1"
  rm "$PLUGIN_ENABLED_PATH/aa-mover"
  run_split dokku image:from "$APP" "$V2"
  assert_success
  assert_equal "$(repo_git rev-parse "$(app_branch_rev "$APP")^")" "$moved"
  assert_settled
}
