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
  if declare -F file_setup >/dev/null; then
    file_setup
  fi
}

teardown_file() {
  if declare -F file_teardown >/dev/null; then
    file_teardown
  fi
  sandbox_teardown
}

setup() {
  if [[ -n "${TEST_APP:-}" ]]; then
    APP="$(unique_name "$TEST_APP")"
    new_app "$APP"
  fi
  if declare -F test_setup >/dev/null; then
    test_setup
  fi
}

teardown() {
  if declare -F test_cleanup >/dev/null; then
    test_cleanup
  fi
  test_teardown
}
