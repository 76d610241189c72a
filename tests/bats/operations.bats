#!/usr/bin/env bats
# image:history, image:rollback, image:report, the lifecycle triggers, installation with
# plugin:install, and the git:from-image fallback, on a sandbox Dokku host.

load test_helper

app_per_test app

# own_host: a host of this test alone, with an app $APP, for a test that lists every app of
# the host or removes the plugin from it.
own_host() {
  sandbox_setup
  new_app "$APP"
}

# A commit of the deploy branch not made by the plugin, as a `git push` makes it.
push_commit() {
  local repo="$DOKKU_ROOT/$APP" branch blob tree parent commit
  branch="$(app_deploy_branch "$APP")"
  blob="$(echo "FROM $1" | git --git-dir="$repo" hash-object -w --stdin)"
  tree="$(printf '100644 blob %s\tDockerfile\n' "$blob" | git --git-dir="$repo" mktree)"
  parent="$(git --git-dir="$repo" rev-parse "refs/heads/$branch")"
  commit="$(GIT_AUTHOR_NAME=Pusher GIT_AUTHOR_EMAIL=pusher@example.com \
    GIT_COMMITTER_NAME=Pusher GIT_COMMITTER_EMAIL=pusher@example.com \
    git --git-dir="$repo" commit-tree "$tree" -p "$parent" -m "Fix the homepage")"
  git --git-dir="$repo" update-ref "refs/heads/$branch" "$commit" "$parent"
  echo "$commit"
}

# ---------------------------------------------------------------------------------------
# image:history

@test "history of an app without deploys: an info line, or [] as json" {
  run dokku image:history "$APP"
  assert_success
  assert_output "-----> $APP has no deploys yet on its deploy branch master"
  run dokku image:history "$APP" --format json
  assert_success
  assert_output "[]"
  run dokku image:history no-such-app
  assert_failure 20
  assert_output " !     App no-such-app does not exist"
  run dokku image:history "$APP" --format yaml
  assert_failure 1
  assert_output --partial "usage: dokku image:history"
}

@test "history lists image deploys and a git push newest first, with the live one marked" {
  local tag1 tag2 id1 id2 c1 c2 c3 short1 short3
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  id1="$(build_busybox_image "$tag1")"
  id2="$(build_busybox_image "$tag2")"
  c1="$(deploy "$APP" "$tag1")"
  c2="$(deploy "$APP" "$tag2" "Jane Doe" "jane@example.com")"
  c3="$(push_commit "$tag2")"
  short1="${id1#sha256:}"
  short3="${c3:0:12}"

  run dokku image:history "$APP"
  assert_success
  assert_line --index 0 "=====> $APP deploys, newest first"
  assert_line --index 1 --regexp '^COMMIT +DATE +AUTHOR +IMAGE +IMAGE ID +LIVE$'
  assert_line --index 2 --regexp "^$short3  [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(Z|[+-][0-9:]{5}) +Pusher <pusher@example.com> +\(git push\) +- +\*$"
  assert_line --index 3 --regexp "^${c2:0:12}  .* +Jane Doe <jane@example.com> +$tag2 +${id2:7:12}$"
  assert_line --index 4 --regexp "^${c1:0:12}  .* +Dokku <automated@dokku.sh> +$tag1 +${short1:0:12}$"
  assert_equal "${#lines[@]}" 5

  run dokku --app "$APP" image:history --format=json
  assert_success
  assert_equal "$(jq length <<<"$output")" 3
  assert_equal "$(jq -r '.[0].commit' <<<"$output")" "$c3"
  assert_equal "$(jq -r '.[0].live' <<<"$output")" true
  assert_equal "$(jq -r '.[0].image_deploy' <<<"$output")" false
  assert_equal "$(jq -r '.[0].image' <<<"$output")" null
  assert_equal "$(jq -r '.[0].image_id' <<<"$output")" null
  assert_equal "$(jq -r '.[0].author_name' <<<"$output")" Pusher
  assert_equal "$(jq -r '.[1].commit' <<<"$output")" "$c2"
  assert_equal "$(jq -r '.[1].image' <<<"$output")" "$tag2"
  assert_equal "$(jq -r '.[1].image_id' <<<"$output")" "$id2"
  assert_equal "$(jq -r '.[1].command' <<<"$output")" "image:from"
  assert_equal "$(jq -r '.[1].author_email' <<<"$output")" "jane@example.com"
  assert_equal "$(jq -r '.[1].live' <<<"$output")" false
  assert_equal "$(jq -r '.[1].date' <<<"$output")" "$(repo_git show -s --format=%cI "$c2")"
  assert_equal "$(jq -r '.[2].commit' <<<"$output")" "$c1"
  assert_equal "$(jq -r '.[2].image_id' <<<"$output")" "$id1"
  assert_equal "$(jq -r '.[2].image_deploy' <<<"$output")" true
}

