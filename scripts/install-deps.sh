#!/usr/bin/env bash
# Installs everything kiln needs to build and test, from Debian bookworm packages.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential g++ clang cmake ninja-build make pkg-config python3 \
  libssl-dev libzstd-dev libxxhash-dev libtomlplusplus-dev libexpected-dev \
  googletest libgtest-dev \
  ccache hyperfine >/dev/null
echo "install-deps: done"
