#!/usr/bin/env bash
# Compile time of translation units of the sanitizer build (the one CI builds) under the debug-info and optimisation
# flags it could use, side by side in one run: the baseline (-O1 -g, the flags before 2026-12-06) beside -O1 -g1
# (line tables only: what sanitizer reports need) and -O0 -g1 (what the test code now gets). Each variant compiles
# the same file with the same command otherwise, without ccache, into a scratch object. Prints a Markdown table.
#
# Usage: bench/build_flags.sh [SOURCE ...]   (paths relative to the repository; default: one test, one library file)
# Environment: BUILD_DIR [<repo>/build-asan], a sanitizer build configured with -DATRIUM_UNITY_BUILD=OFF (one
# compile command per file; bench/build_unity.sh measures the batches of the default build).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO_ROOT/build-asan}
[[ -f $BUILD_DIR/build.ninja ]] || { echo "no $BUILD_DIR/build.ninja: configure the sanitizer build first" >&2; exit 1; }
sources=("$@")
((${#sources[@]})) || sources=(tests/api/quotas_api_test.cpp src/api/billing_routes.cpp)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "| file | -O1 -g (baseline) | -O1 -g1 | -O0 -g1 |"
echo "|---|---|---|---|"
for source in "${sources[@]}"; do
  object=$(basename "$source").o
  command=$(ninja -C "$BUILD_DIR" -t commands | grep -F -- "/$object -c $REPO_ROOT/$source" | head -1)
  [[ -n $command ]] || { echo "no compile command for $source in $BUILD_DIR (configure it with -DATRIUM_UNITY_BUILD=OFF)" >&2; exit 1; }
  # Without ccache, dependency files or the build's own object; optimisation and debug flags removed.
  command=${command#*ccache }
  command=$(sed -E 's/ -MD -MT [^ ]+ -MF [^ ]+//; s/ -o [^ ]+/ -o OBJECT/; s/ -O[0-3s]\b//g; s/ -g[0-3]?\b//g' <<< "$command")
  row="| \`$source\` |"
  for flags in "-O1 -g" "-O1 -g1" "-O0 -g1"; do
    start=$(date +%s%N)
    bash -c "${command/ -o OBJECT/ $flags -o $scratch/out.o}"
    ms=$((($(date +%s%N) - start) / 1000000))
    row+=" $((ms / 1000)).$((ms % 1000 / 100)) s |"
  done
  echo "$row"
done
