#!/usr/bin/env bash
# Sandbox double of core `ps` commands (installed as `commands`): only ps:rebuild,
# which is the receive-app trigger without a REV.
set -eo pipefail
[[ -n "$DOKKU_TRACE" ]] && set -x
# shellcheck source=tests/sandbox/lib/functions.bash
source "$PLUGIN_CORE_AVAILABLE_PATH/sandbox-lib/functions.bash"

cmd-ps-rebuild() {
  local app="$1"
  sandbox_verify_app "$app"
  plugn trigger receive-app "$app"
}

main() {
  local command="$1"
  shift 1 || true
  case "$command" in
    ps:rebuild) cmd-ps-rebuild "$@" ;;
    ps:help | help) echo "    ps:rebuild <app>, Rebuilds an app from source" ;;
    *) exit "$DOKKU_NOT_IMPLEMENTED_EXIT" ;;
  esac
}

main "$@"
