#!/usr/bin/env bats
# `dokku-image push` (src/client/): the real client over the sandbox's sshd, on another engine
# than the host's (lib/client.bash).

# shellcheck disable=SC2154 # stderr and stderr_lines are set by run_split (test_helper.bash)

load test_helper

app_per_test app

client_hooks

# assert_slim_redeploy ENGINE: a base pushed from ENGINE is sent whole; a child of it with a
# new top layer is sent without the base's layer: at least its bytes left out, and less than
# half of what `docker image save | zstd` of the child makes on the wire; a layer is hashed to
# be known only where its name cannot tell it (docs/slim.md).
assert_slim_redeploy() {
  local engine="$1" base child full
  require_engine "$engine"
  base="$(unique_name base):v1"
  child="$(unique_name child):v2"
  client_build "$engine" build_busybox_image "$base" --content "base from $engine" >/dev/null

  run_split push_from "$engine" "$base" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --regexp "^-----> Pushing $base to $SSH_DEST for $APP: "
  assert_stderr_line --regexp "^-----> Sent [0-9]+ bytes \(.*\) in [0-9.]+s \(.*/s\); left out 0 of 1 layers, 0 bytes \(0 B\)$"
  assert_pushed "$base" "base from $engine"

  client_build "$engine" build_child_image "$child" "$base" >/dev/null
  full="$(on_engine "$engine" docker image save "$child" | zstd -3 -T0 -c | wc -c)"
  run_split push_from "$engine" "$child" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --regexp "^-----> Sent [0-9]+ bytes .*; left out 1 of 2 layers, [0-9]+ bytes \([^)]*\)(; hashed [12] layers? on the way)?$"
  if [[ "$engine" == 26-c8d ]]; then
    # a containerd-store client's engine pushes what the host lacks to the client; its
    # manifest pairs each blob with its diff ID (docs/registry.md)
    assert_stderr_line "-----> Pushing $child to $SSH_DEST for $APP: the host holds 1 of 2 layers; this machine's engine pushes the others to the client"
  fi
  # named by diff ID (engine 26), a directory its v1 ID proves (engine 20), or paired by the
  # manifest (26-c8d): none hashed
  [[ "$stderr" != *"hashed"* ]] || fail "a layer was hashed: $stderr"
  (($(left_out_bytes) >= $(layer_bytes "$engine" "$base"))) \
    || fail "left out $(left_out_bytes) bytes, less than the base layer's $(layer_bytes "$engine" "$base")"
  (($(sent_bytes) * 2 < full)) || fail "sent $(sent_bytes) bytes; the whole archive in zstd is $full"
  assert_pushed "$child" "base from $engine"
  assert_equal "$(image_id "$child")" "$(full_load_id "$engine" "$child")"
  assert_equal "$(throwaway_tags "$engine" "$child")" ""
}

@test "a first deploy sends every layer and deploys" {
  local engine tag
  engine="$(partner_engine)"
  require_engine "$engine"
  tag="$(unique_name img):v1"
  client_build "$engine" build_busybox_image "$tag" --content "pushed from $engine" >/dev/null

  run_split push_from "$engine" "$tag" "$SSH_DEST" "$APP" "Jane Doe" jane@example.com
  assert_success
  assert_stderr_line --index 0 --regexp "^-----> Pushing $tag to $SSH_DEST for $APP: the host( holds 0 of 1 layers|'s content store holds [0-9]+ layer blobs, matched by digest against the 1 layers' blobs as the archive streams)$"
  assert_stderr_line --regexp "^-----> Sent [0-9]+ bytes .*; left out 0 of 1 layers, 0 bytes \(0 B\)$"
  assert_pushed "$tag" "pushed from $engine"
  assert_equal "$(repo_git log -1 --format='%an <%ae>' "$(app_branch_rev "$APP")")" "Jane Doe <jane@example.com>"
}

# plugin_version: the version of the installed plugin (its plugin.toml).
plugin_version() {
  sed -n 's/^version = "\(.*\)"/\1/p' "$PLUGIN_AVAILABLE_PATH/image/plugin.toml"
}

