#!/usr/bin/env bats
# Hostile input: invalid app names, image references built to reach a shell, build dirs
# holding what a repo cannot or must not store, archives built to escape, exhaust or lie,
# commits pushed to be read back, and a host answering the client without end.
# Every refusal is one ` !     ` line on stderr, a non-zero exit, and no change on the host.
#
# One sandbox host for the file: an app deployed once (so its repo, properties and lock file
# exist), and an image archive whose image is not on the engine. The tests aim their hostile
# input at that app and assert that nothing on the host changed, so they leave it as it was;
# a test that deploys does it to an app of its own (OWN_APP), destroyed by its teardown.

load test_helper

file_setup() {
  export APP IMG ARCHIVE ARCHIVE_TAG ARCHIVE_ID
  APP="$(unique_name hostile)"
  dokku apps:create "$APP" >/dev/null
  IMG="$(unique_name img):v1"
  build_busybox_image "$IMG" >/dev/null
  dokku image:from "$APP" "$IMG" >/dev/null 2>&1 || {
    fail "the first deploy of $APP failed"
    return 1
  }
  ARCHIVE_TAG="$(unique_name archived):v1"
  build_busybox_image "$ARCHIVE_TAG" >/dev/null
  archive_of "$ARCHIVE_TAG"
  # shellcheck disable=SC2153 # ARCHIVED_ID is set by archive_of
  ARCHIVE_ID="$ARCHIVED_ID"
}


test_setup() {
  use_test_tmpdir
  MARKER="$BATS_TEST_TMPDIR/pwned"
  BEFORE="$(snapshot)"
}

test_cleanup() {
  # Its image is built FROM the image it deployed: without it, that image can go (the
  # archived one has to, the next tests watch it stay absent).
  [[ -z "${OWN_APP:-}" ]] || dokku --force apps:destroy "$OWN_APP" >/dev/null 2>&1 || true
}

# own_app: a new app of the test, in OWN_APP.
own_app() {
  OWN_APP="$(unique_name own)"
  dokku apps:create "$OWN_APP" >/dev/null
}

# snapshot: host_state of the app (the archived image watched) and every file of the
# sandbox host with its size, but the doubles' trigger log and Dokku's build records (a
# refused deploy is recorded there, as a failed build: host.bats checks those).
snapshot() {
  host_state "$APP" "$ARCHIVE_ID" "$IMG"
  echo "files:"
  find "$SANDBOX_DIR" \( -path "$DOKKU_LIB_ROOT/data/sandbox" -o -path "$DOKKU_LIB_ROOT/data/builds" \) \
    -prune -o -printf '  %P %y %s\n' | LC_ALL=C sort
}

# assert_refused STATUS REGEX: after `run_split`, the command exited STATUS with
# exactly one line on stderr, a ` !     ` line matching REGEX, and the host is unchanged.
assert_refused() {
  assert_failure "$1"
  if [[ -z "$stderr" || "$stderr" == *$'\n'* ]]; then
    fail "expected one line on stderr, got: $stderr"
  fi
  if [[ "$stderr" != " !     "* || ! "$stderr" =~ $2 ]]; then
    fail "stderr does not match ' !     ' and /$2/: $stderr"
  fi
  assert_equal "$(snapshot)" "$BEFORE"
  refute_marker
}

# refute_marker: no shell ran the input (it would have created $MARKER).
refute_marker() {
  [ ! -e "$MARKER" ] || fail "a shell ran the input: $MARKER exists"
}

# load_archive FILE [ENV=VALUE…]: image:load of the archived image from FILE, with the
# environment given (through `run_split`).
load_archive() {
  local file="$1"
  shift 1
  run_split env "$@" dokku image:load "$APP" "$ARCHIVE_TAG" <"$file"
}

# mutate KIND: writes $BATS_TEST_TMPDIR/KIND.tar, the archive made hostile (see the script).
mutate() {
  "$TEST_HELPERS/hostile-archive.py" "$1" "$ARCHIVE" "$BATS_TEST_TMPDIR/$1.tar"
}

# ---------------------------------------------------------------------------------------
# App names

