#!/usr/bin/env bats
# Tests of the sandbox Dokku host itself (tests/sandbox/), so the plugin's suites can
# trust it. Runs on its own: the plugin is a stub made here (one test checks the layout
# of the built tarball, and skips when there is none). One host for the file; every test
# uses apps of its own, and the plugins it adds go with it.
# shellcheck disable=SC2016 # scripts and messages are single-quoted on purpose

load test_helper

setup_file() {
  local stub="$BATS_FILE_TMPDIR/stub"
  mkdir -p "$stub/image"
  printf '[plugin]\ndescription = "stub"\nversion = "0.0.0"\n[plugin.config]\n' >"$stub/image/plugin.toml"
  tar -czf "$BATS_FILE_TMPDIR/image-0.0.0-stub.tar.gz" -C "$stub" image
  export STUB_TARBALL="$BATS_FILE_TMPDIR/image-0.0.0-stub.tar.gz"
  sandbox_setup "$STUB_TARBALL"
}



# Prints its argv as [a] [b] … and the global-flag variables.
PROBE='#!/usr/bin/env bash
out=""
for arg in "$@"; do out+="[$arg] "; done
echo "argv=${out% }"
echo "DOKKU_APP_NAME=$DOKKU_APP_NAME"
echo "DOKKU_QUIET_OUTPUT=$DOKKU_QUIET_OUTPUT"
echo "DOKKU_APPS_FORCE_DELETE=$DOKKU_APPS_FORCE_DELETE"
echo "DOKKU_NOT_IMPLEMENTED_EXIT=$DOKKU_NOT_IMPLEMENTED_EXIT"'

deploy_image_app() {
  local app="$1" content="$2" tag
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content "$content" >/dev/null
  app_commit "$app" "Dockerfile=FROM $tag"
}

@test "create-host prints nothing, installs the plugin and the doubles as Dokku lays them out" {
  local dir="$BATS_TEST_TMPDIR/other-host"
  run "$SANDBOX_TOOLS/create-host" "$dir" "$STUB_TARBALL"
  assert_success
  assert_output ""
  assert_equal "$(readlink "$dir/lib/plugins/enabled/image")" "$dir/lib/plugins/available/image"
  assert_equal "$(readlink "$dir/lib/plugins/enabled/apps")" "$dir/lib/core-plugins/available/apps"
  assert_path -x "$dir/lib/core-plugins/available/git/commands"
  assert_path -x "$dir/bin/dokku"
  assert_path -x "$dir/bin/plugn"
  run "$SANDBOX_TOOLS/destroy-host" "$dir"
  assert_success
  refute_path -e "$dir"
}

@test "an unknown command fails with Dokku's message" {
  run dokku no-such:command some-app
  assert_failure 1
  assert_line ' !     `no-such:command some-app` is not a dokku command.'
}

@test "a subcommand gets the full command name first; leading global flags are removed" {
  sandbox_plugin probe "subcommands/args=$PROBE"
  run dokku --quiet --app my-app probe:args one 'two words'
  assert_success
  assert_line --index 0 'argv=[probe:args] [one] [two words]'
  assert_line 'DOKKU_APP_NAME=my-app'
  assert_line 'DOKKU_QUIET_OUTPUT=1'
  assert_line 'DOKKU_NOT_IMPLEMENTED_EXIT=10'
}

@test "global flags after the command stay in the argv and set their variables" {
  sandbox_plugin probe "subcommands/args=$PROBE"
  run dokku probe:args one --app other --force --quiet
  assert_success
  assert_line --index 0 'argv=[probe:args] [one] [--app] [other] [--force] [--quiet]'
  assert_line 'DOKKU_APP_NAME=other'
  assert_line 'DOKKU_APPS_FORCE_DELETE=1'
  assert_line 'DOKKU_QUIET_OUTPUT=1'
}

# A user-auth trigger that logs its arguments and DOKKU_COMMAND, one line, and refuses when
# $DOKKU_LIB_ROOT/refuse exists.
USER_AUTH_PROBE='#!/usr/bin/env bash
out=""
for arg in "$@"; do out+="[$arg] "; done
echo "user-auth ${out% } DOKKU_COMMAND=$DOKKU_COMMAND" >>"$DOKKU_LIB_ROOT/user-auth.log"
[[ ! -e "$DOKKU_LIB_ROOT/refuse" ]]'