# without_libc PROGRAM ROOT: PROGRAM in ROOT/bin, runnable in an image that has no libc where
# programs look for one: a static program as it is; a dynamic one (ssh, a distribution's
# docker) under ROOT/opt/NAME with its libraries and loader, started by a busybox sh script
# that calls that loader by name, so that nothing else in the image can use them.
without_libc() {
  local program name="${1##*/}" root="$2" lib loader
  program="$(command -v "$1")" || return 1
  mkdir -p "$root/bin"
  if ! objdump -p "$program" | grep -q NEEDED; then
    cp "$program" "$root/bin/$name"
    return
  fi
  mkdir -p "$root/opt/$name"
  cp "$program" "$root/opt/$name/$name"
  for lib in $(ldd "$program" | grep -o '/[^ ]*'); do
    cp -L "$lib" "$root/opt/$name/"
  done
  loader="$(ldd "$program" | grep -o '/[^ ]*/ld-linux[^ ]*')"
  printf '#!/bin/sh\nexec /opt/%s/%s --library-path /opt/%s /opt/%s/%s "$@"\n' \
    "$name" "${loader##*/}" "$name" "$name" "$name" >"$root/bin/$name"
  chmod 0755 "$root/bin/$name"
  if [[ ! -e "$root/bin/sh" ]]; then
    cp "$BUSYBOX_BIN" "$root/bin/busybox"
    ln -s busybox "$root/bin/sh"
  fi
}

# image_of ROOT: an image of the files in ROOT alone (FROM scratch, no builder needed), on
# this run's engine; prints its ID and records it for cleanup.
image_of() {
  local id
  id="$(tar -C "$1" -cf - . | docker image import - "$(unique_name rootfs):1")" || return 1
  _record_image "$id"
  echo "$id"
}

@test "the served client and the plugin's binaries are static: they run in images without libc" {
  local root id described
  run "$CLIENT" --version
  assert_success
  assert_output --regexp "^dokku-image $(plugin_version) \(x86_64-unknown-linux-gnu, static\)$"
  described="$output"

  root="$BATS_TEST_TMPDIR/client-only"
  mkdir -p "$root"
  cp "$CLIENT" "$root/dokku-image"
  id="$(image_of "$root")"
  run docker run --rm "$id" /dokku-image --version
  assert_success
  assert_output "$described"

  root="$BATS_TEST_TMPDIR/plugin-only"
  mkdir -p "$root"
  mkdir -p "$root/subcommands"
  cp -L "$PLUGIN_AVAILABLE_PATH/image/bin/dokku-image" "$root/subcommands/help"
  id="$(image_of "$root")"
  run docker run --rm "$id" /subcommands/help
  assert_success
  assert_line --index 0 "Usage: dokku image[:COMMAND]"
}

@test "a push from a container without libc: the static client with docker's CLI and ssh" {
  local engine tag root id socket
  engine="$(partner_engine)"
  require_engine "$engine"
  tag="$(unique_name img):v1"
  client_build "$engine" build_busybox_image "$tag" --content "pushed from scratch" >/dev/null
  root="$BATS_TEST_TMPDIR/ci-image"
  mkdir -p "$root/etc"
  cp "$CLIENT" "$root/dokku-image"
  without_libc docker "$root"
  without_libc ssh "$root"
  echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd" # ssh asks who runs it
  cp "$(type -P true)" "$root/dynamic-true"
  id="$(image_of "$root")"
  # the control: a dynamically linked program cannot start there, its loader is missing
  run docker run --rm "$id" /dynamic-true
  assert_failure
  assert_output --partial "/dynamic-true: no such file or directory"

  # The client's engine is ENGINE, through its socket; ssh reaches the host's sshd.
  socket="$(on_engine "$engine" printenv DOCKER_HOST)"
  socket="${socket#unix://}"
  run_split docker run --rm --network host -e DOCKER_HOST=unix:///docker.sock -v "$socket:/docker.sock" \
    -v "$SSHD_DIR/client_key:$SSHD_DIR/client_key:ro" -v "$SSHD_DIR/ssh_config:$SSHD_DIR/ssh_config:ro" \
    "$id" /dokku-image push --ssh "$SSH_CMD" "$tag" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --index 0 --regexp "^-----> Pushing $tag to $SSH_DEST for $APP: "
  assert_stderr_line --regexp "^-----> Sent [0-9]+ bytes .*; left out 0 of 1 layers, 0 bytes \(0 B\)$"
  assert_pushed "$tag" "pushed from scratch"
}

