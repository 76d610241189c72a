#!/usr/bin/env bats
# A good citizen of a Dokku 0.38 host (docs/dokku-builds.md): every image deploy is one build
# record with its whole output; builds:cancel and SIGINT/SIGTERM/SIGHUP/SIGQUIT end a deploy
# as a failure does, at any step; a user-auth-app plugin that hides an app hides it from every
# image:* command.

# shellcheck disable=SC2154 # stderr and stderr_lines are set by run_split and finish_bg (test_helper.bash)

load test_helper

app_per_test host

file_setup() {
  V1="$(unique_name img):v1"
  V2="$(unique_name img):v2"
  build_busybox_image "$V1" --content one >/dev/null
  build_busybox_image "$V2" --content two >/dev/null
  export V1 V2
}



test_cleanup() {
  [[ -z "${WRITER_PID:-}" ]] || kill "$WRITER_PID" 2>/dev/null || true
}

# records [APP]: the app's build records, as builds:list --format json prints them.
records() {
  dokku builds:list "${1:-$APP}" --format json
}

# record_field FIELD [APP]: FIELD of the app's only build record (fails unless there is one).
record_field() {
  local json
  json="$(records "${2:-$APP}")"
  assert_equal "$(jq length <<<"$json")" 1
  jq -r ".[0].$1" <<<"$json"
}

# record_log [APP]: the log of the app's only build record.
record_log() {
  cat "$(record_field log_path "${1:-$APP}")"
}

# ---------------------------------------------------------------------------------------
# Build records

@test "an image:from deploy is one build record, git:from-image, with its whole output" {
  run dokku image:from "$APP" "$V1"
  assert_success
  assert_equal "$(record_field source)" "git:from-image"
  assert_equal "$(record_field status)" "succeeded"
  assert_equal "$(record_field exit_code)" 0
  assert_equal "$(record_field kind)" "build"
  # the plugin's lines and Dokku's build, in one log
  run record_log
  assert_line "-----> Building $APP from Dockerfile"
  assert_line --regexp "^-----> Deployed $V1 \([0-9a-f]{12}\) to $APP as commit [0-9a-f]{12}$"
}

@test "image:load records git:load-image, with the load and its lines in the log" {
  local tag
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content loaded >/dev/null
  archive_of "$tag"
  run dokku image:load "$APP" "$tag" <"$ARCHIVE"
  assert_success
  track_image "$tag"
  assert_equal "$(record_field source)" "git:load-image"
  assert_equal "$(record_field status)" "succeeded"
  run record_log
  assert_line "-----> Loading $tag from the archive on stdin"
  assert_line --regexp "^-----> Loaded $tag \([0-9a-f]{12}\), .+ read$"
}

@test "image:rollback records git:from-image; the rollback is the newest record" {
  deploy "$APP" "$V1" >/dev/null
  deploy "$APP" "$V2" >/dev/null
  run dokku image:rollback "$APP"
  assert_success
  assert_equal "$(records | jq -r 'length')" 3
  assert_equal "$(records | jq -r '.[0].source')" "git:from-image"
  assert_line --partial "-----> Rolling $APP back to $V1"
  run cat "$(records | jq -r '.[0].log_path')"
  assert_line --partial "-----> Rolling $APP back to $V1"
}

@test "a vetoed deploy and a refused load are failed records, their error in the log" {
  local archive other
  sandbox_plugin zz-veto "pre-image-deploy=#!/usr/bin/env bash
exit 3"
  run_split dokku image:from "$APP" "$V1"
  assert_failure 1
  assert_equal "$(record_field status)" "failed"
  assert_equal "$(record_field exit_code)" 1
  run record_log
  assert_line --partial " !     the pre-image-deploy trigger refused the deploy of $V1 (exit status 3)"
  rm -rf "$PLUGIN_ENABLED_PATH/zz-veto"

  other="$(unique_name other)"
  new_app "$other"
  archive="$BATS_TEST_TMPDIR/other.tar"
  docker image save "$V2" >"$archive"
  run_split dokku image:load "$other" "$(unique_name absent):v1" <"$archive"
  assert_failure 1
  assert_equal "$(record_field status "$other")" "failed"
  assert_equal "$(record_field source "$other")" "git:load-image"
  run record_log "$other"
  assert_line --partial "nothing was loaded"
}

@test "a host before Dokku 0.38 (no builds plugin): no records, output as before" {
  local app
  SANDBOX_WITHOUT=builds sandbox_setup
  app="$(unique_name old)"
  new_app "$app"
  run_split dokku image:from "$app" "$V1"
  assert_success
  assert_equal "$stderr" ""
  assert_line --regexp "^-----> Deployed $V1 "
  refute_path -e "$DOKKU_LIB_ROOT/data/builds"
}

