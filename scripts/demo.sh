#!/usr/bin/env bash
# Builds the bundled sample project twice through kiln (as the CMake compiler
# launcher) with a local cache, and prints kiln's statistics: the first build
# misses, the second (after wiping the build directory) hits.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kiln="$root/build/bin/kiln"
work="$root/build/demo"
rm -rf "$work"
mkdir -p "$work"
export KILN_DIR="$work/cache"
export KILN_CONFIG="$work/kiln.toml"  # embedded defaults, not the user's file

for round in cold warm; do
  rm -rf "$work/build"
  cmake -S "$root/sample" -B "$work/build" -G Ninja \
    -DCMAKE_CXX_COMPILER_LAUNCHER="$kiln" >/dev/null
  start=$EPOCHREALTIME
  cmake --build "$work/build" >/dev/null
  end=$EPOCHREALTIME
  printf "%s build: %s s\n" "$round" "$(python3 -c "print(round($end - $start, 2))")"
done
"$work/build/sample_app"
echo
"$kiln" -s