@test "invalid app names are refused by every deploying command, before anything happens" {
  local name command
  for name in "a/b" "../$APP" ".." "a b" "My$APP" "$APP/" $'a\nb' "-$APP"; do
    for command in image:from image:rollback; do
      if [[ "$command" == image:rollback ]]; then
        run_split dokku "$command" "$name"
      else
        run_split dokku "$command" "$name" "$IMG"
      fi
      if [[ "$name" == -* ]]; then
        assert_refused 1 "unknown flag"
      else
        assert_refused 20 "^ !     App .* does not exist$"
      fi
    done
    run_split dokku image:load "$name" "$IMG" <"$ARCHIVE"
    if [[ "$name" == -* ]]; then
      assert_refused 1 "unknown flag"
    else
      assert_refused 20 "^ !     App .* does not exist$"
    fi
    run_split dokku --app "$name" image:from "$IMG"
    [[ "$name" == -* ]] || assert_refused 20 "^ !     App .* does not exist$"
  done
  run_split dokku image:from $'a\nb' "$IMG"
  assert_equal "$stderr" ' !     App "a\nb" does not exist'
  run_split dokku image:from "" "$IMG"
  assert_refused 1 "APP is required"
  run_split dokku image:load "" "$IMG" <"$ARCHIVE"
  assert_refused 1 "APP is required"
}

# ---------------------------------------------------------------------------------------
# Image references

@test "image references with shell metacharacters are refused and never reach a shell" {
  local ref
  for ref in "\$(touch $MARKER)" "x\$(touch\${IFS}$MARKER)" "x;touch\${IFS}$MARKER" \
    "\`touch $MARKER\`" "x\`touch\${IFS}$MARKER\`" "x|touch" "x&&touch" "x>$MARKER" \
    "x'y" 'x"y' "x\\y" "img:1#x" "img*"; do
    run_split dokku image:from "$APP" "$ref"
    assert_refused 1 "invalid image reference"
  done
  # Over SSH the command string is split honouring quotes, never expanded.
  run_split sandbox_ssh "image:from $APP \$(touch\${IFS}$MARKER)"
  assert_refused 1 "invalid image reference"
  run_split sandbox_ssh "image:from $APP 'x;touch $MARKER'"
  assert_refused 1 "invalid image reference"
}

@test "image references with newlines or control characters are refused on one line" {
  local ref
  for ref in $'img:v1\nother' $'img:v1\r' $'\nimg' $'img\tx' $'img\x1b[31m'; do
    run_split dokku image:from "$APP" "$ref"
    assert_refused 1 "invalid image reference"
    run_split dokku image:load "$APP" "$ref" <"$ARCHIVE"
    assert_refused 1 "invalid image reference"
  done
}

@test "over-long and malformed image references are refused" {
  local long
  long="$(printf 'a%.0s' {1..300})"
  run_split dokku image:from "$APP" "$long"
  assert_refused 1 "longer than 255"
  run_split dokku image:from "$APP" "img:$long"
  assert_refused 1 "longer than 128"
  run_split dokku image:from "$APP" "$(printf 'a/%.0s' {1..150})b"
  assert_refused 1 "invalid image reference"
  run_split dokku image:from "$APP" "img@sha256:$long"
  assert_refused 1 "invalid image reference"
  for long in "img@sha256:zz" "IMG:1" "img:" ":tag" "img::1" "img:-x" "/img" "img/"; do
    run_split dokku image:from "$APP" "$long"
    assert_refused 1 "invalid image reference"
  done
}

@test "USER_NAME and USER_EMAIL with control characters are refused; metacharacters are data" {
  run_split dokku image:from "$APP" "$IMG" $'Jane\nDoe'
  assert_refused 1 "invalid USER_NAME"
  run_split dokku image:from "$APP" "$IMG" Jane $'j@x\n'
  assert_refused 1 "invalid USER_EMAIL"
  run_split dokku image:from "$APP" "$IMG" "Jane <evil@x>"
  assert_refused 1 "invalid USER_NAME"
  # Redeploying the live image is a no-op whatever the author: nothing reaches a shell.
  run_split dokku image:from "$APP" "$IMG" "\$(touch $MARKER)" "\`touch $MARKER\`"
  assert_success
  assert_output "-----> No changes detected, skipping deploy"
  refute_marker
}

