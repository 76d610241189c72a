# shellcheck shell=bash
# A local registry (Debian's docker-registry), plain http on 127.0.0.1.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

# registry_start [--auth USER PASS]: starts a registry with its own config and storage on a
# free port, waits until it answers, exports REGISTRY_HOST=127.0.0.1:PORT (and
# SANDBOX_REGISTRY_PID). Docker allows plain http to 127.0.0.0/8 registries.
registry_start() {
  local user="" password="" dir port attempt try pid code started=false
  if [[ "${1:-}" == "--auth" ]]; then
    user="${2:-}" password="${3:-}"
    if [[ -z "$user" || -z "$password" ]]; then
      fail "usage: registry_start [--auth USER PASS]"
      return 1
    fi
  fi
  dir="$(mktemp -d "$(_helper_scope_dir)/registry.XXXXXX")"
  mkdir -p "$dir/data"
  [[ -z "$user" ]] || htpasswd -Bbn "$user" "$password" >"$dir/htpasswd"
  for ((attempt = 0; attempt < 10; attempt++)); do
    port=$((20000 + RANDOM % 30000))
    # something already answers there: try another port
    code=0
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" || code=$?
    [[ "$code" -eq 7 ]] || continue
    {
      echo "version: 0.1"
      echo "log:"
      echo "  level: error"
      echo "  accesslog:"
      echo "    disabled: true"
      echo "storage:"
      echo "  filesystem:"
      echo "    rootdirectory: $dir/data"
      echo "  delete:"
      echo "    enabled: true"
      echo "http:"
      echo "  addr: 127.0.0.1:$port"
      echo "  secret: $(unique_name secret)"
      if [[ -n "$user" ]]; then
        echo "auth:"
        echo "  htpasswd:"
        echo "    realm: sandbox-registry"
        echo "    path: $dir/htpasswd"
      fi
    } >"$dir/config.yml"
    env -u REGISTRY_HOST docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 3>&- &
    pid=$!
    for ((try = 0; try < 200; try++)); do
      kill -0 "$pid" 2>/dev/null || break
      code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/v2/" || true)"
      if [[ "$code" == "200" || "$code" == "401" ]]; then
        # the answer is ours when our registry holds the listening socket
        [[ "$(ss -Hltnp "sport = :$port")" == *"pid=$pid,"* ]] && started=true
        break
      fi
      sleep 0.05
    done
    if "$started"; then
      echo "$pid" >>"$(_helper_scope_dir)/.sandbox-registries"
      export REGISTRY_HOST="127.0.0.1:$port" SANDBOX_REGISTRY_PID="$pid" SANDBOX_REGISTRY_DIR="$dir"
      return 0
    fi
    kill "$pid" 2>/dev/null || true
  done
  cat "$dir/registry.log" >&2 || true
  fail "registry_start: the registry did not start"
  return 1
}

# registry_stop: stops the registries started in this scope.
registry_stop() {
  local list pid try
  list="$(_helper_scope_dir)/.sandbox-registries"
  [[ -f "$list" ]] || return 0
  while read -r pid; do
    [[ -n "$pid" ]] || continue
    kill "$pid" 2>/dev/null || continue
    # reap it when it is our child (a zombie still answers kill -0)
    wait "$pid" 2>/dev/null || true
    for ((try = 0; try < 50; try++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done <"$list"
  rm -f "$list"
}
