#!/usr/bin/env bats
# Tests of the sandbox's Dokku 0.38 builds double (tests/sandbox/plugins/builds), the build
# capture and deploy lock functions of tests/sandbox/lib/functions.bash, and the access
# control of the apps double with the acl-double test plugin (docs/dokku-builds.md). The
# plugin is a stub made here.
# shellcheck disable=SC2016 # scripts and jq programs are single-quoted on purpose

load test_helper

setup_file() {
  local stub="$BATS_FILE_TMPDIR/stub"
  mkdir -p "$stub/image"
  printf '[plugin]\ndescription = "stub"\nversion = "0.0.0"\n[plugin.config]\n' >"$stub/image/plugin.toml"
  tar -czf "$BATS_FILE_TMPDIR/image-0.0.0-stub.tar.gz" -C "$stub" image
  export STUB_TARBALL="$BATS_FILE_TMPDIR/image-0.0.0-stub.tar.gz"
}

setup() {
  sandbox_setup "$STUB_TARBALL"
  APP="$(unique_name app)"
  dokku apps:create "$APP" >/dev/null
  add_fake_deploy
}

teardown() {
  local pid
  for pid in "${KILL_AT_TEARDOWN[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  sandbox_teardown
}

KILL_AT_TEARDOWN=()

# A third-party plugin with one command, `fake:deploy APP SOURCE EXIT_CODE [GATE]`: a deploy
# as Dokku 0.38's receive-app makes one. It sets up the build capture (twice: the second is a
# no-op), takes the deploy lock, prints a line on stdout, one on stderr and the lock file's
# content; with GATE (a fifo) it then runs a foreground child (its pid in GATE.child) that
# reads GATE, and writes the child's exit status to GATE.status; then it releases the lock
# with EXIT_CODE, or the child's status when that is not 0, and exits with it. Like every
# bash script, it ignores SIGQUIT itself; its child does not. A child killed with the process
# group means its tee is dead too: the next write kills the script by SIGPIPE, always after
# the tee's death (the script waits for it), so it never finalizes.
add_fake_deploy() {
  local dir="$PLUGIN_AVAILABLE_PATH/fake"
  mkdir -p "$dir"
  printf '[plugin]\ndescription = "fake"\nversion = "0.0.1"\n[plugin.config]\n' >"$dir/plugin.toml"
  cat >"$dir/commands" <<'SCRIPT'
#!/usr/bin/env bash
set -eo pipefail
source "$PLUGIN_CORE_AVAILABLE_PATH/sandbox-lib/functions.bash"
[[ "$1" == "fake:deploy" ]] || exit "$DOKKU_NOT_IMPLEMENTED_EXIT"
app="$2" source="$3" code="$4" gate="${5:-}"
ulimit -c 0
sandbox_verify_app_for_user "$app"
sandbox_setup_build_capture "$app" "$source"
tee_pid=$!  # the tee of the build capture (a process substitution sets $!)
sandbox_setup_build_capture "$app" ps:rebuild
sandbox_acquire_app_deploy_lock "$app" exclusive
echo "deploying $app"
echo "a warning for $app" >&2
echo "lock: $(<"$DOKKU_LIB_ROOT/data/apps/$app/.deploy.lock")"
if [[ -n "$gate" ]]; then
  status=0
  sh -c 'echo "$$" >"$1.child"; exec cat "$1" >/dev/null' _ "$gate" || status=$?
  if ((status > 128)); then
    # Killed with its process group (builds:cancel), and so is the tee. The deploy dies of
    # SIGPIPE at its next write, however the kernel orders the two deaths: it waits for the
    # tee to be gone (or a zombie) before that write.
    while [[ -n "$tee_pid" && -e "/proc/$tee_pid" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$tee_pid/status" 2>/dev/null; do
      sleep 0.05
    done
    echo "the deploy's child died of signal $((status - 128))" >&2
  fi
  echo "$status" >"$gate.status"
  [[ "$status" -eq 0 ]] || code="$status"
fi
sandbox_release_app_deploy_lock "$app" "$code"
exit "$code"
SCRIPT
  chmod 0755 "$dir/commands"
  ln -s "$dir" "$PLUGIN_ENABLED_PATH/fake"
}

# start_gated_deploy APP SOURCE: fake:deploy in the background, in a session (so a process
# group) of its own, SIGQUIT at its default (a background job of a script ignores it), like
# a deploy an ssh session runs. Sets GATE; waits until it holds the deploy lock.
start_gated_deploy() {
  local app="$1" source="$2"
  GATE="$BATS_TEST_TMPDIR/gate.$app"
  mkfifo "$GATE"
  setsid env --default-signal=QUIT dokku fake:deploy "$app" "$source" 0 "$GATE" \
    </dev/null >"$BATS_TEST_TMPDIR/deploy.$app.out" 2>&1 3>&- &
  KILL_AT_TEARDOWN+=("$!")
  wait_until 20 test -s "$GATE.child" || fail "the fake deploy of $app did not take the lock"
  KILL_AT_TEARDOWN+=("$(<"$GATE.child")")
  # what it printed has reached its build log
  wait_until 20 grep -q '^lock: ' "$DOKKU_LIB_ROOT/data/builds/$app"/*.log \
    || fail "the fake deploy's output did not reach its build log"
}

lock_file() {
  echo "$DOKKU_LIB_ROOT/data/apps/$1/.deploy.lock"
}

record_file() {
  echo "$DOKKU_LIB_ROOT/data/builds/$1/$2.json"
}

# record APP ID JQ_FILTER: a field of a build record.
record() {
  jq -r "$3" "$(record_file "$1" "$2")"
}

# The only build id of APP.
only_build_id() {
  local files=("$DOKKU_LIB_ROOT/data/builds/$1"/*.json) name
  [[ ${#files[@]} -eq 1 && -f "${files[0]}" ]] || return 1
  name="${files[0]##*/}"
  echo "${name%.json}"
}

# write_record APP ID KIND PID STARTED STATUS SOURCE [FINISHED EXIT_CODE]: a record as Dokku
# writes it (field order of its Go struct).
write_record() {
  local dir="$DOKKU_LIB_ROOT/data/builds/$1"
  mkdir -p "$dir"
  jq -n --arg id "$2" --arg app "$1" --arg kind "$3" --argjson pid "$4" --arg started "$5" \
    --arg status "$6" --arg source "$7" --arg finished "${8:-}" --arg exit "${9:-}" '
    {id: $id, app: $app, kind: $kind, pid: $pid, started_at: $started}
    + (if $finished == "" then {} else {finished_at: $finished} end)
    + {status: $status, source: $source}
    + (if $exit == "" then {} else {exit_code: ($exit | tonumber)} end)' >"$dir/$2.json"
}

# A pid no process has.
dead_pid() {
  local pid
  sh -c 'echo $$' >"$BATS_TEST_TMPDIR/dead.pid"
  pid="$(<"$BATS_TEST_TMPDIR/dead.pid")"
  ! kill -0 "$pid" 2>/dev/null && echo "$pid"
}

not_alive() {
  ! kill -0 "$1" 2>/dev/null
}

# record_is APP ID JQ_FILTER VALUE
record_is() {
  [[ "$(record "$1" "$2" "$3" 2>/dev/null)" == "$4" ]]
}

# clock_past MS: the clock has passed MS (ms since the epoch).
clock_past() {
  (($(date +%s%3N) > $1))
}

# hide_app APP [SSH_NAME]: the acl-double hides APP (from SSH_NAME only, if given).
hide_app() {
  mkdir -p "$DOKKU_LIB_ROOT/config/acl-double"
  echo "$*" >>"$DOKKU_LIB_ROOT/config/acl-double/hidden-apps"
}

enable_acl_double() {
  ln -s "$PLUGIN_AVAILABLE_PATH/acl-double" "$PLUGIN_ENABLED_PATH/acl-double"
}

TIME_RE='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]*[1-9])?Z'

# ---------------------------------------------------------------------------------------

@test "create-host: builds enabled, acl-double available only; SANDBOX_WITH/SANDBOX_WITHOUT change that" {
  [ "$(readlink "$PLUGIN_ENABLED_PATH/builds")" = "$PLUGIN_CORE_AVAILABLE_PATH/builds" ]
  [ -x "$PLUGIN_CORE_AVAILABLE_PATH/builds/commands" ]
  [ -x "$PLUGIN_AVAILABLE_PATH/acl-double/user-auth-app" ]
  [ ! -e "$PLUGIN_ENABLED_PATH/acl-double" ]
  [ -d "$DOKKU_LIB_ROOT/config/builds" ]

  local dir="$BATS_TEST_TMPDIR/other-host"
  run env SANDBOX_WITHOUT=builds SANDBOX_WITH=acl-double "$SANDBOX_TOOLS/create-host" "$dir" "$STUB_TARBALL"
  assert_success
  assert_output ""
  [ ! -e "$dir/lib/plugins/enabled/builds" ] && [ ! -e "$dir/lib/core-plugins/available/builds" ]
  [ "$(readlink "$dir/lib/plugins/enabled/acl-double")" = "$dir/lib/plugins/available/acl-double" ]
  [ -e "$dir/lib/plugins/enabled/apps" ]
  "$SANDBOX_TOOLS/destroy-host" "$dir"

  run env SANDBOX_WITHOUT=nope "$SANDBOX_TOOLS/create-host" "$BATS_TEST_TMPDIR/bad-host" "$STUB_TARBALL"
  assert_failure 1
  assert_output "create-host: SANDBOX_WITHOUT: no double named nope (apps builds git plugin ps registry)"
  rm -rf "$BATS_TEST_TMPDIR/bad-host"
}

@test "builds-generate-id: 14 base36 digits, the first 8 the time in ms; unique and sortable" {
  local before after id ids=() previous ms
  before="$(date +%s%3N)"
  run plugn trigger builds-generate-id
  after="$(date +%s%3N)"
  assert_success
  [[ "$output" =~ ^[0-9a-z]{14}$ ]]
  ms=$((36#${output:0:8}))
  ((before <= ms && ms <= after))

  for _ in $(seq 40); do
    ids+=("$(plugn trigger builds-generate-id)")
  done
  assert_equal "$(printf '%s\n' "${ids[@]}" | sort -u | wc -l)" 40

  # ids of later milliseconds sort later
  previous="$(plugn trigger builds-generate-id)"
  for _ in 1 2 3; do
    ms="$(date +%s%3N)"
    wait_until 5 clock_past "$ms"
    id="$(plugn trigger builds-generate-id)"
    [[ "$previous" < "$id" ]]
    previous="$id"
  done
}

@test "builds-record-start writes Dokku's record: running, kind from the source, 0644" {
  local file
  run plugn trigger builds-record-start "$APP" b1 4242 git:from-image
  assert_success
  assert_output ""
  file="$(record_file "$APP" b1)"
  assert_equal "$(stat -c %a "$file")" 644
  assert_equal "$(tail -c 1 "$file")" "}"
  assert_equal "$(sed -E "s/$TIME_RE/TIME/" "$file")" '{
  "id": "b1",
  "app": "'"$APP"'",
  "kind": "build",
  "pid": 4242,
  "started_at": "TIME",
  "status": "running",
  "source": "git:from-image"
}'
  [[ "$(record "$APP" b1 .started_at)" =~ ^${TIME_RE}$ ]]

  local source
  for source in git-hook ps:rebuild git:sync git:from-archive git:load-image; do
    plugn trigger builds-record-start "$APP" "k-${source//:/-}" 1 "$source"
    assert_equal "$(record "$APP" "k-${source//:/-}" .kind)" build
  done
  for source in ps:restart ps:start deploy config-redeploy unknown; do
    plugn trigger builds-record-start "$APP" "k-${source//:/-}" 1 "$source"
    assert_equal "$(record "$APP" "k-${source//:/-}" .kind)" deploy
  done
}

@test "builds-record-start: an unknown source is recorded as unknown with a warning; bad arguments fail" {
  run plugn trigger builds-record-start "$APP" b2 7 image:from
  assert_success
  assert_output " !     builds-record-start: unknown source \"image:from\" for app $APP, recording as \"unknown\""
  assert_equal "$(record "$APP" b2 '.source + " " + .kind')" "unknown deploy"

  run plugn trigger builds-record-start "$APP" b3 nan git-hook
  assert_failure 1
  assert_output " !     builds-record-start: invalid pid \"nan\": strconv.Atoi: parsing \"nan\": invalid syntax"
  run plugn trigger builds-record-start "$APP" "" 1 git-hook
  assert_failure 1
  assert_output " !     builds-record-start: missing build id"
}

@test "builds-record-finalize: 0 succeeded, else failed; a finalized record stays; no record warns" {
  plugn trigger builds-record-start "$APP" ok 1 git-hook
  run plugn trigger builds-record-finalize "$APP" ok 0
  assert_success
  assert_output ""
  assert_equal "$(record "$APP" ok 'keys_unsorted | join(",")')" "id,app,kind,pid,started_at,finished_at,status,source,exit_code"
  assert_equal "$(record "$APP" ok '.status + " " + (.exit_code | tostring)')" "succeeded 0"
  [[ "$(record "$APP" ok .finished_at)" =~ ^${TIME_RE}$ ]]

  local before
  before="$(cat "$(record_file "$APP" ok)")"
  run plugn trigger builds-record-finalize "$APP" ok 1
  assert_success
  assert_equal "$(cat "$(record_file "$APP" ok)")" "$before"

  plugn trigger builds-record-start "$APP" bad 1 ps:restart
  plugn trigger builds-record-finalize "$APP" bad 137
  assert_equal "$(record "$APP" bad '.status + " " + (.exit_code | tostring)')" "failed 137"

  run plugn trigger builds-record-finalize "$APP" nope 0
  assert_success
  assert_output " !     builds-record-finalize: no record for $APP/nope, skipping"
}

@test "finalize prunes: abandoned records become failed, finalized ones beyond the retention go, live ones stay" {
  local dir="$DOKKU_LIB_ROOT/data/builds/$APP" dead
  dead="$(dead_pid)"
  run dokku builds:set "$APP" retention 2
  assert_success
  assert_output "=====> Setting retention to 2"
  write_record "$APP" old1 build 1 2026-01-01T00:00:01Z succeeded git-hook 2026-01-01T00:00:02Z 0
  write_record "$APP" old2 build 1 2026-01-01T00:00:03Z failed git-hook 2026-01-01T00:00:04Z 1
  write_record "$APP" gone build "$dead" 2026-01-01T00:00:05Z running git-hook
  write_record "$APP" live build "$$" 2026-01-01T00:00:00Z running git-hook
  touch "$dir/old1.log" "$dir/old2.log" "$dir/gone.log" "$dir/live.log" "$dir/new.log"
  plugn trigger builds-record-start "$APP" new 1 git-hook

  plugn trigger builds-record-finalize "$APP" new 0
  assert_equal "$(cd "$dir" && echo *)" "gone.json gone.log live.json live.log new.json new.log"
  assert_equal "$(record "$APP" gone '.status + " " + (.exit_code | tostring)')" "failed -1"
  [[ "$(record "$APP" gone .finished_at)" =~ ^${TIME_RE}$ ]]
  assert_equal "$(record "$APP" live .status)" running

  run dokku builds:set "$APP" retention 0
  assert_failure 1
  assert_output " !     Invalid retention 0: must be >= 1"
}

@test "an unreadable record is skipped with a warning; the others are still listed and pruned" {
  local dir="$DOKKU_LIB_ROOT/data/builds/$APP"
  run dokku builds:set "$APP" retention 1
  assert_success
  write_record "$APP" old1 build 1 2026-01-01T00:00:01Z succeeded git-hook 2026-01-01T00:00:02Z 0
  write_record "$APP" old2 build 1 2026-01-01T00:00:03Z succeeded git-hook 2026-01-01T00:00:04Z 0
  printf '{"id": "broken", "started_at": ' >"$dir/broken.json"
  plugn trigger builds-record-start "$APP" new 1 git-hook

  run plugn trigger builds-record-finalize "$APP" new 0
  assert_success
  # the pruning reads the records twice (to reap abandoned ones, then to prune): a warning each
  local warning=" !     Skipping unreadable build record $APP/broken.json: parse build record broken: parse error: Unfinished JSON term at EOF at line 1, column 31"
  assert_output "$warning"$'\n'"$warning"
  # the newest finalized record stays (retention 1), the unreadable one is left as it is
  assert_equal "$(cd "$dir" && echo *.json)" "broken.json new.json"
}

@test "builds:list prints Dokku's table, live builds first, and --format json, --kind, --status" {
  local dead
  dead="$(dead_pid)"
  run dokku builds:list "$APP"
  assert_success
  assert_output "No builds recorded for this app"
  run dokku builds:list "$APP" --format json
  assert_output "[]"

  write_record "$APP" aaa1 build 321 2026-04-30T13:50:00.5Z succeeded git-hook 2026-04-30T13:51:14.2Z 0
  write_record "$APP" aaa2 deploy 4321 2026-04-30T14:00:00Z failed ps:restart 2026-04-30T15:00:02.51Z 1
  write_record "$APP" aaa0 build "$dead" 2026-04-30T12:00:00Z running git:from-image
  run dokku builds:list "$APP" --status succeeded
  assert_success
  assert_output "Build ID  Kind   Status     PID  Source    Started               Duration
aaa1      build  succeeded  321  git-hook  2026-04-30T13:50:00Z  1m14s"
  run dokku builds:list "$APP" --kind deploy
  assert_output "Build ID  Kind    Status  PID   Source      Started               Duration
aaa2      deploy  failed  4321  ps:restart  2026-04-30T14:00:00Z  1h0m3s"

  write_record "$APP" zzz9 build "$$" 2026-04-30T11:00:00Z running git-hook
  run dokku builds:list "$APP"
  assert_success
  assert_equal "$(printf '%s\n' "${lines[@]}" | awk '{print $1 " " $3}')" "Build Kind
zzz9 running
aaa2 failed
aaa1 succeeded
aaa0 abandoned"

  run dokku builds:list "$APP" --format=json --status succeeded
  assert_output '[{"id":"aaa1","app":"'"$APP"'","kind":"build","pid":321,"started_at":"2026-04-30T13:50:00.5Z","finished_at":"2026-04-30T13:51:14.2Z","status":"succeeded","source":"git-hook","exit_code":0,"display_status":"succeeded","duration":"1m14s","log_path":"'"$DOKKU_LIB_ROOT/data/builds/$APP/aaa1.log"'"}]'

  local w_app=${#APP} w_pid=3
  ((w_app > 3)) || w_app=3
  ((${#$} <= w_pid)) || w_pid=${#$}
  ((${#dead} <= w_pid)) || w_pid=${#dead}
  run dokku builds:list
  assert_success
  assert_output "$(printf "%-${w_app}s  %-8s  %-5s  %-${w_pid}s  %-14s  %s\n" \
    App "Build ID" Kind PID Source Started \
    "$APP" aaa0 build "$dead" git:from-image 2026-04-30T12:00:00Z \
    "$APP" zzz9 build "$$" git-hook 2026-04-30T11:00:00Z)"

  run dokku builds:list "$APP" --status nope
  assert_failure 1
  assert_output " !     Invalid --status value \"nope\" (allowed: running, succeeded, failed, canceled, abandoned)"
  run dokku builds:list "missing-$APP"
  assert_failure 20
  assert_output " !     App missing-$APP does not exist"
}

@test "builds:info prints one record, --format json adds display_status, duration and log_path" {
  write_record "$APP" inf1 build 77 2026-04-30T13:50:00Z failed git:load-image 2026-04-30T13:50:09.6Z 2
  run dokku builds:info "$APP" inf1
  assert_success
  assert_output "Build ID:   inf1
App:        $APP
Kind:       build
Status:     failed
PID:        77
Source:     git:load-image
Started:    2026-04-30T13:50:00Z
Finished:   2026-04-30T13:50:09Z
Duration:   10s
Exit Code:  2
Log:        $DOKKU_LIB_ROOT/data/builds/$APP/inf1.log"

  run dokku builds:info "$APP" inf1 --format json
  assert_output '{"id":"inf1","app":"'"$APP"'","kind":"build","pid":77,"started_at":"2026-04-30T13:50:00Z","finished_at":"2026-04-30T13:50:09.6Z","status":"failed","source":"git:load-image","exit_code":2,"display_status":"failed","duration":"10s","log_path":"'"$DOKKU_LIB_ROOT/data/builds/$APP/inf1.log"'"}'

  write_record "$APP" inf2 deploy "$$" 2026-04-30T13:50:00Z running deploy
  run dokku builds:info "$APP" inf2
  assert_line --index 3 "Status:    running"
  refute_line --partial "Finished:"
  refute_line --partial "Exit Code:"

  run dokku builds:info "$APP" nope
  assert_failure 1
  assert_output " !     No build record found for $APP/nope"
  run dokku builds:info "$APP"
  assert_failure 1
  assert_output " !     Please specify a build id"
}

@test "builds:output prints a finished build's log; current reads the deploy lock" {
  write_record "$APP" out1 build 1 2026-04-30T13:50:00Z succeeded git-hook 2026-04-30T13:50:01Z 0
  printf 'line one\n !     line two\n' >"$DOKKU_LIB_ROOT/data/builds/$APP/out1.log"
  run dokku builds:output "$APP" out1
  assert_success
  assert_output "line one
 !     line two"

  run dokku builds:output "$APP" nolog
  assert_failure 1
  assert_output " !     log file missing and journalctl not available for build nolog"
  run dokku builds:output "$APP" current
  assert_success
  assert_output "-----> App not currently deploying"
  : >"$(lock_file "$APP")"
  run dokku builds:output "$APP"
  assert_output "-----> No matching app deploy found"
  echo out1 >"$(lock_file "$APP")"
  run dokku builds:output "$APP" current
  assert_output "line one
 !     line two"
}

@test "build capture: one record per deploy, both streams in the log and on stdout, the id in the lock" {
  local id log
  run bash -c 'dokku fake:deploy "$1" git:from-image 0 2>/dev/null' _ "$APP"
  assert_success
  id="$(only_build_id "$APP")"
  assert_output "deploying $APP
a warning for $APP
lock: $id"
  log="$DOKKU_LIB_ROOT/data/builds/$APP/$id.log"
  assert_equal "$(cat "$log")" "$output"
  assert_equal "$(record "$APP" "$id" '[.source, .kind, .status, (.exit_code | tostring)] | join(" ")')" \
    "git:from-image build succeeded 0"
  [ ! -e "$(lock_file "$APP")" ]
  assert_equal "$(sandbox_triggers builds-record-finalize)" "builds-record-finalize $APP $id 0"

  run dokku fake:deploy "$APP" git-hook 3
  assert_failure 3
  run dokku builds:list "$APP" --format json
  assert_equal "$(jq -r '.[0] | [.source, .status, (.exit_code | tostring)] | join(" ")' <<<"$output")" "git-hook failed 3"
  assert_equal "$(jq -r '.[0].pid != .[1].pid and .[0].id > .[1].id' <<<"$output")" true
}

@test "build capture keeps a DOKKU_BUILD_ID it is given, and the lock refuses a second deploy" {
  start_gated_deploy "$APP" git:sync
  local id
  id="$(only_build_id "$APP")"
  assert_equal "$(<"$(lock_file "$APP")")" "$id"
  assert_equal "$(record "$APP" "$id" '.status + " " + .source')" "running git:sync"
  run dokku builds:list "$APP"
  assert_line --index 1 --regexp "^$id  build  running  [0-9]+ +git:sync "

  run env DOKKU_BUILD_ID=given dokku fake:deploy "$APP" deploy 0
  assert_failure 1
  assert_output --partial " !     $APP currently has a deploy lock in place. Exiting...
 !     Run 'apps:unlock' to release the existing deploy lock"
  assert_equal "$(record "$APP" given .source)" deploy
  # Dokku opens the lock file for writing before it tries the lock: the id is gone
  assert_equal "$(cat "$(lock_file "$APP")")" ""

  echo go >"$GATE"
  wait_until 20 record_is "$APP" "$id" .status succeeded
  wait_until 20 test ! -e "$(lock_file "$APP")"
}

@test "builds:cancel SIGQUITs the process group of the pid recorded for the build in the lock" {
  local id pid child outsider
  setsid env --default-signal=QUIT sleep 600 </dev/null >/dev/null 2>&1 3>&- &
  outsider=$!
  KILL_AT_TEARDOWN+=("$outsider")
  start_gated_deploy "$APP" git:from-image
  id="$(only_build_id "$APP")"
  pid="$(record "$APP" "$id" .pid)"
  child="$(<"$GATE.child")"
  kill -0 "$pid" && kill -0 "$child"
  [ "$(ps -o pgid= -p "$pid")" = "$(ps -o pgid= -p "$child")" ]
  [ "$(ps -o pgid= -p "$pid")" != "$(ps -o pgid= -p "$$")" ]

  run dokku builds:cancel "$APP"
  assert_success
  assert_output "-----> Killing app deploy"
  assert_equal "$(record "$APP" "$id" '.status + " " + (.exit_code | tostring)')" "canceled -1"
  [[ "$(record "$APP" "$id" .finished_at)" =~ ^${TIME_RE}$ ]]
  [ ! -e "$(lock_file "$APP")" ]

  # The child and tee die of SIGQUIT. The deploy script ignores it, as bash does, but dies
  # of SIGPIPE when it reports its child's death to the dead tee: it never finalizes.
  wait_until 20 not_alive "$child" || fail "the deploy's child $child is still alive"
  wait_until 20 not_alive "$pid" || fail "the deploy $pid is still alive"
  [ ! -e "$GATE.status" ]
  kill -0 "$outsider"
  assert_equal "$(sandbox_triggers builds-record-finalize)" ""
  assert_equal "$(record "$APP" "$id" .status)" canceled
  assert_equal "$(grep -c . "$DOKKU_LIB_ROOT/data/builds/$APP/$id.log")" 3
  run dokku builds:info "$APP" "$id"
  assert_line --index 3 "Status:     canceled"
}

@test "builds:cancel without a live deploy: nothing to do, stale locks and dead deploys cleaned up" {
  local dead
  dead="$(dead_pid)"
  run dokku builds:cancel "$APP"
  assert_success
  assert_output "-----> App not currently deploying"

  echo ghost >"$(lock_file "$APP")"
  run dokku builds:cancel "$APP"
  assert_output "-----> No build record for ghost, removing stale lock file"
  [ ! -e "$(lock_file "$APP")" ]

  write_record "$APP" done1 build "$$" 2026-04-30T13:50:00Z succeeded git-hook 2026-04-30T13:50:01Z 0
  echo done1 >"$(lock_file "$APP")"
  run dokku builds:cancel "$APP"
  assert_output "-----> Build done1 is no longer running (status=succeeded); leaving record untouched"
  [ -e "$(lock_file "$APP")" ]

  write_record "$APP" died build "$dead" 2026-04-30T13:50:00Z running git-hook
  echo died >"$(lock_file "$APP")"
  run dokku builds:cancel "$APP"
  assert_output "-----> Build was already terminated, marking failed"
  assert_equal "$(record "$APP" died '.status + " " + (.exit_code | tostring)')" "failed -1"
  [ ! -e "$(lock_file "$APP")" ]
}

@test "a host before 0.38 (SANDBOX_WITHOUT=builds): no capture, no records, DOKKU_PID in the lock" {
  sandbox_teardown
  SANDBOX_WITHOUT=builds sandbox_setup "$STUB_TARBALL"
  dokku apps:create "$APP" >/dev/null
  add_fake_deploy
  run bash -c 'dokku fake:deploy "$1" git-hook 0 2>/dev/null' _ "$APP"
  assert_success
  assert_line --index 0 "deploying $APP"
  assert_line --index 1 --regexp '^lock: [0-9]+$'
  [ "${#lines[@]}" -eq 2 ]
  [ ! -e "$DOKKU_LIB_ROOT/data/builds" ]
  assert_equal "$(sandbox_triggers | grep -c '^builds-')" 0
  run dokku builds:list "$APP"
  assert_failure 1
  assert_output --partial "is not a dokku command"
}

@test "apps:destroy removes the app's build records" {
  plugn trigger builds-record-start "$APP" gone 1 git-hook
  dokku --force apps:destroy "$APP" >/dev/null
  [ ! -e "$DOKKU_LIB_ROOT/data/builds/$APP" ]
}

@test "access control: app-exists and app-list go through user-auth-app; the acl-double hides apps" {
  local other
  other="$(unique_name other)"
  dokku apps:create "$other" >/dev/null
  run plugn trigger app-list
  assert_output "$(printf '%s\n' "$APP" "$other" | LC_ALL=C sort)"

  enable_acl_double
  run plugn trigger app-exists "$other"
  assert_success
  hide_app "$other"
  run plugn trigger app-exists "$other"
  assert_failure 20
  assert_output " !     App $other does not exist"
  run plugn trigger app-list
  assert_success
  assert_output "$APP"
  run plugn trigger app-list false
  assert_output "$(printf '%s\n' "$APP" "$other" | LC_ALL=C sort)"
  run dokku apps:list
  assert_output "=====> My Apps
$APP"
  run dokku apps:exists "$other"
  assert_failure 20
  run dokku builds:list "$other"
  assert_failure 20
  assert_equal "$(sandbox_triggers user-auth-app | tail -n 1)" "user-auth-app $(id -un) default $other"

  hide_app "$APP" admin
  run env SSH_NAME=admin plugn trigger app-exists "$APP"
  assert_failure 20
  run env SSH_NAME=dev plugn trigger app-exists "$APP"
  assert_success

  run plugn trigger app-exists ""
  assert_failure 1
  assert_output " !     Please specify an app to run the command on"
  run plugn trigger app-exists "Not_Valid"
  assert_failure 1
}
