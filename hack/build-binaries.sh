#!/usr/bin/env bash
# Builds the binaries a set needs from the Go module proxy into a cache outside the
# repo, one cache entry per component keyed by its version, and prints a folder that
# holds the set's binaries. Nothing is rebuilt while the versions stay the same.
#
#   controlplane (or demo): kube-apiserver, kube-controller-manager, kubectl and etcd,
#     what `make demo` and `make cluster-up` start (hack/controlplane.py).
#   all (the default, for the tests): the control plane, plus helm, the node's kubelet
#     and kube-scheduler (for the install tests, hack/node.py), the test helper kstatus
#     (hack/kstatus), prometheus and promtool (the alert rule tests), and the control
#     plane of the oldest supported Kubernetes (MIN_KUBERNETES_VERSION, in the bin
#     folder's minimum/ with the same etcd and helm), and Flux's source-controller and
#     kustomize-controller with their CRDs (in the bin folder's flux-crds/, for the
#     GitOps test).
#   lint: actionlint, which `make lint` runs over the CI workflows (.github/workflows).
#   release: helm, which `make release` packages and renders the chart with.
#
#   hack/build-binaries.sh [all]           build what is missing, print the bin folder
#   hack/build-binaries.sh controlplane    the control plane only
#   hack/build-binaries.sh lint            actionlint only
#   hack/build-binaries.sh release         helm only (what `make release` uses); prints
#                                          helm's own cache entry
#   hack/build-binaries.sh --list [SET]    print the set's components (cache name,
#                                          version, binaries), one a line; build nothing
#
# KUBEBUILDER_ASSETS: a folder whose binaries are used instead of building them.
#   kstatus, kubelet, kube-scheduler, prometheus, promtool and the oldest version are
#   built unless the folder has them too; without Go they are left out (a warning),
#   since only the tests that pin kstatus verdicts, run pods on a node, test the
#   alert rules, or run the oldest version need them. Flux's controllers are never
#   taken from the folder (their CRDs come from their modules); without Go they are left
#   out too (only the GitOps test needs them).
# DESTINATION_OPERATOR_CACHE: the cache root (default ~/.cache/destination-operator).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache=${DESTINATION_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/destination-operator}
log() { echo "build-binaries: $*" >&2; }
die() { echo "build-binaries: error: $*" >&2; exit 1; }

usage="hack/build-binaries.sh [--list] [controlplane|demo|all|lint|release]"
set_name=all list=false
while (($#)); do
  case $1 in
    --list) list=true ;;
    controlplane | demo) set_name=controlplane ;;
    all) set_name=all ;;
    lint) set_name=lint ;;
    release) set_name=release ;;
    -h | --help) echo "usage: $usage"; exit 0 ;;
    *) die "unknown argument '$1'; usage: $usage" ;;
  esac
  shift
done

# The components of a set, one a line: cache name, version, binaries. The cache
# entry of a component is $cache/NAME-VERSION; the build below follows this list.
components() {
  if [[ $1 == lint ]]; then
    echo "actionlint $ACTIONLINT_VERSION actionlint"
    return 0
  fi
  if [[ $1 == release ]]; then
    echo "helm $HELM_VERSION helm"
    return 0
  fi
  echo "kubernetes $KUBERNETES_VERSION kube-apiserver kube-controller-manager kubectl"
  echo "etcd $ETCD_VERSION etcd"
  [[ $1 == all ]] || return 0
  echo "helm $HELM_VERSION helm"
  echo "kubernetes-node $KUBERNETES_VERSION kubelet kube-scheduler"
  echo "kubernetes $MIN_KUBERNETES_VERSION kube-apiserver kube-controller-manager kubectl"
  echo "kstatus $CLI_UTILS_VERSION kstatus"
  echo "prometheus $PROMETHEUS_VERSION prometheus promtool"
  echo "source-controller $FLUX_SOURCE_CONTROLLER_VERSION source-controller"
  echo "kustomize-controller $FLUX_KUSTOMIZE_CONTROLLER_VERSION kustomize-controller"
}
if $list; then
  components "$set_name"
  exit 0
fi

need_go() {
  command -v go >/dev/null 2>&1 ||
    die "Go is not installed; install Go 1.24 or newer (https://go.dev/dl) or set KUBEBUILDER_ASSETS to a folder with the binaries"
}