# ---------------------------------------------------------------------------------------
# image:rollback

@test "rollback redeploys the previous image with its whole tree, as a new commit" {
  local tag1 tag2 id1 c1 c2 head build
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  id1="$(build_busybox_image "$tag1" --content one)"
  build_busybox_image "$tag2" --content two >/dev/null
  build="$BATS_TEST_TMPDIR/build"
  mkdir -p "$build"
  echo extra >"$build/extra.txt"
  c1="$(deploy "$APP" --build-dir "$build" "$tag1")"
  c2="$(deploy "$APP" "$tag2")"
  run repo_git cat-file -e "$c2:extra.txt"
  assert_failure
  run app_http_get "$APP"
  assert_output two

  run dokku image:rollback "$APP"
  assert_success
  assert_line "-----> Rolling $APP back to $tag1 (${id1:7:12}) of deploy ${c1:0:12}"
  head="$(app_branch_rev "$APP")"
  assert_not_equal "$head" "$c1"
  assert_equal "$(repo_git rev-parse "$head^")" "$c2"
  assert_equal "$(repo_git rev-parse "$head^{tree}")" "$(repo_git rev-parse "$c1^{tree}")"
  assert_equal "$(repo_git show "$head:extra.txt")" extra
  assert_equal "$(repo_git show -s --format=%s "$head")" "Roll back to $tag1 (deploy ${c1:0:12})"
  assert_equal "$(repo_git show -s --format='%an <%ae>' "$head")" "Dokku <automated@dokku.sh>"
  assert_equal "$(trailer "$head" Image-Command)" image:rollback
  assert_equal "$(trailer "$head" Image-Id)" "$id1"
  assert_equal "$(commit_count)" 3
  assert_equal "$(app_property git "$APP" source-image)" "$tag1"
  assert_equal "$(app_property apps "$APP" deploy-source-metadata)" "$tag1"
  assert_equal "$(repo_git symbolic-ref HEAD)" refs/heads/master
  run app_http_get "$APP"
  assert_output one
  run app_triggers receive-app
  assert_line --index 2 "receive-app $APP $head"

  # Rolling back again goes to the deploy before the live one: tag2.
  run dokku image:rollback "$APP" "" "Jane" "jane@example.com"
  assert_success
  head="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git rev-parse "$head^{tree}")" "$(repo_git rev-parse "$c2^{tree}")"
  assert_equal "$(repo_git show -s --format='%an <%ae>' "$head")" "Jane <jane@example.com>"
  run app_http_get "$APP"
  assert_output two
}