@test "user-auth: fired with SSH_USER, SSH_NAME and the args after the leading global flags; a refusal ends the command" {
  local log="$DOKKU_LIB_ROOT/user-auth.log"
  _added_to_host "$log" "$DOKKU_LIB_ROOT/refuse"
  sandbox_plugin probe "subcommands/args=$PROBE"
  sandbox_plugin auth "user-auth=$USER_AUTH_PROBE"
  run dokku --quiet --app my-app probe:args one --app other
  assert_success
  assert_line --index 0 'argv=[probe:args] [one] [--app] [other]'
  assert_equal "$(<"$log")" "user-auth [$(id -un)] [default] [probe:args] [one] [--app] [other] DOKKU_COMMAND=probe:args"

  # over ssh: the login's user (the dokku user on a host) and the key's name
  rm "$log"
  run sandbox_ssh_as alice "--app my-app probe:args 'two words'"
  assert_success
  assert_equal "$(<"$log")" "user-auth [dokku] [alice] [probe:args] [two words] DOKKU_COMMAND=probe:args"

  touch "$DOKKU_LIB_ROOT/refuse"
  run_split dokku probe:args one
  assert_failure 1
  assert_equal "$stderr" " !     Access denied"
  assert_equal "$output" ""
}

@test "user-auth: not fired when only 20_events has it" {
  sandbox_plugin probe "subcommands/args=$PROBE"
  sandbox_plugin 20_events 'user-auth=#!/usr/bin/env bash
exit 1'
  run dokku probe:args one
  assert_success
  assert_line --index 0 'argv=[probe:args] [one]'
}

@test "the acl test plugin gates commands as dokku-acl does: per app by the first word after the command" {
  local mine victim
  mine="$(unique_name mine)"
  victim="$(unique_name victim)"
  dokku apps:create "$mine" >/dev/null
  dokku apps:create "$victim" >/dev/null
  mkdir -p "$DOKKU_ROOT/$mine/acl"
  touch "$DOKKU_ROOT/$mine/acl/alice"
  sandbox_plugin probe "subcommands/args=$PROBE"
  sandbox_enable acl
  # without settings, it allows everything
  run sandbox_ssh_as alice "probe:args $victim"
  assert_success
  sandbox_dokkurc acl 'export DOKKU_ACL_PER_APP_COMMANDS="probe:args"' \
    'export DOKKU_ACL_USER_COMMANDS="apps:list"' 'export DOKKU_SUPER_USER=admin'

  run sandbox_ssh_as alice "probe:args $mine --app $victim"
  assert_success
  assert_line --index 0 "argv=[probe:args] [$mine] [--app] [$victim]"
  run sandbox_ssh_as alice "apps:list"
  assert_success
  run_split sandbox_ssh_as alice "probe:args $victim"
  assert_failure 1
  assert_equal "$stderr" "$(printf ' !     %s\n' "User alice does not have permissions to run probe:args on $victim, or $victim does not exist" "Access denied")"
  run_split sandbox_ssh_as alice "--app $mine probe:args"
  assert_failure 1
  assert_equal "${stderr_lines[0]}" " !     An app name is required"
  run_split sandbox_ssh_as alice "apps:create x"
  assert_failure 1
  assert_equal "${stderr_lines[0]}" " !     User alice does not have permissions to run apps:create"
  # the super user's key and root on the host may do anything
  run sandbox_ssh_as admin "probe:args $victim"
  assert_success
  run dokku probe:args "$victim"
  assert_success
}

@test "dokku PLUGIN runs subcommands/default" {
  sandbox_plugin probe "subcommands/default=$PROBE"
  run dokku probe x
  assert_success
  assert_line --index 0 'argv=[probe] [x]'
}

@test "commands chain: 10 tries the next, 0 handles and the rest still run, other statuses stop" {
  sandbox_plugin chain-a 'commands=#!/usr/bin/env bash
echo "a saw $1"; exit 10'
  sandbox_plugin chain-b 'commands=#!/usr/bin/env bash
case "$1" in
  chain:ok) echo "b handled $1"; exit 0 ;;
  chain:fail) echo "b failed $1"; exit 3 ;;
  *) exit 10 ;;
esac'
  sandbox_plugin chain-c 'commands=#!/usr/bin/env bash
