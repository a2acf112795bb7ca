#!/usr/bin/env bash
# One command for a fresh Debian bookworm machine: install dependencies, build
# kiln, then run its main job on the embedded defaults (scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/install-helm.sh >/dev/null  # Helm, for the chart's test (docs/kubernetes.md)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo ${KILN_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
bash scripts/demo.sh
