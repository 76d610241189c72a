#!/usr/bin/env bash
# Shared helpers of the sandbox core-plugin doubles. Installed by create-host as
# $PLUGIN_CORE_AVAILABLE_PATH/sandbox-lib/functions.bash (not an enabled plugin).
# Sourced, never executed.

export DOCKER_BIN="${DOCKER_BIN:-docker}"
export DOKKU_NOT_IMPLEMENTED_EXIT="${DOKKU_NOT_IMPLEMENTED_EXIT:-10}"

# Like Dokku's dokku_log_info1 (not the _quiet variants): --quiet does not silence them.
sandbox_log_info() {
  echo "-----> $*"
}

sandbox_log_detail() {
  echo "       $*"
}

sandbox_log_warn() {
  echo " !     $*" >&2
}

sandbox_fail() {
  sandbox_log_warn "$*"
  exit 1
}

# Property files: $DOKKU_LIB_ROOT/config/PLUGIN/APP/KEY, raw value, mode 0600, dirs 0755.
sandbox_property_path() {
  local plugin="$1" app="$2" key="$3"
  echo "$DOKKU_LIB_ROOT/config/$plugin/$app/$key"
}

sandbox_property_get() {
  local file
  file="$(sandbox_property_path "$1" "$2" "$3")"
  [[ -f "$file" ]] || return 0
  cat "$file"
}

sandbox_property_set() {
  local plugin="$1" app="$2" key="$3" value="$4" dir file
  dir="$DOKKU_LIB_ROOT/config/$plugin/$app"
  file="$dir/$key"
  (
    umask 022
    mkdir -p "$dir"
  )
  chmod 0755 "$DOKKU_LIB_ROOT/config/$plugin" "$dir"
  printf '%s' "$value" >"$file.tmp.$$"
  chmod 0600 "$file.tmp.$$"
  mv -f "$file.tmp.$$" "$file"
}

sandbox_property_delete() {
  rm -f "$(sandbox_property_path "$1" "$2" "$3")"
}

sandbox_properties_destroy() {
  local plugin="$1" app="$2"
  # Only a valid app name (or --global) may become part of a path that is removed.
  [[ "$app" == "--global" ]] || sandbox_valid_app_name "$app" || return 0
  rm -rf "${DOKKU_LIB_ROOT:?}/config/$plugin/$app"
}

sandbox_valid_app_name() {
  [[ "$1" =~ ^[a-z0-9][a-z0-9.-]*$ ]]
}

# Same contract as the app-exists trigger: 0 exists, 20 missing, 1 invalid or empty.
sandbox_app_exists() {
  local app="$1"
  if [[ -z "$app" ]]; then
    sandbox_log_warn "APP must not be null"
    return 1
  fi
  if ! sandbox_valid_app_name "$app"; then
    sandbox_log_warn "App name must begin with lowercase alphanumeric character, and cannot include uppercase characters, colons, or underscores"
    return 1
  fi
  if [[ ! -d "$DOKKU_ROOT/$app" ]]; then
    sandbox_log_warn "App $app does not exist"
    return 20
  fi
}

# Exits like Dokku's verify_app_name when the app does not exist.
sandbox_verify_app() {
  local status=0
  sandbox_app_exists "$1" || status=$?
  [[ "$status" -eq 0 ]] || exit "$status"
}

sandbox_deploy_branch() {
  local app="$1" branch
  branch="$(sandbox_property_get git "$app" deploy-branch)"
  [[ -n "$branch" ]] || branch="$(sandbox_property_get git --global deploy-branch)"
  echo "${branch:-master}"
}

# Containers the sandbox started for an app carry these labels.
sandbox_container_filter() {
  local app="$1"
  printf '%s\n' --filter "label=dokku-sandbox.id=${SANDBOX_ID:?SANDBOX_ID is not set}" \
    --filter "label=dokku-sandbox.app=$app"
}

sandbox_remove_app_containers() {
  local app="$1" ids=() filter=()
  mapfile -t filter < <(sandbox_container_filter "$app")
  mapfile -t ids < <("$DOCKER_BIN" container ls -aq "${filter[@]}")
  [[ "${#ids[@]}" -eq 0 ]] && return 0
  "$DOCKER_BIN" container rm -f "${ids[@]}" >/dev/null
}