# ---------------------------------------------------------------------------------------
# Signals to the deploy's whole process group (as a hang-up or builds:cancel sends them), at
# three points of a deploy

# load_running: the held load's docker image load has started.
load_running() {
  grep -q "^-----> Loading " "$BATS_TEST_TMPDIR/deploy.out" && pgrep -f "docker image load" >/dev/null
}

# start_stopped_at POINT: a deploy of APP in a session of its own, as over ssh (start_session:
# SESSION_ID is its process group), held at POINT: pre-image-deploy, or load (an image:load of
# NEW, half of whose archive has arrived).
start_stopped_at() {
  case "$1" in
    pre-image-deploy)
      pause_in pre-image-deploy
      start_session deploy dokku image:from "$APP" "$V2"
      wait_until 60 paused pre-image-deploy
      ;;
    load)
      NEW="$(unique_name img):v3"
      build_busybox_image "$NEW" --content three >/dev/null
      archive_of "$NEW"
      mkfifo "$BATS_TEST_TMPDIR/stdin"
      { head -c "$(($(stat -c %s "$ARCHIVE") / 2))" "$ARCHIVE" && exec sleep 600; } \
        >"$BATS_TEST_TMPDIR/stdin" 3>&- &
      WRITER_PID=$!
      BG_STDIN="$BATS_TEST_TMPDIR/stdin" start_session deploy dokku image:load "$APP" "$NEW"
      wait_until 60 load_running
      ;;
  esac
}

# assert_said LINE: the plugin's ` !     ` lines on stderr are exactly LINE. (The scripts the
# plugin stopped may say so too: bash reports a child that died of a signal, "Terminated".)
assert_said() {
  assert_equal "$(grep '^ !     ' <<<"$stderr")" "$1"
}

# stop_group SIGNAL: SIGNAL to the whole process group of the held deploy (QUIT through
# builds:cancel, the others as a hang-up or a kill of the session sends them); returns once
# every process of the group is gone, with the deploy's status, output and stderr (finish_bg).
stop_group() {
  if [[ "$1" == QUIT ]]; then
    run dokku builds:cancel "$APP"
    assert_success
    assert_output "-----> Killing app deploy"
  else
    kill "-$1" -- "-$SESSION_ID"
  fi
  finish_bg deploy
  wait_until 60 group_gone "$SESSION_ID"
}

# assert_stopped SIGNAL IMAGE C1: the deploy of IMAGE to APP ended with status 128+N and one
# true line, its build record says what happened (failed with 128+N, or canceled by
# builds:cancel), and nothing is left to repair: the branch at C1, source-image V1, no
# pending ref.
assert_stopped() {
  local signal="$1" image="$2" c1="$3" number
  number="$(kill -l "$signal")"
  assert_equal "$status" "$((128 + number))"
  if [[ "$signal" == QUIT ]]; then
    assert_said " !     the deploy of $image to $APP was canceled (SIGQUIT); nothing was changed"
    # builds:cancel writes `canceled` unless the deploy has finalized its record first
    assert_regex "$(records | jq -r '.[0] | "\(.status) \(.exit_code)"')" '^(canceled -1|failed 131)$'
  else
    assert_said " !     the deploy of $image to $APP was stopped by SIG$signal; nothing was changed"
    assert_equal "$(records | jq -r '.[0].status')" failed
    assert_equal "$(records | jq -r '.[0].exit_code')" "$((128 + number))"
  fi
  assert_untouched "$APP" "$c1" "$V1"
}

# assert_signal_ends_deploy SIGNAL POINT: SIGNAL to the process group of a deploy held at
# POINT ends it as assert_stopped says, with no image imported, and the next deploy works.
assert_signal_ends_deploy() {
  local signal="$1" point="$2" c1 image
  c1="$(deploy "$APP" "$V1")"
  start_stopped_at "$point"
  image="$V2"
  [[ "$point" != load ]] || image="$NEW"
  stop_group "$signal"
  assert_stopped "$signal" "$image" "$c1"
  if [[ "$point" == load ]]; then
    run docker image inspect "$NEW"
    assert_failure
  fi
  release_pauses
  run dokku image:from "$APP" "$V2"
  assert_success
  assert_equal "$(app_http_get "$APP")" two
}

@test "SIGINT during the load: nothing imported, nothing changed, the next deploy works" {
  assert_signal_ends_deploy INT load
}

@test "SIGTERM during the load: nothing imported, nothing changed, the next deploy works" {
  assert_signal_ends_deploy TERM load
}

