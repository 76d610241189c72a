# shellcheck shell=bash
# Shared helper of every bats suite (`load test_helper`): the sandbox Dokku host
# (tests/sandbox/), test images, a local registry, and readers of the host's state.
#
# Scope: helpers called from setup_file/teardown_file work at file scope
# ($BATS_FILE_TMPDIR), helpers called from a test, setup or teardown at test scope
# ($BATS_TEST_TMPDIR). sandbox_teardown, cleanup_images and registry_stop only undo what was
# made in their own scope (an image still in use at test scope is retried at file scope).
#
# The usual shape of a file: one host for the file (sandbox_setup in setup_file,
# sandbox_teardown in teardown_file), fresh apps for every test (unique_name), and
# test_teardown in teardown, which undoes what the test added to the shared host.

bats_load_library bats-support
bats_load_library bats-assert

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SANDBOX_TOOLS="$REPO_ROOT/tests/sandbox"
BUSYBOX_BIN="${BUSYBOX_BIN:-/bin/busybox}"
export REPO_ROOT SANDBOX_TOOLS

# The newest dist/image-*.tar.gz (made by `make package`), or nothing.
newest_plugin_tarball() {
  local candidate newest=""
  for candidate in "$REPO_ROOT"/dist/image-*.tar.gz; do
    [[ -f "$candidate" ]] || continue
    if [[ -z "$newest" || "$candidate" -nt "$newest" ]]; then
      newest="$candidate"
    fi
  done
  echo "$newest"
}

PLUGIN_TARBALL="${IMAGE_PLUGIN_TARBALL:-$(newest_plugin_tarball)}"
export PLUGIN_TARBALL

# Fails the current test (or setup_file) when there is no plugin tarball.
require_plugin_tarball() {
  if [[ -z "$PLUGIN_TARBALL" || ! -f "$PLUGIN_TARBALL" ]]; then
    fail "no plugin tarball (${IMAGE_PLUGIN_TARBALL:-$REPO_ROOT/dist/image-*.tar.gz}): run make package first"
    return 1
  fi
}

# Helper scripts of the suites (tests/bats/helpers/).
TEST_HELPERS="$REPO_ROOT/tests/bats/helpers"
export TEST_HELPERS

# assert_path TEST PATH: `[ TEST PATH ]` (-e, -f, -d, -x, -L…) holds; otherwise fails, showing
# what is at PATH. refute_path TEST PATH: it does not hold.
assert_path() {
  test "$1" "$2" || fail "expected [ $1 $2 ]; there: $(ls -ld "$2" 2>&1)"
}

refute_path() {
  ! test "$1" "$2" || fail "expected [ ! $1 $2 ]; there: $(ls -ld "$2" 2>&1)"
}

_helper_scope_dir() {
  echo "${BATS_TEST_TMPDIR:-${BATS_FILE_TMPDIR:?not running under bats}}"
}

# unique_name PREFIX: a fresh lowercase name, valid as an app name and an image name.
unique_name() {
  local prefix="${1:-t}"
  prefix="${prefix,,}"
  printf '%s-%s\n' "$prefix" "$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')"
}

# ---------------------------------------------------------------------------------------
# The sandbox host

# sandbox_setup [TARBALL]: creates a host (default tarball: $PLUGIN_TARBALL) in the
# current scope's temp dir and exports its env (SANDBOX_DIR, SANDBOX_ID, DOKKU_ROOT,
# DOKKU_LIB_ROOT, PLUGIN_*, PATH with $SANDBOX_DIR/bin first), so `dokku` and `plugn`
# run the sandbox's. Called from a test, it makes a host of that test alone, in place of the
# file's, for a test that needs a fresh host; sandbox_teardown of the scope destroys it.
sandbox_setup() {
  local tarball="${1:-}" dir
  if [[ -z "$tarball" ]]; then
    require_plugin_tarball || return 1
    tarball="$PLUGIN_TARBALL"
  fi
  dir="$(mktemp -d "$(_helper_scope_dir)/sandbox.XXXXXX")"
  echo "$dir" >>"$(_helper_scope_dir)/.sandbox-hosts"
  "$SANDBOX_TOOLS/create-host" "$dir" "$tarball" || {
    fail "create-host $dir $tarball failed"
    return 1
  }
  # shellcheck source=/dev/null
  source "$dir/env"
}

# sandbox_ssh "COMMAND STRING": runs the sandbox dokku as sshd would for
# `ssh dokku@host COMMAND STRING` (SSH_ORIGINAL_COMMAND) with the key named admin, stdin
# passed through. sandbox_ssh_as NAME "COMMAND STRING": with the key named NAME (sshcommand's
# NAME, which Dokku passes on as SSH_NAME).
sandbox_ssh() {
  sandbox_ssh_as admin "$@"
}