# build_component NAME VERSION FUNCTION BINARIES...
# Runs FUNCTION in a scratch folder and moves the result into place only when
# every binary exists, so a build that fails halfway leaves no entry that looks complete.
build_component() {
  local name=$1 version=$2 fn=$3; shift 3
  local dest="$cache/$name-$version"
  if [[ -f "$dest/.complete" ]]; then
    echo "$dest/bin"; return
  fi
  if [[ -e "$dest" ]]; then
    log "removing incomplete cache entry $dest"
    rm -rf "$dest"
  fi
  need_go
  mkdir -p "$cache"
  local work; work=$(mktemp -d "$cache/.build-$name-$version.XXXXXX")
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" EXIT
  log "building $name $version (cold builds take several minutes)"
  local start=$SECONDS
  if ! (cd "$work" && "$fn" "$version" >"$work/build.log" 2>&1); then
    tail -n 20 "$work/build.log" >&2
    die "building $name $version failed; the log is above. Fix the cause and run again"
  fi
  local bin
  for bin in "$@"; do
    [[ -x "$work/bin/$bin" ]] || die "building $name $version did not produce $bin"
  done
  mkdir -p "$work/out"
  mv "$work/bin" "$work/out/bin"
  if [[ -d "$work/crds" ]]; then mv "$work/crds" "$work/out/crds"; fi
  echo "$version built in $((SECONDS - start))s" >"$work/out/.complete"
  mv "$work/out" "$dest"
  rm -rf "$work"; trap - EXIT
  log "built $name $version in $((SECONDS - start))s"
  echo "$dest/bin"
}

# k8s.io/kubernetes points its staging modules at ./staging, which a dependency
# cannot see: a wrapper module replaces each one with its published v0.Y.Z.
# build_kubernetes_commands VERSION COMMAND...: the wrapper module, then the commands.
build_kubernetes_commands() {
  local version=$1 minor staging; shift
  local cmds=("$@")
  minor=$(echo "$version" | cut -d. -f2)
  go mod init wrapper.local/kubernetes >/dev/null
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f "$gomod" ]] || { echo "no go.mod for k8s.io/kubernetes@$version"; return 1; }
  staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
  [[ -n "$staging" ]] || { echo "no staging replaces found in $gomod"; return 1; }
  local mod
  for mod in $staging; do
    go mod edit -replace "$mod=$mod@v0.${version#v1.}"
  done
  go get "k8s.io/kubernetes@$version"
  local pkgs=("${cmds[@]/#/k8s.io/kubernetes/cmd/}")
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p bin
  # -mod=mod records the go.sum entries of every package the commands import.
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$ld" -o bin/ "${pkgs[@]}"
}

build_kubernetes() {
  build_kubernetes_commands "$1" kube-apiserver kube-controller-manager kubectl
}

# The node's binaries are a cache entry of their own (kubernetes-node-VERSION), so
# the control plane's entry stays valid and only the install tests pay for these.
build_kubernetes_node() {
  build_kubernetes_commands "$1" kubelet kube-scheduler
}

# etcd's server module has replace directives of its own, so it is built
# through a wrapper module too; its main package is the module root.
build_etcd() {
  local version=$1
  go mod init wrapper.local/etcd >/dev/null
  go get "go.etcd.io/etcd/server/v3@$version"
  mkdir -p bin
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o bin/etcd go.etcd.io/etcd/server/v3
}

# helm has no replace directives; the ldflags mirror its Makefile so that
# `helm version` and the Kubernetes version it assumes are the real ones.
build_helm() {
  local version=$1
  local k8s_minor; k8s_minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local p
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
  done
  CGO_ENABLED=0 GOBIN="$PWD/bin" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$version"
}

# kstatus: sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute behind stdin/stdout
# (hack/kstatus/main.go), the verdict Flux and kpt reach, for tests to compare with.
# The wrapper module is made here, so nothing for Go is committed, and only the
# packages main.go imports are compiled. The cache entry is keyed by the cli-utils
# version only: after editing main.go, remove $cache/kstatus-* to rebuild it.
build_kstatus() {
  local version=$1
  go mod init wrapper.local/kstatus >/dev/null
  cp "$here/kstatus/main.go" .
  go get "sigs.k8s.io/cli-utils@$version"
  mkdir -p bin
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o bin/kstatus .
}

# prometheus and promtool, for the alert rule tests (promtool test rules) and the
# cluster test that scrapes the operator. The module's version (v0.3xx.y) is the Go
# form of Prometheus 3.xx.y. Built without the web UI's assets: the tests use the API only.
build_prometheus() {
  local version=$1
  go mod init wrapper.local/prometheus >/dev/null
  go get "github.com/prometheus/prometheus@$version"
  mkdir -p bin
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o bin/ \
    github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool
}

