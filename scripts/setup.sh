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
  # runtime data: the tz database (tenant time zones, cron schedules)
  tzdata
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  postgresql postgresql-contrib redis-server rabbitmq-server nginx-light wrk prometheus
  curl openssl procps iproute2 python3 python3-yaml
  # custom-domain tests: a private DNS server answering the TXT records that prove a domain
  dnsmasq-base
)

# With --test-tools (scripts/test.sh): the OpenAPI linter (tests: openapi_lint) from the npm registry, pinned by
# tools/openapi-lint's lockfile; it needs Node.js 20 or later with npm. Installed again only when the lockfile
# changed since. `atrium serve` needs none of it.
TEST_TOOLS=0
if [[ ${1:-} == --test-tools ]]; then TEST_TOOLS=1; fi
install_npm_tools() {
  ((TEST_TOOLS)) || return 0
  local dir=tools/openapi-lint
  local stamp=$dir/node_modules/.installed-from-lock
  if [[ -f $stamp ]] && cmp -s "$dir/package-lock.json" "$stamp"; then return 0; fi
  echo "setup: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$dir/package-lock.json" "$stamp"
}
cd "$(dirname "$0")/.."
if ((TEST_TOOLS)) && ! command -v npm >/dev/null 2>&1; then PACKAGES+=(nodejs npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
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
