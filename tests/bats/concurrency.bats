#!/usr/bin/env bats
# Deploys at the same time: of one app, one at a time and the others refused clearly, with
# a linear history; of different apps, all at once. Read-only commands beside Dokku's own
# deploys: they take no lock.

load test_helper

test_setup() {
  use_test_tmpdir
  PIDS=()
}

test_cleanup() {
  # a read of the FIFO gets its end, and no read waits on it again
  [[ -z "${FIFO:-}" ]] || rm -f "$FIFO"
  [[ -z "${HOLDER_PID:-}" ]] || kill "$HOLDER_PID" 2>/dev/null || true
  wait_all
}

# derived_images BASE N: N images FROM BASE, each with its own ID (built side by side);
# prints their tags.
derived_images() {
  local base="$1" count="$2" name i pids=() failed=false
  name="$(unique_name img)"
  for ((i = 1; i <= count; i++)); do
    printf 'FROM %s\nLABEL sandbox.variant=%s\n' "$base" "$i" |
      docker image build -q -t "$name:v$i" - >/dev/null &
    pids+=("$!")
  done
  for ((i = 1; i <= count; i++)); do
    wait "${pids[i - 1]}" && track_image "$name:v$i" || failed=true
  done
  ! "$failed" || return 1
  for ((i = 1; i <= count; i++)); do
    echo "$name:v$i"
  done
}

# start_all NAME STAGGER COMMAND_PREFIX… -- ARG…: runs COMMAND_PREFIX ARG once per ARG in
# the background, released together (the I-th after (I-1)*STAGGER more seconds); outputs in
# $BATS_TEST_TMPDIR/NAME.I.{out,err,rc}.
start_all() {
  local name="$1" stagger="$2" prefix=() i=0 go="$BATS_TEST_TMPDIR/go.$1"
  shift 2
  while [[ "$1" != -- ]]; do
    prefix+=("$1")
    shift 1
  done
  shift 1
  PIDS=()
  for arg in "$@"; do
    i=$((i + 1))
    (
      deadline=$((SECONDS + 60))
      until [[ -e "$go" ]]; do
        ((SECONDS < deadline)) || exit 1
        sleep 0.01
      done
      # the stagger is the time between the starts, which the test is about
      sleep "$(awk "BEGIN { print ($i - 1) * $stagger }")"
      rc=0
      "${prefix[@]}" "$arg" </dev/null >"$BATS_TEST_TMPDIR/$name.$i.out" 2>"$BATS_TEST_TMPDIR/$name.$i.err" || rc=$?
      echo "$rc" >"$BATS_TEST_TMPDIR/$name.$i.rc"
    ) 3>&- &
    PIDS+=("$!")
  done
  touch "$go"
}

wait_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    wait "$pid" || true
  done
  PIDS=()
}

# finished NAME COUNT: true once COUNT commands of start_all NAME have ended.
finished() {
  local ended=("$BATS_TEST_TMPDIR/$1".*.rc)
  [[ -e "${ended[0]}" && "${#ended[@]}" -ge "$2" ]]
}

# check_round NAME APP IMAGE…: each deploy of the round either deployed its image (exit 0)
# or was refused with one clear line and no other output (exit 1). Adds to DEPLOYED and
# REFUSED.
check_round() {
  local name="$1" app="$2" i=0 rc image
  shift 2
  for image in "$@"; do
    i=$((i + 1))
    rc="$(<"$BATS_TEST_TMPDIR/$name.$i.rc")"
    case "$rc" in
      0)
        DEPLOYED=$((DEPLOYED + 1))
        grep -q "^-----> Deployed $image " "$BATS_TEST_TMPDIR/$name.$i.out" \
          || fail "deploy $i of $image exited 0 without deploying: $(<"$BATS_TEST_TMPDIR/$name.$i.out")"
        ;;
      1)
        REFUSED=$((REFUSED + 1))
        assert_equal "$(<"$BATS_TEST_TMPDIR/$name.$i.err")" \
          " !     another image deploy of $app is in progress; nothing was changed, try again when it has finished"
        assert_equal "$(<"$BATS_TEST_TMPDIR/$name.$i.out")" ""
        ;;
      *)
        cat "$BATS_TEST_TMPDIR/$name.$i.err" >&2
        fail "deploy $i of $image exited $rc"
        ;;
    esac
  done
}

@test "eight deploys of one app at once: one at a time, the others refused, a linear history" {
  local app base images=() i log
  DEPLOYED=0 REFUSED=0
  app="$(unique_name concurrent)"
  dokku apps:create "$app" >/dev/null
  base="$(unique_name base):v1"
  build_busybox_image "$base" >/dev/null
  mapfile -t images < <(derived_images "$base" 16)
  assert_equal "${#images[@]}" 16
  # Every deploy that gets through logs its start (pre-image-deploy, under the plugin's
  # lock) and its end (deploy-source-set).
  log="$DOKKU_LIB_ROOT/data/probe.log"
  sandbox_plugin zz-probe \
    "pre-image-deploy=#!/usr/bin/env bash
echo \"start \$2\" >>$(printf '%q' "$log")" \
    "deploy-source-set=#!/usr/bin/env bash
echo \"end \$3\" >>$(printf '%q' "$log")"

  # Eight started together. The one that gets through is held in its receive-app (the
  # post-extract trigger) until the seven others have ended: they all find it running.
  pause_in post-extract
  start_all together 0 dokku image:from "$app" -- "${images[@]:0:8}"
  wait_until 60 finished together 7
  release_pauses
  wait_all
  check_round together "$app" "${images[@]:0:8}"
  rm "$PLUGIN_ENABLED_PATH/zz-pause"
  # Eight more, spread over the time of a few deploys.
  start_all spread 0.3 dokku image:from "$app" -- "${images[@]:8:8}"
  wait_all
  check_round spread "$app" "${images[@]:8:8}"
  echo "# $DEPLOYED deployed, $REFUSED refused" >&3
  ((DEPLOYED >= 2)) || fail "only $DEPLOYED deploys got through"
  assert_equal "$((DEPLOYED + REFUSED))" 16

  # Exactly one at a time: starts and ends alternate, one pair per successful deploy.
  run cut -d' ' -f1 "$log"
  assert_output "$(for ((i = 0; i < DEPLOYED; i++)); do printf 'start\nend\n'; done)"

  # A linear history with one commit per successful deploy, in the order of the log.
  assert_equal "$(commit_count "$app")" "$DEPLOYED"
  # no commit with two parents
  assert_equal "$(app_git "$app" rev-list --min-parents=2 refs/heads/master)" ""
  assert_equal "$(app_git "$app" log --reverse --format=%B refs/heads/master | sed -n 's/^Image-Source: //p')" \
    "$(sed -n 's/^end //p' "$log")"
  refute_pending "$app"
  assert_equal "$(app_property git "$app" source-image)" "$(sed -n 's/^end //p' "$log" | tail -n 1)"

  # The lock is free again.
  run dokku image:from "$app" "$base"
  assert_success
}