@test "rollback to a named commit; pushes, foreign commits and the live tree are refused or no-ops" {
  local tag1 tag2 c1 c2 push other head
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  build_busybox_image "$tag1" --content one >/dev/null
  build_busybox_image "$tag2" --content two >/dev/null
  c1="$(deploy "$APP" "$tag1")"
  c2="$(deploy "$APP" "$tag2")"
  push="$(push_commit "$tag2")"
  other="$(app_commit "$APP" --no-update "Dockerfile=FROM $tag1")"

  run dokku image:rollback "$APP" "${push:0:7}"
  assert_failure 1
  assert_output " !     commit ${push:0:12} of $APP is not an image deploy (it was not made by image:*); roll back to an image deploy (see image:history $APP)"
  run dokku image:rollback "$APP" "$other"
  assert_failure 1
  assert_output " !     $other (commit ${other:0:12}) is not on the first-parent history of $APP's deploy branch master"
  run dokku image:rollback "$APP" no-such-rev
  assert_failure 1
  assert_output " !     no-such-rev names no commit in the repo of $APP"
  run dokku image:rollback "$APP" a b c d
  assert_failure 1
  assert_output --partial "usage: dokku image:rollback"
  run dokku image:rollback no-such-app
  assert_failure 20
  assert_untouched "$APP" "$push" "$tag2"
  assert_equal "$(commit_count)" 3

  run dokku image:rollback "$APP" master~2
  assert_success
  head="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git rev-parse "$head^")" "$push"
  assert_equal "$(repo_git rev-parse "$head^{tree}")" "$(repo_git rev-parse "$c1^{tree}")"
  run app_http_get "$APP"
  assert_output one

  # The live tree again: nothing to do, nothing fired.
  run dokku image:rollback "$APP" "$c1"
  assert_success
  assert_output "-----> No changes detected, skipping deploy: $APP already runs the tree of deploy ${c1:0:12}"
  assert_untouched "$APP" "$head" "$tag1"
  assert_equal "$(app_triggers receive-app | wc -l)" 3
  : "$c2"
}

@test "rollback with a push live goes to the latest image deploy; with one deploy there is nothing" {
  local tag1 tag2 c1 c2 push head
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  build_busybox_image "$tag1" --content one >/dev/null
  build_busybox_image "$tag2" --content two >/dev/null
  c1="$(deploy "$APP" "$tag1")"
  run dokku image:rollback "$APP"
  assert_failure 1
  assert_output " !     $APP has no image deploy before its live commit ${c1:0:12}; nothing to roll back to"
  assert_untouched "$APP" "$c1" "$tag1"

  c2="$(deploy "$APP" "$tag2")"
  push="$(push_commit "$tag1")"
  run dokku image:rollback "$APP"
  assert_success
  head="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git rev-parse "$head^")" "$push"
  assert_equal "$(repo_git rev-parse "$head^{tree}")" "$(repo_git rev-parse "$c2^{tree}")"
  run app_http_get "$APP"
  assert_output two
}

@test "rollback after a failed deploy, and a failed rollback changes nothing, tag included" {
  local tag1 tag2 tag3 id1 id1b keep c2 head
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  tag3="$(unique_name img):v3"
  id1="$(build_busybox_image "$tag1" --content one)"
  build_busybox_image "$tag2" --content two >/dev/null
  build_busybox_image "$tag3" --content three >/dev/null
  deploy "$APP" "$tag1" >/dev/null
  c2="$(deploy "$APP" "$tag2")"

  sandbox_fail_receive_app "$APP" on
  run dokku image:from "$APP" "$tag3"
  assert_failure 1
  assert_untouched "$APP" "$c2" "$tag2"

  # tag1 now names another image; the recorded one survives under another tag.
  keep="$(unique_name keep):v1"
  docker tag "$tag1" "$keep"
  id1b="$(build_busybox_image "$tag1" --content one-b)"
  run dokku image:rollback "$APP"
  assert_failure 1
  assert_output --partial "receive-app exited with status 1"
  assert_untouched "$APP" "$c2" "$tag2"
  assert_equal "$(image_id "$tag1")" "$id1b"
  assert_equal "$(commit_count)" 2
  run app_http_get "$APP"
  assert_output two

  sandbox_fail_receive_app "$APP" off
  run dokku image:rollback "$APP"
  assert_success
  assert_line "-----> Pointing $tag1 at ${id1:7:12} again (it names ${id1b:7:12} now)"
  assert_equal "$(image_id "$tag1")" "$id1"
  head="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git rev-parse "$head^")" "$c2"
  assert_equal "$(app_property git "$APP" source-image)" "$tag1"
  run app_http_get "$APP"
  assert_output one
}

