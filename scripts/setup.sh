#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of Atrium from Debian 12 packages.
# Idempotent: when every package is already installed it returns in well under a second
# without touching the network. Must run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang libclang-rt-14-dev
  # libraries
  libboost-dev libboost-system-dev libssl-dev libpq-dev libsqlite3-dev libhiredis-dev librabbitmq-dev
  libsodium-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev
  libcurl4-openssl-dev libjemalloc-dev libhowardhinnant-date-dev libhpdf-dev
  # machine learning (src/ml/): XGBoost's C API, Eigen
  libxgboost-dev libeigen3-dev
  # runtime data: the tz database (tenant time zones, cron schedules)
  tzdata
  # the web console (web/): built with npm into the binary
  nodejs npm
)
# Everything below is for tests and benchmarks; `--build-only` (the Dockerfile's build stage) skips it.
TEST_PACKAGES=(
  libgtest-dev libgmock-dev libbenchmark-dev
  postgresql postgresql-contrib redis-server rabbitmq-server nginx-light wrk prometheus
  curl openssl procps iproute2 python3 python3-yaml
  # custom-domain tests: a private DNS server answering the TXT records that prove a domain
  dnsmasq-base
)

# The web console's build tools (Vite, TypeScript) and, for its browser tests, Playwright's driver and axe-core come
# from the npm registry, pinned by web/package-lock.json; they need Node.js 20.19 or later with npm (Debian 12's own
# nodejs is 18: where a newer Node.js is already installed, as on the machines this runs on, it is kept).
# With --test-tools (scripts/test.sh) also: Debian's Chromium for the console's browser tests (tests: console_browser),
# Python's xgboost and numpy (the churn model's XGBoost JSON loaded in Python, tests/e2e/churn_test.py), PyJWT with
# cryptography (the gateway's identity token verified through the JWKS, tests/e2e/gateway_test.py) and the
# OpenAPI linter (tests: openapi_lint), pinned by tools/openapi-lint's lockfile. Each npm folder is installed
# again only when its lockfile changed since.
# With --bench-tools (bench/ml.sh): the Python reference of the machine-learning benchmark, Debian's
# python3-sklearn, python3-xgboost and python3-pandas (not needed by the build; the tests need only python3-xgboost).
# With --test-tools also what deploy/ is checked with: Prometheus's postgres_exporter (tests/e2e/monitoring_test.py),
# mmdebstrap, buildah, podman and runc (the runtime image built from Debian packages and run,
# tests/e2e/container_test.py), and kustomize with the Kubernetes and Prometheus-operator schemas (deploy/check),
# pinned by deploy/check's lockfile.
TEST_TOOLS=0
BENCH_TOOLS=0
BUILD_ONLY=0
for arg in "$@"; do
  case $arg in
    --test-tools) TEST_TOOLS=1 ;;
    --bench-tools) BENCH_TOOLS=1 ;;
    --build-only) BUILD_ONLY=1 ;;
    *) echo "setup: unknown option $arg (--test-tools, --bench-tools, --build-only)" >&2; exit 2 ;;
  esac
done
((BUILD_ONLY)) || PACKAGES+=("${TEST_PACKAGES[@]}")
npm_ci() {
  local dir=$1
  local stamp=$dir/node_modules/.installed-from-lock
  if [[ -f $stamp ]] && cmp -s "$dir/package-lock.json" "$stamp"; then return 0; fi
  echo "setup: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$dir/package-lock.json" "$stamp"
}
install_npm_tools() {
  npm_ci web
  ((TEST_TOOLS)) || return 0
  npm_ci tools/openapi-lint
  npm_ci deploy/check
}
cd "$(dirname "$0")/.."
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
  PACKAGES=("${PACKAGES[@]/nodejs/}")
  PACKAGES=("${PACKAGES[@]/npm/}")
fi
if ((TEST_TOOLS)); then
  PACKAGES+=(chromium python3-xgboost python3-numpy python3-jwt python3-cryptography)
  PACKAGES+=(prometheus-postgres-exporter mmdebstrap buildah podman runc binutils)
fi
if ((BENCH_TOOLS)); then PACKAGES+=(python3-sklearn python3-xgboost python3-pandas); fi

missing=()
for p in "${PACKAGES[@]}"; do
  [[ -n $p ]] || continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  install_npm_tools
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Services installed here are started privately by scripts/services.sh; keep Debian's
# default instances from starting (and holding the default ports) where policy-rc.d allows.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_npm_tools
echo "setup: done" >&2
