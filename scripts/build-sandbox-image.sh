#!/usr/bin/env bash
# Builds the small sandbox image the tests use, locally and without a registry:
#   1. a Debian bookworm rootfs (debootstrap --variant=minbase, plus python3) -> docker import
#   2. wheels downloaded on the host (torch CPU comes from pip's configured local wheels)
#   3. docker build on top of the base, installing the wheels with --no-index
# The result is tagged fastvideo-harness-sandbox:test and labelled with a hash of its inputs;
# when an image with that tag and hash exists the build is skipped.
# On top of it, fastvideo-harness-sandbox:fastvideo-like lays Python out as FastVideo's own image
# does (sandbox-image/fastvideo-like.Dockerfile), for the tests of that layout.
# Usage: bash scripts/build-sandbox-image.sh [--force]
set -euo pipefail
cd "$(dirname "$0")"

TAG="${SANDBOX_IMAGE_TAG:-fastvideo-harness-sandbox:test}"
LIKE_TAG="${FASTVIDEO_LIKE_IMAGE_TAG:-fastvideo-harness-sandbox:fastvideo-like}"
BASE_TAG="fastvideo-harness-sandbox-base:bookworm"
CACHE="${HOME}/.cache/fastvideo-harness"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_PACKAGES="python3,python3-venv,python3-pip,procps,ca-certificates"
FORCE="${1:-}"

# Inputs that decide the image contents; a change in any of them forces a rebuild.
inputs_hash() {
  { cat build-sandbox-image.sh sandbox-image/Dockerfile sandbox-image/requirements.txt
    echo "$SUITE $BASE_PACKAGES"; } | sha256sum | cut -c1-16
}
HASH="$(inputs_hash)"

label_of() {  # label_of IMAGE LABEL: the label's value, empty when the image is missing
  docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# The FastVideo-like layout on top of the sandbox image, rebuilt when either changes.
build_fastvideo_like() {
  local base_id like_hash
  base_id="$(docker image inspect -f '{{ .Id }}' "$TAG")"
  like_hash="$({ echo "$base_id"; cat sandbox-image/fastvideo-like.Dockerfile; } | sha256sum | cut -c1-16)"
  if [ "$FORCE" != "--force" ] && [ "$(label_of "$LIKE_TAG" fastvideo-harness.inputs)" = "$like_hash" ]; then
    echo "sandbox image $LIKE_TAG is up to date ($like_hash)"
    return
  fi
  docker build -q --network none --build-arg "BASE=$TAG" --label "fastvideo-harness.inputs=$like_hash" \
    -t "$LIKE_TAG" -f sandbox-image/fastvideo-like.Dockerfile sandbox-image >/dev/null
  echo "sandbox image $LIKE_TAG built ($like_hash)"
}

if [ "$FORCE" != "--force" ] && [ "$(label_of "$TAG" fastvideo-harness.inputs)" = "$HASH" ]; then
  echo "sandbox image $TAG is up to date ($HASH)"
  build_fastvideo_like
  exit 0
fi

mkdir -p "$CACHE"

# 1. Base image from a debootstrap rootfs, cached as a tarball.
ROOTFS_TAR="$CACHE/rootfs-$SUITE-minbase.tar"
if [ ! -s "$ROOTFS_TAR" ]; then
  rootfs="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap $SUITE into $rootfs (a few minutes) ..."
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { echo "debootstrap failed; see $CACHE/debootstrap.log" >&2; exit 1; }
  # apt lists and caches are not needed in the image.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" -cf "$ROOTFS_TAR.partial" .
  mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
  rm -rf "$rootfs"
  trap - EXIT
fi
if ! docker image inspect "$BASE_TAG" >/dev/null 2>&1 \
   || [ "$(docker image inspect -f '{{ index .Config.Labels "fastvideo-harness.rootfs" }}' "$BASE_TAG")" != "$(stat -c %Y "$ROOTFS_TAR")" ]; then
  echo "docker import $ROOTFS_TAR -> $BASE_TAG"
  docker import --change "LABEL fastvideo-harness.rootfs=$(stat -c %Y "$ROOTFS_TAR")" \
    --change 'CMD ["/bin/bash"]' "$ROOTFS_TAR" "$BASE_TAG" >/dev/null
fi

# 2. Wheels for the image's Python (bookworm ships 3.11), downloaded on the host.
WHEELS="$CACHE/wheelhouse"
mkdir -p "$WHEELS"
pip download -q --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
  -r sandbox-image/requirements.txt -d "$WHEELS"

# 3. docker build with a context holding the Dockerfile and (hard-linked) wheels.
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp sandbox-image/Dockerfile sandbox-image/requirements.txt "$ctx/"
cp -al "$WHEELS" "$ctx/wheelhouse" 2>/dev/null || cp -a "$WHEELS" "$ctx/wheelhouse"
echo "docker build -> $TAG"
docker build -q --network none --build-arg "BASE=$BASE_TAG" \
  --label "fastvideo-harness.inputs=$HASH" -t "$TAG" "$ctx" >/dev/null
echo "sandbox image $TAG built ($HASH)"
# The wheel-installing stage is only a means; drop its untagged image.
docker image prune -f --filter "label=fastvideo-harness.stage=wheels" >/dev/null
build_fastvideo_like
