# shellcheck shell=bash
# The real client, `dokku-image push`, as users get it (`ssh dokku@host image:client`), run
# over the sshd of lib/ssh.bash against another engine of the matrix than the host's (the two
# engines share nothing, as two machines would not), so that what the host holds is only what
# was pushed to it. For push.bats and delta.bats.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

# client_setup: at file scope, starts the sshd (sshd_start) and fetches the client to
# $CLIENT; exports CLIENT and HOST_DOCKER_HOST, the host's engine, for wrappers run by a client
# that uses another one. The file's file_teardown calls sshd_stop.
client_setup() {
  sshd_start || return 1
  CLIENT="$BATS_FILE_TMPDIR/dokku-image"
  over_ssh image:client </dev/null >"$CLIENT" || {
    fail "image:client failed"
    return 1
  }
  chmod +x "$CLIENT"
  HOST_DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
  export CLIENT HOST_DOCKER_HOST
}

# client_hooks: at a file's top level, the hooks of a file that pushes with the real client:
# the sshd and the client at file scope, and after each test its app, the other app it may
# have made ($OTHER_APP) and the images client_build made.
# shellcheck disable=SC2317 # bats calls the hooks defined here
client_hooks() {
  file_setup() {
    client_setup
  }
  file_teardown() {
    sshd_stop
  }
  test_cleanup() {
    dokku --force apps:destroy "$APP" >/dev/null 2>&1 || true
    [[ -z "${OTHER_APP:-}" ]] || dokku --force apps:destroy "$OTHER_APP" >/dev/null 2>&1 || true
    client_cleanup
  }
}

# client_cleanup: removes the images client_build made in this test, on their engines.
client_cleanup() {
  local engine id
  [[ -f "$BATS_TEST_TMPDIR/client-images" ]] || return 0
  # newest first: a child goes before the base it was built on, which it would keep
  while read -r engine id; do
    on_engine "$engine" docker image rm -f "$id" >/dev/null 2>&1 || true
  done < <(tac "$BATS_TEST_TMPDIR/client-images")
}

# partner_engine: the client's engine for a host on this run's engine: another one, on the
# same store where there is one (26-c8d has no containerd-store partner).
partner_engine() {
  case "${IMAGE_PLUGIN_ENGINE:-20}" in
    20) echo 26 ;;
    26) echo 20 ;;
    26-c8d) echo 26 ;;
  esac
}

# client_build ENGINE HELPER TAG ARGS…: an image built by HELPER (build_busybox_image,
# build_child_image…) on ENGINE; prints its ID there; client_cleanup removes it.
client_build() {
  local engine="$1" helper="$2" id
  shift 2
  id="$(on_engine "$engine" "$helper" "$@")" || return 1
  echo "$engine $id" >>"$BATS_TEST_TMPDIR/client-images"
  echo "$id"
}

# push_from ENGINE [push ARGS…]: `dokku-image push --ssh "$SSH_CMD" ARGS…` on ENGINE.
push_from() {
  local engine="$1"
  shift 1
  on_engine "$engine" "$CLIENT" push --ssh "$SSH_CMD" "$@"
}

# assert_stderr_line ARGS…: assert_line ARGS… on run_split's stderr.
assert_stderr_line() {
  # shellcheck disable=SC2034,SC2154 # assert_line reads lines; run_split sets stderr_lines
  local lines=("${stderr_lines[@]}")
  assert_line "$@"
}

# refute_stderr_line ARGS…: refute_line ARGS… on run_split's stderr.
refute_stderr_line() {
  # shellcheck disable=SC2034,SC2154 # refute_line reads lines; run_split sets stderr_lines
  local lines=("${stderr_lines[@]}")
  refute_line "$@"
}

# sent_bytes: the bytes the summary line of run_split's stderr says were sent.
sent_bytes() {
  # shellcheck disable=SC2154 # stderr is set by run_split (test_helper.bash)
  sed -n 's/^-----> Sent \([0-9]*\) bytes .*/\1/p' <<<"$stderr"
}

# left_out_bytes: the bytes the summary line says were left out.
left_out_bytes() {
  sed -n 's/^-----> Sent .* layers, \([0-9]*\) bytes .*/\1/p' <<<"$stderr"
}

# layer_bytes ENGINE IMAGE: the size of IMAGE's layer entries in ENGINE's `docker image save`.
layer_bytes() {
  on_engine "$1" docker image save "$2" | python3 -c '
import json, sys, tarfile
sizes, layers = {}, []
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as archive:
    for member in archive:
        sizes[member.name] = member.size
        if member.name == "manifest.json":
            layers = json.load(archive.extractfile(member))[0]["Layers"]
print(sum(sizes[layer] for layer in layers))'
}

# assert_pushed TAG CONTENT: the app's deploy branch head records TAG with the ID the host's
# engine gives it, run_split's output says so, and the app serves CONTENT.
assert_pushed() {
  local head id
  id="$(image_id "$1")" || fail "the host has no image $1"
  track_image "$1"
  head="$(app_branch_rev "$APP")" || fail "$APP has no deploy branch"
  assert_equal "$(trailer "$head" Image-Id)" "$id"
  assert_equal "$(trailer "$head" Image-Source)" "$1"
  assert_line --regexp "^-----> Deployed $1 \(${id:7:12}\) to $APP as commit [0-9a-f]{12}$"
  assert_equal "$(app_http_get "$APP")" "$2"
}

# full_load_id ENGINE IMAGE: the ID this host's engine gives IMAGE loaded from ENGINE's whole
# `docker image save`: its config's digest on the classic store, the digest index.json names
# on the containerd store, and for a legacy archive there the digest of the manifest
# containerd writes for it (docs/engines.md §3).
full_load_id() {
  on_engine "$1" docker image save "$2" | STORE="$(store_here)" python3 -c '
import hashlib, json, os, sys, tarfile
files, sizes, digests = {}, {}, {}
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as archive:
    for member in archive:
        sizes[member.name] = member.size
        if member.name in ("manifest.json", "index.json"):
            files[member.name] = json.load(archive.extractfile(member))
        elif member.name.endswith("/layer.tar"):
            digests[member.name] = "sha256:" + hashlib.file_digest(archive.extractfile(member), "sha256").hexdigest()
item = files["manifest.json"][0]
config = "sha256:" + item["Config"].split("/")[-1].removesuffix(".json")
if os.environ["STORE"] != "containerd":
    print(config)
elif "index.json" in files:
    print(files["index.json"]["manifests"][0]["digest"])
else:
    layers = ",".join(
        "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar\",\"digest\":\"%s\",\"size\":%d}" % (digests[name], sizes[name])
        for name in item["Layers"])
    manifest = ("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":\"%s\",\"size\":%d},"
        "\"layers\":[%s]}") % (config, sizes[item["Config"]], layers)
    print("sha256:" + hashlib.sha256(manifest.encode()).hexdigest())'
}