echo "c saw $1"; exit 10' 'nested/deeper/commands=#!/usr/bin/env bash
echo "nested saw $1"; exit 10'

  run dokku chain:ok arg
  assert_success
  assert_line --index 0 'a saw chain:ok'
  assert_line --index 1 'b handled chain:ok'
  assert_line 'c saw chain:ok'
  # like Dokku, every file named commands inside a plugin folder runs
  assert_line 'nested saw chain:ok'

  run dokku chain:fail
  assert_failure 3
  assert_line 'b failed chain:fail'
  refute_line 'c saw chain:fail'

  run dokku chain:nobody
  assert_failure 1
  assert_line 'c saw chain:nobody'
  assert_line ' !     `chain:nobody` is not a dokku command.'
}

@test "dokku help prints every plugin's help lines, sorted" {
  sandbox_plugin aaa 'commands=#!/usr/bin/env bash
[[ "$1" == help ]] && echo "    aaa:zzz, Last of aaa" && echo "    aaa:first, First of aaa" && exit 0
exit 10'
  run dokku help
  assert_success
  assert_line '    aaa:first, First of aaa'
  assert_line '    apps:create <app>, Create a new app'
  local help_lines
  help_lines="$(printf '%s\n' "${lines[@]}" | grep '^    ')"
  assert_equal "$help_lines" "$(LC_ALL=C sort <<<"$help_lines")"
}

@test "apps:create makes a bare repo with Dokku's pre-receive hook and the data dir" {
  local app repo
  app="$(unique_name app)"
  repo="$DOKKU_ROOT/$app"
  run dokku apps:create "$app"
  assert_success
  assert_equal "$(git --git-dir="$repo" rev-parse --is-bare-repository)" true
  assert_path -x "$repo/hooks/pre-receive"
  run cat "$repo/hooks/pre-receive"
  assert_line --index 0 '#!/usr/bin/env bash'
  assert_line 'set -o pipefail'
  assert_line "cat | DOKKU_ROOT=\"$DOKKU_ROOT\" dokku git-hook $app"
  assert_path -d "$DOKKU_LIB_ROOT/data/apps/$app"
  run app_triggers post-create "$app"
  assert_output "post-create $app"

  run dokku apps:create "$app"
  assert_failure 1
  assert_output --partial "Name is already taken"
  run dokku apps:create Bad_Name
  assert_failure 1
}

@test "app-exists: 0, 20 for a missing app, 1 for an invalid or empty name" {
  local app
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  run plugn trigger app-exists "$app"
  assert_success
  assert_output ""
  run plugn trigger app-exists "missing-$app"
  assert_failure 20
  assert_output " !     App missing-$app does not exist"
  run plugn trigger app-exists "Not_Valid"
  assert_failure 1
  run plugn trigger app-exists ""
  assert_failure 1
}

@test "plugn trigger runs plugins in folder order with the same args and stops at the first failure" {
  local script='#!/usr/bin/env bash
name="$(basename "$(dirname "$0")")"
echo "$name $*"
[[ "$1" != fail || "$name" != t-b ]] || exit 4'
  sandbox_plugin t-c "probe-trigger=$script"
  sandbox_plugin t-a "probe-trigger=$script"
  sandbox_plugin t-b "probe-trigger=$script"
  sandbox_plugin t-d "probe-trigger=$script"
  chmod -x "$PLUGIN_AVAILABLE_PATH/t-d/probe-trigger"

  run plugn trigger probe-trigger ok 'two words'
  assert_success
  assert_line --index 0 't-a ok two words'
  assert_line --index 1 't-b ok two words'
  assert_line --index 2 't-c ok two words'
  assert_line --partial 'skipping'
  refute_line 't-d ok two words'

  run plugn trigger probe-trigger fail
  assert_failure 4
  assert_line 't-b fail'
  refute_line 't-c fail'
}

@test "plugn fails like the real one when a plugin has no [plugin.config] table" {
  sandbox_plugin broken 'x-trigger=#!/usr/bin/env bash
echo ran'
  printf '[plugin]\ndescription = "no config"\n' >"$PLUGIN_AVAILABLE_PATH/broken/plugin.toml"
  run plugn trigger x-trigger
  assert_failure 2
  assert_line --partial 'panic: runtime error'
  assert_output --partial "'broken' has no [plugin.config]"
  refute_line ran
}

