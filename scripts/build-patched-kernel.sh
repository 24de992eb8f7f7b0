#!/usr/bin/env bash
# Build Debian's linux-source-6.1 with patches/*.patch for the VM lab, incrementally:
# unpacked once into a cache directory, the patch set re-applied only when it changed, the
# config made once (allnoconfig plus patches/kconfig), then make only rebuilds what changed
# (about 6 minutes the first time on 2 cores, seconds after an ip_input.c edit).
# Usage: scripts/build-patched-kernel.sh [TREE]   (prints the tree's path last)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tree=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/pytest-pktgen/linux-6.1-pktgen}
tarball=/usr/src/linux-source-6.1.tar.xz
[ -f "$tarball" ] || { echo "no $tarball: apt-get install linux-source-6.1" >&2; exit 2; }

if [ ! -f "$tree/Makefile" ]; then
  mkdir -p "$tree"
  tar xf "$tarball" -C "$tree" --strip-components=1
fi
cd "$tree"

want=$(cat "$top"/patches/*.patch | sha256sum | cut -d' ' -f1)
have=$(cat .pktgen-patches.sha256 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  if [ -f .pktgen-patches.applied ]; then
    patch -R -p1 --quiet --forward < .pktgen-patches.applied
  fi
  cat "$top"/patches/*.patch > .pktgen-patches.applied
  patch -p1 --quiet --forward < .pktgen-patches.applied
  echo "$want" > .pktgen-patches.sha256
fi

exec "$top/scripts/build-lab-kernel.sh" "$tree"
