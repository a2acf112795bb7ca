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

# The compile service on the embedded defaults (docs/service.md): one
# kiln-server with SQLite and a local cache compiles the same sample,
# submitted as a program over the REST API; its binary is downloaded and run.
echo
echo "== kiln-server: the sample as a program =="
server="$root/build/bin/kiln-server"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
"$server" --listen "127.0.0.1:$port" --data-dir "$work/server" \
  --log-file "$work/server.log" >"$work/server.out" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "$url/healthz" >/dev/null && break
  sleep 0.1
done
tar czf "$work/sample.tar.gz" -C "$root/sample" .
curl -sf -X PUT --data-binary @"$work/sample.tar.gz" \
  -H 'Content-Type: application/gzip' "$url/v0/programs/sample?target=sample_app" >/dev/null
status=""
for _ in $(seq 600); do
  status=$(curl -sf "$url/v0/programs/sample" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  case "$status" in Success | CompileError | SystemError) break ;; esac
  sleep 0.2
done
echo "program sample: $status"
if [ "$status" != Success ]; then
  curl -s "$url/v0/programs/sample"
  exit 1
fi
curl -sf -D "$work/binary.headers" -o "$work/sample_app" "$url/v0/programs/sample/binary"
chmod +x "$work/sample_app"
grep -i '^x-kiln-sha256' "$work/binary.headers"
"$work/sample_app"
kill -TERM $server_pid
wait $server_pid
trap - EXIT
