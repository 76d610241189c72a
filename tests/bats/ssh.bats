#!/usr/bin/env bats
# The real SSH path: `docker image save IMG | ssh dokku@host image:load APP IMG …` through
# Debian's OpenSSH server (tests/ssh/start-sshd) whose authorized_keys forces the sandbox's
# dokku the way Dokku's sshcommand does, so the command string is split by the dispatcher
# from SSH_ORIGINAL_COMMAND, honouring quotes.

# shellcheck disable=SC2154 # stderr and stderr_lines are set by run_split and finish_bg (test_helper.bash)

load test_helper

app_per_test app

file_setup() {
  sshd_start
}

file_teardown() {
  sshd_stop
}

test_cleanup() {
  dokku --force apps:destroy "$APP" >/dev/null 2>&1 || true
}

# ssh_dokku COMMAND_STRING: `ssh dokku@host COMMAND_STRING` to the test's sshd, stdin passed on
# (and DOKKU_IMAGE_PROGRESS_INTERVAL, when set: the sshd accepts it).
ssh_dokku() {
  # shellcheck disable=SC2086 # SSH_CMD is words
  $SSH_CMD -p "$SSH_PORT" "$SSH_LOGIN@127.0.0.1" "$1"
}

# save_over_ssh IMAGE COMMAND_STRING: docker image save IMAGE | ssh dokku@host COMMAND_STRING
save_over_ssh() {
  docker image save "$1" | ssh_dokku "$2"
}

# sessions: how many sessions sshd has started so far.
sessions() {
  grep -c "^Starting session: forced-command (key-option) " "$SSHD_DIR/sshd.log" || true
}

# assert_head_deploys ID IMAGE AUTHOR: the branch head deploys IMAGE (ID), by AUTHOR as both
# author and committer.
assert_head_deploys() {
  local head
  head="$(app_branch_rev "$APP")" || fail "$APP has no deploy branch"
  assert_equal "$(trailer "$head" Image-Id)" "$1"
  assert_equal "$(trailer "$head" Image-Source)" "$2"
  assert_equal "$(repo_git log -1 --format='%an <%ae>' "$head")" "$3"
  assert_equal "$(repo_git log -1 --format='%cn <%ce>' "$head")" "$3"
  assert_equal "$(app_property git "$APP" source-image)" "$2"
  refute_pending
}

@test "image:load over ssh deploys, and a quoted user name is one argument" {
  local tag id before
  tag="$(unique_name img):v1"
  id="$(build_busybox_image "$tag" --content "loaded over ssh")"
  before="$(sessions)"

  run_split save_over_ssh "$tag" "image:load $APP $tag \"Jane Doe\" jane@example.com"
  assert_success
  assert_line --index 0 "-----> Loading $tag from the archive on stdin"
  assert_line --regexp "^-----> Deployed $tag \(${id:7:12}\) to $APP as commit [0-9a-f]{12}$"
  assert_equal "$stderr" ""
  assert_equal "$(sessions)" "$((before + 1))"
  assert_head_deploys "$id" "$tag" "Jane Doe <jane@example.com>"
  assert_equal "$(app_triggers post-image-load)" "post-image-load $APP $tag $id"
  assert_equal "$(app_http_get "$APP")" "loaded over ssh"
}

@test "image:from over ssh deploys; single quotes and an empty email are honoured" {
  local tag id
  tag="$(unique_name img):v1"
  id="$(build_busybox_image "$tag" --content "from over ssh")"

  run_split ssh_dokku "image:from $APP $tag 'Ann Lee' ''" </dev/null
  assert_success
  assert_line --regexp "^-----> Deployed $tag \(${id:7:12}\) to $APP as commit [0-9a-f]{12}$"
  assert_head_deploys "$id" "$tag" "Ann Lee <automated@dokku.sh>"
  assert_equal "$(app_http_get "$APP")" "from over ssh"

  # the same image again: a no-op, exit 0, over ssh too
  run_split ssh_dokku "image:from $APP $tag" </dev/null
  assert_success
  assert_line "-----> No changes detected, skipping deploy"
  assert_equal "$(repo_git rev-list --count HEAD)" "1"
}

@test "a missing app over ssh: exit 20 and Dokku's message, for image:load and image:from" {
  local tag
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null

  run_split save_over_ssh "$tag" "image:load no-such-app $tag"
  assert_failure 20
  assert_equal "$stderr" " !     App no-such-app does not exist"
  assert_equal "$output" ""

  run_split ssh_dokku "image:from no-such-app $tag" </dev/null
  assert_failure 20
  assert_equal "$stderr" " !     App no-such-app does not exist"
  refute_path -e "$DOKKU_ROOT/no-such-app"
}

@test "an archive without IMAGE over ssh: exit 1 with the tags it holds, nothing deployed" {
  local tag other
  tag="$(unique_name img):v1"
  other="$(unique_name other):v1"
  build_busybox_image "$tag" >/dev/null

  run_split save_over_ssh "$tag" "image:load $APP $other"
  assert_failure 1
  assert_equal "$stderr" " !     the archive does not hold $other; it holds $tag; nothing was loaded"
  run app_branch_rev "$APP"
  assert_failure
  assert_equal "$(repo_git for-each-ref)" ""
  assert_equal "$(app_triggers post-image-load)" ""
}

@test "a slow upload over ssh logs Received lines on stderr, once past the interval" {
  local tag id archive
  tag="$(unique_name img):v1"
  id="$(build_busybox_image "$tag")"
  archive="$BATS_TEST_TMPDIR/archive.tar"
  docker image save "$tag" >"$archive"

  # A 1 s interval, which reaches the plugin through sshd (the lines give whole seconds, so
  # "past the interval" can be checked). The stream flows until a line has come back.
  slow_upload() {
    feed_slowly "$archive" --lines 1 | DOKKU_IMAGE_PROGRESS_INTERVAL=1 ssh_dokku "image:load $APP $tag"
  }
  run_split slow_upload
  assert_success
  assert_head_deploys "$id" "$tag" "Dokku <automated@dokku.sh>"
  ((${#stderr_lines[@]} >= 1)) || fail "no Received line on stderr"
  assert_progress_lines 1 "${stderr_lines[@]}"
}
