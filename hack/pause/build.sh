#!/usr/bin/env bash
# Compiles Kubernetes' own pause binary (build/pause/linux/pause.c of the
# k8s.io/kubernetes module at $KUBERNETES_VERSION) with `gcc -static`, into a cache
# outside the repo keyed by that version, and prints the binary's path. No image
# registry is needed: hack/node.py wraps it into the node's sandbox image.
#
#   hack/pause/build.sh               compile if missing, print the path
#
# Needs Go (to fetch the module) and gcc with static libc (Debian: gcc, libc6-dev).
# DESTINATION_OPERATOR_CACHE: the cache root (default ~/.cache/destination-operator).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../versions.env
source "$here/../versions.env"

cache=${DESTINATION_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/destination-operator}
die() { echo "pause: error: $*" >&2; exit 1; }

dest="$cache/pause-$KUBERNETES_VERSION"
if [[ -f "$dest/.complete" ]]; then
  echo "$dest/bin/pause"; exit 0
fi
command -v go >/dev/null 2>&1 || die "Go is not installed; it fetches k8s.io/kubernetes@$KUBERNETES_VERSION"
command -v gcc >/dev/null 2>&1 || die "gcc is not installed (Debian: apt-get install gcc libc6-dev)"

# The module's source folder in the Go module cache (downloaded if missing).
dir=$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" |
  sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
src="$dir/build/pause/linux/pause.c"
[[ -f "$src" ]] || die "no $src in the module cache"
# The image tag Kubernetes publishes for this source, from its Makefile (TAG ?= X.Y.Z).
tag=$(sed -n 's/^TAG ?= *//p' "$dir/build/pause/Makefile")
[[ -n "$tag" ]] || die "no TAG in $dir/build/pause/Makefile"

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-pause-$KUBERNETES_VERSION.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"; mkdir -p "$work/bin"
# The flags of build/pause/Makefile, with the module version standing in for `git describe`.
gcc -Os -Wall -Werror -static "-DVERSION=v$tag-$KUBERNETES_VERSION" -o "$work/bin/pause" "$src"
echo "$tag" >"$work/tag"
echo "$KUBERNETES_VERSION built with $(gcc -dumpfullversion)" >"$work/.complete"
if ! mv -T "$work" "$dest" 2>/dev/null; then
  # Another build finished first: keep its result.
  [[ -f "$dest/.complete" ]] || die "could not move the build into $dest"
else
  trap - EXIT
fi
echo "$dest/bin/pause"
