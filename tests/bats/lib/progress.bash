# shellcheck shell=bash
# Upload progress (load.bats, ssh.bats).
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

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
