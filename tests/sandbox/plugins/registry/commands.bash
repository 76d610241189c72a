#!/usr/bin/env bash
# Sandbox double of core `registry` commands (installed as `commands`).
set -eo pipefail
[[ -n "$DOKKU_TRACE" ]] && set -x
# shellcheck source=tests/sandbox/lib/functions.bash
source "$PLUGIN_CORE_AVAILABLE_PATH/sandbox-lib/functions.bash"

# registry:login [--global] [--password-stdin] [APP] SERVER USER [PASSWORD]
# Per-app credentials go to $DOKKU_LIB_ROOT/config/registry/APP/config.json (Dokku >= 0.37.5),
# global ones to ~dokku/.docker/config.json ($DOKKU_ROOT/.docker here).
cmd-registry-login() {
  local global=false password_stdin=false args=() app server user password config_dir
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --global) global=true ;;
      --password-stdin) password_stdin=true ;;
      *) args+=("$1") ;;
    esac
    shift 1
  done
  if "$global"; then
    server="${args[0]}" user="${args[1]}" password="${args[2]}"
    config_dir="$DOKKU_ROOT/.docker"
  else
    app="${args[0]}" server="${args[1]}" user="${args[2]}" password="${args[3]}"
    sandbox_verify_app "$app"
    config_dir="$DOKKU_LIB_ROOT/config/registry/$app"
  fi
  [[ -n "$server" && -n "$user" ]] || sandbox_fail "Missing server or username"
  if "$password_stdin"; then
    password="$(cat)"
  fi
  [[ -n "$password" ]] || sandbox_fail "Missing password"
  mkdir -p "$config_dir"
  chmod 0755 "$config_dir"
  printf '%s' "$password" | DOCKER_CONFIG="$config_dir" "$DOCKER_BIN" login "$server" -u "$user" --password-stdin
}

main() {
  local command="$1"
  shift 1 || true
  case "$command" in
    registry:login) cmd-registry-login "$@" ;;
    registry:help | help) echo "    registry:login [--global|<app>] <server> <username> [<password>|--password-stdin], Logs into a docker registry" ;;
    *) exit "$DOKKU_NOT_IMPLEMENTED_EXIT" ;;
  esac
}

main "$@"