@test "rollback to an image removed from the host pulls it back from its registry" {
  local ref tag2 id1 c1 c2 head
  registry_start
  ref="$REGISTRY_HOST/$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  id1="$(build_busybox_image "$ref" --content one)"
  docker push -q "$ref" >/dev/null
  build_busybox_image "$tag2" --content two >/dev/null
  c1="$(deploy "$APP" "$ref")"
  c2="$(deploy "$APP" "$tag2")"
  docker image rm "$ref" >/dev/null
  run docker image inspect "$id1"
  assert_failure

  run dokku image:rollback "$APP"
  assert_success
  assert_line "-----> Pulling $ref: image sha256:${id1:7:12} of deploy ${c1:0:12} is no longer on the host"
  assert_equal "$(image_id "$ref")" "$id1"
  head="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git rev-parse "$head^")" "$c2"
  run app_http_get "$APP"
  assert_output one
}

@test "rollback to a removed image fails with nothing changed when the registry has other content or none" {
  local ref gone tag2 id1 id1b c1 c2
  registry_start
  ref="$REGISTRY_HOST/$(unique_name img):v1"
  gone="$REGISTRY_HOST/$(unique_name never-pushed):v1"
  tag2="$(unique_name img):v2"
  id1="$(build_busybox_image "$ref" --content one)"
  build_busybox_image "$gone" --content gone >/dev/null
  build_busybox_image "$tag2" --content two >/dev/null
  c1="$(deploy "$APP" "$ref")"
  deploy "$APP" "$tag2" >/dev/null
  c2="$(deploy "$APP" "$gone")"
  deploy "$APP" "$tag2" >/dev/null
  local head
  head="$(app_branch_rev "$APP")"

  # Not pullable at all: the registry never had it.
  docker image rm "$gone" >/dev/null
  run dokku image:rollback "$APP" "$c2"
  assert_failure 1
  assert_line --partial " !     image sha256:"
  assert_output --partial "of deploy ${c2:0:12} is no longer on the host and cannot be pulled (cannot pull image $gone:"
  assert_output --partial "; cannot roll back"
  assert_untouched "$APP" "$head" "$tag2"
  assert_equal "$(commit_count)" 4

  # Pullable, but the reference now names another image.
  docker image rm "$ref" >/dev/null
  run docker image inspect "$id1"
  assert_failure
  id1b="$(build_busybox_image "$ref" --content one-b)"
  docker push -q "$ref" >/dev/null
  docker image rm "$ref" >/dev/null
  run dokku image:rollback "$APP" "$c1"
  assert_failure 1
  assert_line " !     image sha256:${id1:7:12} of deploy ${c1:0:12} is no longer on the host and $ref now names sha256:${id1b:7:12}; cannot roll back"
  assert_untouched "$APP" "$head" "$tag2"
  assert_equal "$(commit_count)" 4
  assert_equal "$(app_triggers pre-image-deploy | wc -l)" 4
  run app_http_get "$APP"
  assert_output two
}

# ---------------------------------------------------------------------------------------
# image:report and the report trigger

# report_line LABEL VALUE: a line of a report block as core's ReportSingleApp prints it (Dokku
# 0.38, plugins/common): 7 spaces, the label padded to the longest flag of the report or 31
# characters, whichever is more, and the value right after it.
report_line() {
  printf '       %-31s%s\n' "$1" "$2"
}

