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
