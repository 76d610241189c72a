# shellcheck shell=bash
# Plugins a test adds, pauses, commands in the background.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

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