sandbox_ssh_as() {
  local name="$1"
  shift 1
  env SSH_ORIGINAL_COMMAND="$*" NAME="$name" dokku
}

# sandbox_teardown: destroys the hosts sandbox_setup made in the current scope, then
# cleanup_images and registry_stop of the scope.
sandbox_teardown() {
  local list dir
  list="$(_helper_scope_dir)/.sandbox-hosts"
  if [[ -f "$list" ]]; then
    while read -r dir; do
      [[ -z "$dir" ]] || "$SANDBOX_TOOLS/destroy-host" "$dir" || true
    done <"$list"
    rm -f "$list"
  fi
  cleanup_images
  registry_stop
}

# test_teardown: the teardown of a test on a shared host. Releases the test's pauses
# (pause_in), waits for its background command (start_bg) and for the sandbox to be idle,
# removes what the test added to the host (sandbox_plugin, sandbox_core_subcommand), then
# sandbox_teardown of the test's scope (hosts, images, registries of the test).
test_teardown() {
  local list path
  release_pauses
  if [[ -n "${BG_PID:-}" ]]; then
    wait "$BG_PID" 2>/dev/null || true
    BG_PID=""
  fi
  [[ -z "${SANDBOX_DIR:-}" ]] || wait_until 60 sandbox_idle || true
  list="$BATS_TEST_TMPDIR/.sandbox-added"
  if [[ -f "$list" ]]; then
    while read -r path; do
      [[ -z "$path" ]] || rm -rf "$path"
    done <"$list"
    rm -f "$list"
  fi
  sandbox_teardown
}

# _added_to_host PATH…: test_teardown removes these paths of the shared host.
_added_to_host() {
  printf '%s\n' "$@" >>"$(_helper_scope_dir)/.sandbox-added"
}

# sandbox_triggers [NAME]: the `plugn trigger` calls so far, one line each
# (NAME then %q-quoted args), optionally only those of trigger NAME.
sandbox_triggers() {
  local log="$DOKKU_LIB_ROOT/data/sandbox/triggers.log"
  [[ -f "$log" ]] || return 0
  if [[ -n "${1:-}" ]]; then
    grep -E "^$1( |\$)" "$log" || true
  else
    cat "$log"
  fi
}

# app_triggers NAME [APP]: the calls of trigger NAME whose first argument is APP (default:
# $APP), as sandbox_triggers prints them: on a shared host, those of the test's app.
app_triggers() {
  sandbox_triggers "$1" | awk -v app="${2:-$APP}" '$2 == app'
}

# ---------------------------------------------------------------------------------------
# State of the host

# app_property PLUGIN APP KEY: prints $DOKKU_LIB_ROOT/config/PLUGIN/APP/KEY; 1 if unset.
app_property() {
  local file="$DOKKU_LIB_ROOT/config/$1/$2/$3"
  [[ -f "$file" ]] || return 1
  cat "$file"
}

# set_app_property PLUGIN APP KEY VALUE: writes a property as Dokku does (0600, dirs 0755).
set_app_property() {
  local dir="$DOKKU_LIB_ROOT/config/$1/$2"
  mkdir -p "$dir"
  chmod 0755 "$DOKKU_LIB_ROOT/config/$1" "$dir"
  printf '%s' "$4" >"$dir/$3"
  chmod 0600 "$dir/$3"
}

# app_deploy_branch APP: git property deploy-branch, else the global one, else master.
app_deploy_branch() {
  local branch
  branch="$(app_property git "$1" deploy-branch 2>/dev/null || true)"
  [[ -n "$branch" ]] || branch="$(app_property git --global deploy-branch 2>/dev/null || true)"
  echo "${branch:-master}"
}

# app_branch_rev APP [BRANCH]: the commit at refs/heads/BRANCH (default: the deploy
# branch) of the app's bare repo; status 1 when there is none.
app_branch_rev() {
  local app="$1" branch="${2:-}"
  [[ -n "$branch" ]] || branch="$(app_deploy_branch "$app")"
  git --git-dir="$DOKKU_ROOT/$app" rev-parse --verify --quiet "refs/heads/$branch^{commit}"
}

# app_git APP GIT_ARGS…: git on the bare repo of APP.
app_git() {
  local app="$1"
  shift 1
  git --git-dir="$DOKKU_ROOT/$app" "$@"
}

# repo_git GIT_ARGS…: git on the bare repo of the test's app, $APP.
repo_git() {
  app_git "$APP" "$@"
}

# trailer REV KEY [APP]: the value of the KEY trailer (Image-Source, Image-Id, Image-Command)
# of commit REV of APP (default: $APP).
trailer() {
  app_git "${3:-$APP}" show -s --format="%(trailers:key=$2,valueonly)" "$1"
}