# actionlint has no replace directives. Its `-version` reads the module version
# from the build info that `go install module@version` records.
build_actionlint() {
  local version=$1
  CGO_ENABLED=0 GOBIN="$PWD/bin" go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$version"
}

# The lint set needs no control plane: its one component's folder is the set's.
if [[ $set_name == lint ]]; then
  build_component actionlint "$ACTIONLINT_VERSION" build_actionlint actionlint
  exit 0
fi
# Flux's controllers, for the GitOps test (tests/cluster/test_flux.py).
# build_flux_controller MODULE@VERSION [OLD=NEW@VERSION]...: a wrapper module takes over
# the controller module's replace directives (not its ./api, whose published version
# the module requires anyway) plus the ones given, builds the controller, and copies
# the CRDs it serves from the module into crds/. The cache entry is keyed by the
# controller's version only: after changing FLUX_ARTIFACT_VERSION, remove its entry.
build_flux_controller() {
  local mod=${1%@*} version=${1##*@}; shift
  local name=${mod##*/}
  go mod init "wrapper.local/$name" >/dev/null
  local info gomod dir
  info=$(go mod download -json "$mod@$version")
  gomod=$(echo "$info" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  dir=$(echo "$info" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [[ -f "$gomod" && -d "$dir" ]] || { echo "no go.mod or source for $mod@$version"; return 1; }
  local a b c d e
  # Each replace line: OLD [V] => NEW [V], from single lines and replace ( ... ) blocks.
  while read -r a b c d e; do
    if [[ $b == "=>" ]]; then
      [[ $c == ./* || $c == ../* ]] || go mod edit -replace "$a=$c${d:+@$d}"
    else
      [[ $d == ./* || $d == ../* ]] || go mod edit -replace "$a@$b=$d${e:+@$e}"
    fi
  done < <(go mod edit -print "$gomod" | sed 's#//.*##' |
    awk '/^replace \(/ {b = 1; next} b && /^\)/ {b = 0; next} b && NF {print; next} /^replace / {sub(/^replace /, ""); print}')
  local r
  for r in "$@"; do go mod edit -replace "$r"; done
  go get "$mod@$version"
  mkdir -p bin crds
  CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "bin/$name" "$mod"
  cp "$dir"/config/crd/bases/*.yaml crds/
}

build_source_controller() {
  local artifact="github.com/fluxcd/pkg/artifact@$FLUX_ARTIFACT_VERSION"
  build_flux_controller "github.com/fluxcd/source-controller@$1" "${artifact%@*}=$artifact"
}

build_kustomize_controller() {
  build_flux_controller "github.com/fluxcd/kustomize-controller@$1"
}

# Binaries from KUBEBUILDER_ASSETS are used as they are; only missing ones are built.
from_assets() {
  [[ -n "${KUBEBUILDER_ASSETS:-}" ]] || return 1
  local bin
  for bin in "$@"; do [[ -x "$KUBEBUILDER_ASSETS/$bin" ]] || return 1; done
  echo "$KUBEBUILDER_ASSETS"
}

if [[ $set_name == release ]]; then
  from_assets helm || build_component helm "$HELM_VERSION" build_helm helm
  exit 0
fi

k8s_dir=$(from_assets kube-apiserver kube-controller-manager kubectl ||
  build_component kubernetes "$KUBERNETES_VERSION" build_kubernetes kube-apiserver kube-controller-manager kubectl)
etcd_dir=$(from_assets etcd || build_component etcd "$ETCD_VERSION" build_etcd etcd)

# The control plane: its own folder, keyed by its two components' versions.
if [[ $set_name == controlplane ]]; then
  key="controlplane-kubernetes-$KUBERNETES_VERSION-etcd-$ETCD_VERSION"
  [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && key="assets-controlplane-$(echo "$KUBEBUILDER_ASSETS" | cksum | cut -d' ' -f1)"
  out="$cache/$key/bin"
  mkdir -p "$out"
  for bin in kube-apiserver kube-controller-manager kubectl; do ln -sfn "$k8s_dir/$bin" "$out/$bin"; done
  ln -sfn "$etcd_dir/etcd" "$out/etcd"
  echo "$out"
  exit 0
fi

helm_dir=$(from_assets helm || build_component helm "$HELM_VERSION" build_helm helm)
if node_dir=$(from_assets kubelet kube-scheduler); then
  :
elif [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && ! command -v go >/dev/null 2>&1; then
  log "warning: kubelet and kube-scheduler left out: Go is not installed (only the install tests need them)"
  node_dir=
else
  node_dir=$(build_component kubernetes-node "$KUBERNETES_VERSION" build_kubernetes_node kubelet kube-scheduler)
fi
# The oldest supported version: the same wrapper-module build, its own cache entry.
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && ! command -v go >/dev/null 2>&1 &&
  [[ ! -f "$cache/kubernetes-$MIN_KUBERNETES_VERSION/.complete" ]]; then
  log "warning: Kubernetes $MIN_KUBERNETES_VERSION left out: Go is not installed (only the tests of the oldest supported version need it)"
  min_dir=
else
  min_dir=$(build_component kubernetes "$MIN_KUBERNETES_VERSION" build_kubernetes kube-apiserver kube-controller-manager kubectl)
fi
if kstatus_dir=$(from_assets kstatus); then
  :
elif [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && ! command -v go >/dev/null 2>&1; then
  log "warning: kstatus left out: Go is not installed (only tests that compare with kstatus need it)"
  kstatus_dir=
else
  kstatus_dir=$(build_component kstatus "$CLI_UTILS_VERSION" build_kstatus kstatus)
fi
if prometheus_dir=$(from_assets prometheus promtool); then
  :
elif [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && ! command -v go >/dev/null 2>&1; then
  log "warning: prometheus and promtool left out: Go is not installed (only the alert rule tests need them)"
  prometheus_dir=
else
  prometheus_dir=$(build_component prometheus "$PROMETHEUS_VERSION" build_prometheus prometheus promtool)
fi
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && ! command -v go >/dev/null 2>&1; then
  log "warning: source-controller and kustomize-controller left out: Go is not installed (only the GitOps test needs them)"
  flux_dirs=()
else
  source_dir=$(build_component source-controller "$FLUX_SOURCE_CONTROLLER_VERSION" build_source_controller source-controller)
  kustomize_dir=$(build_component kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" build_kustomize_controller kustomize-controller)
  flux_dirs=("$source_dir" "$kustomize_dir")
fi

# One folder with them all, keyed by the versions, for PATH and KUBEBUILDER_ASSETS users.
key="kubernetes-$KUBERNETES_VERSION-min-$MIN_KUBERNETES_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-kstatus-$CLI_UTILS_VERSION-prometheus-$PROMETHEUS_VERSION"
key+="-source-controller-$FLUX_SOURCE_CONTROLLER_VERSION-kustomize-controller-$FLUX_KUSTOMIZE_CONTROLLER_VERSION"
[[ -n "${KUBEBUILDER_ASSETS:-}" ]] && key="assets-$(echo "$KUBEBUILDER_ASSETS" | cksum | cut -d' ' -f1)"
out="$cache/$key/bin"
mkdir -p "$out"
for bin in kube-apiserver kube-controller-manager kubectl; do ln -sfn "$k8s_dir/$bin" "$out/$bin"; done
ln -sfn "$etcd_dir/etcd" "$out/etcd"
ln -sfn "$helm_dir/helm" "$out/helm"
if [[ -n "$kstatus_dir" ]]; then
  ln -sfn "$kstatus_dir/kstatus" "$out/kstatus"
else
  rm -f "$out/kstatus"
fi
for bin in prometheus promtool; do
  if [[ -n "$prometheus_dir" ]]; then ln -sfn "$prometheus_dir/$bin" "$out/$bin"; else rm -f "$out/$bin"; fi
done
for bin in kubelet kube-scheduler; do
  if [[ -n "$node_dir" ]]; then ln -sfn "$node_dir/$bin" "$out/$bin"; else rm -f "$out/$bin"; fi
done
# flux-crds/: the CRDs of Flux's controllers, beside their binaries.
rm -rf "$out/flux-crds" "$out/source-controller" "$out/kustomize-controller"
for dir in "${flux_dirs[@]}"; do
  mkdir -p "$out/flux-crds"
  for bin in "$dir"/*; do ln -sfn "$bin" "$out/${bin##*/}"; done
  for crd in "$dir"/../crds/*.yaml; do ln -sfn "$(cd "${crd%/*}" && pwd)/${crd##*/}" "$out/flux-crds/${crd##*/}"; done
done
# minimum/: a whole bin folder of the oldest version, for a second ControlPlane.
if [[ -n "$min_dir" ]]; then
  mkdir -p "$out/minimum"
  for bin in kube-apiserver kube-controller-manager kubectl; do ln -sfn "$min_dir/$bin" "$out/minimum/$bin"; done
  ln -sfn "$etcd_dir/etcd" "$out/minimum/etcd"
  ln -sfn "$helm_dir/helm" "$out/minimum/helm"
else
  rm -rf "$out/minimum"
fi
echo "$out"