# ---------------------------------------------------------------------------------------
# Access control (Dokku 0.38's plugins/common: functions.go, common.go)

# Like Dokku's PlugnTriggerExists: 0 when an enabled plugin other than 20_events has the
# trigger file NAME.
sandbox_trigger_exists() {
  local name="$1" file plugin
  for file in "$PLUGIN_ENABLED_PATH"/*/"$name"; do
    [[ -e "$file" ]] || continue
    plugin="${file%/"$name"}"
    [[ "${plugin##*/}" == "20_events" ]] || return 0
  done
  return 1
}

# The apps on the host, unfiltered: every folder (or link to one) of $DOKKU_ROOT whose name
# starts with neither a dot nor an upper-case letter, in byte order.
sandbox_unfiltered_apps() {
  local path name
  for path in "$DOKKU_ROOT"/*/; do
    [[ -d "$path" ]] || continue
    name="${path%/}"
    name="${name##*/}"
    [[ "$name" == .* || "$name" == [A-Z]* ]] && continue
    echo "$name"
  done | LC_ALL=C sort
}

# sandbox_filter_apps APP…: the APPs the current user may see, one a line. Without a
# user-auth-app trigger, all of them; else the non-empty lines the trigger prints when fired
# with SSH_USER (else USER), SSH_NAME (else NAME, else default) and the APPs. Its stderr and
# exit status are ignored, as Dokku does.
sandbox_filter_apps() {
  local ssh_user="${SSH_USER:-${USER:-}}" ssh_name="${SSH_NAME:-${NAME:-}}"
  [[ $# -gt 0 ]] || return 0
  if ! sandbox_trigger_exists user-auth-app; then
    printf '%s\n' "$@"
    return 0
  fi
  { plugn trigger user-auth-app "$ssh_user" "${ssh_name:-default}" "$@" 2>/dev/null || true; } | grep -v '^$' || true
}

# The apps the current user may see (the app-list trigger, filtered).
sandbox_filtered_apps() {
  local apps=()
  mapfile -t apps < <(sandbox_unfiltered_apps)
  sandbox_filter_apps "${apps[@]}"
}

# Dokku 0.38's VerifyAppName, the app-exists trigger: 0 when APP exists for the current
# user; an empty or invalid name: message, status 1; a missing app, or one user-auth-app
# does not print back: " !     App APP does not exist", status 20.
sandbox_app_exists_for_user() {
  local app="$1" seen=()
  if [[ -z "$app" ]]; then
    sandbox_log_warn "Please specify an app to run the command on"
    return 1
  fi
  if [[ ! "$app" =~ ^[a-z0-9][a-z0-9._-]*$ ]]; then
    sandbox_log_warn "App name must begin with lowercase alphanumeric character, and may only contain lowercase alphanumerics, dots, and hyphens"
    return 1
  fi
  if [[ -d "$DOKKU_ROOT/$app" ]]; then
    mapfile -t seen < <(sandbox_filter_apps "$app")
    [[ ${#seen[@]} -eq 1 ]] && return 0
  fi
  sandbox_log_warn "App $app does not exist"
  return 20
}

# Exits like Dokku's verify_app_name (user-auth-app filtering included).
sandbox_verify_app_for_user() {
  local status=0
  sandbox_app_exists_for_user "$1" || status=$?
  [[ "$status" -eq 0 ]] || exit "$status"
}

# ---------------------------------------------------------------------------------------
# Build capture and the deploy lock (Dokku 0.38's plugins/common/functions). A host made
# with SANDBOX_WITHOUT=builds is a host before 0.38: no capture, no build records, and the
# deploy lock holds DOKKU_PID.

sandbox_builds_enabled() {
  [[ -e "$PLUGIN_ENABLED_PATH/builds" ]]
}

# Sets and exports DOKKU_BUILD_ID unless it is set: what `builds-generate-id` prints, else
# pid-$DOKKU_PID.
sandbox_ensure_build_id() {
  [[ -z "${DOKKU_BUILD_ID:-}" ]] || return 0
  DOKKU_BUILD_ID="$(plugn trigger builds-generate-id 2>/dev/null)"
  [[ -n "$DOKKU_BUILD_ID" ]] || DOKKU_BUILD_ID="pid-${DOKKU_PID:-}"
  export DOKKU_BUILD_ID
}

# sandbox_setup_build_capture APP [SOURCE]: dokku_setup_build_capture. Once per deploy (a
# no-op when DOKKU_REDIRECT_OUTPUT=true, which it exports): DOKKU_BUILD_ID (kept when set),
# DOKKU_BUILD_SOURCE (default unknown), an emptied DOKKU_BUILD_LOG_FILE
# ($DOKKU_LIB_ROOT/data/builds/APP/ID.log), `builds-record-start APP ID $$ SOURCE` (its
# failure ignored), then stdout and stderr of the calling script both go through
# `tee -a LOG` to the original stdout. Dokku's copy to syslog (logger -t dokku-ID) is left
# out.
sandbox_setup_build_capture() {
  local app="$1" source="${2:-unknown}" dir log
  [[ "${DOKKU_REDIRECT_OUTPUT:-}" == "true" ]] && return 0
  [[ -n "$app" ]] || return 0
  sandbox_builds_enabled || return 0
  export DOKKU_REDIRECT_OUTPUT=true
  sandbox_ensure_build_id
  export DOKKU_BUILD_SOURCE="$source"
  dir="$DOKKU_LIB_ROOT/data/builds/$app"
  log="$dir/$DOKKU_BUILD_ID.log"
  mkdir -p "$dir" && : >"$log"
  export DOKKU_BUILD_LOG_FILE="$log"
  plugn trigger builds-record-start "$app" "$DOKKU_BUILD_ID" "$$" "$source" || true
  exec &> >(tee -a "$log")
}

# sandbox_finalize_build APP EXIT_CODE: what release_and_deploy and release_app_deploy_lock
# do at the end of a deploy: `builds-record-finalize APP DOKKU_BUILD_ID EXIT_CODE` when
# DOKKU_BUILD_ID is set, its failure ignored. The first finalize of a build wins.
sandbox_finalize_build() {
  local app="$1" exit_code="${2:-0}"
  sandbox_builds_enabled || return 0
  [[ -n "${DOKKU_BUILD_ID:-}" ]] || return 0
  plugn trigger builds-record-finalize "$app" "$DOKKU_BUILD_ID" "$exit_code" || true
}

sandbox_deploy_lock_path() {
  echo "$DOKKU_LIB_ROOT/data/apps/$1/.deploy.lock"
}

# sandbox_acquire_app_deploy_lock APP [waiting|exclusive]: acquire_app_deploy_lock. Opens
# the lock file on fd 200 (truncating it, even when another deploy holds it), then flock:
# `waiting` (the default) says "APP currently has a deploy lock in place. Waiting..." once and
# blocks; `exclusive` fails at once with Dokku's two lines, exit 1. Holding it, writes
# DOKKU_BUILD_ID (set first, as sandbox_ensure_build_id) and a newline to the file; before
# 0.38, DOKKU_PID.
sandbox_acquire_app_deploy_lock() {
  local app="$1" type="${2:-waiting}" lock
  lock="$(sandbox_deploy_lock_path "$app")"
  sandbox_builds_enabled && sandbox_ensure_build_id
  mkdir -p "${lock%/*}"
  exec 200>"$lock"
  if [[ "$type" == "waiting" ]]; then
    if ! flock -n 200; then
      echo "$app currently has a deploy lock in place. Waiting..."
      flock 200
    fi
  elif ! flock -n 200; then
    sandbox_log_warn "$app currently has a deploy lock in place. Exiting..."
    sandbox_fail "Run 'apps:unlock' to release the existing deploy lock"
  fi
  if sandbox_builds_enabled; then
    echo "${DOKKU_BUILD_ID:-$DOKKU_PID}" >"$lock"
  else
    echo "${DOKKU_PID:-}" >"$lock"
  fi
}

# sandbox_release_app_deploy_lock APP [EXIT_CODE]: release_app_deploy_lock: finalizes the
# build with EXIT_CODE (default 0), unlocks fd 200 and removes the lock file.
sandbox_release_app_deploy_lock() {
  local app="$1" exit_code="${2:-0}" lock
  lock="$(sandbox_deploy_lock_path "$app")"
  sandbox_finalize_build "$app" "$exit_code"
  flock -u 200 && rm -f "$lock" &>/dev/null
}