@test "docker dokku push: the client as a docker CLI plugin, through the CLI's context" {
  local engine tag config host
  engine="$(partner_engine)"
  require_engine "$engine"
  tag="$(unique_name img):v1"
  client_build "$engine" build_busybox_image "$tag" --content "pushed by docker dokku" >/dev/null
  config="$BATS_TEST_TMPDIR/docker-config"

  run_split env DOCKER_CONFIG="$config" "$CLIENT" install-docker-plugin
  assert_success
  assert_equal "$stderr" "-----> Installed $config/cli-plugins/docker-dokku: docker dokku push IMAGE DEST APP"
  assert_path -x "$config/cli-plugins/docker-dokku"
  # the CLI runs a plugin only once its metadata passed
  run env DOCKER_CONFIG="$config" docker dokku --version
  assert_success
  assert_output "$("$CLIENT" --version)"

  # ENGINE as a context, named by the CLI's --context, while DOCKER_HOST and DOCKER_BIN lead
  # nowhere: the plugin's docker calls are the CLI's, with its global options.
  host="$(on_engine "$engine" printenv DOCKER_HOST)"
  DOCKER_CONFIG="$config" docker context create partner --docker "host=$host" >/dev/null
  run_split env DOCKER_CONFIG="$config" DOCKER_HOST=unix:///nonexistent.sock DOCKER_BIN=/nonexistent \
    docker --context partner dokku push --ssh "$SSH_CMD" "$tag" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --index 0 --regexp "^-----> Pushing $tag to $SSH_DEST for $APP: "
  assert_pushed "$tag" "pushed by docker dokku"
}

@test "a host plugin of another version: one line says so, and the push goes on" {
  local engine tag wrapper
  engine="$(partner_engine)"
  require_engine "$engine"
  tag="$(unique_name img):v1"
  client_build "$engine" build_busybox_image "$tag" >/dev/null
  wrapper="$BATS_TEST_TMPDIR/other-version-ssh"
  # sed -u: line by line, as ssh passes the answer on (the session stays open for queries)
  printf '%s\n' '#!/usr/bin/env bash' \
    'case "${*: -1}" in' \
    '  image:layers*) "$@" | sed -u "s/\"version\":\"[^\"]*\"/\"version\":\"0.0.1\"/"; exit "${PIPESTATUS[0]}" ;;' \
    'esac' \
    'exec "$@"' >"$wrapper"
  chmod +x "$wrapper"

  run_split on_engine "$engine" "$CLIENT" push --ssh "$wrapper $SSH_CMD" "$tag" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --index 0 " !     the host's image plugin is 0.0.1 and this client $(plugin_version); \`image:client\` gives the host's own client"
  assert_stderr_line --index 1 --regexp "^-----> Pushing $tag to $SSH_DEST for $APP: "
  assert_pushed "$tag" "$tag"
}

@test "a redeploy with a new top layer sends only that layer" {
  assert_slim_redeploy "$(partner_engine)"
}

@test "a client on the classic engine 26 pushes to a containerd host" {
  [[ "${IMAGE_PLUGIN_ENGINE_STORE:-classic}" == containerd ]] || skip "the host's store is classic"
  assert_slim_redeploy 26
}

@test "a push through the engine stopped by SIGTERM removes the throwaway tag" {
  local tag wrapper pid status=0
  require_engine 26-c8d
  tag="$(unique_name img):v1"
  client_build 26-c8d build_busybox_image "$tag" >/dev/null
  wrapper="$BATS_TEST_TMPDIR/docker"
  printf '%s\n' '#!/usr/bin/env bash' \
    'if [[ "$1 $2" == "image push" ]]; then touch "$PUSH_STARTED"; sleep 60; exit 1; fi' \
    'exec docker "$@"' >"$wrapper"
  chmod +x "$wrapper"
  export PUSH_STARTED="$BATS_TEST_TMPDIR/push-started"
  (
    # shellcheck source=/dev/null
    source "$("$REPO_ROOT/scripts/engines" env 26-c8d)"
    exec env DOCKER_BIN="$wrapper" "$CLIENT" push --ssh "$SSH_CMD" "$tag" "$SSH_DEST" "$APP"
  ) 2>"$BATS_TEST_TMPDIR/stderr" 3>&- &
  pid=$!
  wait_until 20 test -e "$PUSH_STARTED"
  [[ -n "$(throwaway_tags 26-c8d "$tag")" ]] || fail "no throwaway tag while the engine pushes"
  kill -TERM "$pid"
  wait "$pid" || status=$?
  assert_equal "$status" 143
  run cat "$BATS_TEST_TMPDIR/stderr"
  assert_line " !     the push of $tag was stopped by SIGTERM; nothing was changed"
  assert_equal "$(throwaway_tags 26-c8d "$tag")" ""
}

