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

# the config is made again when patches/kconfig says something else (a fresh clone's file is
# newer than the cache, but the same): allnoconfig with patches/kconfig forced on top
# (KCONFIG_ALLCONFIG), so the build holds what the lab needs and nothing else; every option the
# file turns on must have survived Kconfig's dependencies
want_config=$(sha256sum < "$top/patches/kconfig" | cut -d' ' -f1)
if [ ! -f .config ] || [ "$want_config" != "$(cat .pktgen-kconfig.sha256 2>/dev/null)" ]; then
  KCONFIG_ALLCONFIG="$top/patches/kconfig" make -s allnoconfig
  missing=$(grep '^CONFIG_[A-Z0-9_]*=y$' "$top/patches/kconfig" | while read -r line; do
    grep -qx "$line" .config || echo "$line"; done)
  if [ -n "$missing" ]; then
    echo "patches/kconfig: Kconfig dropped (a dependency is off):" $missing >&2; exit 3
  fi
  echo "$want_config" > .pktgen-kconfig.sha256
fi
make -s -j"$(nproc)" bzImage >&2
echo "$tree"
