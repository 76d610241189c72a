#!/usr/bin/env bash
# Sandbox double of core `plugin` commands (installed as `commands`).
set -eo pipefail
[[ -n "$DOKKU_TRACE" ]] && set -x
# shellcheck source=tests/sandbox/lib/functions.bash
source "$PLUGIN_CORE_AVAILABLE_PATH/sandbox-lib/functions.bash"

cmd-plugin-list() {
  local dir
  for dir in "$PLUGIN_ENABLED_PATH"/*/; do
    dir="${dir%/}"
    echo "  ${dir##*/} enabled"
  done
}

# The name Dokku gives a plugin from its URL: the last path part, without .git, .tar.gz,
# .tgz or a dokku- prefix.
plugin_name_from_url() {
  local name="${1%/}"
  name="${name##*/}"
  name="${name%.git}"
  name="${name%.tar.gz}"
  name="${name%.tgz}"
  echo "${name#dokku-}"
}

# plugin:install [URL [--name NAME]] (or URL NAME): what Dokku does as root. A .tar.gz/.tgz
# (a path or file://) is extracted without its top folder; anything else is a git URL or path,
# cloned. Then the plugin is enabled with an absolute symlink and `install` is fired for every
# enabled plugin. Without URL, only the trigger runs.
cmd-plugin-install() {
  local url="" name="" dest source
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --name)
        name="${2:-}"
        shift 2 || sandbox_fail "--name needs a value"
        ;;
      --name=*)
        name="${1#--name=}"
        shift 1
        ;;
      *)
        if [[ -z "$url" ]]; then url="$1"; else name="$1"; fi
        shift 1
        ;;
    esac
  done
  if [[ -n "$url" ]]; then
    [[ -n "$name" ]] || name="$(plugin_name_from_url "$url")"
    [[ "$name" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || sandbox_fail "Invalid plugin name: $name"
    dest="$PLUGIN_AVAILABLE_PATH/$name"
    [[ ! -e "$dest" ]] || sandbox_fail "Plugin $name is already installed"
    case "$url" in
      *.tar.gz | *.tgz)
        source="${url#file://}"
        sandbox_log_info "Extracting plugin archive $url to $dest"
        mkdir -p "$dest"
        tar -xzf "$source" -C "$dest" --strip-components=1 || {
          rm -rf "$dest"
          sandbox_fail "Unable to extract $url"
        }
        ;;
      *)
        sandbox_log_info "Cloning plugin repo $url to $dest"
        git clone --quiet "$url" "$dest" || sandbox_fail "Unable to clone $url"
        ;;
    esac
    ln -s "$PLUGIN_PATH/available/$name" "$PLUGIN_ENABLED_PATH/$name"
    sandbox_log_info "Plugin $name enabled"
  fi
  plugn trigger install
}

# plugin:uninstall NAME: fires `uninstall NAME`, then removes the plugin (third-party only).
cmd-plugin-uninstall() {
  local name="$1"
  [[ -n "$name" ]] || sandbox_fail "Please specify a plugin"
  [[ ! -e "$PLUGIN_CORE_AVAILABLE_PATH/$name" ]] || sandbox_fail "Cannot uninstall a core plugin"
  [[ -e "$PLUGIN_AVAILABLE_PATH/$name" ]] || sandbox_fail "Plugin does not exist"
  plugn trigger uninstall "$name"
  rm -rf "${PLUGIN_ENABLED_PATH:?}/$name" "${PLUGIN_AVAILABLE_PATH:?}/$name"
  sandbox_log_info "Plugin $name uninstalled"
}

main() {
  local command="$1"
  shift 1 || true
  case "$command" in
    plugin:trigger) plugn trigger "$@" ;;
    plugin:install) cmd-plugin-install "$@" ;;
    plugin:uninstall) cmd-plugin-uninstall "$@" ;;
    plugin | plugin:list) cmd-plugin-list ;;
    plugin:help | help)
      echo "    plugin:install [<url> [--name <name>]], Installs a plugin and fires the install trigger"
      echo "    plugin:list, Lists enabled plugins"
      echo "    plugin:uninstall <name>, Uninstalls a third-party plugin"
      echo "    plugin:trigger <trigger> [<args...>], Triggers an arbitrary plugin hook"
      ;;
    *) exit "$DOKKU_NOT_IMPLEMENTED_EXIT" ;;
  esac
}

main "$@"
