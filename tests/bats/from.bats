#!/usr/bin/env bats
# image:from end to end, on one sandbox Dokku host shared by the whole file (every test
# uses apps of its own; the "first deploy" tests only read the fixture deploy of setup_file,
# which no test changes). The state is read where Dokku keeps it: the app's bare repo
# ($DOKKU_ROOT/APP), property files, the docker engine, the triggers log and HTTP.
# shellcheck disable=SC2016 # scripts are single-quoted on purpose
# shellcheck disable=SC2154 # stderr and stderr_lines are set by run_split and finish_bg (test_helper.bash)

load test_helper

file_setup() {
  # A plain registry for the tests that pull (--pull, --force, digests, missing images).
  registry_start
  export FILE_REGISTRY="$REGISTRY_HOST"

  # The fixture: one first deploy of a fresh app, only read by the "first deploy" tests.
  # The image is given without a tag, so "as written" differs from the normalised form.
  FIRST_APP="$(unique_name first)"
  FIRST_IMAGE="$(unique_name fixture)"
  FIRST_ID="$(build_busybox_image "$FIRST_IMAGE" --content "first content")"
  dokku apps:create "$FIRST_APP" >/dev/null
  if ! dokku image:from "$FIRST_APP" "$FIRST_IMAGE" >"$BATS_FILE_TMPDIR/first.out" 2>&1; then
    cat "$BATS_FILE_TMPDIR/first.out" >&2
    fail "the fixture deploy failed"
    return 1
  fi
  FIRST_REV="$(app_branch_rev "$FIRST_APP")"
  export FIRST_APP FIRST_IMAGE FIRST_ID FIRST_REV
}


test_setup() {
  APP="$(unique_name app)"
}

test_cleanup() {
  rm -f "$DOKKU_LIB_ROOT/config/git/--global/deploy-branch"
}

# ---------------------------------------------------------------------------------------
# Helpers of this file

image_label() {
  docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1"
}

# The REV of the latest `receive-app APP REV` call, and how many calls APP had.
last_receive_rev() {
  app_triggers receive-app "$1" | awk '{ rev = $3 } END { print rev }'
}

receive_count() {
  app_triggers receive-app "$1" | wc -l
}

# The three lines the plugin appends to the Dockerfile.
dockerfile_tail() {
  printf 'FROM %s\nLABEL com.dokku.docker-image-labeler/alternate-tags=[\\"%s\\"]\nLABEL com.dokku.image-source-id=%s' \
    "$1" "$1" "$2"
}

# authors APP REV: "author <email>|committer <email>" of commit REV of APP.
authors() {
  app_git "$1" show -s --format='%an <%ae>|%cn <%ce>' "$2"
}

# push_to_registry REF: pushes REF (quietly).
push_to_registry() {
  docker image push "$1" >/dev/null
}