# ---------------------------------------------------------------------------------------
# --build-dir

@test "a --build-dir that is a file, missing, or holds a newline is refused" {
  printf 'x\n' >"$BATS_TEST_TMPDIR/file"
  run_split dokku image:from --build-dir "$BATS_TEST_TMPDIR/file" "$APP" "$IMG"
  assert_refused 1 "is not a directory"
  run_split dokku image:from --build-dir "$BATS_TEST_TMPDIR/missing" "$APP" "$IMG"
  assert_refused 1 "No such file or directory"
  run_split dokku image:from --build-dir= "$APP" "$IMG"
  assert_failure 1
  assert_equal "$(snapshot)" "$BEFORE"
  mkdir -p "$BATS_TEST_TMPDIR/new"$'\n'"line"
  run_split dokku image:from --build-dir "$BATS_TEST_TMPDIR/new"$'\n'"line" "$APP" "$IMG"
  assert_refused 1 "holds a newline"
  run_split dokku image:load --build-dir "$BATS_TEST_TMPDIR/missing" "$APP" "$ARCHIVE_TAG" <"$ARCHIVE"
  assert_refused 1 "No such file or directory"
}

@test "a --build-dir in or around DOKKU_ROOT, DOKKU_LIB_ROOT or the dokku user's home is refused" {
  local link="$BATS_TEST_TMPDIR/innocent" home case dir relation root
  ln -s "$DOKKU_ROOT/$APP" "$link"
  # DIR|RELATION|ROOT: what is given, how it stands to the root it reaches (symlinks followed)
  for case in "$DOKKU_ROOT/$APP|inside|$DOKKU_ROOT" "$link|inside|$DOKKU_ROOT" \
    "$DOKKU_LIB_ROOT/config|inside|$DOKKU_LIB_ROOT" "$link/../..|which holds|$DOKKU_ROOT"; do
    IFS='|' read -r dir relation root <<<"$case"
    run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
    assert_refused 1 "is refused"
    assert_equal "$stderr" " !     --build-dir $dir is refused: it resolves to $(realpath "$dir"), $relation $(realpath "$root"), where the host keeps its apps' and its own private files"
  done
  run_split dokku image:load --build-dir "$link" "$APP" "$ARCHIVE_TAG" <"$ARCHIVE"
  assert_refused 1 "^ !     --build-dir $link is refused: "
  # The system user's home, from /etc/passwd: root's stands for dokku's here.
  home="$(getent passwd root | cut -d: -f6)"
  if [[ "$home" != / ]]; then
    DOKKU_SYSTEM_USER=root run_split dokku image:from --build-dir "$home" "$APP" "$IMG"
    assert_refused 1 "^ !     --build-dir $home is refused: it resolves to $(realpath "$home"), inside $(realpath "$home"), "
  fi
}

@test "a --build-dir holding a FIFO, a socket or a device is refused" {
  local dir="$BATS_TEST_TMPDIR/build"
  mkdir -p "$dir/sub"
  printf 'FROM scratch\n' >"$dir/Dockerfile"
  mkfifo "$dir/sub/fifo"
  run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
  assert_refused 1 "fifo is not a regular file, folder or symlink"
  rm "$dir/sub/fifo"
  python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$dir/sub/socket"
  run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
  assert_refused 1 "socket is not a regular file, folder or symlink"
  rm "$dir/sub/socket"
  if mknod "$dir/null" c 1 3 2>/dev/null; then
    run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
    assert_refused 1 "null is not a regular file, folder or symlink"
    rm "$dir/null"
  fi
}

@test "a --build-dir with a file name that is not UTF-8 or holds a newline is refused" {
  local dir="$BATS_TEST_TMPDIR/build"
  mkdir -p "$dir"
  printf 'x\n' >"$dir/"$'bad\xff'
  run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
  assert_refused 1 "is not UTF-8"
  rm "$dir/"$'bad\xff'
  printf 'x\n' >"$dir/"$'two\nlines'
  run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
  assert_refused 1 "holds a newline"
}

