# shellcheck shell=bash
# State of the host.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

# app_property PLUGIN APP KEY: prints $DOKKU_LIB_ROOT/config/PLUGIN/APP/KEY; 1 if unset.
app_property() {
  local file="$DOKKU_LIB_ROOT/config/$1/$2/$3"
  [[ -f "$file" ]] || return 1
  cat "$file"
}

# set_app_property PLUGIN APP KEY VALUE: writes a property as Dokku does (0600, dirs 0755).
set_app_property() {
  local dir="$DOKKU_LIB_ROOT/config/$1/$2"
  mkdir -p "$dir"
  chmod 0755 "$DOKKU_LIB_ROOT/config/$1" "$dir"
  printf '%s' "$4" >"$dir/$3"
  chmod 0600 "$dir/$3"
}

# app_deploy_branch APP: git property deploy-branch, else the global one, else master.
app_deploy_branch() {
  local branch
  branch="$(app_property git "$1" deploy-branch 2>/dev/null || true)"
  [[ -n "$branch" ]] || branch="$(app_property git --global deploy-branch 2>/dev/null || true)"
  echo "${branch:-master}"
}

# app_branch_rev APP [BRANCH]: the commit at refs/heads/BRANCH (default: the deploy
# branch) of the app's bare repo; status 1 when there is none.
app_branch_rev() {
  local app="$1" branch="${2:-}"
  [[ -n "$branch" ]] || branch="$(app_deploy_branch "$app")"
  git --git-dir="$DOKKU_ROOT/$app" rev-parse --verify --quiet "refs/heads/$branch^{commit}"
}

# app_git APP GIT_ARGS…: git on the bare repo of APP.
app_git() {
  local app="$1"
  shift 1
  git --git-dir="$DOKKU_ROOT/$app" "$@"
}

# repo_git GIT_ARGS…: git on the bare repo of the test's app, $APP.
repo_git() {
  app_git "$APP" "$@"
}

# trailer REV KEY [APP]: the value of the KEY trailer (Image-Source, Image-Id, Image-Command)
# of commit REV of APP (default: $APP).
trailer() {
  app_git "${3:-$APP}" show -s --format="%(trailers:key=$2,valueonly)" "$1"
}

# commit_count [APP]: the commits on the deploy branch of APP (default: $APP).
commit_count() {
  local app="${1:-$APP}"
  app_git "$app" rev-list --count "refs/heads/$(app_deploy_branch "$app")"
}

# pending_ref [APP]: the commit of the deploy of APP (default: $APP) that is under way, or was
# interrupted (refs/image/pending); status 1 when there is none.
pending_ref() {
  app_git "${1:-$APP}" rev-parse --verify --quiet refs/image/pending
}

# refute_pending [APP]: fails the test when a deploy of APP (default: $APP) is pending.
refute_pending() {
  local pending
  if pending="$(pending_ref "${1:-$APP}")"; then
    fail "refs/image/pending of ${1:-$APP} is left, at $pending"
  fi
}

# assert_untouched APP HEAD SOURCE_IMAGE: the deploy branch of APP is at HEAD ("": there is no
# branch), source-image is SOURCE_IMAGE ("": unset), and no deploy is pending.
assert_untouched() {
  local app="$1" head="$2" source="$3" actual
  if [[ -n "$head" ]]; then
    assert_equal "$(app_branch_rev "$app")" "$head"
  elif actual="$(app_branch_rev "$app")"; then
    fail "$app has a deploy branch, at $actual; expected none"
  fi
  if [[ -n "$source" ]]; then
    assert_equal "$(app_property git "$app" source-image)" "$source"
  elif actual="$(app_property git "$app" source-image)"; then
    fail "source-image of $app is set, to $actual; expected it unset"
  fi
  refute_pending "$app"
}

# deploy APP ARGS…: `dokku image:from APP ARGS…`, which must succeed (its output is shown
# when it does not); prints the new head of the deploy branch.
deploy() {
  local app="$1" output
  output="$(dokku image:from "$@" 2>&1)" || {
    echo "$output" >&2
    fail "image:from $* failed"
    return 1
  }
  app_branch_rev "$app"
}

# new_app NAME: creates app NAME (quietly).
new_app() {
  dokku apps:create "$1" >/dev/null
}

# app_commit APP [--branch B] [--no-update] FILE=CONTENT…: commits, with git plumbing
# only, a tree of top-level files (each CONTENT gets a trailing newline) on top of the
# branch (default: the deploy branch), moves the branch (a loose ref) unless
# --no-update, and prints the commit.
app_commit() {
  local app="$1" branch="" update=true repo entry path blob parent commit tree listing=""
  local parent_args=()
  shift 1
  local entries=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --branch)
        branch="$2"
        shift 2
        ;;
      --no-update)
        update=false
        shift 1
        ;;
      *)
        entries+=("$1")
        shift 1
        ;;
    esac
  done
  repo="$DOKKU_ROOT/$app"
  [[ -n "$branch" ]] || branch="$(app_deploy_branch "$app")"
  for entry in "${entries[@]}"; do
    path="${entry%%=*}"
    blob="$(printf '%s\n' "${entry#*=}" | git --git-dir="$repo" hash-object -w --stdin)" || return 1
    listing+="100644 blob $blob"$'\t'"$path"$'\n'
  done
  tree="$(printf '%s' "$listing" | git --git-dir="$repo" mktree)" || return 1
  if parent="$(git --git-dir="$repo" rev-parse --verify --quiet "refs/heads/$branch^{commit}")"; then
    parent_args=(-p "$parent")
  fi
  commit="$(GIT_AUTHOR_NAME="Sandbox Test" GIT_AUTHOR_EMAIL="sandbox@test.invalid" \
    GIT_COMMITTER_NAME="Sandbox Test" GIT_COMMITTER_EMAIL="sandbox@test.invalid" \
    git --git-dir="$repo" commit-tree "$tree" "${parent_args[@]}" -m "sandbox test commit")" || return 1
  if "$update"; then
    git --git-dir="$repo" update-ref "refs/heads/$branch" "$commit" || return 1
  fi
  echo "$commit"
}

# app_port APP: the host port (on 127.0.0.1) of the app's web container, from the last
# successful receive-app.
app_port() {
  app_property sandbox "$1" web-port
}

# app_http_get APP [PATH]: GET http://127.0.0.1:PORT/PATH, retrying for up to 10 s (the web
# container runs once receive-app is done, its server may still be starting); prints the body.
app_http_get() {
  wait_until 10 _http_get_once "$1" "${2:-}" 2>/dev/null || {
    echo "app_http_get: no answer from $1 (port $(app_port "$1" || echo unknown))" >&2
    return 1
  }
}

_http_get_once() {
  local port
  port="$(app_port "$1")" && curl -fsS --max-time 1 "http://127.0.0.1:$port/$2" 2>/dev/null
}

# sandbox_fail_receive_app APP [on|off]: make the receive-app double fail (exit 1,
# after taking the deploy lock) or work again.
sandbox_fail_receive_app() {
  if [[ "${2:-on}" == "off" ]]; then
    rm -f "$DOKKU_LIB_ROOT/config/sandbox/$1/fail-receive-app"
  else
    set_app_property sandbox "$1" fail-receive-app ""
  fi
}
