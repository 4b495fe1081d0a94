#!/usr/bin/env bash
# Quick start (b): installs everything, builds with AddressSanitizer and UndefinedBehaviorSanitizer, builds the
# fuzz targets with clang, starts a private PostgreSQL, Redis and RabbitMQ on free loopback ports, runs the whole
# test suite, and stops the services again, also when a test fails. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh --test-tools

jobs=$(nproc)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DATRIUM_SANITIZE=ON -DATRIUM_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-O1" >/dev/null
ninja -C build-asan -j "$jobs"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DATRIUM_FUZZ_ONLY=ON -DCMAKE_CXX_COMPILER=clang++ >/dev/null
ninja -C build-fuzz -j "$jobs"

services=$(mktemp -d /tmp/atrium-services.XXXXXX)
cleanup() {
  bash "$root/scripts/services.sh" stop "$services" || true
  rm -rf "$services"
}
trap cleanup EXIT INT TERM
bash scripts/services.sh start "$services" >/dev/null
# shellcheck disable=SC1091
source "$services/env"

export ATRIUM_FUZZ_DIR="$root/build-fuzz"
# Every service is there, so a test that finds one missing fails instead of skipping (tests/support/test_support.hpp).
export ATRIUM_TEST_REQUIRE_SERVICES=1
# Options from the environment come after these, so they add to them instead of dropping the leak check.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# ctest starts the longest tests first when it knows their times: on a fresh build directory, from
# tests/ctest_cost_data.txt (the seconds of a full run; refresh it with build-asan/Testing/Temporary/CTestCostData.txt
# when tests change much), so a long suite does not start last and run alone.
mkdir -p build-asan/Testing/Temporary
if [[ ! -f build-asan/Testing/Temporary/CTestCostData.txt ]]; then
  cp tests/ctest_cost_data.txt build-asan/Testing/Temporary/CTestCostData.txt
fi
log="$services/ctest.log"
set +e
ctest --test-dir build-asan --output-on-failure -j "$jobs" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# No test may skip, except the ones tests/allowed_skips.txt names with a reason.
python3 scripts/check_skips.py "$log" tests/allowed_skips.txt || status=1
exit "$status"
