# shellcheck shell=bash
# Test images.
# A part of test_helper.bash, which sources it; bats files load test_helper, not this.

# _record_image ID|NAME…: cleanup_images of this scope removes these images.
_record_image() {
  printf '%s\n' "$@" >>"$(_helper_scope_dir)/.sandbox-images"
}

# track_image REF…: cleanup_images of this scope will remove these images (all tags).
track_image() {
  local ref id
  for ref in "$@"; do
    id="$(docker image inspect -f '{{.Id}}' "$ref")" || return 1
    _record_image "$id"
  done
}

# image_id REF: the ID of image REF on the engine.
image_id() {
  docker image inspect -f '{{.Id}}' "$1"
}

# archive_of TAG: saves image TAG to the file $ARCHIVE (in this scope's temp dir) and removes
# TAG from the engine; ARCHIVED_ID is its image ID.
# shellcheck disable=SC2034 # ARCHIVE and ARCHIVED_ID are read by the caller
archive_of() {
  ARCHIVE="$(_helper_scope_dir)/${1//[:\/]/-}.tar"
  ARCHIVED_ID="$(image_id "$1")" || return 1
  docker image save -o "$ARCHIVE" "$1" || return 1
  docker image rm "$1" >/dev/null
}

# cleanup_images: removes the images recorded in this scope (build_*_image, track_image)
# with all their tags, a parent once its children have gone (passes until one removes
# nothing). The build helpers record the image's name too: a copy the host loaded under that
# name has an ID of its own when it was built on another engine (on_engine) or when the
# containerd store reloads it, and goes by its name. One still needed (a parent, at test
# scope) is retried at file scope.
cleanup_images() {
  local list ref refs=() left=() removed=true
  list="$(_helper_scope_dir)/.sandbox-images"
  [[ -f "$list" ]] || return 0
  mapfile -t refs < <(sort -u "$list")
  rm -f "$list"
  while "$removed" && [[ ${#refs[@]} -gt 0 ]]; do
    removed=false
    left=()
    for ref in "${refs[@]}"; do
      [[ -n "$ref" ]] || continue
      docker image inspect "$ref" >/dev/null 2>&1 || continue
      if docker image rm -f "$ref" >/dev/null 2>&1; then
        removed=true
      else
        left+=("$ref")
      fi
    done
    refs=("${left[@]}")
  done
  if [[ ${#refs[@]} -gt 0 && -n "${BATS_TEST_TMPDIR:-}" && -n "${BATS_FILE_TMPDIR:-}" ]]; then
    printf '%s\n' "${refs[@]}" >>"$BATS_FILE_TMPDIR/.sandbox-images"
  fi
}

# build_busybox_image TAG [--content TEXT] [--port N] [--no-http] [DOCKERFILE_LINE…]
# Makes FROM scratch an image holding only /bin/busybox (Debian's busybox-static, plus
# /bin/sh -> busybox so RUN lines work) and /www/index.html = TEXT (default: TAG), with the
# PATH of a docker build FROM scratch. By default it serves that page: EXPOSE N and CMD
# busybox httpd -f -p N -h /www (N: 5000); --no-http leaves out EXPOSE and CMD. A last
# unique LABEL makes every image a distinct image ID. Without DOCKERFILE_LINEs the image is
# a `docker image import` of that file tree with those settings, which is what a build of
# the Dockerfile makes, in one step; with them (RUN, ONBUILD…) it is built from a Dockerfile
# with the lines appended. Prints the image ID; records it for cleanup_images.
build_busybox_image() {
  local tag="$1" content port=5000 http=true extra=() context id label made=true
  local path_env="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  shift 1
  content="$tag"
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --content)
        content="$2"
        shift 2
        ;;
      --port)
        port="$2"
        shift 2
        ;;
      --no-http)
        http=false
        shift 1
        ;;
      *)
        extra+=("$1")
        shift 1
        ;;
    esac
  done
  context="$(mktemp -d "$(_helper_scope_dir)/image-context.XXXXXX")"
  mkdir -p "$context/rootfs/bin" "$context/rootfs/www"
  cp "$BUSYBOX_BIN" "$context/rootfs/bin/busybox"
  ln -s busybox "$context/rootfs/bin/sh"
  printf '%s\n' "$content" >"$context/rootfs/www/index.html"
  label="LABEL com.dokku.sandbox.test-image=\"$(unique_name build)\""
  if [[ ${#extra[@]} -eq 0 ]]; then
    local changes=(--change "ENV $path_env")
    if "$http"; then
      changes+=(--change "EXPOSE $port")
      changes+=(--change "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"$port\", \"-h\", \"/www\"]")
    fi
    changes+=(--change "$label")
    id="$(tar -C "$context/rootfs" -cf - . | docker image import "${changes[@]}" - "$tag" 2>"$context.log")" \
      || made=false
  else
    {
      echo "FROM scratch"
      echo "COPY rootfs/ /"
      if "$http"; then
        echo "EXPOSE $port"
        echo "CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"$port\", \"-h\", \"/www\"]"
      fi
      printf '%s\n' "${extra[@]}"
      echo "$label"
    } >"$context/Dockerfile"
    id="$(docker image build -q -t "$tag" "$context" 2>"$context.log")" || made=false
  fi
  if ! "$made"; then
    cat "$context.log" >&2
    rm -rf "$context" "$context.log"
    return 1
  fi
  rm -rf "$context" "$context.log"
  _record_image "$id" "$tag"
  echo "$id"
}

# build_child_image TAG BASE [KIB]: an image FROM BASE with one layer more, /top of KIB (default
# 256) KiB of random bytes, and a unique LABEL. Prints the image ID (as `inspect` gives it: a
# BuildKit build on the containerd store prints another digest); records it for cleanup_images.
build_child_image() {
  local tag="$1" base="$2" kib="${3:-256}" context
  context="$(mktemp -d "$(_helper_scope_dir)/image-context.XXXXXX")"
  head -c "$((kib * 1024))" /dev/urandom >"$context/top"
  _build_layer_on "$tag" "$base" "$context" "COPY top /top"
}

# build_tree_image TAG BASE DIR: an image FROM BASE with one layer more, DIR's files in /www
# (mtimes and all, as COPY keeps them), and a unique LABEL. Prints the image ID (as `inspect`
# gives it); records it for cleanup_images.
build_tree_image() {
  local tag="$1" base="$2" dir="$3" context
  context="$(mktemp -d "$(_helper_scope_dir)/image-context.XXXXXX")"
  cp -a "$dir" "$context/tree"
  _build_layer_on "$tag" "$base" "$context" "COPY tree/ /www/"
}

# _build_layer_on TAG BASE CONTEXT LINE: builds CONTEXT, whose files LINE copies, FROM BASE with
# a unique LABEL, as TAG; removes CONTEXT; prints the image ID and records it for cleanup_images.
_build_layer_on() {
  local tag="$1" base="$2" context="$3" line="$4" id
  printf 'FROM %s\n%s\nLABEL com.dokku.sandbox.test-image="%s"\n' \
    "$base" "$line" "$(unique_name build)" >"$context/Dockerfile"
  if ! docker image build -q -t "$tag" "$context" >/dev/null 2>"$context.log"; then
    cat "$context.log" >&2
    rm -rf "$context" "$context.log"
    return 1
  fi
  rm -rf "$context" "$context.log"
  id="$(docker image inspect -f '{{.Id}}' "$tag")" || return 1
  _record_image "$id" "$tag"
  echo "$id"
}

# build_onbuild_image TAG [build_busybox_image options…]: a busybox image with
# `ONBUILD COPY app.txt /app.txt`, so a build FROM it without app.txt in its context fails.
build_onbuild_image() {
  build_busybox_image "$@" "ONBUILD COPY app.txt /app.txt"
}