@test "report: Dokku's block for one app, each key alone, JSON, every app, and the report trigger" {
  local tag1 tag2 id2 c2 date other
  own_host
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  build_busybox_image "$tag1" >/dev/null
  id2="$(build_busybox_image "$tag2")"
  deploy "$APP" "$tag1" >/dev/null
  c2="$(deploy "$APP" "$tag2")"
  date="$(repo_git show -s --format=%cI "$c2")"

  run dokku image:report "$APP"
  assert_success
  # sorted by flag, as core sorts them; the retained images' size is docker's figure
  assert_equal "${#lines[@]}" 10
  assert_equal "$(sed 8d <<<"$output")" "$(
    printf '=====> %s image information\n' "$APP"
    report_line "Image computed keep images:" 5
    report_line "Image deploy commit:" "$c2"
    report_line "Image deployed at:" "$date"
    report_line "Image deploys:" 2
    report_line "Image global keep images:" ""
    report_line "Image keep images:" ""
    report_line "Image source id:" "$id2"
    report_line "Image source image:" "$tag2"
  )"
  assert_regex "${lines[7]}" "^$(report_line "Image retained size:" "")[0-9.]+ (KiB|MiB)\$"
  local block="$output"
  run dokku plugin:trigger report "$APP"
  assert_success
  assert_equal "$output" "$block"
  # --quiet drops the header only, as core's LogInfo2Quiet does
  run dokku --quiet image:report "$APP"
  assert_success
  assert_equal "$output" "$(sed 1d <<<"$block")"

  run dokku image:report "$APP" --format json
  assert_success
  assert_equal "${#lines[@]}" 1
  assert_equal "$(jq -c 'keys' <<<"$output")" '["computed-keep-images","deploy-commit","deployed-at","deploys","global-keep-images","keep-images","retained-size","source-id","source-image"]'
  assert_equal "$(jq -c 'del(."retained-size")' <<<"$output")" "$(jq -cn --arg c "$c2" --arg d "$date" --arg id "$id2" --arg img "$tag2" \
    '{"computed-keep-images":"5","deploy-commit":$c,"deployed-at":$d,"deploys":"2","global-keep-images":"","keep-images":"","source-id":$id,"source-image":$img}')"

  run dokku image:report "$APP" --image-source-image
  assert_output "$tag2"
  run dokku image:report "$APP" --image-source-id
  assert_output "$id2"
  run dokku image:report "$APP" --image-deployed-at
  assert_output "$date"
  run dokku image:report "$APP" --image-deploy-commit
  assert_output "$c2"
  run dokku --app "$APP" image:report --image-deploys
  assert_output 2
  run dokku image:report no-such-app
  assert_failure 20

  # Every app: a block each, or one JSON object a line, as core prints them.
  other="$(unique_name app)"
  dokku apps:create "$other" >/dev/null
  run dokku image:report --image-deploys
  assert_success
  assert_equal "$output" "$(printf '%s\n' 2 0 | if [[ "$APP" < "$other" ]]; then cat; else tac; fi)"
  run dokku image:report
  assert_success
  assert_line "=====> $APP image information"
  assert_line "=====> $other image information"
  assert_line "$(report_line "Image deploys:" 0)"
  run dokku image:report --format json
  assert_success
  assert_equal "$(jq -r .deploys <<<"$output")" "$(printf '%s\n' 2 0 | if [[ "$APP" < "$other" ]]; then cat; else tac; fi)"

  local push
  push="$(push_commit "$tag1")"
  run dokku image:report "$APP" --image-deploy-commit
  assert_output "$push"
  run dokku image:report "$APP" --image-source-id
  assert_output ""
  run dokku image:report "$APP" --image-source-image
  assert_output "$tag2"
  run dokku image:report "$APP" --image-deploys
  assert_output 2
}