# commit_count [APP]: the commits on the deploy branch of APP (default: $APP).
commit_count() {
  local app="${1:-$APP}"
  app_git "$app" rev-list --count "refs/heads/$(app_deploy_branch "$app")"
}

# pending_ref [APP]: the commit of the deploy of APP (default: $APP) that is under way, or was
# interrupted (refs/image/pending); status 1 when there is none.
pending_ref() {
  app_git "${1:-$APP}" rev-parse --verify --quiet refs/image/pending
}

# refute_pending [APP]: fails the test when a deploy of APP (default: $APP) is pending.
refute_pending() {
  local pending
  if pending="$(pending_ref "${1:-$APP}")"; then
    fail "refs/image/pending of ${1:-$APP} is left, at $pending"
  fi
}

# assert_untouched APP HEAD SOURCE_IMAGE: the deploy branch of APP is at HEAD ("": there is no
# branch), source-image is SOURCE_IMAGE ("": unset), and no deploy is pending.
assert_untouched() {
  local app="$1" head="$2" source="$3" actual
  if [[ -n "$head" ]]; then
    assert_equal "$(app_branch_rev "$app")" "$head"
  elif actual="$(app_branch_rev "$app")"; then
    fail "$app has a deploy branch, at $actual; expected none"
  fi
  if [[ -n "$source" ]]; then
    assert_equal "$(app_property git "$app" source-image)" "$source"
  elif actual="$(app_property git "$app" source-image)"; then
    fail "source-image of $app is set, to $actual; expected it unset"
  fi
  refute_pending "$app"
}

# deploy APP ARGS…: `dokku image:from APP ARGS…`, which must succeed (its output is shown
# when it does not); prints the new head of the deploy branch.
deploy() {
  local app="$1" output
  output="$(dokku image:from "$@" 2>&1)" || {
    echo "$output" >&2
    fail "image:from $* failed"
    return 1
  }
  app_branch_rev "$app"
}

# new_app NAME: creates app NAME (quietly).
new_app() {
  dokku apps:create "$1" >/dev/null
}

# app_commit APP [--branch B] [--no-update] FILE=CONTENT…: commits, with git plumbing
# only, a tree of top-level files (each CONTENT gets a trailing newline) on top of the
# branch (default: the deploy branch), moves the branch (a loose ref) unless
# --no-update, and prints the commit.
app_commit() {
  local app="$1" branch="" update=true repo entry path blob parent commit tree listing=""
  local parent_args=()
  shift 1
  local entries=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --branch)
        branch="$2"
        shift 2
        ;;
      --no-update)
        update=false
        shift 1
        ;;
      *)
        entries+=("$1")
        shift 1
        ;;
    esac
  done
  repo="$DOKKU_ROOT/$app"
  [[ -n "$branch" ]] || branch="$(app_deploy_branch "$app")"
  for entry in "${entries[@]}"; do
    path="${entry%%=*}"
    blob="$(printf '%s\n' "${entry#*=}" | git --git-dir="$repo" hash-object -w --stdin)" || return 1
    listing+="100644 blob $blob"$'\t'"$path"$'\n'
  done
  tree="$(printf '%s' "$listing" | git --git-dir="$repo" mktree)" || return 1
  if parent="$(git --git-dir="$repo" rev-parse --verify --quiet "refs/heads/$branch^{commit}")"; then
    parent_args=(-p "$parent")
  fi
  commit="$(GIT_AUTHOR_NAME="Sandbox Test" GIT_AUTHOR_EMAIL="sandbox@test.invalid" \
    GIT_COMMITTER_NAME="Sandbox Test" GIT_COMMITTER_EMAIL="sandbox@test.invalid" \
    git --git-dir="$repo" commit-tree "$tree" "${parent_args[@]}" -m "sandbox test commit")" || return 1
  if "$update"; then
    git --git-dir="$repo" update-ref "refs/heads/$branch" "$commit" || return 1
  fi
  echo "$commit"
}

# app_port APP: the host port (on 127.0.0.1) of the app's web container, from the last
# successful receive-app.
app_port() {
  app_property sandbox "$1" web-port
}

# app_http_get APP [PATH]: GET http://127.0.0.1:PORT/PATH, retrying for up to 10 s (the web
# container runs once receive-app is done, its server may still be starting); prints the body.
app_http_get() {
  wait_until 10 _http_get_once "$1" "${2:-}" 2>/dev/null || {
    echo "app_http_get: no answer from $1 (port $(app_port "$1" || echo unknown))" >&2
    return 1
  }
}

_http_get_once() {
  local port
  port="$(app_port "$1")" && curl -fsS --max-time 1 "http://127.0.0.1:$port/$2" 2>/dev/null
}