@test "eight apps deployed at once all succeed" {
  local base images=() apps=() i app
  base="$(unique_name base):v1"
  build_busybox_image "$base" >/dev/null
  mapfile -t images < <(derived_images "$base" 8)
  for ((i = 0; i < 8; i++)); do
    apps+=("$(unique_name app$i)")
    dokku apps:create "${apps[i]}" >/dev/null
  done
  PIDS=()
  for ((i = 0; i < 8; i++)); do
    (
      rc=0
      dokku image:from "${apps[i]}" "${images[i]}" </dev/null >"$BATS_TEST_TMPDIR/app.$i.out" 2>&1 || rc=$?
      echo "$rc" >"$BATS_TEST_TMPDIR/app.$i.rc"
    ) 3>&- &
    PIDS+=("$!")
  done
  wait_all
  for ((i = 0; i < 8; i++)); do
    app="${apps[i]}"
    if [[ "$(<"$BATS_TEST_TMPDIR/app.$i.rc")" != 0 ]]; then
      cat "$BATS_TEST_TMPDIR/app.$i.out" >&2
      fail "the deploy of $app failed"
    fi
    assert_equal "$(commit_count "$app")" 1
    assert_equal "$(app_property git "$app" source-image)" "${images[i]}"
    # Each app runs a build of its own image.
    run app_http_get "$app"
    assert_output "$base"
    run docker image inspect -f '{{index .Config.Labels "sandbox.variant"}}' "dokku/$app:latest"
    assert_output "$((i + 1))"
  done
}

# lock_file_state FILE: what identifies Dokku's lock file and its content (inode, size,
# change time, bytes), or "absent".
lock_file_state() {
  if [[ -e "$1" ]]; then
    stat -c '%i %s %z' "$1" && od -c "$1"
  else
    echo absent
  fi
}

# has_open BINARY FILE: a running plugin BINARY has FILE open.
has_open() {
  local pid fd
  for pid in $(plugin_pids "$1"); do
    for fd in "/proc/$pid/fd/"*; do
      [[ "$fd" -ef "$2" ]] && return 0
    done
  done
  return 1
}

@test "read-only commands take no lock: Dokku's lock file stays as it is, a ps:rebuild beside them works" {
  local app tag lock state command
  app="$(unique_name readonly)"
  new_app "$app"
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  deploy "$app" "$tag" >/dev/null
  lock="$DOKKU_LIB_ROOT/data/apps/$app/.deploy.lock"

  # The lock file a killed Dokku deploy leaves (the kernel freed the lock, the file stays),
  # then the same file held by a running one.
  printf 'killed-build\n' >"$lock"
  state="$(lock_file_state "$lock")"
  for command in "dokku image:report $app" "dokku image:history $app" "plugn trigger report $app"; do
    # shellcheck disable=SC2086 # the command's words
    run $command
    assert_success
    assert_equal "$(lock_file_state "$lock")" "$state"
  done
  bash -c 'exec 9>>"$1"; flock 9; exec sleep 600' _ "$lock" </dev/null >/dev/null 2>&1 3>&- &
  HOLDER_PID=$!
  wait_until 30 bash -c '! flock -n "$1" true' _ "$lock"
  run dokku image:report "$app"
  assert_success
  assert_equal "$(lock_file_state "$lock")" "$state"
  kill "$HOLDER_PID"
  wait "$HOLDER_PID" || true

  # image:report held where it reads the app's deploy-branch property (a FIFO here, which
  # Dokku's property reader skips, and which the holder below keeps open, so the plugin's
  # read waits for data), with whatever lock it took by then: Dokku's own deploy of the app
  # beside it works.
  FIFO="$DOKKU_LIB_ROOT/config/git/$app/deploy-branch"
  mkdir -p "${FIFO%/*}"
  mkfifo "$FIFO"
  { exec sleep 600; } 9<>"$FIFO" 3>&- &
  HOLDER_PID=$!
  start_bg report dokku image:report "$app"
  wait_until 30 has_open image-report "$FIFO"
  run dokku ps:rebuild "$app"
  assert_success
  assert_line "-----> Building $app from Dockerfile"
  # the read gets "master" and its end; later reads find no property: master too
  printf master >"$FIFO"
  rm "$FIFO"
  kill "$HOLDER_PID"
  finish_bg report
  assert_equal "$status" 0
  assert_output --partial "Image source image:            $tag"
}