@test "an unreadable --build-dir or file in it is refused" {
  if [[ "$(id -u)" -eq 0 ]]; then
    # root bypasses file permissions, so nothing is unreadable to it; the FIFO, socket
    # and device cases above are what root cannot read as a file.
    skip "running as root: permission bits do not stop root from reading"
  fi
  local dir="$BATS_TEST_TMPDIR/build"
  mkdir -p "$dir/locked"
  printf 'x\n' >"$dir/secret"
  chmod 000 "$dir/secret"
  run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
  assert_refused 1 "cannot read"
  chmod 644 "$dir/secret"
  chmod 000 "$dir/locked"
  run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
  assert_refused 1 "cannot read"
  chmod 000 "$dir"
  run_split dokku image:from --build-dir "$dir" "$APP" "$IMG"
  assert_refused 1 "cannot be read"
  chmod 755 "$dir" "$dir/locked"
}

@test "symlinks in --build-dir pointing outside are stored as symlinks, never followed" {
  local dir="$BATS_TEST_TMPDIR/build" outside="$BATS_TEST_TMPDIR/outside" secret head
  secret="$(unique_name secret-content)"
  mkdir -p "$dir/sub" "$outside/folder"
  printf '%s\n' "$secret" >"$outside/secret.txt"
  printf '%s\n' "$secret" >"$outside/folder/inside.txt"
  ln -s "$outside/secret.txt" "$dir/absolute-link"
  ln -s "../../outside/secret.txt" "$dir/sub/relative-link"
  ln -s "$outside/folder" "$dir/folder-link"
  ln -s "$outside/missing" "$dir/dangling-link"
  ln -s "loop" "$dir/loop"
  own_app
  run dokku image:from --build-dir "$dir" "$OWN_APP" "$IMG"
  assert_success
  head="$(app_branch_rev "$OWN_APP")"
  run app_git "$OWN_APP" ls-tree -r --full-tree "$head"
  assert_success
  assert_line --regexp "^120000 blob [0-9a-f]+"$'\t'"absolute-link$"
  assert_line --regexp "^120000 blob [0-9a-f]+"$'\t'"sub/relative-link$"
  assert_line --regexp "^120000 blob [0-9a-f]+"$'\t'"folder-link$"
  assert_line --regexp "^120000 blob [0-9a-f]+"$'\t'"dangling-link$"
  assert_line --regexp "^120000 blob [0-9a-f]+"$'\t'"loop$"
  refute_output --partial "inside.txt"
  assert_equal "$(app_git "$OWN_APP" cat-file blob "$head:absolute-link")" "$outside/secret.txt"
  assert_equal "$(app_git "$OWN_APP" cat-file blob "$head:sub/relative-link")" "../../outside/secret.txt"
  # The outside files' content is in no object of the repo.
  run bash -c "git --git-dir='$DOKKU_ROOT/$OWN_APP' cat-file --batch-all-objects --batch | grep -c -a -F '$secret'"
  assert_output 0
  assert_equal "$(find "$TMPDIR" -mindepth 1)" ""
}

@test "a .git folder in --build-dir is not deployed, at the top or below" {
  local dir="$BATS_TEST_TMPDIR/build" head
  mkdir -p "$dir/.git/objects" "$dir/vendor/lib/.git" "$dir/src"
  printf 'ref: refs/heads/master\n' >"$dir/.git/HEAD"
  printf '[core]\n\thooksPath = /tmp\n' >"$dir/.git/config"
  printf 'gitdir: ../elsewhere\n' >"$dir/vendor/lib/.git/HEAD"
  printf 'code\n' >"$dir/src/main.txt"
  printf 'keep\n' >"$dir/.gitignore"
  own_app
  run dokku image:from --build-dir "$dir" "$OWN_APP" "$IMG"
  assert_success
  head="$(app_branch_rev "$OWN_APP")"
  run app_git "$OWN_APP" ls-tree -r --name-only --full-tree "$head"
  assert_success
  assert_output "$(printf '%s\n' .gitignore Dockerfile src/main.txt)"
  # A .git file (a worktree's gitdir link) is skipped the same way.
  rm -rf "$dir/.git"
  printf 'gitdir: /somewhere/else\n' >"$dir/.git"
  printf 'more\n' >"$dir/src/more.txt"
  run dokku image:from --build-dir "$dir" "$OWN_APP" "$IMG"
  assert_success
  run app_git "$OWN_APP" ls-tree -r --name-only --full-tree "$(app_branch_rev "$OWN_APP")"
  assert_output "$(printf '%s\n' .gitignore Dockerfile src/main.txt src/more.txt)"
}