# sandbox_fail_receive_app APP [on|off]: make the receive-app double fail (exit 1,
# after taking the deploy lock) or work again.
sandbox_fail_receive_app() {
  if [[ "${2:-on}" == "off" ]]; then
    rm -f "$DOKKU_LIB_ROOT/config/sandbox/$1/fail-receive-app"
  else
    set_app_property sandbox "$1" fail-receive-app ""
  fi
}

# ---------------------------------------------------------------------------------------
# Test images

_record_image() {
  echo "$1" >>"$(_helper_scope_dir)/.sandbox-images"
}

# track_image REF…: cleanup_images of this scope will remove these images (all tags).
track_image() {
  local ref id
  for ref in "$@"; do
    id="$(docker image inspect -f '{{.Id}}' "$ref")" || return 1
    _record_image "$id"
  done
}

# image_id REF: the ID of image REF on the engine.
image_id() {
  docker image inspect -f '{{.Id}}' "$1"
}

# archive_of TAG: saves image TAG to the file $ARCHIVE (in this scope's temp dir) and removes
# TAG from the engine; ARCHIVED_ID is its image ID.
# shellcheck disable=SC2034 # ARCHIVE and ARCHIVED_ID are read by the caller
archive_of() {
  ARCHIVE="$(_helper_scope_dir)/${1//[:\/]/-}.tar"
  ARCHIVED_ID="$(image_id "$1")" || return 1
  docker image save -o "$ARCHIVE" "$1" || return 1
  docker image rm "$1" >/dev/null
}

# cleanup_images: removes the images recorded in this scope (build_*_image, track_image)
# with all their tags. One still needed (a parent, at test scope) is retried at file scope.
cleanup_images() {
  local list id
  list="$(_helper_scope_dir)/.sandbox-images"
  [[ -f "$list" ]] || return 0
  while read -r id; do
    [[ -n "$id" ]] || continue
    docker image inspect "$id" >/dev/null 2>&1 || continue
    if ! docker image rm -f "$id" >/dev/null 2>&1; then
      if [[ -n "${BATS_TEST_TMPDIR:-}" && -n "${BATS_FILE_TMPDIR:-}" ]]; then
        echo "$id" >>"$BATS_FILE_TMPDIR/.sandbox-images"
      fi
    fi
  done < <(sort -u "$list")
  rm -f "$list"
}

