#!/usr/bin/env bats
# Deploys at the same time: of one app, one at a time and the others refused clearly, with
# a linear history; of different apps, all at once.

load test_helper

# Images a test could not remove (a parent of another test image) are retried here.
teardown_file() {
  cleanup_images
}

setup() {
  use_test_tmpdir
  sandbox_setup
}

teardown() {
  local pid
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  [[ -z "${SANDBOX_DIR:-}" ]] || wait_until 60 sandbox_idle || true
  sandbox_teardown
}

# derived_images BASE N: N images FROM BASE, each with its own ID; prints their tags.
derived_images() {
  local base="$1" count="$2" name i tag
  name="$(unique_name img)"
  for ((i = 1; i <= count; i++)); do
    tag="$name:v$i"
    printf 'FROM %s\nLABEL sandbox.variant=%s\n' "$base" "$i" | docker image build -q -t "$tag" - >/dev/null || return 1
    track_image "$tag"
    echo "$tag"
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
      until [[ -e "$go" ]]; do sleep 0.01; done
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
        grep -q "^-----> Deployed $image " "$BATS_TEST_TMPDIR/$name.$i.out"
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
  local app base images=() i log line
  DEPLOYED=0 REFUSED=0
  app="$(unique_name concurrent)"
  dokku apps:create "$app" >/dev/null
  base="$(unique_name base):v1"
  build_busybox_image "$base" >/dev/null
  mapfile -t images < <(derived_images "$base" 16)
  [ "${#images[@]}" -eq 16 ]
  # Every deploy that gets through logs its start (pre-image-deploy, under the plugin's
  # lock) and its end (deploy-source-set); receive-app takes a second, to widen the race.
  log="$DOKKU_LIB_ROOT/data/probe.log"
  sandbox_plugin zz-probe \
    "pre-image-deploy=#!/usr/bin/env bash
echo \"start \$2\" >>$(printf '%q' "$log")" \
    "deploy-source-set=#!/usr/bin/env bash
echo \"end \$3\" >>$(printf '%q' "$log")"
  sandbox_receive_app_delay "$app" 1

  # Eight started together, then eight more spread over the time of a few deploys.
  start_all together 0 dokku image:from "$app" -- "${images[@]:0:8}"
  wait_all
  check_round together "$app" "${images[@]:0:8}"
  start_all spread 0.6 dokku image:from "$app" -- "${images[@]:8:8}"
  wait_all
  check_round spread "$app" "${images[@]:8:8}"
  echo "# $DEPLOYED deployed, $REFUSED refused" >&3
  [ "$DEPLOYED" -ge 2 ]
  [ $((DEPLOYED + REFUSED)) -eq 16 ]

  # Exactly one at a time: starts and ends alternate, one pair per successful deploy.
  run cut -d' ' -f1 "$log"
  assert_output "$(for ((i = 0; i < DEPLOYED; i++)); do printf 'start\nend\n'; done)"

  # A linear history with one commit per successful deploy, in the order of the log.
  assert_equal "$(git --git-dir="$DOKKU_ROOT/$app" rev-list --count refs/heads/master)" "$DEPLOYED"
  while read -r line; do
    [ "$(wc -w <<<"$line")" -le 2 ]
  done < <(git --git-dir="$DOKKU_ROOT/$app" rev-list --parents refs/heads/master)
  assert_equal "$(git --git-dir="$DOKKU_ROOT/$app" log --reverse --format=%B refs/heads/master | sed -n 's/^Image-Source: //p')" \
    "$(sed -n 's/^end //p' "$log")"
  run git --git-dir="$DOKKU_ROOT/$app" rev-parse --verify --quiet refs/image/pending
  assert_failure
  assert_equal "$(app_property git "$app" source-image)" "$(sed -n 's/^end //p' "$log" | tail -n 1)"

  # The lock is free again.
  sandbox_receive_app_delay "$app" 0
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
    assert_equal "$(git --git-dir="$DOKKU_ROOT/$app" rev-list --count refs/heads/master)" 1
    assert_equal "$(app_property git "$app" source-image)" "${images[i]}"
    # Each app runs a build of its own image.
    run app_http_get "$app"
    assert_output "$base"
    run docker image inspect -f '{{index .Config.Labels "sandbox.variant"}}' "dokku/$app:latest"
    assert_output "$((i + 1))"
  done
}