@test "report: --global has the global and computed keys; flags compose; bad ones are refused as core does" {
  own_host
  run dokku image:report --global
  assert_success
  assert_equal "$output" "$(
    echo "=====> --global image information"
    report_line "Image computed keep images:" 5
    report_line "Image global keep images:" ""
  )"
  dokku image:set --global keep-images 2 >/dev/null
  dokku image:set "$APP" keep-images 7 >/dev/null
  run dokku image:report --global --format json
  assert_success
  assert_output '{"computed-keep-images":"2","global-keep-images":"2"}'
  run dokku image:report --format json --global --image-global-keep-images
  assert_failure 1
  assert_output " !     --format flag cannot be specified when specifying an info flag"
  run dokku image:report --image-global-keep-images --global
  assert_output 2
  run dokku image:report "$APP" --format json
  assert_equal "$(jq -c '[."keep-images", ."global-keep-images", ."computed-keep-images"]' <<<"$output")" '["7","2","7"]'

  run dokku image:report --global --image-keep-images
  assert_failure 1
  assert_output " !     Invalid flag passed, valid flags: --image-computed-keep-images, --image-global-keep-images"
  run dokku image:report "$APP" --image-nope
  assert_failure 1
  assert_output " !     Invalid flag passed, valid flags: --image-computed-keep-images, --image-deploy-commit, --image-deployed-at, --image-deploys, --image-global-keep-images, --image-keep-images, --image-retained-size, --image-source-id, --image-source-image"
  run dokku image:report "$APP" --format yaml
  assert_failure 1
  assert_output ' !     Format must be "stdout" or "json": "yaml"'
  # core's commands exit 0 and print nothing here; the message is the one core makes for it
  run dokku image:report "$APP" --image-deploys --image-source-id
  assert_failure 1
  assert_output " !     image:report command allows only a single flag"
  run dokku image:report no-such-app --format yaml
  assert_failure 20
}

# ---------------------------------------------------------------------------------------
# Lifecycle triggers

@test "post-delete removes the app's state; uninstall removes the plugin's, only for image" {
  local tag
  own_host
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  deploy "$APP" "$tag" >/dev/null
  assert_path -d "$DOKKU_LIB_ROOT/data/image/$APP"

  run dokku --force apps:destroy "$APP"
  assert_success
  refute_path -e "$DOKKU_LIB_ROOT/data/image/$APP"
  assert_path -d "$DOKKU_LIB_ROOT/data/image"
  # A name that is no app never becomes a path.
  run "$PLUGIN_AVAILABLE_PATH/image/post-delete" ..
  assert_success
  assert_path -d "$DOKKU_LIB_ROOT/data/image"

  run dokku plugin:trigger uninstall some-other-plugin
  assert_success
  assert_path -d "$DOKKU_LIB_ROOT/data/image"
  run dokku plugin:uninstall image
  assert_success
  assert_output "-----> Plugin image uninstalled"
  refute_path -e "$DOKKU_LIB_ROOT/data/image"
  refute_path -e "$PLUGIN_AVAILABLE_PATH/image"
  refute_path -e "$PLUGIN_ENABLED_PATH/image"
}

@test "post-app-clone-setup and post-app-rename-setup drop a pending ref copied from the old app" {
  local tag1 tag2 c1 pending clone renamed
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  build_busybox_image "$tag1" >/dev/null
  build_busybox_image "$tag2" >/dev/null
  c1="$(deploy "$APP" "$tag1")"
  # A deploy of tag2 in flight: its commit waits under the pending ref, source-image is set.
  pending="$(app_commit "$APP" --no-update "Dockerfile=FROM $tag2")"
  repo_git update-ref refs/image/pending "$pending"
  set_app_property git "$APP" source-image "$tag2"

  for trigger in post-app-clone-setup post-app-rename-setup; do
    renamed="$(unique_name copy)"
    # What Dokku does before firing the trigger: copy the app folder and the properties.
    cp -a "$DOKKU_ROOT/$APP" "$DOKKU_ROOT/$renamed"
    mkdir -p "$DOKKU_LIB_ROOT/data/apps/$renamed"
    set_app_property git "$renamed" source-image "$tag2"
    run dokku plugin:trigger "$trigger" "$APP" "$renamed"
    assert_success
    run app_git "$renamed" rev-parse --verify --quiet refs/image/pending
    assert_failure
    assert_equal "$(app_branch_rev "$renamed")" "$c1"
    assert_equal "$(app_property git "$renamed" source-image)" "$tag1"
  done
  # The old app's own deploy is none of the triggers' business.
  assert_equal "$(repo_git rev-parse refs/image/pending)" "$pending"

  # Without a pending ref the triggers change nothing and say nothing.
  clone="$(unique_name clone)"
  repo_git update-ref -d refs/image/pending
  cp -a "$DOKKU_ROOT/$APP" "$DOKKU_ROOT/$clone"
  set_app_property git "$clone" source-image "$tag2"
  run dokku plugin:trigger post-app-clone-setup "$APP" "$clone"
  assert_success
  assert_output ""
  assert_equal "$(app_property git "$clone" source-image)" "$tag2"
}