# build_busybox_image TAG [--content TEXT] [--port N] [--no-http] [DOCKERFILE_LINE…]
# Makes FROM scratch an image holding only /bin/busybox (Debian's busybox-static, plus
# /bin/sh -> busybox so RUN lines work) and /www/index.html = TEXT (default: TAG), with the
# PATH of a docker build FROM scratch. By default it serves that page: EXPOSE N and CMD
# busybox httpd -f -p N -h /www (N: 5000); --no-http leaves out EXPOSE and CMD. A last
# unique LABEL makes every image a distinct image ID. Without DOCKERFILE_LINEs the image is
# a `docker image import` of that file tree with those settings, which is what a build of
# the Dockerfile makes, in one step; with them (RUN, ONBUILD…) it is built from a Dockerfile
# with the lines appended. Prints the image ID; records it for cleanup_images.
build_busybox_image() {
  local tag="$1" content port=5000 http=true extra=() context id label made=true
  local path_env="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  shift 1
  content="$tag"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --content)
        content="$2"
        shift 2
        ;;
      --port)
        port="$2"
        shift 2
        ;;
      --no-http)
        http=false
        shift 1
        ;;
      *)
        extra+=("$1")
        shift 1
        ;;
    esac
  done
  context="$(mktemp -d "$(_helper_scope_dir)/image-context.XXXXXX")"
  mkdir -p "$context/rootfs/bin" "$context/rootfs/www"
  cp "$BUSYBOX_BIN" "$context/rootfs/bin/busybox"
  ln -s busybox "$context/rootfs/bin/sh"
  printf '%s\n' "$content" >"$context/rootfs/www/index.html"
  label="LABEL com.dokku.sandbox.test-image=\"$(unique_name build)\""
  if [[ ${#extra[@]} -eq 0 ]]; then
    local changes=(--change "ENV $path_env")
    if "$http"; then
      changes+=(--change "EXPOSE $port")
      changes+=(--change "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"$port\", \"-h\", \"/www\"]")
    fi
    changes+=(--change "$label")
    id="$(tar -C "$context/rootfs" -cf - . | docker image import "${changes[@]}" - "$tag" 2>"$context.log")" \
      || made=false
  else
    {
      echo "FROM scratch"
      echo "COPY rootfs/ /"
      if "$http"; then
        echo "EXPOSE $port"
        echo "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"$port\", \"-h\", \"/www\"]"
      fi
      printf '%s\n' "${extra[@]}"
      echo "$label"
    } >"$context/Dockerfile"
    id="$(docker image build -q -t "$tag" "$context" 2>"$context.log")" || made=false
  fi
  if ! "$made"; then
    cat "$context.log" >&2
    rm -rf "$context" "$context.log"
    return 1
  fi
  rm -rf "$context" "$context.log"
  _record_image "$id"
  echo "$id"
}

# build_child_image TAG BASE [KIB]: an image FROM BASE with one layer more, /top of KIB (default
# 256) KiB of random bytes, and a unique LABEL. Prints the image ID (as `inspect` gives it: a
# BuildKit build on the containerd store prints another digest); records it for cleanup_images.
build_child_image() {
  local tag="$1" base="$2" kib="${3:-256}" context id
  context="$(mktemp -d "$(_helper_scope_dir)/image-context.XXXXXX")"
  head -c "$((kib * 1024))" /dev/urandom >"$context/top"
  printf 'FROM %s\nCOPY top /top\nLABEL com.dokku.sandbox.test-image="%s"\n' \
    "$base" "$(unique_name build)" >"$context/Dockerfile"
  if ! docker image build -q -t "$tag" "$context" >/dev/null 2>"$context.log"; then
    cat "$context.log" >&2
    rm -rf "$context" "$context.log"
    return 1
  fi
  rm -rf "$context" "$context.log"
  id="$(docker image inspect -f '{{.Id}}' "$tag")" || return 1
  _record_image "$id"
  echo "$id"
}

# build_onbuild_image TAG [build_busybox_image options…]: a busybox image with
# `ONBUILD COPY app.txt /app.txt`, so a build FROM it without app.txt in its context fails.
build_onbuild_image() {
  build_busybox_image "$@" "ONBUILD COPY app.txt /app.txt"
}

# ---------------------------------------------------------------------------------------
# The engines of the matrix (scripts/engines), beside the one this run uses (DOCKER_HOST)

# on_engine ENGINE CMD…: CMD with ENGINE's environment (its socket, its builder).
on_engine() {
  local engine="$1" env_file
  shift 1
  env_file="$("$REPO_ROOT/scripts/engines" env "$engine")" || return 1
  (
    # shellcheck source=/dev/null
    source "$env_file"
    "$@"
  )
}

# require_engine ENGINE: skips the test unless ENGINE answers (ENGINES left it out).
require_engine() {
  on_engine "$1" docker version >/dev/null 2>&1 || skip "engine $1 is not running"
}

# store_here: classic or containerd, for the engine of this run.
store_here() {
  if [[ -n "${IMAGE_PLUGIN_ENGINE_STORE:-}" ]]; then
    echo "$IMAGE_PLUGIN_ENGINE_STORE"
  elif docker info --format '{{json .DriverStatus}}' | grep -q io.containerd.snapshotter; then
    echo containerd
  else
    echo classic
  fi
}

# ---------------------------------------------------------------------------------------
# A local registry (Debian's docker-registry), plain http on 127.0.0.1

# registry_start [--auth USER PASS]: starts a registry with its own config and storage on a
# free port, waits until it answers, exports REGISTRY_HOST=127.0.0.1:PORT (and
# SANDBOX_REGISTRY_PID). Docker allows plain http to 127.0.0.0/8 registries.
registry_start() {
  local user="" password="" dir port attempt try pid code started=false
  if [[ "${1:-}" == "--auth" ]]; then
    user="${2:-}" password="${3:-}"
    if [[ -z "$user" || -z "$password" ]]; then
      fail "usage: registry_start [--auth USER PASS]"
      return 1
    fi
  fi
  dir="$(mktemp -d "$(_helper_scope_dir)/registry.XXXXXX")"
  mkdir -p "$dir/data"
  [[ -z "$user" ]] || htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
  for ((attempt = 0; attempt < 10; attempt++)); do
    port=$((20000 + RANDOM % 30000))
    # something already answers there: try another port
    code=0
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" || code=$?
    [[ "$code" -eq 7 ]] || continue
    {
      echo "version: 0.1"
      echo "log:"
      echo "  level: error"
      echo "  accesslog:"
      echo "    disabled: true"
      echo "storage:"
      echo "  filesystem:"
      echo "    rootdirectory: $dir/data"
      echo "  delete:"
      echo "    enabled: true"
      echo "http:"
      echo "  addr: 127.0.0.1:$port"
      echo "  secret: $(unique_name secret)"
      if [[ -n "$user" ]]; then
        echo "auth:"
        echo "  htpasswd:"
        echo "    realm: sandbox-registry"
        echo "    path: $dir/htpasswd"
      fi
    } >"$dir/config.yml"
    env -u REGISTRY_HOST docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 3>&- &
    pid=$!
    for ((try = 0; try < 200; try++)); do
      kill -0 "$pid" 2>/dev/null || break
      code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/v2/" || true)"
      if [[ "$code" == "200" || "$code" == "401" ]]; then
        # the answer is ours when our registry holds the listening socket
        [[ "$(ss -Hltnp "sport = :$port")" == *"pid=$pid,"* ]] && started=true
        break
      fi
      sleep 0.05
    done
    if "$started"; then
      echo "$pid" >>"$(_helper_scope_dir)/.sandbox-registries"
      export REGISTRY_HOST="127.0.0.1:$port" SANDBOX_REGISTRY_PID="$pid" SANDBOX_REGISTRY_DIR="$dir"
      return 0
    fi
    kill "$pid" 2>/dev/null || true
  done
  cat "$dir/registry.log" >&2 || true
  fail "registry_start: the registry did not start"
  return 1
}

# registry_stop: stops the registries started in this scope.
registry_stop() {
  local list pid try
  list="$(_helper_scope_dir)/.sandbox-registries"
  [[ -f "$list" ]] || return 0
  while read -r pid; do
    [[ -n "$pid" ]] || continue
    kill "$pid" 2>/dev/null || continue
    # reap it when it is our child (a zombie still answers kill -0)
    wait "$pid" 2>/dev/null || true
    for ((try = 0; try < 50; try++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done <"$list"
  rm -f "$list"
}

# ---------------------------------------------------------------------------------------
# Temp files, host snapshots, processes and waiting

# use_test_tmpdir: points TMPDIR (inherited by dokku, the plugin and the doubles) at a fresh
# folder of this test, so temp files left behind can be seen. Prints nothing.
use_test_tmpdir() {
  export TMPDIR="$BATS_TEST_TMPDIR/tmp"
  mkdir -p "$TMPDIR"
}

# host_state APP [IMAGE…]: a snapshot of everything an image deploy of APP may change, to
# compare before and after: the app repo's refs and HEAD, the git properties of APP (names,
# and the source-image value), the plugin's state folder $DOKKU_LIB_ROOT/data/image, the
# plugin's temp files (image-tree-*) in TMPDIR, and the ID of each IMAGE (a reference or
# ID) or "absent". The engine is shared with other suites running at the same time, so
# images are watched by name rather than listed in full.
host_state() {
  local app="$1" repo="$DOKKU_ROOT/$1" image id
  shift 1
  echo "refs:"
  git --git-dir="$repo" for-each-ref --format='  %(objectname) %(refname)' 2>&1
  echo "HEAD: $(cat "$repo/HEAD" 2>&1)"
  echo "source-image: $(app_property git "$app" source-image 2>/dev/null || echo '(unset)')"
  echo "git properties:"
  find "$DOKKU_LIB_ROOT/config/git/$app" -mindepth 1 -printf '  %P\n' 2>/dev/null | LC_ALL=C sort
  echo "plugin state:"
  find "$DOKKU_LIB_ROOT/data/image" -mindepth 1 -printf '  %P\n' 2>/dev/null | LC_ALL=C sort
  echo "temp files:"
  find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'image-tree-*' -printf '  %P\n' 2>/dev/null | LC_ALL=C sort
  echo "images:"
  for image in "$@"; do
    id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null)" || id=absent
    echo "  $image $id"
  done
}

# plugin_pids BINARY: the pids of this sandbox's running plugin binary BINARY (image-from,
# image-load…), found by their executable, which lies in this sandbox's plugin folder.
plugin_pids() {
  local want="$PLUGIN_AVAILABLE_PATH/image/bin/$1" proc
  # -ef compares the files themselves, without forking a readlink per process
  for proc in /proc/[0-9]*; do
    [[ "$proc/exe" -ef "$want" ]] && echo "${proc#/proc/}"
  done
  return 0
}

# wait_until SECONDS COMMAND…: runs COMMAND every 0.05 s until it succeeds; 1 on timeout.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift 1
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "wait_until: timed out waiting for: $*" >&2
      return 1
    fi
    sleep 0.05
  done
}

# sandbox_idle: true when no process of this sandbox runs (dokku, the plugin, the doubles:
# their command lines hold the sandbox folder).
sandbox_idle() {
  ! pgrep -f -- "$SANDBOX_DIR/" >/dev/null
}

# ---------------------------------------------------------------------------------------
# Plugins a test adds, pauses, commands in the background

# sandbox_plugin NAME [PATH=SCRIPT…]: an enabled third-party plugin with executable files
# (triggers, commands, subcommands/NAME…) in the sandbox host; plugn runs plugins in name
# order, so NAME places its triggers. test_teardown removes it.
sandbox_plugin() {
  local name="$1" dir="$PLUGIN_AVAILABLE_PATH/$1" spec path
  shift 1
  _added_to_host "$dir" "$PLUGIN_ENABLED_PATH/$name"
  mkdir -p "$dir"
  printf '[plugin]\ndescription = "%s"\nversion = "0.0.1"\n[plugin.config]\n' "$name" >"$dir/plugin.toml"
  for spec in "$@"; do
    path="$dir/${spec%%=*}"
    mkdir -p "${path%/*}"
    printf '%s\n' "${spec#*=}" >"$path"
    chmod 0755 "$path"
  done
  ln -s "$dir" "$PLUGIN_ENABLED_PATH/$name"
}

# sandbox_enable NAME: enables the sandbox's test plugin NAME (tests/sandbox/plugins/: acl,
# acl-double), which every host has in plugins/available. test_teardown disables it.
sandbox_enable() {
  _added_to_host "$PLUGIN_ENABLED_PATH/$1"
  ln -s "$PLUGIN_AVAILABLE_PATH/$1" "$PLUGIN_ENABLED_PATH/$1"
}

# sandbox_dokkurc NAME LINE…: $DOKKU_ROOT/.dokkurc/NAME holds the LINEs (`export VAR=…`),
# which the sandbox dokku sources, as Dokku does. test_teardown removes it.
sandbox_dokkurc() {
  local file="$DOKKU_ROOT/.dokkurc/$1"
  shift 1
  _added_to_host "$file"
  mkdir -p "${file%/*}"
  printf '%s\n' "$@" >"$file"
}

# sandbox_core_subcommand PLUGIN NAME SCRIPT: an executable subcommands/NAME in the enabled
# (core) plugin PLUGIN, as a newer Dokku's core plugin would have it. test_teardown removes it.
sandbox_core_subcommand() {
  local dir="$PLUGIN_ENABLED_PATH/$1/subcommands"
  if [[ -d "$dir" ]]; then
    _added_to_host "$dir/$2"
  else
    _added_to_host "$dir"
    mkdir -p "$dir"
  fi
  printf '%s\n' "$3" >"$dir/$2"
  chmod 0755 "$dir/$2"
}

# pause_in TRIGGER [NAME]: an enabled plugin NAME (default zz-pause) whose TRIGGER creates
# $BATS_TEST_TMPDIR/paused-TRIGGER, then waits until the test calls release_pauses (at the
# latest, test_teardown does; it gives up after 10 minutes). Extra lines of bash to run first
# come from $PAUSE_FIRST. Holds a deploy at a known point for as long as the test needs.
pause_in() {
  local trigger="$1" name="${2:-zz-pause}" dir
  printf -v dir '%q' "$BATS_TEST_TMPDIR"
  sandbox_plugin "$name" "$trigger=#!/usr/bin/env bash
${PAUSE_FIRST:-}
touch $dir/paused-$trigger
deadline=\$((SECONDS + 600))
until [[ -e $dir/release ]]; do
  ((SECONDS < deadline)) || exit 1
  sleep 0.05
done"
}

# paused TRIGGER: true once the pause_in plugin of TRIGGER has been reached.
paused() {
  [[ -e "$BATS_TEST_TMPDIR/paused-$1" ]]
}

# release_pauses: lets every pause_in plugin of the test go on, now and from now on.
release_pauses() {
  touch "$BATS_TEST_TMPDIR/release"
}

# rearm_pauses: the pause_in plugins of the test hold the next deploy again (once nothing
# waits in them any more).
rearm_pauses() {
  rm -f "$BATS_TEST_TMPDIR/release" "$BATS_TEST_TMPDIR"/paused-*
}

# start_held_deploy NAME ARGS…: `dokku image:from ARGS…` in the background (start_bg NAME),
# held in its receive-app, where the plugin holds its lock and has its commit pending, by a
# pause_in post-extract until release_pauses; returns once it is held there.
start_held_deploy() {
  local name="$1"
  shift 1
  pause_in post-extract
  start_bg "$name" dokku image:from "$@"
  wait_until 60 paused post-extract
}

# start_bg NAME COMMAND…: runs COMMAND in the background (stdin from $BG_STDIN, default
# /dev/null); stdout, stderr and exit status go to $BATS_TEST_TMPDIR/NAME.{out,err,rc}.
# BG_PID is its pid; test_teardown waits for it.
start_bg() {
  local name="$1"
  shift 1
  (
    rc=0
    "$@" <"${BG_STDIN:-/dev/null}" >"$BATS_TEST_TMPDIR/$name.out" 2>"$BATS_TEST_TMPDIR/$name.err" || rc=$?
    echo "$rc" >"$BATS_TEST_TMPDIR/$name.rc"
  ) 3>&- &
  BG_PID=$!
}

# start_session NAME COMMAND…: start_bg NAME COMMAND… in a session and process group of its
# own, with the signal actions sshd's children have (helpers/in-session.py), as a command run
# over ssh; returns once it runs, with SESSION_ID the id of its process group.
start_session() {
  local name="$1" id_file="$BATS_TEST_TMPDIR/$1.session"
  shift 1
  rm -f "$id_file"
  start_bg "$name" "$TEST_HELPERS/in-session.py" "$id_file" "$@"
  wait_until 30 test -s "$id_file" || return 1
  SESSION_ID="$(<"$id_file")"
}

# group_gone PGID: no process of process group PGID runs any more (zombies left to a PID 1
# that does not reap them do not count).
group_gone() {
  ! ps -eo pgid=,stat= | awk -v group="$1" '$1 == group && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# finish_bg NAME: waits for start_bg's command; sets $status, $output and $stderr, as
# run_split does.
# shellcheck disable=SC2034 # status, output and stderr are read by the caller
finish_bg() {
  wait "$BG_PID" || true
  BG_PID=""
  status="$(<"$BATS_TEST_TMPDIR/$1.rc")"
  output="$(<"$BATS_TEST_TMPDIR/$1.out")"
  stderr="$(<"$BATS_TEST_TMPDIR/$1.err")"
}

# run_split CMD…: `run`, with CMD's stderr apart in $stderr and $stderr_lines, and $output only
# its stdout. (`run --separate-stderr` of bats 1.8 strips the leading blank of " !     ".)
# While CMD runs, its stderr so far is in the file $BATS_TEST_TMPDIR/stderr.
# shellcheck disable=SC2034 # stderr and stderr_lines are read by the caller
run_split() {
  local file="$BATS_TEST_TMPDIR/stderr"
  run _stderr_to "$file" "$@"
  stderr="$(cat "$file")"
  mapfile -t stderr_lines <"$file"
}

_stderr_to() {
  local file="$1"
  shift 1
  "$@" 2>"$file"
}

# ---------------------------------------------------------------------------------------
# Upload progress (load.bats, ssh.bats)

# feed_slowly FILE --lines N | --seconds S: writes FILE to stdout 4 KiB at a time, 0.05 s
# apart, then the rest at once: the plugin logs its progress only as it reads, so the stream
# has to keep flowing while lines are awaited. With --lines, it flows until the stderr of
# run_split ($BATS_TEST_TMPDIR/stderr) holds N "-----> Received" lines; with --seconds (for a
# run that must log none), until the plugin's image-load has been running for S seconds;
# 60 s at the most. Set DOKKU_IMAGE_PROGRESS_INTERVAL low, so that little time has to pass.
feed_slowly() {
  local file="$1" mode="$2" want="$3" log="$BATS_TEST_TMPDIR/stderr" size offset=0
  local deadline=$((SECONDS + 60)) started="" limit="" count
  size="$(stat -c %s "$file")"
  [[ "$mode" != --seconds ]] || limit="$(awk -v s="$want" 'BEGIN { printf "%d", s * 1000000 }')"
  while ((offset < size && SECONDS < deadline)); do
    if [[ -n "$limit" ]]; then
      # microseconds since the plugin was first seen running
      if [[ -z "$started" ]]; then
        [[ -z "$(plugin_pids image-load)" ]] || started="${EPOCHREALTIME//[!0-9]/}"
      elif ((${EPOCHREALTIME//[!0-9]/} - started >= limit)); then
        break
      fi
    else
      count="$(grep -c '^-----> Received ' "$log" 2>/dev/null || true)"
      ((${count:-0} < want)) || break
    fi
    dd if="$file" bs=4096 skip=$((offset / 4096)) count=1 status=none || return 1
    offset=$((offset + 4096))
    sleep 0.05
  done
  if ((offset < size)); then
    dd if="$file" bs=4096 skip=$((offset / 4096)) status=none
  fi
}

# assert_progress_lines INTERVAL LINE…: every LINE is a "-----> Received" line of the plugin's
# upload progress, the first logged once INTERVAL (whole) seconds had passed, each of the
# others INTERVAL seconds after the one before (compared in whole seconds).
assert_progress_lines() {
  local interval="$1" line seconds previous=0
  shift 1
  for line in "$@"; do
    assert_regex "$line" '^-----> Received [0-9.]+ (B|KiB|MiB) in [0-9]+(\.[0-9])?s \([0-9.]+ (B|KiB|MiB)/s\)$'
    [[ "$line" =~ in\ ([0-9]+)(\.[0-9])?s ]]
    seconds="${BASH_REMATCH[1]}"
    ((seconds >= previous + interval)) \
      || fail "logged after ${seconds}s, not ${interval}s after the line before (at ${previous}s): $*"
    previous="$seconds"
  done
}
