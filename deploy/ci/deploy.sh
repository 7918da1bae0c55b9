#!/usr/bin/env bash
# Roll out one tikflow image to the cluster of the current kubectl context: run the migration
# Job to completion, then roll the api and worker Deployments, undoing them if they fail.
#
# Usage: deploy/ci/deploy.sh IMAGE        e.g. deploy/ci/deploy.sh ghcr.io/acme/tikflow:3f2c1ab
# Each environment (lab, staging, prod) is its own cluster, chosen by KUBECONFIG.
# TIKFLOW_SKIP_MIGRATION=1 leaves the schema alone: a rollback to an older image must not run
# that image's migrations, because the database is already at a newer revision.
set -euo pipefail

image=${1:?usage: deploy/ci/deploy.sh IMAGE (registry/name:tag)}
namespace=${TIKFLOW_NAMESPACE:-tikflow}
root=$(cd "$(dirname "$0")/../.." && pwd)

case "$image" in
  *:*) ;;
  *) echo "deploy.sh: IMAGE must include a tag, got '$image'" >&2; exit 2 ;;
esac

undo_rollout() {
  for deployment in tikflow-api tikflow-worker; do
    kubectl -n "$namespace" rollout undo "deployment/$deployment" || true
  done
}

# An overlay next to the base pins the image without editing the committed manifests.
mkdir -p "$root/build"
overlay=$(mktemp -d "$root/build/overlay.XXXXXX")
trap 'rm -rf "$overlay"' EXIT
cat > "$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../deploy/kubernetes
images:
  - name: tikflow
    newName: ${image%:*}
    newTag: ${image##*:}
YAML
skip_migration=${TIKFLOW_SKIP_MIGRATION:-0}
if [ "$skip_migration" = 1 ]; then
  cat >> "$overlay/kustomization.yaml" <<'YAML'
patches:
  - patch: |-
      $patch: delete
      apiVersion: batch/v1
      kind: Job
      metadata:
        name: tikflow-migrate
YAML
fi

# Job specs are immutable: the finished Job of the previous release goes first.
kubectl -n "$namespace" delete job tikflow-migrate --ignore-not-found --wait=true
kubectl apply -k "$overlay"

if [ "$skip_migration" = 1 ]; then
  echo "deploy.sh: migrations skipped (TIKFLOW_SKIP_MIGRATION=1)"
elif ! kubectl -n "$namespace" wait --for=condition=complete job/tikflow-migrate --timeout=15m; then
  echo "deploy.sh: migration Job did not complete; Deployments are being rolled back" >&2
  kubectl -n "$namespace" logs job/tikflow-migrate --tail=50 >&2 || true
  undo_rollout
  exit 1
fi

for deployment in tikflow-api tikflow-worker; do
  if ! kubectl -n "$namespace" rollout status "deployment/$deployment" --timeout=10m; then
    echo "deploy.sh: $deployment did not become ready; rolling back both Deployments" >&2
    undo_rollout
    exit 1
  fi
done
echo "deploy.sh: $image is live in namespace $namespace"
