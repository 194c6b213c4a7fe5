#!/usr/bin/env bash
# Regenerates deploy/ferrolb.yaml from the kustomization in this directory,
# and the Helm chart's copy of the CRDs.
# Uses $KUBECTL, else the kube-fixture's kubectl (tests/kube-fixture/build.sh),
# else kubectl from PATH. The deploy test fails when the bundle is stale.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kubectl="${KUBECTL:-}"
if [[ -z "$kubectl" ]]; then
    if kubectl="$(bash "$here/../tests/kube-fixture/build.sh" 2>/dev/null | sed -n 's/^kubectl=//p')" && [[ -n "$kubectl" ]]; then
        :
    else
        kubectl=kubectl
    fi
fi
{
    cat "$here/bundle-header.txt"
    "$kubectl" kustomize "$here"
} > "$here/ferrolb.yaml.tmp"
mv "$here/ferrolb.yaml.tmp" "$here/ferrolb.yaml"
# The Helm chart templates its own copy of the CRDs.
cp "$here/crds/metallb.io.yaml" "$here/helm/ferrolb/files/metallb.io.yaml"
echo "wrote $here/ferrolb.yaml"
