#!/usr/bin/env bats
# Several teams on one host: with dokku-acl (tests/sandbox/plugins/acl, its user-auth), a user
# who may deploy only her app reaches no other app through any image:* command, whether the
# other app comes from --app, before or after the command, or from DOKKU_APP_NAME, over ssh or
# on the host, and through the git:*-image fallbacks; her own app works, and root and the
# super user keep --app. The check happens before anything else: nothing is loaded,
# committed or recorded.

# shellcheck disable=SC2154 # stderr and stderr_lines are set by run_split (test_helper.bash)

load test_helper

# One host for the file, with the acl plugin set as a host would be: every image:* command
# (and the git:*-image fallbacks) per app, super user "admin". Alice's ACL lists her app MINE;
# VICTIM is deployed (by root, with --app) from V1. ARCHIVE holds the image MINE:latest, so
# that `image:load MINE --app VICTIM` names it.
file_setup() {
  export MINE VICTIM V1 ARCHIVE C1
  MINE="$(unique_name mine)"
  VICTIM="$(unique_name victim)"
  V1="$(unique_name img):v1"
  build_busybox_image "$V1" --content victim >/dev/null
  build_busybox_image "$MINE:latest" --content alice >/dev/null
  archive_of "$MINE:latest"
  new_app "$MINE"
  new_app "$VICTIM"
  mkdir -p "$DOKKU_ROOT/$MINE/acl"
  touch "$DOKKU_ROOT/$MINE/acl/alice"
  ln -s "$PLUGIN_AVAILABLE_PATH/acl" "$PLUGIN_ENABLED_PATH/acl"
  mkdir -p "$DOKKU_ROOT/.dokkurc"
  {
    echo 'export DOKKU_ACL_PER_APP_COMMANDS="image:from image:load image:history image:rollback image:report image:set image:layers git:from-image git:load-image"'
    echo 'export DOKKU_SUPER_USER=admin'
  } >"$DOKKU_ROOT/.dokkurc/acl"
  dokku --app "$VICTIM" image:from "$V1" >/dev/null 2>&1 || {
    fail "root's deploy of $VICTIM with --app failed"
    return 1
  }
  C1="$(app_branch_rev "$VICTIM")"
}



# assert_denied: the command just run (run_split) was refused as Dokku refuses: dokku-acl's
# line, then Access denied, status 1, nothing on stdout.
assert_denied() {
  assert_failure 1
  assert_equal "$output" ""
  assert_equal "$stderr" "$(printf ' !     %s\n' \
    "User alice does not have permissions to run ${1:?} on $VICTIM, or $VICTIM does not exist" \
    "Access denied")"
}

@test "alice reaches no other app with --app or DOKKU_APP_NAME, by any command, over ssh or on the host" {
  local before line command
  before="$(host_state "$VICTIM" "$MINE:latest" "$V1")"
  # the archive's image, MINE:latest, is IMAGE here: the load would deploy it to VICTIM
  for line in "image:load $MINE --app $VICTIM" "--app $VICTIM image:load $MINE" \
    "git:load-image $MINE --app $VICTIM"; do
    command="${line#--app "$VICTIM" }"
    run_split sandbox_ssh_as alice "$line" <"$ARCHIVE"
    assert_denied "${command%% *}"
  done
  for line in "--app $VICTIM image:from $MINE" "image:from $MINE $V1 --app $VICTIM" \
    "--app $VICTIM git:from-image $MINE" "image:rollback $MINE --app $VICTIM" \
    "image:set $MINE keep-images --app $VICTIM"; do
    command="${line#--app "$VICTIM" }"
    run_split sandbox_ssh_as alice "$line" </dev/null
    assert_denied "${command%% *}"
  done
  # on the host, as a user that is not root (the dokku user, for alice)
  SSH_USER=dokku NAME=alice run_split dokku image:load "$MINE" --app "$VICTIM" <"$ARCHIVE"
  assert_denied image:load
  assert_equal "$(host_state "$VICTIM" "$MINE:latest" "$V1")" "$before"
  assert_equal "$(app_branch_rev "$VICTIM")" "$C1"
  run dokku builds:list "$VICTIM" --format json
  assert_equal "$(jq length <<<"$output")" 1
}

@test "alice's own app works, with --app too; root and the super user keep --app" {
  run sandbox_ssh_as alice "image:load $MINE --app $MINE" <"$ARCHIVE"
  assert_success
  track_image "$MINE:latest"
  assert_line --regexp "^-----> Deployed $MINE \([0-9a-f]{12}\) to $MINE as commit [0-9a-f]{12}$"
  assert_equal "$(app_http_get "$MINE")" alice
  run sandbox_ssh_as alice "image:history $MINE"
  assert_success

  run sandbox_ssh_as admin "image:set keep-images 3 --app $VICTIM"
  assert_success
  assert_equal "$(app_property image "$VICTIM" keep-images)" 3
  run dokku image:set keep-images --app "$VICTIM"
  assert_success
  run app_property image "$VICTIM" keep-images
  assert_failure
}