# veto_plugin APP: an enabled third-party plugin whose pre-image-deploy trigger refuses
# deploys of APP (and records its arguments in $BATS_TEST_TMPDIR/veto-args).
veto_plugin() {
  local app="$1" args
  printf -v args '%q' "$BATS_TEST_TMPDIR/veto-args"
  sandbox_plugin "$(unique_name veto)" "pre-image-deploy=#!/usr/bin/env bash
printf '%s\\n' \"\$@\" >$args
if [[ \"\$1\" == $app ]]; then
  echo ' !     deploys of $app are frozen' >&2
  exit 1
fi"
}

# ---------------------------------------------------------------------------------------
# Validation: nothing happens before the arguments are right

@test "a missing app fails with Dokku's message and exit 20, an invalid app name too" {
  run dokku image:from no-such-app some/image:1
  assert_failure 20
  assert_output " !     App no-such-app does not exist"
  refute_path -e "$DOKKU_ROOT/no-such-app"

  run dokku image:from Bad_Name some/image:1
  assert_failure 20
  assert_output " !     App Bad_Name does not exist"
}

@test "a missing IMAGE is a usage error with exit 1" {
  new_app "$APP"
  run dokku image:from "$APP"
  assert_failure 1
  assert_output --partial "IMAGE is required"
  assert_output --partial "usage: dokku image:from [--build-dir DIR] [--pull] [--force] APP IMAGE [USER_NAME [USER_EMAIL]]"
  run dokku image:from "$APP" ""
  assert_failure 1
  assert_output --partial "usage: dokku image:from"
  assert_untouched "$APP" "" ""
}

@test "an invalid image reference fails with exit 1 and one clear line" {
  new_app "$APP"
  run dokku image:from "$APP" "Not/Valid:Image"
  assert_failure 1
  assert_equal "${#lines[@]}" 1
  assert_output --regexp '^ !     invalid image reference "Not/Valid:Image": .+$'
  run dokku image:from "$APP" "repo:bad tag"
  assert_failure 1
  assert_equal "${#lines[@]}" 1
  assert_output --regexp '^ !     invalid image reference "repo:bad tag": .+$'
  assert_untouched "$APP" "" ""
  assert_equal "$(receive_count "$APP")" 0
}

@test "a --build-dir that is no readable folder, an unknown flag or an extra argument fail with exit 1" {
  new_app "$APP"
  touch "$BATS_TEST_TMPDIR/a-file"
  run dokku image:from "$APP" some/image:1 --build-dir "$BATS_TEST_TMPDIR/missing"
  assert_failure 1
  assert_output --regexp "^ !     --build-dir $BATS_TEST_TMPDIR/missing: .+"
  run dokku image:from "$APP" some/image:1 "--build-dir=$BATS_TEST_TMPDIR/a-file"
  assert_failure 1
  assert_output " !     --build-dir $BATS_TEST_TMPDIR/a-file is not a directory"
  run dokku image:from "$APP" some/image:1 --build-dir
  assert_failure 1
  assert_output " !     --build-dir needs a folder; usage: dokku image:from [--build-dir DIR] [--pull] [--force] APP IMAGE [USER_NAME [USER_EMAIL]]"
  # A forgotten folder: the next flag is not taken as the folder's name.
  run dokku image:from "$APP" some/image:1 --build-dir --force
  assert_failure 1
  assert_output --partial " !     --build-dir needs a folder, not \"--force\"; usage: dokku image:from"
  run dokku image:from "$APP" some/image:1 --bogus
  assert_failure 1
  assert_output --partial " !     unknown flag \"--bogus\"; usage: dokku image:from"
  run dokku image:from "$APP" some/image:1 name email@example.com extra
  assert_failure 1
  assert_output --partial " !     unexpected argument \"extra\"; usage: dokku image:from"
  run dokku image:from "$APP" some/image:1 -n
  assert_failure 1
  assert_output --partial "usage: dokku image:from"
  assert_untouched "$APP" "" ""
  assert_equal "$(app_triggers pre-image-deploy)" ""
}

@test "an image that no registry has fails with 'cannot pull image' and changes nothing" {
  new_app "$APP"
  run dokku image:from "$APP" 127.0.0.1:1/nope:1
  assert_failure 1
  assert_line "-----> Pulling 127.0.0.1:1/nope:1"
  assert_line --regexp "^ !     cannot pull image 127\.0\.0\.1:1/nope:1: .+"
  run dokku image:from "$APP" "$FILE_REGISTRY/nope:1"
  assert_failure 1
  assert_output --partial " !     cannot pull image $FILE_REGISTRY/nope:1: "
  assert_equal "$(repo_git for-each-ref)" ""
  assert_untouched "$APP" "" ""
  assert_equal "$(receive_count "$APP")" 0
  run dokku apps:report "$APP" --app-deploy-source
  assert_output ""
}

# ---------------------------------------------------------------------------------------
# The first deploy (the fixture of setup_file)

@test "first deploy: prints its progress and ends with the Deployed line" {
  run cat "$BATS_FILE_TMPDIR/first.out"
  refute_line --partial "Pulling"
  assert_line "-----> Deployed $FIRST_IMAGE (${FIRST_ID:7:12}) to $FIRST_APP as commit ${FIRST_REV:0:12}"
}

@test "first deploy: master holds one commit as a loose ref and HEAD points at it" {
  assert_equal "$(app_git "$FIRST_APP" symbolic-ref HEAD)" refs/heads/master
  assert_path -f "$DOKKU_ROOT/$FIRST_APP/refs/heads/master"
  assert_equal "$(tr -d '[:space:]' <"$DOKKU_ROOT/$FIRST_APP/refs/heads/master")" "$FIRST_REV"
  assert_equal "$(app_git "$FIRST_APP" rev-list --count refs/heads/master)" 1
  assert_equal "$(app_git "$FIRST_APP" for-each-ref --format='%(refname)')" refs/heads/master
}

@test "first deploy: the commit's only file is a Dockerfile FROM the image with both labels" {
  assert_equal "$(app_git "$FIRST_APP" ls-tree --name-only -r "$FIRST_REV")" Dockerfile
  assert_equal "$(app_git "$FIRST_APP" show "$FIRST_REV:Dockerfile")" "$(dockerfile_tail "$FIRST_IMAGE" "$FIRST_ID")"
}

@test "first deploy: the commit message names the image and its full ID in trailers, by Dokku" {
  assert_equal "$(app_git "$FIRST_APP" show -s --format=%s "$FIRST_REV")" "Deploy $FIRST_IMAGE"
  assert_equal "$(trailer "$FIRST_REV" Image-Source "$FIRST_APP")" "$FIRST_IMAGE"
  assert_equal "$(trailer "$FIRST_REV" Image-Id "$FIRST_APP")" "$FIRST_ID"
  assert_regex "$FIRST_ID" '^sha256:[0-9a-f]{64}$'
  assert_equal "$(authors "$FIRST_APP" "$FIRST_REV")" "Dokku <automated@dokku.sh>|Dokku <automated@dokku.sh>"
}

@test "first deploy: source-image and the app's deploy source hold IMAGE as written" {
  assert_equal "$(app_property git "$FIRST_APP" source-image)" "$FIRST_IMAGE"
  run dokku apps:report "$FIRST_APP" --app-deploy-source
  assert_output docker-image
  run dokku apps:report "$FIRST_APP" --app-deploy-source-metadata
  assert_output "$FIRST_IMAGE"
  run dokku git:report "$FIRST_APP" --git-sha
  assert_output "$FIRST_REV"
}

@test "first deploy: dokku/APP:latest carries the alternate-tags and image-source-id labels" {
  local built="dokku/$FIRST_APP:latest"
  assert_equal "$(image_label "$built" com.dokku.docker-image-labeler/alternate-tags)" "[\"$FIRST_IMAGE\"]"
  assert_equal "$(image_label "$built" com.dokku.image-source-id)" "$FIRST_ID"
}

@test "first deploy: the triggers fire in order with the new commit and the app serves the image" {
  run sandbox_triggers
  assert_equal "$(grep -E "^(pre-image-deploy|receive-app|deploy-source-set) $FIRST_APP " <<<"$output")" \
    "pre-image-deploy $FIRST_APP $FIRST_IMAGE $FIRST_ID
receive-app $FIRST_APP $FIRST_REV
deploy-source-set $FIRST_APP docker-image $FIRST_IMAGE"
  assert_equal "$(app_property sandbox "$FIRST_APP" GIT_REV)" "$FIRST_REV"
  run app_http_get "$FIRST_APP"
  assert_success
  assert_output "first content"
}

# ---------------------------------------------------------------------------------------
# Repos and deploy branches

@test "an app folder without a repo gets a bare repo with core's pre-receive hook" {
  local tag rev
  mkdir -p "$DOKKU_ROOT/$APP" "$DOKKU_LIB_ROOT/data/apps/$APP"
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content "no repo yet" >/dev/null
  rev="$(deploy "$APP" "$tag")"
  assert_equal "$(repo_git rev-parse --is-bare-repository)" true
  assert_equal "$(repo_git symbolic-ref HEAD)" refs/heads/master
  assert_path -f "$DOKKU_ROOT/$APP/refs/heads/master"
  assert_path -x "$DOKKU_ROOT/$APP/hooks/pre-receive"
  assert_equal "$(cat "$DOKKU_ROOT/$APP/hooks/pre-receive")" "#!/usr/bin/env bash
set -e
set -o pipefail

cat | DOKKU_ROOT=\"$DOKKU_ROOT\" dokku git-hook $APP"
  assert_equal "$(last_receive_rev "$APP")" "$rev"
  run app_http_get "$APP"
  assert_output "no repo yet"
}

@test "the deploy-branch property, per app or global, names the branch and HEAD points at it" {
  local tag other rev rev_other
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  other="$(unique_name other)"
  new_app "$APP"
  new_app "$other"
  set_app_property git --global deploy-branch release
  set_app_property git "$APP" deploy-branch main

  rev="$(deploy "$APP" "$tag")"
  assert_equal "$(repo_git symbolic-ref HEAD)" refs/heads/main
  assert_equal "$(tr -d '[:space:]' <"$DOKKU_ROOT/$APP/refs/heads/main")" "$rev"
  assert_equal "$(repo_git for-each-ref --format='%(refname)')" refs/heads/main

  rev_other="$(deploy "$other" "$tag")"
  assert_equal "$(app_git "$other" symbolic-ref HEAD)" refs/heads/release
  assert_equal "$(tr -d '[:space:]' <"$DOKKU_ROOT/$other/refs/heads/release")" "$rev_other"
  assert_equal "$(app_git "$other" for-each-ref --format='%(refname)')" refs/heads/release
  # the plugin reads the setting, it never writes it
  assert_equal "$(app_property git "$APP" deploy-branch)" main
  run app_property git "$other" deploy-branch
  assert_failure
}

# ---------------------------------------------------------------------------------------
# What counts as a change

@test "redeploying the same image says 'No changes detected', exits 0 and adds no commit" {
  local tag rev
  new_app "$APP"
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  rev="$(deploy "$APP" "$tag")"

  run dokku image:from "$APP" "$tag"
  assert_success
  assert_output "-----> No changes detected, skipping deploy"
  # Dokku's global --force (app deletion) is not the command's --force
  run dokku --force image:from "$APP" "$tag"
  assert_success
  assert_output "-----> No changes detected, skipping deploy"
  assert_equal "$(app_branch_rev "$APP")" "$rev"
  assert_equal "$(repo_git rev-list --count HEAD)" 1
  assert_equal "$(receive_count "$APP")" 1
  assert_untouched "$APP" "$rev" "$tag"
}

@test "the same tag with new content is a new deploy: new commit, new ID label, new content served" {
  local tag id1 id2 rev1 rev2
  new_app "$APP"
  tag="$(unique_name img):v1"
  id1="$(build_busybox_image "$tag" --content "version one")"
  rev1="$(deploy "$APP" "$tag")"
  run app_http_get "$APP"
  assert_output "version one"

  id2="$(build_busybox_image "$tag" --content "version two")"
  assert_not_equal "$id1" "$id2"
  rev2="$(deploy "$APP" "$tag")"
  assert_not_equal "$rev2" "$rev1"
  assert_equal "$(repo_git rev-parse "$rev2^")" "$rev1"
  assert_equal "$(repo_git show "$rev2:Dockerfile")" "$(dockerfile_tail "$tag" "$id2")"
  assert_equal "$(trailer "$rev2" Image-Id)" "$id2"
  assert_equal "$(image_label "dokku/$APP:latest" com.dokku.image-source-id)" "$id2"
  assert_equal "$(app_property git "$APP" source-image)" "$tag"
  run app_http_get "$APP"
  assert_output "version two"
}

@test "--pull pulls a present image: the registry's new content under the same tag is deployed" {
  local ref id1 id2 rev1 rev2
  new_app "$APP"
  ref="$FILE_REGISTRY/$(unique_name pulled):stable"
  id1="$(build_busybox_image "$ref" --content "pulled one")"
  push_to_registry "$ref"
  rev1="$(deploy "$APP" "$ref")"
  # the containerd store drops an image whose last tag moves: a second tag keeps v1
  docker image tag "$ref" "$ref-one"

  # v2 goes to the registry under the same tag; the local tag still names v1
  id2="$(build_busybox_image "$ref" --content "pulled two")"
  push_to_registry "$ref"
  docker image tag "$id1" "$ref"

  run dokku image:from "$APP" "$ref"
  assert_success
  refute_line --partial "Pulling"
  assert_line "-----> No changes detected, skipping deploy"
  assert_equal "$(app_branch_rev "$APP")" "$rev1"

  run dokku image:from "$APP" --pull "$ref"
  assert_success
  assert_line "-----> Pulling $ref"
  assert_line --partial "-----> Deployed $ref (${id2:7:12}) to $APP as commit "
  rev2="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git rev-parse "$rev2^")" "$rev1"
  assert_equal "$(image_id "$ref")" "$id2"
  assert_equal "$(trailer "$rev2" Image-Id)" "$id2"
  run app_http_get "$APP"
  assert_output "pulled two"
}

@test "--force with nothing changed fires receive-app again on the same commit, with no new commit" {
  local ref rev
  new_app "$APP"
  ref="$FILE_REGISTRY/$(unique_name forced):v1"
  build_busybox_image "$ref" --content "forced" >/dev/null
  push_to_registry "$ref"
  rev="$(deploy "$APP" "$ref")"

  # the flag stands before the app: Dokku leaves it in the argv
  run dokku image:from --force "$APP" "$ref"
  assert_success
  assert_line "-----> Pulling $ref"
  assert_line "-----> No changes detected, deploying $ref again (--force)"
  assert_line --partial "-----> Deployed $ref "
  assert_equal "$(receive_count "$APP")" 2
  assert_equal "$(last_receive_rev "$APP")" "$rev"
  assert_equal "$(repo_git rev-list --count HEAD)" 1
  assert_untouched "$APP" "$rev" "$ref"
  run app_http_get "$APP"
  assert_output "forced"
}

@test "dokku --app APP image:from IMAGE deploys APP, and --app after the command works too" {
  local tag rev
  new_app "$APP"
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content "via --app" >/dev/null
  run dokku --app "$APP" image:from "$tag" "App User" "app@example.com"
  assert_success
  rev="$(app_branch_rev "$APP")"
  assert_equal "$(trailer "$rev" Image-Source)" "$tag"
  assert_equal "$(repo_git show -s --format='%an <%ae>' "$rev")" "App User <app@example.com>"
  run app_http_get "$APP"
  assert_output "via --app"

  run dokku image:from "$tag" --app "$APP"
  assert_success
  assert_output "-----> No changes detected, skipping deploy"
}

@test "a digest reference REGISTRY/repo@sha256:… is pulled from the registry and deployed as written" {
  local tag id digest_ref rev
  new_app "$APP"
  tag="$FILE_REGISTRY/$(unique_name digested):v1"
  id="$(build_busybox_image "$tag" --content "by digest")"
  push_to_registry "$tag"
  digest_ref="$(docker image inspect -f '{{index .RepoDigests 0}}' "$tag")"
  assert_equal "${digest_ref%@*}" "${tag%:v1}"
  assert_regex "$digest_ref" '@sha256:[0-9a-f]{64}$'
  docker image rm "$tag" >/dev/null
  run docker image inspect "$id"
  assert_failure

  run dokku image:from "$APP" "$digest_ref"
  assert_success
  assert_line "-----> Pulling $digest_ref"
  track_image "$digest_ref"
  assert_equal "$(image_id "$digest_ref")" "$id"
  rev="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git show "$rev:Dockerfile")" "$(dockerfile_tail "$digest_ref" "$id")"
  assert_equal "$(app_property git "$APP" source-image)" "$digest_ref"
  assert_equal "$(image_label "dokku/$APP:latest" com.dokku.docker-image-labeler/alternate-tags)" "[\"$digest_ref\"]"
  run app_http_get "$APP"
  assert_output "by digest"
}

@test "a private registry: the app with registry:login credentials pulls, another app cannot" {
  local other ref id
  new_app "$APP"
  other="$(unique_name other)"
  new_app "$other"
  registry_start --auth pull-user pull-pass
  ref="$REGISTRY_HOST/$(unique_name private):v1"
  id="$(build_busybox_image "$ref" --content "private content")"
  export DOCKER_CONFIG="$BATS_TEST_TMPDIR/pusher-docker"
  docker login "$REGISTRY_HOST" -u pull-user --password-stdin <<<"pull-pass" >/dev/null 2>&1
  push_to_registry "$ref"
  unset DOCKER_CONFIG
  docker image rm "$ref" >/dev/null
  run docker image inspect "$id"
  assert_failure

  run dokku image:from "$other" "$ref"
  assert_failure 1
  assert_output --partial " !     cannot pull image $ref: "
  assert_untouched "$other" "" ""

  dokku registry:login "$APP" "$REGISTRY_HOST" pull-user pull-pass >/dev/null 2>&1
  run dokku image:from "$APP" "$ref"
  assert_success
  track_image "$ref"
  assert_equal "$(image_id "$ref")" "$id"
  assert_equal "$(app_property git "$APP" source-image)" "$ref"
  run app_http_get "$APP"
  assert_output "private content"
}

# ---------------------------------------------------------------------------------------
# Authors

@test "USER_NAME and USER_EMAIL are author and committer; empty values mean Dokku's defaults" {
  local tag1 tag2 tag3 rev
  new_app "$APP"
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  tag3="$(unique_name img):v3"
  build_busybox_image "$tag1" >/dev/null
  build_busybox_image "$tag2" >/dev/null
  build_busybox_image "$tag3" >/dev/null

  rev="$(deploy "$APP" "$tag1" "Jane Doe" "jane@example.com")"
  assert_equal "$(authors "$APP" "$rev")" "Jane Doe <jane@example.com>|Jane Doe <jane@example.com>"

  rev="$(deploy "$APP" "$tag2" "" "")"
  assert_equal "$(authors "$APP" "$rev")" "Dokku <automated@dokku.sh>|Dokku <automated@dokku.sh>"

  rev="$(deploy "$APP" "$tag3" "Only Name")"
  assert_equal "$(authors "$APP" "$rev")" "Only Name <automated@dokku.sh>|Only Name <automated@dokku.sh>"
  assert_equal "$(repo_git rev-list --count HEAD)" 3
}

# ---------------------------------------------------------------------------------------
# --build-dir

@test "--build-dir feeds an ONBUILD image, and is not persisted to the next deploy" {
  local base onbuild build rev0 rev1 attempt
  new_app "$APP"
  base="$(unique_name img):base"
  onbuild="$(unique_name onbuild):v1"
  build_busybox_image "$base" --content "base" >/dev/null
  build_onbuild_image "$onbuild" --content "onbuild" >/dev/null
  rev0="$(deploy "$APP" "$base")"

  # without the file the ONBUILD COPY needs, the build fails and nothing moves
  run dokku image:from "$APP" "$onbuild"
  assert_failure 1
  assert_output --partial "receive-app exited with status 1"
  assert_untouched "$APP" "$rev0" "$base"

  build="$BATS_TEST_TMPDIR/build"
  mkdir -p "$build"
  echo "from the build dir" >"$build/app.txt"
  run dokku image:from "--build-dir=$build" "$APP" "$onbuild"
  assert_success
  rev1="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git rev-parse "$rev1^")" "$rev0"
  assert_equal "$(repo_git show "$rev1:app.txt")" "from the build dir"
  assert_equal "$(app_property git "$APP" source-image)" "$onbuild"
  run docker container run --rm --entrypoint /bin/busybox "dokku/$APP:latest" cat /app.txt
  assert_success
  assert_output "from the build dir"

  # the same image without --build-dir: app.txt is gone from the attempted tree, the build fails
  run dokku image:from "$APP" "$onbuild"
  assert_failure 1
  attempt="$(last_receive_rev "$APP")"
  assert_not_equal "$attempt" "$rev1"
  assert_equal "$(repo_git ls-tree --name-only -r "$attempt")" Dockerfile
  assert_untouched "$APP" "$rev1" "$onbuild"
  run app_http_get "$APP"
  assert_output "onbuild"
}

@test "--build-dir keeps its Dockerfile with the lines appended, dotfiles, modes and symlinks, not .git" {
  local tag id build rev
  new_app "$APP"
  tag="$(unique_name img):v1"
  id="$(build_busybox_image "$tag")"
  build="$BATS_TEST_TMPDIR/build"
  mkdir -p "$build/.config" "$build/bin" "$build/.git/objects"
  printf '# from the build dir\nARG SANDBOX_ARG=1\n' >"$build/Dockerfile"
  echo "SECRET=1" >"$build/.env"
  echo ".env" >"$build/.gitignore"
  echo "setting" >"$build/.config/settings"
  printf '#!/bin/sh\necho run\n' >"$build/bin/run"
  chmod 0755 "$build/bin/run"
  ln -s ../.env "$build/bin/env-link"
  echo "ref: refs/heads/master" >"$build/.git/HEAD"

  run dokku image:from --build-dir "$build" "$APP" "$tag"
  assert_success
  rev="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git show "$rev:Dockerfile")" "# from the build dir
ARG SANDBOX_ARG=1
$(dockerfile_tail "$tag" "$id")"
  run repo_git ls-tree -r "$rev"
  assert_success
  assert_equal "${#lines[@]}" 6
  assert_line --regexp $'^100644 blob [0-9a-f]+\t\\.env$'
  assert_line --regexp $'^100644 blob [0-9a-f]+\t\\.gitignore$'
  assert_line --regexp $'^100644 blob [0-9a-f]+\t\\.config/settings$'
  assert_line --regexp $'^100644 blob [0-9a-f]+\tDockerfile$'
  assert_line --regexp $'^100755 blob [0-9a-f]+\tbin/run$'
  assert_line --regexp $'^120000 blob [0-9a-f]+\tbin/env-link$'
  assert_equal "$(repo_git cat-file -p "$rev:bin/env-link")" "../.env"
  assert_equal "$(repo_git show "$rev:.env")" "SECRET=1"
  assert_equal "$(image_label "dokku/$APP:latest" com.dokku.image-source-id)" "$id"
}

# ---------------------------------------------------------------------------------------
# Failures, vetoes, concurrency

@test "a failing deploy rolls back branch and source-image, and a retry deploys" {
  local tag1 tag2 rev1 rev2
  new_app "$APP"
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  build_busybox_image "$tag1" --content "stays up" >/dev/null
  build_busybox_image "$tag2" --content "after retry" >/dev/null
  rev1="$(deploy "$APP" "$tag1")"

  sandbox_fail_receive_app "$APP"
  run dokku image:from "$APP" "$tag2"
  assert_failure 1
  assert_output --partial " !     the deploy of $tag2 to $APP failed (receive-app exited with status 1)"
  refute_line --partial "-----> Deployed"
  assert_not_equal "$(last_receive_rev "$APP")" "$rev1"
  assert_untouched "$APP" "$rev1" "$tag1"
  assert_equal "$(repo_git symbolic-ref HEAD)" refs/heads/master
  run dokku apps:report "$APP" --app-deploy-source-metadata
  assert_output "$tag1"
  run app_http_get "$APP"
  assert_output "stays up"

  sandbox_fail_receive_app "$APP" off
  rev2="$(deploy "$APP" "$tag2")"
  assert_equal "$(repo_git rev-parse "$rev2^")" "$rev1"
  assert_equal "$(repo_git rev-list --count HEAD)" 2
  assert_equal "$(app_property git "$APP" source-image)" "$tag2"
  run app_http_get "$APP"
  assert_output "after retry"
}

@test "a failing first deploy leaves no branch and no source-image" {
  local tag
  new_app "$APP"
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  sandbox_fail_receive_app "$APP"
  run dokku image:from "$APP" "$tag"
  assert_failure 1
  assert_equal "$(receive_count "$APP")" 1
  assert_untouched "$APP" "" ""
  run dokku apps:report "$APP" --app-deploy-source
  assert_output ""
}

@test "a pre-image-deploy veto fails the deploy with exit 1 before anything changes" {
  local tag1 tag2 id2 rev1
  new_app "$APP"
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  build_busybox_image "$tag1" >/dev/null
  id2="$(build_busybox_image "$tag2")"
  rev1="$(deploy "$APP" "$tag1")"
  veto_plugin "$APP"

  run dokku image:from "$APP" "$tag2"
  assert_failure 1
  assert_line " !     deploys of $APP are frozen"
  assert_line --partial " !     the pre-image-deploy trigger refused the deploy of $tag2 (exit status 1)"
  assert_equal "$(cat "$BATS_TEST_TMPDIR/veto-args")" "$APP
$tag2
$id2"
  assert_equal "$(receive_count "$APP")" 1
  assert_untouched "$APP" "$rev1" "$tag1"
  assert_equal "$(repo_git rev-list --count HEAD)" 1
  run dokku apps:report "$APP" --app-deploy-source-metadata
  assert_output "$tag1"
}

@test "a second deploy of an app while one runs fails at once with 'in progress'; history stays linear" {
  local tag1 tag2 tag3 rev1 rev2
  new_app "$APP"
  tag1="$(unique_name img):v1"
  tag2="$(unique_name img):v2"
  tag3="$(unique_name img):v3"
  build_busybox_image "$tag1" >/dev/null
  build_busybox_image "$tag2" --content "the first one wins" >/dev/null
  build_busybox_image "$tag3" >/dev/null
  rev1="$(deploy "$APP" "$tag1")"

  # The first deploy is held in its receive-app until released: the plugin holds its lock
  # and has its commit pending.
  start_held_deploy first "$APP" "$tag2"
  assert_equal "$(receive_count "$APP")" 2

  run dokku image:from "$APP" "$tag3"
  assert_failure 1
  assert_output --regexp "^ !     another image deploy of $APP is in progress"
  assert_equal "${#lines[@]}" 1
  # it did not wait: the first deploy is still held in its receive-app
  kill -0 "$BG_PID" || fail "the first deploy has ended"
  assert_equal "$(receive_count "$APP")" 2

  release_pauses
  finish_bg first
  ((status == 0)) || fail "the first deploy failed with status $status: $output $stderr"
  rev2="$(app_branch_rev "$APP")"
  assert_equal "$(repo_git rev-list --count HEAD)" 2
  assert_equal "$(repo_git rev-parse "$rev2^")" "$rev1"
  assert_equal "$(repo_git rev-list --merges HEAD)" ""
  assert_equal "$(trailer "$rev2" Image-Source)" "$tag2"
  assert_untouched "$APP" "$rev2" "$tag2"
  run app_http_get "$APP"
  assert_output "the first one wins"
}

# ---------------------------------------------------------------------------------------
# Output switches and Dokku commands after a deploy

@test "--trace prints the git and docker commands the plugin runs" {
  local tag rev
  new_app "$APP"
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null
  rev="$(deploy "$APP" "$tag")"
  run dokku --trace image:from "$APP" "$tag"
  assert_success
  assert_line "-----> No changes detected, skipping deploy"
  assert_line --regexp "^\+ git '?--git-dir=$DOKKU_ROOT/$APP'? .+"
  assert_line --regexp "^\+ docker image inspect .+ $tag\$"
  assert_equal "$(app_branch_rev "$APP")" "$rev"
}

@test "--quiet silences the plugin's info lines, failures still print" {
  local tag rev
  new_app "$APP"
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" --content "quiet" >/dev/null
  run dokku --quiet image:from "$APP" "$tag"
  assert_success
  refute_line --partial "-----> Deployed"
  rev="$(app_branch_rev "$APP")"
  assert_equal "$(last_receive_rev "$APP")" "$rev"
  run app_http_get "$APP"
  assert_output "quiet"

  # a no-op prints nothing at all, with --quiet after the command too
  run dokku image:from "$APP" "$tag" --quiet
  assert_success
  assert_output ""

  run dokku image:from "$APP" --quiet 127.0.0.1:1/nope:1
  assert_failure 1
  assert_output --partial " !     cannot pull image 127.0.0.1:1/nope:1"
}

@test "ps:rebuild works after image deploys, even after git gc packed the branch" {
  local ref rev
  new_app "$APP"
  ref="$FILE_REGISTRY/$(unique_name rebuilt):v1"
  build_busybox_image "$ref" --content "rebuilt" >/dev/null
  push_to_registry "$ref"
  rev="$(deploy "$APP" "$ref")"
  assert_path -f "$DOKKU_ROOT/$APP/refs/heads/master"

  run dokku ps:rebuild "$APP"
  assert_success
  run app_http_get "$APP"
  assert_output "rebuilt"

  # a git gc packs the branch away; the next deploy (here a forced no-change one, which
  # moves no ref) writes it back as a loose file
  repo_git gc --quiet
  refute_path -f "$DOKKU_ROOT/$APP/refs/heads/master"
  run dokku image:from "$APP" "$ref" --force
  assert_success
  assert_path -f "$DOKKU_ROOT/$APP/refs/heads/master"
  assert_equal "$(tr -d '[:space:]' <"$DOKKU_ROOT/$APP/refs/heads/master")" "$rev"
  run dokku ps:rebuild "$APP"
  assert_success
  assert_equal "$(app_branch_rev "$APP")" "$rev"
  run app_http_get "$APP"
  assert_output "rebuilt"
}