# ---------------------------------------------------------------------------------------
# Installation

# bare_host: a host of this test alone whose image plugin is a stub, removed so that
# plugin:install can put the real one.
bare_host() {
  local stub="$BATS_TEST_TMPDIR/stub"
  mkdir -p "$stub/image"
  printf '[plugin]\ndescription = "stub"\nversion = "0.0.0"\n[plugin.config]\n' >"$stub/image/plugin.toml"
  tar -czf "$BATS_TEST_TMPDIR/stub.tar.gz" -C "$stub" image
  sandbox_setup "$BATS_TEST_TMPDIR/stub.tar.gz"
  dokku plugin:uninstall image >/dev/null
}

# assert_installed: enabled like Dokku does, commands in `dokku help`, one `commands` file.
assert_installed() {
  local dir="$PLUGIN_AVAILABLE_PATH/image"
  assert_equal "$(readlink "$PLUGIN_ENABLED_PATH/image")" "$PLUGIN_PATH/available/image"
  assert_path -x "$dir/bin/dokku-image"
  assert_equal "$(find -L "$dir" -name commands)" "$dir/commands"
  run dokku help
  assert_success
  local command
  for command in from history rollback report help; do
    assert_line --regexp "^    image:$command( [^,]*)?, [A-Z].*$"
  done
  run dokku image:help
  assert_success
  assert_line --index 0 "Usage: dokku image[:COMMAND]"
}

@test "plugin:install of the release tarball; the install trigger is idempotent" {
  local sums
  bare_host
  run dokku plugin:install "file://$PLUGIN_TARBALL" --name image
  assert_success
  assert_line "-----> Plugin image enabled"
  assert_installed
  sums="$(cd "$PLUGIN_AVAILABLE_PATH/image" && find -L . -type f -exec sha256sum {} + | sort)"

  run dokku plugin:install
  assert_success
  run dokku plugin:trigger install
  assert_success
  refute_output --partial "Building"
  assert_equal "$(cd "$PLUGIN_AVAILABLE_PATH/image" && find -L . -type f -exec sha256sum {} + | sort)" "$sums"
  assert_installed

  dokku apps:create "$APP" >/dev/null
  run dokku image:report "$APP" --image-deploys
  assert_success
  assert_output 0
}

