#!/usr/bin/env bash
# Installs everything kiln needs to build and test, from Debian bookworm packages.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential g++ clang cmake ninja-build make pkg-config python3 python3-yaml \
  libssl-dev libzstd-dev libxxhash-dev libtomlplusplus-dev libexpected-dev \
  libcurl4-openssl-dev libhiredis-dev libarchive-dev \
  libboost-dev nlohmann-json3-dev libcli11-dev bubblewrap \
  libsqlite3-dev libpq-dev postgresql \
  googletest libgtest-dev \
  redis-server nginx-light \
  curl ccache hyperfine >/dev/null
# Test servers are started by the tests themselves on free loopback ports; the
# packaged services are not needed in the background.
for service in redis-server nginx postgresql; do
  if [ -x "/etc/init.d/$service" ]; then $SUDO "/etc/init.d/$service" stop >/dev/null 2>&1 || true; fi
done
# moto_server (S3 and STS, for the remote-storage tests) comes with the machine's Python.
command -v moto_server >/dev/null || echo "install-deps: warning: moto_server not found; S3 tests will fail"
echo "install-deps: done"
