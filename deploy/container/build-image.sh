#!/usr/bin/env bash
# Builds Atrium's runtime container image from Debian packages alone, without a container registry: mmdebstrap makes
# the root file system from Debian 12 (bookworm) with only the packages runtime-packages.sh lists for the binary,
# the binary goes to /usr/local/bin, an unprivileged user `atrium` (uid 10001) owns /var/lib/atrium, and buildah
# turns it into an image with the same entrypoint, user, health check and stop signal as the Dockerfile's.
#
#   deploy/container/build-image.sh [--binary PATH] [--tag NAME] [--out FILE.tar]
#
# --binary: the atrium executable to ship (default: build/atrium, built here as a release build when missing).
# --tag:    the image name (default localhost/atrium:<version from the binary>).
# --out:    also write the image as a docker-archive tarball (for `podman load` / `docker load` elsewhere).
# Needs root (mmdebstrap, buildah) and the packages mmdebstrap, buildah, podman (scripts/setup.sh --image-tools).
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=build/atrium
tag=""
out=""
while (($#)); do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "build-image.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ ! -x $binary ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C build atrium
fi
version=$("$binary" --version | awk '{ print $2 }')
tag=${tag:-localhost/atrium:$version}

package_list=$(bash deploy/container/runtime-packages.sh "$binary")
mapfile -t packages <<< "$package_list"
work=$(mktemp -d /tmp/atrium-image.XXXXXX)
trap 'rm -rf "$work"; [[ -n ${ctr:-} ]] && buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
cp "$binary" "$work/atrium"

# The hooks' "$1" is mmdebstrap's root directory, expanded by mmdebstrap, not here.
# shellcheck disable=SC2016
# essential: only Debian's Essential packages (a shell, coreutils, dpkg) plus ours and their dependencies; no apt,
# no documentation, manuals or translations.
mmdebstrap --quiet --variant=essential --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="copy-in '$work/atrium' /usr/local/bin" \
  --customize-hook='chroot "$1" chmod 0755 /usr/local/bin/atrium' \
  --customize-hook='echo "atrium:x:10001:10001:Atrium:/var/lib/atrium:/usr/sbin/nologin" >> "$1/etc/passwd"' \
  --customize-hook='echo "atrium:x:10001:" >> "$1/etc/group"' \
  --customize-hook='mkdir -p "$1/var/lib/atrium" && chown 10001:10001 "$1/var/lib/atrium"' \
  --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
  bookworm "$work/rootfs.tar"

export BUILDAH_FORMAT=docker  # HEALTHCHECK exists only in the docker image format
ctr=$(buildah from scratch)
buildah add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
# The same settings as the Dockerfile's runtime stage (keep the two alike).
buildah config \
  --user 10001:10001 \
  --workingdir /var/lib/atrium \
  --env ATRIUM_SERVER_LISTEN=0.0.0.0:8080 \
  --port 8080 \
  --volume /var/lib/atrium \
  --entrypoint '["/usr/local/bin/atrium"]' \
  --cmd serve \
  --stop-signal SIGTERM \
  --healthcheck 'CMD curl -fsS -o /dev/null http://127.0.0.1:8080/ready' \
  --healthcheck-interval 10s --healthcheck-timeout 3s --healthcheck-start-period 30s --healthcheck-retries 3 \
  --label org.opencontainers.image.title=atrium \
  --label "org.opencontainers.image.version=$version" \
  --label org.opencontainers.image.source=deploy/container/build-image.sh \
  "$ctr"
buildah commit --quiet --format docker --rm "$ctr" "$tag" >/dev/null
ctr=""
if [[ -n $out ]]; then
  rm -f "$out"
  podman save --quiet --format docker-archive -o "$out" "$tag"
fi
echo "$tag"
