# shellcheck shell=bash
# Temp files, host snapshots, processes and waiting.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

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

# plugin_pids image-NAME: the pids of this sandbox's running plugin processes serving
# subcommands/NAME (image-from, image-load…), found by their executable, the plugin's one
# program in this sandbox's plugin folder, and by the name they run under (their argv[0]).
plugin_pids() {
  local want="$PLUGIN_AVAILABLE_PATH/image/bin/dokku-image" name="/subcommands/${1#image-}" proc argv0
  # -ef compares the files themselves, without forking a readlink per process
  for proc in /proc/[0-9]*; do
    [[ "$proc/exe" -ef "$want" ]] || continue
    IFS= read -r -d '' argv0 <"$proc/cmdline" 2>/dev/null || continue
    [[ "$argv0" == *"$name" ]] && echo "${proc#/proc/}"
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
