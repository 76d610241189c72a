# shellcheck shell=bash
# The hooks bats runs, defined once: one sandbox host for the file, test_teardown after each
# test. A file defines only what differs, as functions bats does not know:
#   file_setup       after the file's host is made (setup_file)
#   file_teardown    before the file's host is destroyed (teardown_file)
#   test_setup       at the start of each test, after its app (setup)
#   test_cleanup     after each test, before test_teardown (teardown)
# and, at its top level, `app_per_test PREFIX`: every test gets a fresh app, $APP, named
# PREFIX-….
# A file whose host differs (faults.bats, sandbox.bats) or whose tests each need a host of
# their own (sandbox-builds.bats) defines those of bats's hooks itself.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

# app_per_test PREFIX: setup makes a fresh app, $APP, named PREFIX-…, for every test.
app_per_test() {
  TEST_APP="$1"
}

setup_file() {
  sandbox_setup
  _file_hook file_setup
}

teardown_file() {
  _file_hook file_teardown
  sandbox_teardown
}

setup() {
  if [[ -n "${TEST_APP:-}" ]]; then
    APP="$(unique_name "$TEST_APP")"
    new_app "$APP"
  fi
  _file_hook test_setup
}

teardown() {
  _file_hook test_cleanup
  test_teardown
}

# _file_hook NAME: runs the file's function NAME, when it has one (under bats's set -e).
_file_hook() {
  if declare -F "$1" >/dev/null; then
    "$1"
  fi
}