# ---------------------------------------------------------------------------------------
# image:load archives

@test "archive entries with absolute or .. paths are refused, nothing is loaded" {
  mutate absolute
  load_archive "$BATS_TEST_TMPDIR/absolute.tar"
  assert_refused 1 'unsafe path: "/tmp/image-hostile-absolute"'
  refute_path -e /tmp/image-hostile-absolute
  mutate dotdot
  load_archive "$BATS_TEST_TMPDIR/dotdot.tar"
  assert_refused 1 'unsafe path: "blobs/../../image-hostile-dotdot"'
  gzip -c "$BATS_TEST_TMPDIR/dotdot.tar" >"$BATS_TEST_TMPDIR/dotdot.tar.gz"
  load_archive "$BATS_TEST_TMPDIR/dotdot.tar.gz"
  assert_refused 1 "unsafe path"
}

@test "a manifest over DOKKU_IMAGE_MAX_METADATA_BYTES is refused, nothing is loaded" {
  mutate huge-manifest
  load_archive "$BATS_TEST_TMPDIR/huge-manifest.tar" DOKKU_IMAGE_MAX_METADATA_BYTES=1024
  assert_refused 1 "manifest.json is larger than the 1 KiB limit \(DOKKU_IMAGE_MAX_METADATA_BYTES\)"
  load_archive "$ARCHIVE" DOKKU_IMAGE_MAX_METADATA_BYTES=lots
  assert_refused 1 "DOKKU_IMAGE_MAX_METADATA_BYTES must be a positive whole number"
  load_archive "$ARCHIVE" DOKKU_IMAGE_MAX_ARCHIVE_BYTES=-1
  assert_refused 1 "DOKKU_IMAGE_MAX_ARCHIVE_BYTES must be a positive whole number"
}

@test "a manifest naming a layer the archive lacks and the host does not hold, an absent config, or two manifests, is refused, nothing is loaded" {
  mutate absent-layer
  load_archive "$BATS_TEST_TMPDIR/absent-layer.tar"
  # A left-out layer is a slim archive's; this host holds no such layer (docs/slim.md).
  assert_refused 1 "the archive leaves out layers this host does not hold: [0-9a-f]{12}; nothing was loaded"
  mutate absent-config
  load_archive "$BATS_TEST_TMPDIR/absent-config.tar"
  assert_refused 1 "manifest.json names f{64}.json, which the archive does not contain"
  mutate two-manifests
  load_archive "$BATS_TEST_TMPDIR/two-manifests.tar"
  assert_refused 1 "archive holds manifest.json twice"
}

@test "a decompression bomb stops at DOKKU_IMAGE_MAX_ARCHIVE_BYTES, nothing is loaded" {
  local size
  # 200 MiB of zeros as one tar entry, gzipped to about 200 KiB.
  "$TEST_HELPERS/hostile-archive.py" bomb "$BATS_TEST_TMPDIR/bomb.tar.gz" $((200 << 20))
  size="$(stat -c %s "$BATS_TEST_TMPDIR/bomb.tar.gz")"
  ((size < 1 << 20)) || fail "the bomb is $size bytes, not under 1 MiB"
  load_archive "$BATS_TEST_TMPDIR/bomb.tar.gz" DOKKU_IMAGE_MAX_ARCHIVE_BYTES=$((10 << 20))
  assert_refused 1 "archive exceeds the size limit of 10485760 bytes \(DOKKU_IMAGE_MAX_ARCHIVE_BYTES\)"
}