@test "a legacy client (engine 20) pushes to a containerd host in the OCI form its store would make" {
  [[ "${IMAGE_PLUGIN_ENGINE_STORE:-classic}" == containerd ]] || skip "the host's store is classic"
  assert_slim_redeploy 20
}

@test "a client on the containerd engine 26-c8d pushes through its engine, to either store" {
  assert_slim_redeploy 26-c8d
}

# throwaway_tags ENGINE IMAGE: the tags of the loopback registry left on ENGINE for IMAGE
# (another run's push may hold one for its own image meanwhile).
throwaway_tags() {
  local id
  id="$(on_engine "$1" docker image inspect --format '{{.Id}}' "$2")" || return 1
  on_engine "$1" docker image ls --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' \
    | awk -v id="$id" '$1 == id && $2 ~ /\/dokku-image-push:/ { print $2 }'
}

@test "a containerd client whose engine cannot push to the client's port: one line, then the save path" {
  local tag wrapper
  require_engine 26-c8d
  tag="$(unique_name img):v1"
  client_build 26-c8d build_busybox_image "$tag" --content "saved instead" >/dev/null
  wrapper="$BATS_TEST_TMPDIR/docker"
  printf '%s\n' '#!/usr/bin/env bash' \
    'if [[ "$1 $2" == "image push" ]]; then echo "dial tcp ${3%%/*}: connect: connection refused" >&2; exit 1; fi' \
    'exec docker "$@"' >"$wrapper"
  chmod +x "$wrapper"

  run_split on_engine 26-c8d env DOCKER_BIN="$wrapper" "$CLIENT" push --ssh "$SSH_CMD" "$tag" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --index 0 --regexp '^ !     `docker push` failed: dial tcp 127\.0\.0\.1:[0-9]+: connect: connection refused; saving the image instead$'
  assert_stderr_line --index 1 --regexp "^-----> Pushing $tag to $SSH_DEST for $APP: "
  assert_pushed "$tag" "saved instead"
  assert_equal "$(throwaway_tags 26-c8d "$tag")" ""
}

@test "a base removed between image:layers and image:load: the host refuses, the client sends it all" {
  local engine base child wrapper
  engine="$(partner_engine)"
  require_engine "$engine"
  base="$(unique_name base):v1"
  child="$(unique_name child):v2"
  client_build "$engine" build_busybox_image "$base" >/dev/null
  client_build "$engine" build_child_image "$child" "$base" >/dev/null
  # the host holds the base, loaded by the plugin (a containerd host reports only what it
  # loaded) for an app whose deploy stops before the build, so that nothing else keeps its layer
  OTHER_APP="$(unique_name base-app)"
  dokku apps:create "$OTHER_APP" >/dev/null
  mkdir -p "$DOKKU_LIB_ROOT/config/sandbox/$OTHER_APP"
  touch "$DOKKU_LIB_ROOT/config/sandbox/$OTHER_APP/skip-build"
  push_from "$engine" "$base" "$SSH_DEST" "$OTHER_APP" >/dev/null 2>&1 || fail "the base did not deploy"
  track_image "$base"

  # removes the base from the host before the first image:load only
  wrapper="$BATS_TEST_TMPDIR/remove-base-then-ssh"
  printf '%s\n' '#!/usr/bin/env bash' \
    'case "${*: -1}" in' \
    "  image:load*) [[ -e $BATS_TEST_TMPDIR/removed ]] || { DOCKER_HOST=\"\$HOST_DOCKER_HOST\" docker image rm $base >/dev/null && touch $BATS_TEST_TMPDIR/removed; } || exit 99 ;;" \
    'esac' \
    'exec "$@"' >"$wrapper"
  chmod +x "$wrapper"

  run_split on_engine "$engine" "$CLIENT" push --ssh "$wrapper $SSH_CMD" "$child" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --regexp "^-----> Pushing $child to $SSH_DEST for $APP: the host( holds 1 of 2 layers|'s content store holds [0-9]+ layer blobs, matched .*)$"
  assert_stderr_line --partial "the archive leaves out layers this host does not hold: "
  assert_stderr_line "-----> The host no longer holds every layer left out; sending the whole archive"
  assert_stderr_line --regexp "^-----> Sent [0-9]+ bytes .*; left out 0 of 2 layers, 0 bytes \(0 B\)$"
  assert_pushed "$child" "$base"
}

