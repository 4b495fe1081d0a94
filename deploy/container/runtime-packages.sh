#!/usr/bin/env bash
# Prints, one per line, the Debian packages a runtime image needs for BINARY: the packages that provide the shared
# libraries it links directly (its ELF NEEDED entries, found through the dynamic linker's cache and `dpkg -S` on the
# machine that built it), plus what the image itself uses: CA certificates (PostgreSQL, SMTP, webhooks, upstreams over
# TLS), the time zone database (tenant time zones, cron), and curl for the health check.
# Used by the Dockerfile's runtime stage and by build-image.sh, so the two images hold the same packages.
set -euo pipefail
binary=${1:?usage: runtime-packages.sh BINARY}
[[ -x $binary ]] || { echo "runtime-packages.sh: $binary is not an executable" >&2; exit 2; }

needed=$(objdump -p "$binary" | awk '$1 == "NEEDED" { print $2 }')
[[ -n $needed ]] || { echo "runtime-packages.sh: $binary links no shared library" >&2; exit 1; }
# Read whole (no early exit in a pipe: under pipefail a writer cut off by SIGPIPE fails the script).
cache=$(ldconfig -p)
packages=(ca-certificates tzdata curl)
for lib in $needed; do
  path=$(awk -v lib="$lib" '$1 == lib && /x86-64|x86_64/ && !found { print $NF; found = 1 }' <<< "$cache")
  if [[ -z $path ]]; then
    echo "runtime-packages.sh: $lib (needed by $binary) is not in the linker cache" >&2
    exit 1
  fi
  real=$(readlink -f "$path")
  # dpkg knows a file by the path it installed, which may be /lib/... where the cache says /usr/lib/... (merged /usr).
  owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null) || {
    echo "runtime-packages.sh: no Debian package provides $path" >&2
    exit 1
  }
  packages+=("${owner%%:*}")
done
printf '%s\n' "${packages[@]}" | sort -u
