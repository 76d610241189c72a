#!/usr/bin/env bash
# Sandbox double of core `git` commands (installed as `commands`).
set -eo pipefail
[[ -n "$DOKKU_TRACE" ]] && set -x
# shellcheck source=tests/sandbox/lib/functions.bash
source "$PLUGIN_CORE_AVAILABLE_PATH/sandbox-lib/functions.bash"

# git-hook APP: what the app repo's pre-receive hook calls, with the pushed refs on stdin.
cmd-git-hook() {
  local app="$1" branch oldrev newrev refname
  sandbox_verify_app "$app"
  branch="$(sandbox_deploy_branch "$app")"
  while read -r oldrev newrev refname; do
    : "$oldrev"
    if [[ "$refname" == "refs/heads/$branch" ]]; then
      plugn trigger receive-app "$app" "$newrev"
    else
      echo "-----> WARNING: deploy did not complete, you must push to $branch."
    fi
  done
}

cmd-git-report() {
  local app="$1" flag="$2" branch global sha="" source_image
  sandbox_verify_app "$app"
  branch="$(sandbox_deploy_branch "$app")"
  global="$(sandbox_property_get git --global deploy-branch)"
  source_image="$(sandbox_property_get git "$app" source-image)"
  if [[ -f "$DOKKU_ROOT/$app/refs/heads/$branch" ]]; then
    sha="$(tr -d '[:space:]' <"$DOKKU_ROOT/$app/refs/heads/$branch")"
  fi
  case "$flag" in
    "")
      echo "=====> $app git information"
      echo "       Git deploy branch:             $branch"
      echo "       Git global deploy branch:      ${global:-master}"
      echo "       Git sha:                       $sha"
      echo "       Git source image:              $source_image"
      ;;
    --git-deploy-branch) echo "$branch" ;;
    --git-global-deploy-branch) echo "${global:-master}" ;;
    --git-sha) echo "$sha" ;;
    --git-source-image) echo "$source_image" ;;
    *) sandbox_fail "Invalid flag passed, valid flags: --git-deploy-branch, --git-global-deploy-branch, --git-sha, --git-source-image" ;;
  esac
}

# git:set (APP|--global) KEY [VALUE]: an empty VALUE unsets.
cmd-git-set() {
  local app="$1" key="$2" value="$3"
  [[ "$app" == "--global" ]] || sandbox_verify_app "$app"
  case "$key" in
    deploy-branch | source-image | keep-git-dir | rev-env-var) ;;
    *) sandbox_fail "Invalid key: $key" ;;
  esac
  if [[ -z "$value" ]]; then
    sandbox_property_delete git "$app" "$key"
  else
    sandbox_property_set git "$app" "$key" "$value"
  fi
}

cmd-git-help() {
  cat <<HELP
    git:report <app> [<flag>], Displays a git report for one or more apps
    git:set (<app>|--global) <key> (<value>), Set or clear a git property for an app
HELP
}

main() {
  local command="$1"
  shift 1 || true
  case "$command" in
    git-hook) cmd-git-hook "$@" ;;
    git:report) cmd-git-report "$@" ;;
    git:set) cmd-git-set "$@" ;;
    git:help | help) cmd-git-help ;;
    *) exit "$DOKKU_NOT_IMPLEMENTED_EXIT" ;;
  esac
}

main "$@"
