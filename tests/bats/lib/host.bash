# shellcheck shell=bash
# The sandbox host.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

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
