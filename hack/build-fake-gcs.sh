#!/usr/bin/env bash
# Builds fake-gcs-server (the Google Cloud Storage emulator the GCS provider tests
# run behind hack/gcsserver.py) from the Go module proxy into a cache outside the
# repo, keyed by version, and prints the path of the binary. Nothing is rebuilt
# while the version stays the same; a cold build takes about a minute.
#
#   hack/build-fake-gcs.sh            build if missing, print the binary's path
#
# FAKE_GCS_SERVER_VERSION: the version to build (default below).
# DESTINATION_OPERATOR_CACHE: the cache root (default ~/.cache/destination-operator).
set -euo pipefail

# renovate: datasource=go depName=github.com/fsouza/fake-gcs-server
version=${FAKE_GCS_SERVER_VERSION:-v1.56.1}
cache=${DESTINATION_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/destination-operator}
dest="$cache/fake-gcs-server-$version"
log() { echo "build-fake-gcs: $*" >&2; }
die() { echo "build-fake-gcs: error: $*" >&2; exit 1; }

if [[ -f "$dest/.complete" && -x "$dest/bin/fake-gcs-server" ]]; then
  echo "$dest/bin/fake-gcs-server"
  exit 0
fi
command -v go >/dev/null 2>&1 || die "Go is not installed; install Go 1.24 or newer (https://go.dev/dl)"
[[ -e "$dest" ]] && { log "removing incomplete cache entry $dest"; rm -rf "$dest"; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-fake-gcs-server-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT
log "building fake-gcs-server $version"
start=$SECONDS
# Outside any module, so that go.mod files around the caller play no part.
if ! (cd "$work" && GOBIN="$work/bin" CGO_ENABLED=0 GOFLAGS=-mod=mod \
  go install "github.com/fsouza/fake-gcs-server@$version" >"$work/build.log" 2>&1); then
  tail -n 20 "$work/build.log" >&2
  die "building fake-gcs-server $version failed; the log is above"
fi
[[ -x "$work/bin/fake-gcs-server" ]] || die "the build produced no fake-gcs-server binary"
mkdir -p "$work/out"
mv "$work/bin" "$work/out/bin"
echo "$version built in $((SECONDS - start))s" >"$work/out/.complete"
mv "$work/out" "$dest"
log "built fake-gcs-server $version in $((SECONDS - start))s"
echo "$dest/bin/fake-gcs-server"
