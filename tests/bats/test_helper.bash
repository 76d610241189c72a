# shellcheck shell=bash source-path=SCRIPTDIR
# Shared helper of every bats suite (`load test_helper`): the sandbox Dokku host
# (tests/sandbox/), test images, a local registry, and readers of the host's state.
# Its parts, one file a section, are in tests/bats/lib/ and sourced below.
#
# Scope: helpers called from setup_file/teardown_file work at file scope
# ($BATS_FILE_TMPDIR), helpers called from a test, setup or teardown at test scope
# ($BATS_TEST_TMPDIR). sandbox_teardown, cleanup_images and registry_stop only undo what was
# made in their own scope (an image still in use at test scope is retried at file scope).
#
# The usual shape of a file, which bats's hooks of lib/hooks.bash give: one host for the file
# (sandbox_setup in setup_file, sandbox_teardown in teardown_file), fresh apps for every test
# (unique_name, app_per_test), and test_teardown in teardown, which undoes what the test added to
# the shared host.

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


# shellcheck source=lib/host.bash
source "$REPO_ROOT/tests/bats/lib/host.bash"
# shellcheck source=lib/state.bash
source "$REPO_ROOT/tests/bats/lib/state.bash"
# shellcheck source=lib/images.bash
source "$REPO_ROOT/tests/bats/lib/images.bash"
# shellcheck source=lib/engines.bash
source "$REPO_ROOT/tests/bats/lib/engines.bash"
# shellcheck source=lib/registry.bash
source "$REPO_ROOT/tests/bats/lib/registry.bash"
# shellcheck source=lib/processes.bash
source "$REPO_ROOT/tests/bats/lib/processes.bash"
# shellcheck source=lib/plugins.bash
source "$REPO_ROOT/tests/bats/lib/plugins.bash"
# shellcheck source=lib/progress.bash
source "$REPO_ROOT/tests/bats/lib/progress.bash"
# shellcheck source=lib/ssh.bash
source "$REPO_ROOT/tests/bats/lib/ssh.bash"
# shellcheck source=lib/delta.bash
source "$REPO_ROOT/tests/bats/lib/delta.bash"
# shellcheck source=lib/client.bash
source "$REPO_ROOT/tests/bats/lib/client.bash"
# shellcheck source=lib/hooks.bash
source "$REPO_ROOT/tests/bats/lib/hooks.bash"