@test "a host without image:layers gets the whole archive, and the deploy works" {
  local engine tag wrapper
  engine="$(partner_engine)"
  require_engine "$engine"
  tag="$(unique_name img):v1"
  client_build "$engine" build_busybox_image "$tag" >/dev/null
  wrapper="$BATS_TEST_TMPDIR/old-plugin-ssh"
  printf '%s\n' '#!/usr/bin/env bash' \
    'case "${*: -1}" in' \
    "  image:layers*) echo ' !     image:layers is not a dokku command' >&2; exit 1 ;;" \
    'esac' \
    'exec "$@"' >"$wrapper"
  chmod +x "$wrapper"

  run_split on_engine "$engine" "$CLIENT" push --ssh "$wrapper $SSH_CMD" "$tag" "$SSH_DEST" "$APP"
  assert_success
  assert_stderr_line --index 0 " !     the host cannot say which layers it holds (\`image:layers $APP\` exited with status 1: image:layers is not a dokku command); sending the whole archive"
  assert_stderr_line --index 1 "-----> Pushing $tag to $SSH_DEST for $APP: sending all 1 layers"
  assert_stderr_line --regexp "^-----> Sent [0-9]+ bytes .*; left out 0 of 1 layers, 0 bytes \(0 B\)$"
  assert_pushed "$tag" "$tag"
}

@test "a missing app: exit 20 with the host's message, nothing sent" {
  local tag
  tag="$(unique_name img):v1"
  build_busybox_image "$tag" >/dev/null

  run_split "$CLIENT" push --ssh "$SSH_CMD" "$tag" "$SSH_DEST" no-such-app
  assert_failure 20
  assert_equal "$stderr" " !     App no-such-app does not exist"
  assert_equal "$output" ""
}

@test "usage errors: exit 1 and one line" {
  local usage="usage: dokku-image push [--ssh COMMAND] [--ssh-option OPT]... [--whole-layers] IMAGE DEST APP [USER_NAME [USER_EMAIL]]"
  run_split "$CLIENT"
  assert_failure 1
  assert_equal "$stderr" " !     a command is required; $usage"

  run_split "$CLIENT" push img:1
  assert_failure 1
  assert_equal "$stderr" " !     DEST and APP required; $usage"

  run_split "$CLIENT" push --force img:1 "$SSH_DEST" "$APP"
  assert_failure 1
  assert_equal "$stderr" " !     unknown flag --force; $usage"

  run_split "$CLIENT" push img:1 dokku@host:ssh "$APP"
  assert_failure 1
  assert_equal "$stderr" " !     DEST \"dokku@host:ssh\" has no valid port; expected dokku@host[:port]; $usage"

  run_split "$CLIENT" help
  assert_success
  assert_line --index 0 --partial "dokku-image push [--ssh COMMAND]"
  assert_equal "$stderr" ""
}

@test "an image the client's engine lacks: exit 1, named" {
  run_split "$CLIENT" push --ssh "$SSH_CMD" "$(unique_name absent):v1" "$SSH_DEST" "$APP"
  assert_failure 1
  assert_equal "${#stderr_lines[@]}" 1
  assert_regex "$stderr" '^ !     no image absent-[0-9a-f]+:v1 on this machine \(docker image inspect\)$'
}