@test "stdin closed early, empty or garbage is refused, nothing is loaded" {
  local size
  size="$(stat -c %s "$ARCHIVE")"
  head -c $((size / 2)) "$ARCHIVE" >"$BATS_TEST_TMPDIR/half.tar"
  load_archive "$BATS_TEST_TMPDIR/half.tar"
  assert_refused 1 "archive is truncated after $((size / 2)) bytes"
  gzip -c "$ARCHIVE" | head -c 100000 >"$BATS_TEST_TMPDIR/half.tar.gz"
  load_archive "$BATS_TEST_TMPDIR/half.tar.gz"
  assert_refused 1 "truncated .*the gzip stream ends early"
  # Everything but the end-of-archive blocks: the metadata arrived, the end did not.
  head -c $((size - 1024)) "$ARCHIVE" >"$BATS_TEST_TMPDIR/no-end.tar"
  load_archive "$BATS_TEST_TMPDIR/no-end.tar"
  assert_refused 1 "truncated|end"
  load_archive /dev/null
  assert_refused 1 "empty input"
  head -c 100000 /dev/urandom >"$BATS_TEST_TMPDIR/garbage"
  load_archive "$BATS_TEST_TMPDIR/garbage"
  assert_refused 1 "not a tar archive"
  # A writer that dies mid-stream.
  run_split bash -c "{ head -c 700000 '$ARCHIVE'; kill -9 \$BASHPID; } | dokku image:load '$APP' '$ARCHIVE_TAG'"
  assert_refused 1 "archive is truncated after 700000 bytes"
}

# ---------------------------------------------------------------------------------------
# What a git push can write, read back

@test "image:history shows pushed authors and trailers without their control characters" {
  local repo tree commit
  own_app
  repo="$DOKKU_ROOT/$OWN_APP"
  tree="$(git --git-dir="$repo" mktree </dev/null)"
  commit="$(GIT_AUTHOR_NAME=$'Eve\e[2J\rMallory\xe2\x80\xae' GIT_AUTHOR_EMAIL=$'eve\e]0;owned\a@x' \
    GIT_COMMITTER_NAME=Eve GIT_COMMITTER_EMAIL=eve@x \
    git --git-dir="$repo" commit-tree "$tree" -m $'Deploy\e[31m' \
    -m $'Image-Source: app:1\e[2K\nImage-Id: '"$ARCHIVE_ID"$'\nImage-Command: image:from\r\e[1A')"
  git --git-dir="$repo" update-ref refs/heads/master "$commit"
  for format in "" "--format json"; do
    # shellcheck disable=SC2086 # $format is no argument or two
    run bash -c "dokku image:history '$OWN_APP' $format | LC_ALL=C grep -c \$'[\x01-\x09\x0b-\x1f\x7f]' || true"
    assert_output 0
    run bash -c "dokku image:history '$OWN_APP' $format | LC_ALL=C grep -c \$'\xe2\x80\xae' || true"
    assert_output 0
  done
  run dokku image:history "$OWN_APP"
  assert_success
  assert_line --regexp '^[0-9a-f]{12}  .*  Eve\\u\{1b\}\[2J\\rMallory\\u\{202e\} <eve\\u\{1b\}\]0;owned\\u\{7\}@x>  \(git push\)  - +\*$'
}

# ---------------------------------------------------------------------------------------
# The client

@test "dokku-image push reads a bounded answer from the host" {
  local fake="$BATS_TEST_TMPDIR/fake-ssh"
  # A host whose image:layers answers 20 MiB without a line break, and takes any archive.
  printf '#!/bin/sh\ncase "$*" in\n*image:layers*) head -c %d /dev/zero | tr "\\000" a ;;\n*) cat >/dev/null ;;\nesac\n' $((20 << 20)) >"$fake"
  chmod +x "$fake"
  run_split "$PLUGIN_AVAILABLE_PATH/image/bin/dokku-image" push --ssh "$fake" "$IMG" dokku@host "$APP"
  assert_refused 1 "^ !     \`.*fake-ssh dokku@host 'image:layers $APP'\` printed more than 16 MiB on stdout or stderr; stopped$"
}

@test "the archive itself loads and deploys: the refusals above were about the input" {
  own_app
  run dokku image:load "$OWN_APP" "$ARCHIVE_TAG" <"$ARCHIVE"
  assert_success
  assert_output --partial "Deployed $ARCHIVE_TAG"
  track_image "$ARCHIVE_TAG"
  assert_equal "$(image_id "$ARCHIVE_TAG")" "$ARCHIVE_ID"
  assert_equal "$(find "$TMPDIR" -mindepth 1)" ""
}
