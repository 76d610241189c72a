#!/usr/bin/env bash
# Sandbox double of core `builds` commands (installed as `commands`), Dokku 0.38's
# plugins/builds: builds:list, builds:info, builds:output, builds:cancel, builds:prune,
# builds:set. builds:report is not doubled. Flags go anywhere after the command, as
# --flag VALUE or --flag=VALUE.
set -eo pipefail
[[ -n "$DOKKU_TRACE" ]] && set -x
# shellcheck source=tests/sandbox/plugins/builds/functions
source "$(dirname "${BASH_SOURCE[0]}")/functions"

HELP_LINES='    builds:cancel <app>, Cancel a running build for an app
    builds:info <app> <build-id> [--format json|stdout], Show details for a single build
    builds:list [<app>] [--format json] [--kind build|deploy] [--status <status>], List builds
    builds:output <app> [<build-id>|current], Show build output
    builds:prune <app> [--all-apps], Prune build records to retention
    builds:report [<app>] [<flag>], Display a build report for one or more apps
    builds:set [--global|<app>] <key> [<value>], Set or clear a builds property'

# parse_flags "STRING_FLAGS" "BOOL_FLAGS" ARGS…: sets FLAGS[name] and the array ARGS
# (pflag: interspersed flags, `--` ends them; an unknown flag exits 2).
declare -A FLAGS
parse_flags() {
  local strings=" $1 " bools=" $2 " arg name
  shift 2
  FLAGS=()
  ARGS=()
  while [[ $# -gt 0 ]]; do
    arg="$1"
    shift 1
    case "$arg" in
      --)
        ARGS+=("$@")
        return 0
        ;;
      --*)
        name="${arg#--}"
        name="${name%%=*}"
        if [[ "$strings" == *" $name "* ]]; then
          if [[ "$arg" == *=* ]]; then
            FLAGS[$name]="${arg#*=}"
          else
            [[ $# -gt 0 ]] || { echo "flag needs an argument: --$name" >&2 && exit 2; }
            FLAGS[$name]="$1"
            shift 1
          fi
        elif [[ "$bools" == *" $name "* ]]; then
          FLAGS[$name]=true
          [[ "$arg" != *=* ]] || FLAGS[$name]="${arg#*=}"
        else
          echo "unknown flag: --$name" >&2
          exit 2
        fi
        ;;
      -?*)
        echo "unknown shorthand flag: '${arg:1:1}' in $arg" >&2
        exit 2
        ;;
      *) ARGS+=("$arg") ;;
    esac
  done
}

check_format() {
  [[ "$1" == "stdout" || "$1" == "json" ]] \
    || sandbox_fail "Invalid format specified, supported formats: json, stdout"
}

now_ns() {
  date +%s%N
}

# Fields of the loaded record for the views: DISPLAY, DURATION, LOG.
load_view() {
  local now="$1"
  DISPLAY="$(builds_display_status)"
  DURATION="$(builds_duration "$R_START_NS" "${R_FINISH_NS:-$now}")"
  LOG="$(builds_log_path "$R_APP" "$R_ID")"
}

