# shellcheck shell=bash
# The engines of the matrix (scripts/engines), beside the one this run uses (DOCKER_HOST).
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

# on_engine ENGINE CMD…: CMD with ENGINE's environment (its socket, its builder).
on_engine() {
  local engine="$1" env_file
  shift 1
  env_file="$("$REPO_ROOT/scripts/engines" env "$engine")" || return 1
  (
    # shellcheck source=/dev/null
    source "$env_file"
    "$@"
  )
}

# require_engine ENGINE: skips the test unless ENGINE answers (ENGINES left it out).
require_engine() {
  on_engine "$1" docker version >/dev/null 2>&1 || skip "engine $1 is not running"
}

# store_here: classic or containerd, for the engine of this run.
store_here() {
  if [[ -n "${IMAGE_PLUGIN_ENGINE_STORE:-}" ]]; then
    echo "$IMAGE_PLUGIN_ENGINE_STORE"
  elif docker info --format '{{json .DriverStatus}}' | grep -q io.containerd.snapshotter; then
    echo containerd
  else
    echo classic
  fi
}
