#!/usr/bin/env bash
# End to end on kind, for machines with Docker: create a kind cluster, build the image
# (docker build .) and load it, install the chart, run an S3 server (moto) in the cluster,
# apply a Destination against it, wait for Ready, and run `helm test`.
#
#   hack/kind-e2e.sh            # leaves the cluster up; KIND_E2E_DELETE=1 deletes it at the end
#
# Needs docker (an engine that answers), kind, kubectl and helm on PATH, and the network
# for kind's node image and the moto image. Not run by `make test` or CI: the development
# machines have no Docker engine; tests/install/ proves the same on a local node.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_E2E_CLUSTER:-destination-operator-e2e}
tag=${KIND_E2E_TAG:-e2e}
image=localhost/destination-operator:$tag
moto_image=${KIND_E2E_MOTO_IMAGE:-motoserver/moto:5.2.2}
release=destination-operator
system=destination-operator-system
demo=destination-operator-e2e

log() { echo "kind-e2e: $*" >&2; }
die() { echo "kind-e2e: error: $*" >&2; exit 1; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (needed: docker, kind, kubectl, helm)"
done
if ! docker info >/dev/null 2>&1; then
  die "no Docker engine answers ('docker info' failed): start Docker (or point DOCKER_HOST at one) and run again"
fi

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "reusing kind cluster $cluster"
else
  log "creating kind cluster $cluster"
  kind create cluster --name "$cluster" --wait 180s
fi
context=kind-$cluster
k() { kubectl --context "$context" "$@"; }

cleanup() {
  if [[ "${KIND_E2E_DELETE:-0}" == 1 ]]; then
    kind delete cluster --name "$cluster"
  else
    log "cluster $cluster left up: 'kind delete cluster --name $cluster' removes it"
  fi
}
trap cleanup EXIT

log "building $image"
docker build -t "$image" "$root"
kind load docker-image "$image" --name "$cluster"

log "installing the chart"
helm --kube-context "$context" upgrade --install "$release" "$root/charts/destination-operator" \
  --namespace "$system" --create-namespace \
  --set image.tag="$tag" --set image.pullPolicy=Never \
  --set allowPrivateEndpoints=true \
  --wait --timeout 5m

log "starting an S3 server ($moto_image) in namespace $demo"
k create namespace "$demo" --dry-run=client -o yaml | k apply -f -
k apply -n "$demo" -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: s3
spec:
  replicas: 1
  selector:
    matchLabels: {app: s3}
  template:
    metadata:
      labels: {app: s3}
    spec:
      containers:
        - name: moto
          image: $moto_image
          ports: [{containerPort: 5000}]
          readinessProbe:
            tcpSocket: {port: 5000}
---
apiVersion: v1
kind: Service
metadata:
  name: s3
spec:
  selector: {app: s3}
  ports: [{port: 5000, targetPort: 5000}]
EOF
k rollout status -n "$demo" deploy/s3 --timeout=180s
# moto accepts unsigned requests: make the bucket from inside its own pod
k exec -n "$demo" deploy/s3 -- python -c \
  "import urllib.request; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:5000/e2e', method='PUT'))"

log "applying a Destination"
k apply -n "$demo" -f - <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: s3
stringData:
  accessKeyId: e2e-access-key
  secretAccessKey: e2e-secret-key
---
apiVersion: destinations.io/v1alpha1
kind: Destination
metadata:
  name: e2e
spec:
  type: S3Compatible
  environment: Development
  s3Compatible:
    endpoint: http://s3.$demo.svc:5000   # the operator runs in another namespace
    bucket: e2e
    forcePathStyle: true
  pathPrefix: e2e/
  credentials:
    secretRef: {name: s3}
EOF
if ! k wait -n "$demo" --for=condition=Ready dst/e2e --timeout=180s; then
  k get dst -n "$demo" e2e -o yaml >&2 || true
  k logs -n "$system" deploy/"$release" --tail=50 >&2 || true
  die "the Destination did not become Ready"
fi
k get dst -n "$demo"

log "helm test"
helm --kube-context "$context" test "$release" -n "$system" --logs
log "ok: the chart installs, the operator verifies a Destination, helm test passes"