cmd-builds-list() {
  local format kind status app now line live rows=() json=() live_rows=() live_json=() retention cap count
  parse_flags "format kind status" "" "$@"
  format="${FLAGS[format]:-stdout}"
  kind="${FLAGS[kind]:-}"
  status="${FLAGS[status]:-}"
  app="${ARGS[0]:-}"
  check_format "$format"
  case "$kind" in
    "" | build | deploy) ;;
    *) sandbox_fail "Invalid --kind value \"$kind\" (allowed: build, deploy)" ;;
  esac
  case "$status" in
    "" | running | succeeded | failed | canceled | abandoned) ;;
    *) sandbox_fail "Invalid --status value \"$status\" (allowed: running, succeeded, failed, canceled, abandoned)" ;;
  esac
  now="$(now_ns)"

  if [[ -z "$app" ]]; then
    list_all_running "$format" "$kind" "$status" "$now"
    return 0
  fi
  sandbox_verify_app_for_user "$app"

  while IFS= read -r line; do
    builds_load_listed "$line"
    load_view "$now"
    [[ -z "$kind" || "$R_KIND" == "$kind" ]] || continue
    [[ -z "$status" || "$DISPLAY" == "$status" ]] || continue
    live=false
    [[ "$R_STATUS" == "running" && "$DISPLAY" == "running" ]] && live=true
    if "$live"; then
      live_rows+=("$R_ID | $R_KIND | $DISPLAY | $R_PID | $R_SOURCE | $(builds_rfc3339 "$R_STARTED") | $DURATION")
      live_json+=("$(builds_view_json "$DISPLAY" "$DURATION" "$LOG")")
    else
      rows+=("$R_ID | $R_KIND | $DISPLAY | $R_PID | $R_SOURCE | $(builds_rfc3339 "$R_STARTED") | $DURATION")
      json+=("$(builds_view_json "$DISPLAY" "$DURATION" "$LOG")")
    fi
  done < <(builds_records "$app")
  rows=("${live_rows[@]}" "${rows[@]}")
  json=("${live_json[@]}" "${json[@]}")

  retention="$(builds_retention "$app")"
  count="${#rows[@]}"
  if [[ -z "$status" && -z "$kind" ]] && ((count > retention)); then
    cap=$((${#live_rows[@]} + retention))
    if ((cap < count)); then
      rows=("${rows[@]:0:cap}")
      json=("${json[@]:0:cap}")
    fi
  fi

  if [[ "$format" == "json" ]]; then
    print_json_array "${json[@]}"
  elif [[ ${#rows[@]} -eq 0 ]]; then
    echo "No builds recorded for this app"
  else
    printf '%s\n' "Build ID | Kind | Status | PID | Source | Started | Duration" "${rows[@]}" | builds_columnize
  fi
}

print_json_array() {
  local IFS=,
  echo "[$*]"
}

# builds:list without an app: every record whose on-disk status is running, of every app
# the user may see, newest first.
list_all_running() {
  local format="$1" kind="$2" status="$3" now="$4" app line keyed=() rows=() json=() entry
  while read -r app; do
    while IFS= read -r line; do
      builds_load_listed "$line"
      [[ "$R_STATUS" == "running" ]] || continue
      load_view "$now"
      [[ -z "$kind" || "$R_KIND" == "$kind" ]] || continue
      [[ -z "$status" || "$DISPLAY" == "$status" ]] || continue
      keyed+=("$R_START_NS$US$R_APP | $R_ID | $R_KIND | $R_PID | $R_SOURCE | $(builds_rfc3339 "$R_STARTED")$US$(builds_view_json "$DISPLAY" "$DURATION" "$LOG")")
    done < <(builds_records "$app")
  done < <(sandbox_filtered_apps)
  while IFS= read -r entry; do
    [[ -n "$entry" ]] || continue
    entry="${entry#*"$US"}"
    rows+=("${entry%%"$US"*}")
    json+=("${entry#*"$US"}")
  done < <([[ ${#keyed[@]} -eq 0 ]] || printf '%s\n' "${keyed[@]}" | LC_ALL=C sort -t "$US" -k1,1nr -s)

  if [[ "$format" == "json" ]]; then
    print_json_array "${json[@]}"
  elif [[ ${#rows[@]} -eq 0 ]]; then
    echo "No builds currently running"
  else
    printf '%s\n' "App | Build ID | Kind | PID | Source | Started" "${rows[@]}" | builds_columnize
  fi
}

cmd-builds-info() {
  local format app id status=0 rows=()
  parse_flags "format" "" "$@"
  format="${FLAGS[format]:-stdout}"
  app="${ARGS[0]:-}"
  id="${ARGS[1]:-}"
  check_format "$format"
  sandbox_verify_app_for_user "$app"
  [[ -n "$id" ]] || sandbox_fail "Please specify a build id"
  builds_read "$app" "$id" || status=$?
  [[ "$status" -ne 2 ]] || sandbox_fail "No build record found for $app/$id"
  [[ "$status" -eq 0 ]] || sandbox_fail "$R_ERROR"
  load_view "$(now_ns)"
  if [[ "$format" == "json" ]]; then
    builds_view_json "$DISPLAY" "$DURATION" "$LOG"
    return 0
  fi
  rows=("Build ID:|$R_ID" "App:|$R_APP" "Kind:|$R_KIND" "Status:|$DISPLAY" "PID:|$R_PID"
    "Source:|$R_SOURCE" "Started:|$(builds_rfc3339 "$R_STARTED")")
  [[ -z "$R_FINISHED" ]] || rows+=("Finished:|$(builds_rfc3339 "$R_FINISHED")")
  rows+=("Duration:|$DURATION")
  [[ -z "$R_EXIT" ]] || rows+=("Exit Code:|$R_EXIT")
  rows+=("Log:|$LOG")
  printf '%s\n' "${rows[@]}" | builds_columnize
}

# The build id in the app's deploy lock file (trimmed); status 1 when there is no lock file.
lock_build_id() {
  local lock body
  lock="$(builds_lock_path "$1")"
  [[ -f "$lock" ]] || return 1
  body="$(<"$lock")"
  body="${body#"${body%%[![:space:]]*}"}"
  echo "${body%"${body##*[![:space:]]}"}"
}

cmd-builds-output() {
  local app id log status=0
  parse_flags "" "" "$@"
  app="${ARGS[0]:-}"
  id="${ARGS[1]:-}"
  sandbox_verify_app_for_user "$app"
  if [[ -z "$id" || "$id" == "current" ]]; then
    if ! id="$(lock_build_id "$app")"; then
      sandbox_log_info "App not currently deploying"
      return 0
    fi
    if [[ -z "$id" ]]; then
      sandbox_log_info "No matching app deploy found"
      return 0
    fi
  fi
  log="$(builds_log_path "$app" "$id")"
  # Dokku falls back to `journalctl -n 1000 -a -o cat SYSLOG_IDENTIFIER=dokku-ID` here; the
  # sandbox copies nothing to the journal, as a host without journalctl.
  [[ -e "$log" ]] || sandbox_fail "log file missing and journalctl not available for build $id"
  builds_read "$app" "$id" || status=$?
  [[ "$status" -ne 1 ]] || sandbox_fail "$R_ERROR"
  if [[ "$status" -eq 0 && "$R_STATUS" == "running" ]] && builds_pid_alive "$R_PID"; then
    exec tail -n 1000 -f "$log"
  fi
  exec cat "$log"
}

# The process group of PID (getpgid), from /proc/PID/stat.
process_group() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  read -r _ _ pgid _ <<<"$stat"
  echo "$pgid"
}

cmd-builds-cancel() {
  local app lock id status=0 pgid
  parse_flags "" "" "$@"
  app="${ARGS[0]:-}"
  sandbox_verify_app_for_user "$app"
  lock="$(builds_lock_path "$app")"
  if ! id="$(lock_build_id "$app")"; then
    sandbox_log_info "App not currently deploying"
    return 0
  fi
  if [[ -z "$id" ]]; then
    sandbox_log_info "No matching app deploy found"
    return 0
  fi
  builds_read "$app" "$id" || status=$?
  if [[ "$status" -eq 2 ]]; then
    sandbox_log_info "No build record for $id, removing stale lock file"
    rm -f "$lock"
    return 0
  fi
  [[ "$status" -eq 0 ]] || sandbox_fail "$R_ERROR"
  if [[ "$R_STATUS" != "running" ]]; then
    sandbox_log_info "Build $id is no longer running (status=$R_STATUS); leaving record untouched"
    return 0
  fi
  if ! builds_pid_alive "$R_PID"; then
    sandbox_log_info "Build was already terminated, marking failed"
    builds_finish_loaded failed -1
    rm -f "$lock"
    return 0
  fi

  sandbox_log_info "Killing app deploy"
  if ! pgid="$(process_group "$R_PID")"; then
    sandbox_log_warn "Failed to signal process group $R_PID: no such process"
  elif ! kill -QUIT -- "-$pgid" 2>/dev/null; then
    sandbox_log_warn "Failed to signal process group $R_PID: operation not permitted"
  fi
  if builds_read "$app" "$id" && [[ "$R_STATUS" == "running" ]]; then
    builds_finish_loaded canceled -1
  fi
  rm -f "$lock"
}

cmd-builds-prune() {
  local app
  parse_flags "" "all-apps" "$@"
  app="${ARGS[0]:-}"
  if [[ "${FLAGS[all-apps]:-}" == "true" ]]; then
    local apps=()
    mapfile -t apps < <(sandbox_filtered_apps)
    if [[ ${#apps[@]} -eq 0 ]]; then
      sandbox_log_warn "You haven't deployed any applications yet"
      return 0
    fi
    for app in "${apps[@]}"; do
      builds_prune "$app" || sandbox_log_warn "Prune failed for $app"
    done
    return 0
  fi
  sandbox_verify_app_for_user "$app"
  builds_prune "$app"
}

cmd-builds-set() {
  local app key value
  parse_flags "" "global" "$@"
  if [[ "${FLAGS[global]:-}" == "true" ]]; then
    app="--global" key="${ARGS[0]:-}" value="${ARGS[1]:-}"
  else
    app="${ARGS[0]:-}" key="${ARGS[1]:-}" value="${ARGS[2]:-}"
    sandbox_verify_app_for_user "$app"
  fi
  [[ "$key" == "retention" ]] || sandbox_fail "Invalid property \"$key\" (allowed: retention)"
  if [[ -n "$value" ]]; then
    [[ "$value" =~ ^[+-]?[0-9]+$ ]] || sandbox_fail "Invalid retention \"$value\": must be a positive integer"
    local n=$((10#${value#[+-]}))
    [[ "$value" != -* ]] || n=$((-n))
    ((n >= 1)) || sandbox_fail "Invalid retention $n: must be >= 1"
    [[ -n "${DOKKU_QUIET_OUTPUT:-}" ]] || echo "=====> Setting $key to $value"
    sandbox_property_set builds "$app" "$key" "$value"
  else
    [[ -n "${DOKKU_QUIET_OUTPUT:-}" ]] || echo "=====> Unsetting $key"
    sandbox_property_delete builds "$app" "$key"
  fi
}

main() {
  local command="$1"
  shift 1 || true
  case "$command" in
    builds | builds:help)
      echo "Usage: dokku builds[:COMMAND]"
      echo ""
      echo "Manage running and historical builds"
      echo ""
      echo "Additional commands:"
      echo "$HELP_LINES"
      ;;
    help) echo "    builds, Manage running and historical builds" ;;
    builds:list) cmd-builds-list "$@" ;;
    builds:info) cmd-builds-info "$@" ;;
    builds:output) cmd-builds-output "$@" ;;
    builds:cancel) cmd-builds-cancel "$@" ;;
    builds:prune) cmd-builds-prune "$@" ;;
    builds:set) cmd-builds-set "$@" ;;
    builds:report) sandbox_fail "builds:report is not doubled in the sandbox" ;;
    *) exit "$DOKKU_NOT_IMPLEMENTED_EXIT" ;;
  esac
}

main "$@"
