#!/usr/bin/env bash
# AES-256-GCM throughput of Atrium's field sealing (protection::aead_seal: a fresh random 96-bit nonce, the key set
# up per value, the field's associated data) beside `openssl speed -evp aes-256-gcm` (one context, no nonce
# generation, no associated data) on the same machine in the same run, for openssl's block sizes. Prints a Markdown
# table on stdout. The target (docs/performance.md): at least 0.8x of openssl for 1 KiB and larger.
#
# Usage: bench/encryption.sh
# Environment: AEAD_BENCH [<repo>/build/bench/atrium_aead_bench], SECONDS_PER_SIZE [3]
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
AEAD_BENCH=${AEAD_BENCH:-$REPO_ROOT/build/bench/atrium_aead_bench}
SECONDS_PER_SIZE=${SECONDS_PER_SIZE:-3}
[[ -x $AEAD_BENCH ]] || { echo "no $AEAD_BENCH: cmake -DATRIUM_BENCH=ON and build atrium_aead_bench" >&2; exit 1; }

# openssl first, Atrium second, then both again in the other order; the better run of each is kept.
declare -A openssl_bps=() atrium_bps=()
run_openssl() {
  local line sizes values i
  sizes=$(openssl speed -mr -evp aes-256-gcm -seconds "$SECONDS_PER_SIZE" 2>/dev/null | sed -n 's/^+H://p')
  line=$(openssl speed -mr -evp aes-256-gcm -seconds "$SECONDS_PER_SIZE" 2>/dev/null | sed -n 's/^+F:[0-9]*:[^:]*://p')
  IFS=: read -r -a s <<<"$sizes"
  IFS=: read -r -a values <<<"$line"
  for i in "${!s[@]}"; do
    local mbs
    mbs=$(awk -v v="${values[$i]}" 'BEGIN { printf "%.1f", v / 1e6 }')
    if [[ -z ${openssl_bps[${s[$i]}]:-} ]] || awk -v a="$mbs" -v b="${openssl_bps[${s[$i]}]}" 'BEGIN { exit !(a > b) }'; then
      openssl_bps[${s[$i]}]=$mbs
    fi
  done
}
run_atrium() {
  local size mbs
  while read -r size mbs; do
    if [[ -z ${atrium_bps[$size]:-} ]] || awk -v a="$mbs" -v b="${atrium_bps[$size]}" 'BEGIN { exit !(a > b) }'; then
      atrium_bps[$size]=$mbs
    fi
  done < <("$AEAD_BENCH" "$SECONDS_PER_SIZE")
}
echo "[encryption] openssl speed, then Atrium, then Atrium, then openssl (${SECONDS_PER_SIZE}s per size)" >&2
run_openssl
run_atrium
run_atrium
run_openssl

echo "# AES-256-GCM: Atrium's field sealing vs openssl speed (same machine, same run)"
echo
echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(openssl version); CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "- Command: \`SECONDS_PER_SIZE=$SECONDS_PER_SIZE bench/encryption.sh\`"
echo
echo "| bytes per value | Atrium MB/s | openssl speed MB/s | Atrium/openssl |"
echo "|---:|---:|---:|---:|"
for size in 16 64 256 1024 8192 16384; do
  ratio=$(awk -v a="${atrium_bps[$size]}" -v b="${openssl_bps[$size]}" 'BEGIN { printf "%.2f", a / b }')
  echo "| $size | ${atrium_bps[$size]} | ${openssl_bps[$size]} | $ratio |"
done