@test "plugin:install from a git repo builds the binaries with cargo" {
  local src="$BATS_TEST_TMPDIR/src" file hooks
  bare_host
  # The plugin's working tree (what the next commit will hold), as a git repo of its own.
  mkdir -p "$src"
  while IFS= read -r -d '' file; do
    [[ -e "$REPO_ROOT/$file" || -L "$REPO_ROOT/$file" ]] || continue
    mkdir -p "$src/$(dirname "$file")"
    cp -a "$REPO_ROOT/$file" "$src/$file"
  done < <(git -C "$REPO_ROOT" ls-files -z --cached --others --exclude-standard)
  git -C "$src" init -q
  git -C "$src" add -A
  git -C "$src" -c user.name=Test -c user.email=test@example.com commit -qm "plugin under test"
  refute_path -e "$src/bin"

  # The wrapper sets HOME to the dokku user's; cargo and rustup stay root's, as with sudo.
  # The suite's own target dir holds this tree built by `make package`. A post-checkout hook
  # gives the files of the plugin's clone the times of the files they were cloned from, so
  # cargo, as on a host whose build cache is warm, rebuilds only what changed since that
  # build (nothing, or the crate); a file missing from the clone would still fail the build.
  hooks="$BATS_TEST_TMPDIR/hooks"
  mkdir -p "$hooks"
  printf '%s\n' '#!/usr/bin/env bash' \
    'git ls-files -z | while IFS= read -r -d "" file; do' \
    "  [[ ! -e $(printf '%q' "$src")/\$file ]] || touch -h -r $(printf '%q' "$src")/\"\$file\" \"\$file\"" \
    'done' >"$hooks/post-checkout"
  chmod 0755 "$hooks/post-checkout"
  run env CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
    CARGO_TARGET_DIR="$REPO_ROOT/target" \
    GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.hooksPath GIT_CONFIG_VALUE_0="$hooks" \
    dokku plugin:install "file://$src" --name image
  assert_success
  assert_line "-----> Building the image plugin (cargo build --release, static)"
  assert_installed
  run dokku plugin:trigger install
  assert_success
  refute_output --partial "Building"

  local tag
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content built >/dev/null
  dokku apps:create "$APP" >/dev/null
  run dokku image:from "$APP" "$tag"
  assert_success
  run app_http_get "$APP"
  assert_output built
}

# ---------------------------------------------------------------------------------------
# git:from-image on hosts whose core git plugin lacks it

@test "git:from-image is answered by the plugin only when core git has no such subcommand" {
  local tag head
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content core-less >/dev/null
  refute_path -e "$PLUGIN_ENABLED_PATH/git/subcommands/from-image"
  run dokku git:from-image "$APP" "$tag" "Jane" "jane@example.com"
  assert_success
  head="$(app_branch_rev "$APP")"
  assert_equal "$(trailer "$head" Image-Command)" git:from-image
  assert_equal "$(repo_git show -s --format='%an <%ae>' "$head")" "Jane <jane@example.com>"
  assert_equal "$(app_property git "$APP" source-image)" "$tag"
  run app_http_get "$APP"
  assert_output core-less
  run dokku git:from-image
  assert_failure 1
  assert_output --partial "usage: dokku git:from-image"
  run dokku git:no-such-thing "$APP"
  assert_failure 1
  assert_output --partial "is not a dokku command"

  sandbox_core_subcommand git from-image '#!/usr/bin/env bash
echo "core from-image $*"'
  run dokku git:from-image "$APP" "$tag"
  assert_success
  assert_output "core from-image git:from-image $APP $tag"
  run "$PLUGIN_AVAILABLE_PATH/image/commands" git:from-image "$APP" "$tag"
  assert_failure 10
  assert_equal "$(app_branch_rev "$APP")" "$head"
}

@test "git:load-image is answered by the plugin only when core git has no such subcommand" {
  local tag id head
  tag="$(unique_name img):v1"
  id="$(build_busybox_image "$tag" --content loaded)"
  docker image save "$tag" >"$BATS_TEST_TMPDIR/image.tar"
  run dokku git:load-image "$APP" "$tag" <"$BATS_TEST_TMPDIR/image.tar"
  assert_success
  head="$(app_branch_rev "$APP")"
  assert_equal "$(trailer "$head" Image-Command)" git:load-image
  assert_equal "$(trailer "$head" Image-Id)" "$id"
  run app_http_get "$APP"
  assert_output loaded
  run dokku git:load-image "$APP" "$tag@sha256:$(printf '0%.0s' {1..64})" </dev/null
  assert_failure 1
  assert_output --partial "usage: dokku git:load-image"

  sandbox_core_subcommand git load-image '#!/usr/bin/env bash
echo "core load-image $*"'
  run dokku git:load-image "$APP" "$tag" <"$BATS_TEST_TMPDIR/image.tar"
  assert_success
  assert_output "core load-image git:load-image $APP $tag"
  assert_equal "$(app_branch_rev "$APP")" "$head"
}