@test "receive-app builds and serves a commit made with git plumbing" {
  local app rev rev2 containers
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  rev="$(deploy_image_app "$app" "version one")"

  run plugn trigger receive-app "$app" "$rev"
  assert_success
  assert_output --partial "Application deployed"
  run app_http_get "$app"
  assert_success
  assert_output "version one"
  run app_property sandbox "$app" GIT_REV
  assert_output "$rev"
  run app_triggers core-post-extract "$app"
  assert_output --regexp "^core-post-extract $app [^ ]+ $rev\$"
  refute_path -e "$DOKKU_LIB_ROOT/data/apps/$app/.deploy.lock"
  assert_equal "$(app_git "$app" worktree list | wc -l)" 1

  rev2="$(deploy_image_app "$app" "version two")"
  run plugn trigger receive-app "$app" "$rev2"
  assert_success
  run app_http_get "$app"
  assert_output "version two"
  containers="$(docker container ls -a --format '{{.Names}}' --filter "label=dokku-sandbox.id=$SANDBOX_ID" \
    --filter "label=dokku-sandbox.app=$app")"
  assert_equal "$containers" "sandbox-$SANDBOX_ID-$app-web.1"
}

@test "receive-app without a REV builds the deploy branch's loose ref, not a packed one" {
  local app
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  set_app_property git "$app" deploy-branch main
  deploy_image_app "$app" "from main" >/dev/null
  assert_path -f "$DOKKU_ROOT/$app/refs/heads/main"

  run dokku ps:rebuild "$app"
  assert_success
  run app_http_get "$app"
  assert_output "from main"
  run app_property sandbox "$app" GIT_REV
  assert_failure

  app_git "$app" pack-refs --all
  run plugn trigger receive-app "$app"
  assert_failure 1
  assert_output --partial "Cannot build from 'main' as there are no commits stored at that branch"
}

@test "receive-app refuses a held deploy lock and fails on demand" {
  local app rev lock pid
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  rev="$(deploy_image_app "$app" "kept")"
  plugn trigger receive-app "$app" "$rev" >/dev/null

  lock="$DOKKU_LIB_ROOT/data/apps/$app/.deploy.lock"
  # a holder of the lock until the test kills it (30 s at the most)
  bash -c 'exec 9>"$1"; flock 9; exec sleep 30' _ "$lock" </dev/null >/dev/null 2>&1 3>&- &
  pid=$!
  wait_until 30 bash -c '! flock -n "$1" true' _ "$lock"
  run plugn trigger receive-app "$app" "$rev"
  kill "$pid"
  wait "$pid" || true
  assert_failure 1
  assert_output "$(printf '%s\n' " !     $app currently has a deploy lock in place. Exiting..." \
    " !     Run 'apps:unlock' to release the existing deploy lock")"

  sandbox_fail_receive_app "$app"
  run plugn trigger receive-app "$app" "$rev"
  assert_failure 1
  assert_output --partial " !     Build failed (sandbox fail-receive-app)"
  refute_path -e "$lock"
  run app_http_get "$app"
  assert_output "kept"

  sandbox_fail_receive_app "$app" off
  run plugn trigger receive-app "$app" "$rev"
  assert_success
}

@test "a git push runs the pre-receive hook and deploys the deploy branch" {
  local app tag work
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content "pushed" >/dev/null
  work="$BATS_TEST_TMPDIR/work"
  git init -q -b master "$work"
  echo "FROM $tag" >"$work/Dockerfile"
  git -C "$work" add Dockerfile
  git -C "$work" -c user.name=t -c user.email=t@t.invalid commit -qm one
  run git -C "$work" push "$DOKKU_ROOT/$app" master
  assert_success
  run app_http_get "$app"
  assert_output "pushed"
  assert_equal "$(app_branch_rev "$app")" "$(git -C "$work" rev-parse HEAD)"
}

@test "SSH_ORIGINAL_COMMAND is split honouring quotes, without any expansion" {
  local marker="$BATS_TEST_TMPDIR/expanded"
  sandbox_plugin probe "subcommands/args=$PROBE"
  sandbox_plugin probegit "subcommands/args=$PROBE"

  run env SSH_ORIGINAL_COMMAND="probe:args 'two words' \"say \\\"hi\\\"\" back\\ slash \$(touch $marker) * --app x" dokku ignored
  assert_success
  assert_line --index 0 "argv=[probe:args] [two words] [say \"hi\"] [back slash] [\$(touch] [$marker)] [*] [--app] [x]"
  assert_line 'DOKKU_APP_NAME=x'
  refute_path -e "$marker"

  run sandbox_ssh "probegit:args 'two words' *"
  assert_success
  assert_line --index 0 "argv=[probegit:args] ['two] [words'] [*]"

  run env SSH_ORIGINAL_COMMAND="probe:args 'open" dokku
  assert_failure 1

  sandbox_plugin stdin "subcommands/cat=#!/usr/bin/env bash
cat"
  run sandbox_ssh "stdin:cat" <<<"streamed payload"
  assert_success
  assert_output "streamed payload"
}

