#!/usr/bin/env bash
# Sandbox double of core `apps` commands (installed as `commands`).
set -eo pipefail
[[ -n "$DOKKU_TRACE" ]] && set -x
# shellcheck source=tests/sandbox/lib/functions.bash
source "$PLUGIN_CORE_AVAILABLE_PATH/sandbox-lib/functions.bash"

cmd-apps-create() {
  local app="$1" repo
  [[ -n "$app" ]] || sandbox_fail "Please specify an app to run the command on"
  sandbox_valid_app_name "$app" \
    || sandbox_fail "App name must begin with lowercase alphanumeric character, and cannot include uppercase characters, colons, or underscores"
  repo="$DOKKU_ROOT/$app"
  [[ ! -e "$repo" ]] || sandbox_fail "Name is already taken"
  sandbox_log_info "Creating $app..."
  mkdir -p "$repo"
  git init --bare -q "$repo"
  cat >"$repo/hooks/pre-receive" <<HOOK
#!/usr/bin/env bash
set -e
set -o pipefail

cat | DOKKU_ROOT="$DOKKU_ROOT" dokku git-hook $app
HOOK
  chmod 0755 "$repo/hooks/pre-receive"
  mkdir -p "$DOKKU_LIB_ROOT/data/apps/$app"
  plugn trigger post-create "$app"
}

cmd-apps-destroy() {
  local app="$1" answer
  sandbox_verify_app_for_user "$app"
  if [[ -z "$DOKKU_APPS_FORCE_DELETE" ]]; then
    sandbox_log_warn "WARNING: Potentially Destructive Action"
    sandbox_log_warn "This command will destroy app $app."
    sandbox_log_warn "To proceed, type \"$app\""
    echo ""
    read -rp "> " answer || true
    [[ "$answer" == "$app" ]] || sandbox_fail "Confirmation did not match $app. Aborted."
  fi
  sandbox_log_info "Destroying $app (including all add-ons)"
  plugn trigger pre-delete "$app"
  sandbox_remove_app_containers "$app"
  "$DOCKER_BIN" image rm "dokku/$app:latest" >/dev/null 2>&1 || true
  rm -rf "${DOKKU_ROOT:?}/$app" "${DOKKU_LIB_ROOT:?}/data/apps/$app"
  plugn trigger post-delete "$app" "dokku/$app:latest"
}

cmd-apps-exists() {
  sandbox_verify_app_for_user "$1"
}

# apps:list [--format json]: the apps the user may see (user-auth-app filtering included).
cmd-apps-list() {
  local apps=() app format=stdout
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --format)
        format="${2:-}"
        shift 2 || true
        ;;
      --format=*)
        format="${1#--format=}"
        shift 1
        ;;
      *) shift 1 ;;
    esac
  done
  mapfile -t apps < <(sandbox_filtered_apps)
  if [[ "$format" == "json" ]]; then
    printf '%s\n' "${apps[@]}" | jq -Rcn '[inputs | select(. != "")]'
    return 0
  fi
  [[ -n "${DOKKU_QUIET_OUTPUT:-}" ]] || echo "=====> My Apps"
  if [[ ${#apps[@]} -eq 0 ]]; then
    sandbox_log_warn "You haven't deployed any applications yet"
    return 0
  fi
  for app in "${apps[@]}"; do
    echo "$app"
  done
}

cmd-apps-report() {
  local app="$1" flag="$2" source metadata
  sandbox_verify_app_for_user "$app"
  source="$(sandbox_property_get apps "$app" deploy-source)"
  metadata="$(sandbox_property_get apps "$app" deploy-source-metadata)"
  case "$flag" in
    "")
      echo "=====> $app app information"
      echo "       App deploy source:             $source"
      echo "       App deploy source metadata:    $metadata"
      echo "       App dir:                       $DOKKU_ROOT/$app"
      ;;
    --app-deploy-source) echo "$source" ;;
    --app-deploy-source-metadata) echo "$metadata" ;;
    --app-dir) echo "$DOKKU_ROOT/$app" ;;
    *) sandbox_fail "Invalid flag passed, valid flags: --app-deploy-source, --app-deploy-source-metadata, --app-dir" ;;
  esac
}

cmd-apps-help() {
  cat <<HELP
    apps:create <app>, Create a new app
    apps:destroy <app>, Permanently destroy an app
    apps:exists <app>, Checks if an app exists
    apps:list [--format json], List your apps
    apps:report <app> [<flag>], Displays an app report
HELP
}

main() {
  local command="$1"
  shift 1 || true
  case "$command" in
    apps:create) cmd-apps-create "$@" ;;
    apps:destroy) cmd-apps-destroy "$@" ;;
    apps:exists) cmd-apps-exists "$@" ;;
    apps | apps:list) cmd-apps-list "$@" ;;
    apps:report) cmd-apps-report "$@" ;;
    apps:help | help) cmd-apps-help ;;
    *) exit "$DOKKU_NOT_IMPLEMENTED_EXIT" ;;
  esac
}

main "$@"
