#!/usr/bin/env bash
# Compile time of unity batches of the sanitizer build (the one CI builds) against their files compiled one by one,
# side by side in one run: for each batch, the batch's translation unit (what ATRIUM_UNITY_BUILD=ON compiles) and then
# each file it includes with the same command, all without ccache, into a scratch object. Prints a Markdown table.
#
# Usage: bench/build_unity.sh [BATCH ...]   (a batch's unity source relative to BUILD_DIR; default: one library batch
#        and one test batch)
# Environment: BUILD_DIR [<repo>/build-asan], a sanitizer build configured with ATRIUM_UNITY_BUILD=ON (the default).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
BUILD_DIR=$(cd "${BUILD_DIR:-$REPO_ROOT/build-asan}" && pwd)
[[ -f $BUILD_DIR/build.ninja ]] || { echo "no $BUILD_DIR/build.ninja: configure the sanitizer build first" >&2; exit 1; }
batches=("$@")
((${#batches[@]})) || batches=(CMakeFiles/atrium_billing.dir/Unity/unity_2_cxx.cxx
  tests/CMakeFiles/atrium_tests.dir/Unity/unity_1_cxx.cxx)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

seconds() {  # runs "$@", prints its wall time in seconds with one decimal
  local start ms
  start=$(date +%s%N)
  "$@"
  ms=$((($(date +%s%N) - start) / 1000000))
  echo "$((ms / 1000)).$((ms % 1000 / 100))"
}

echo "| batch | files | one unit (unity) | file by file (baseline) |"
echo "|---|---|---|---|"
for batch in "${batches[@]}"; do
  [[ -f $BUILD_DIR/$batch ]] || { echo "no $BUILD_DIR/$batch: is the build configured with ATRIUM_UNITY_BUILD=ON?" >&2; exit 1; }
  command=$(ninja -C "$BUILD_DIR" -t commands | grep -F -- " -c $BUILD_DIR/$batch" | head -1)
  [[ -n $command ]] || { echo "no compile command for $batch in $BUILD_DIR" >&2; exit 1; }
  command=${command#*ccache }
  command=$(sed -E 's/ -MD -MT [^ ]+ -MF [^ ]+//; s/ -o [^ ]+/ -o OBJECT/' <<< "$command")
  command=${command/ -o OBJECT/ -o $scratch/out.o}
  mapfile -t files < <(sed -nE 's/^#include "(.*)"$/\1/p' "$BUILD_DIR/$batch")
  unity=$(seconds bash -c "cd '$BUILD_DIR' && $command")
  compile_each() {
    local file
    for file in "${files[@]}"; do
      bash -c "cd '$BUILD_DIR' && ${command/ -c $BUILD_DIR\/$batch/ -c $file}"
    done
  }
  separate=$(seconds compile_each)
  echo "| \`$batch\` | ${#files[@]} | $unity s | $separate s |"
done