@test "SIGHUP during the load: nothing imported, nothing changed, the next deploy works" {
  assert_signal_ends_deploy HUP load
}

@test "builds:cancel (SIGQUIT) during the load: canceled, nothing imported, nothing changed" {
  assert_signal_ends_deploy QUIT load
}

@test "SIGINT in pre-image-deploy: nothing changed, the next deploy works" {
  assert_signal_ends_deploy INT pre-image-deploy
}

@test "SIGTERM in pre-image-deploy: nothing changed, the next deploy works" {
  assert_signal_ends_deploy TERM pre-image-deploy
}

@test "SIGHUP in pre-image-deploy: nothing changed, the next deploy works" {
  assert_signal_ends_deploy HUP pre-image-deploy
}

@test "builds:cancel (SIGQUIT) in pre-image-deploy: canceled, nothing changed" {
  assert_signal_ends_deploy QUIT pre-image-deploy
}

@test "each signal to the process group during receive-app: pending ref dropped, source-image restored" {
  local c1 signal
  c1="$(deploy "$APP" "$V1")"
  pause_in post-extract
  # Each twice: whether the plugin's failure path or its signal thread gets there first is
  # up to the scheduler. QUIT (builds:cancel) last: it frees Dokku's lock, and the deploy
  # after it works.
  for signal in INT TERM HUP QUIT INT TERM HUP QUIT; do
    rearm_pauses
    start_session deploy dokku image:from "$APP" "$V2"
    wait_until 60 paused post-extract
    stop_group "$signal"
    assert_stopped "$signal" "$V2" "$c1"
  done
  release_pauses
  run dokku image:from "$APP" "$V2"
  assert_success
  assert_equal "$(app_http_get "$APP")" two
}

@test "a signal during a rollback's deploy points the re-pointed tag back" {
  local c2 id1 id_now v1 v2
  # Images of this test alone: V1 and V2 are other apps' deploys too, whose tags a rollback
  # never moves (tags.bats).
  v1="$(unique_name img):v1"
  v2="$(unique_name img):v2"
  id1="$(build_busybox_image "$v1" --content one)"
  build_busybox_image "$v2" --content two >/dev/null
  deploy "$APP" "$v1" >/dev/null
  c2="$(deploy "$APP" "$v2")"
  # v1 now names other content; the rollback points it back at id1 for its deploy
  docker image tag "$v2" "$v1"
  pause_in post-extract
  start_session deploy dokku image:rollback "$APP"
  wait_until 60 paused post-extract
  assert_equal "$(image_id "$v1")" "$id1"
  kill -TERM -- "-$SESSION_ID"
  finish_bg deploy
  wait_until 60 group_gone "$SESSION_ID"
  assert_equal "$status" 143
  assert_said " !     the rollback of $APP was stopped by SIGTERM; nothing was changed"
  id_now="$(image_id "$v1")"
  assert_equal "$id_now" "$(image_id "$v2")"
  assert_untouched "$APP" "$c2" "$v2"
}

# ---------------------------------------------------------------------------------------
# Access control

@test "an app a user-auth-app plugin hides is a missing app to every image:* command" {
  local hidden c1 command before
  hidden="$(unique_name hidden)"
  new_app "$hidden"
  c1="$(deploy "$hidden" "$V1")"
  ln -s "$PLUGIN_AVAILABLE_PATH/acl-double" "$PLUGIN_ENABLED_PATH/acl-double"
  _added_to_host "$PLUGIN_ENABLED_PATH/acl-double" "$DOKKU_LIB_ROOT/config/acl-double"
  mkdir -p "$DOKKU_LIB_ROOT/config/acl-double"
  echo "$hidden" >"$DOKKU_LIB_ROOT/config/acl-double/hidden-apps"
  before="$(host_state "$hidden" "$V1")"

  for command in "image:from $hidden $V2" "image:history $hidden" "image:rollback $hidden" \
    "image:report $hidden" "image:set $hidden keep-images 1" "image:layers $hidden" \
    "image:from --app $hidden $V2"; do
    # shellcheck disable=SC2086 # the command's words
    run_split dokku $command
    assert_failure 20
    assert_equal "$stderr" " !     App $hidden does not exist"
  done
  run_split dokku image:load "$hidden" "$V2" < <(docker image save "$V2")
  assert_failure 20
  assert_equal "$stderr" " !     App $hidden does not exist"
  assert_equal "$(host_state "$hidden" "$V1")" "$before"
  assert_equal "$(app_branch_rev "$hidden")" "$c1"

  # image:report of every app shows the visible ones only
  run dokku image:report --image-deploys
  assert_success
  run dokku image:report
  assert_success
  refute_output --partial "$hidden"
  assert_line "=====> $APP image information"
}
