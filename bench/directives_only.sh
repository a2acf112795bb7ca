#!/usr/bin/env bash
# Part 5 of issue 9 asks which is faster end to end: sending sources and
# headers (kiln) or -fdirectives-only output (icecream). For gtest-all.cc at
# -O2 -g this times, three times each: the dependency scan kiln runs (-M), the
# directives-only pass, the compile from source and the compile of the
# directives-only output; then says whether the two objects are identical.
#   bash bench/directives_only.sh
set -euo pipefail
G=/usr/src/googletest/googletest
F=(-I"$G" -I"$G/include" -O2 -g)
S="$G/src/gtest-all.cc"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
ms() { local s; s=$(date +%s%N); "$@" >/dev/null 2>&1; echo $((($(date +%s%N) - s) / 1000000)); }
for i in 1 2 3; do
  echo "round $i: -M $(ms g++ "${F[@]}" -c "$S" -M -MF "$T/d") ms;" \
    "-E -fdirectives-only $(ms g++ "${F[@]}" -E -fdirectives-only "$S" -o "$T/d.ii") ms;" \
    "compile source $(ms g++ "${F[@]}" -c "$S" -o "$T/src.o") ms;" \
    "compile .ii $(ms g++ "${F[@]}" -fpreprocessed -fdirectives-only -x c++ -c "$T/d.ii" -o "$T/ii.o") ms"
done
if cmp -s "$T/src.o" "$T/ii.o"; then echo "objects: identical"; else echo "objects: differ"; fi