@test "deploy-source-set: apps records it, git empties source-image unless docker-image" {
  local app
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  set_app_property git "$app" source-image "some/image:1"
  plugn trigger deploy-source-set "$app" docker-image "some/image:1"
  run dokku apps:report "$app" --app-deploy-source
  assert_output docker-image
  run dokku apps:report "$app" --app-deploy-source-metadata
  assert_output "some/image:1"
  run plugn trigger git-get-property "$app" source-image
  assert_output "some/image:1"
  assert_equal "$(stat -c %a "$DOKKU_LIB_ROOT/config/apps/$app/deploy-source")" 600

  plugn trigger deploy-source-set "$app" git-push abc
  run app_property git "$app" source-image
  assert_success
  assert_output ""
}

@test "apps:destroy needs --force, removes app, container and image and fires post-delete" {
  local app rev
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  rev="$(deploy_image_app "$app" "doomed")"
  plugn trigger receive-app "$app" "$rev" >/dev/null

  run dokku apps:destroy "$app" </dev/null
  assert_failure 1
  assert_path -d "$DOKKU_ROOT/$app"

  run dokku --force apps:destroy "$app"
  assert_success
  refute_path -e "$DOKKU_ROOT/$app"
  refute_path -e "$DOKKU_LIB_ROOT/data/apps/$app"
  refute_path -e "$DOKKU_LIB_ROOT/config/sandbox/$app"
  run docker image inspect "dokku/$app:latest"
  assert_failure
  run docker container ls -aq --filter "label=dokku-sandbox.app=$app"
  assert_output ""
  run app_triggers post-delete "$app"
  assert_output "post-delete $app dokku/$app:latest"
}

@test "registry helper: plain registry push and pull, and registry:login against an auth one" {
  local tag config
  registry_start
  tag="$REGISTRY_HOST/$(unique_name pushed):v1"
  build_busybox_image "$tag" >/dev/null
  docker image push "$tag" >/dev/null
  docker image rm "$tag" >/dev/null
  docker image pull "$tag" >/dev/null
  track_image "$tag"

  local app
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  registry_start --auth sandbox-user sandbox-pass
  run curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY_HOST/v2/"
  assert_output 401
  run dokku registry:login "$app" "$REGISTRY_HOST" sandbox-user wrong-pass
  assert_failure
  run dokku registry:login "$app" "$REGISTRY_HOST" sandbox-user sandbox-pass
  assert_success
  config="$DOKKU_LIB_ROOT/config/registry/$app/config.json"
  run jq -r --arg host "$REGISTRY_HOST" '.auths | has($host)' "$config"
  assert_output true
}

@test "destroy-host removes its containers, its apps' images and its folder" {
  local app rev dir
  # the host this test destroys is its own
  sandbox_setup "$STUB_TARBALL"
  dir="$SANDBOX_DIR"
  app="$(unique_name app)"
  dokku apps:create "$app" >/dev/null
  rev="$(deploy_image_app "$app" "gone")"
  plugn trigger receive-app "$app" "$rev" >/dev/null

  run "$SANDBOX_TOOLS/destroy-host" "$dir"
  assert_success
  refute_path -e "$dir"
  run docker container ls -aq --filter "label=dokku-sandbox.id=$SANDBOX_ID"
  assert_output ""
  run docker image inspect "dokku/$app:latest"
  assert_failure
}

@test "the built plugin tarball installs as one folder with [plugin.config] and one commands file" {
  if [[ -z "$PLUGIN_TARBALL" || ! -f "$PLUGIN_TARBALL" ]]; then
    skip "no plugin tarball (make package)"
  fi
  local dir="$BATS_TEST_TMPDIR/real-host" installed
  SANDBOX_SKIP_INSTALL=1 "$SANDBOX_TOOLS/create-host" "$dir" "$PLUGIN_TARBALL"
  installed="$dir/lib/plugins/available/image"
  grep -Eq '^\[plugin\.config\]' "$installed/plugin.toml"
  run find -L "$installed" -name commands
  "$SANDBOX_TOOLS/destroy-host" "$dir"
  assert_output "$installed/commands"
}
