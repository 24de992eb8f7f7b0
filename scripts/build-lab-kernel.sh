#!/usr/bin/env bash
# Build a kernel tree with the VM lab's config, incrementally: the config made once
# (allnoconfig plus patches/kconfig), then make only rebuilds what changed. The patched
# kernel's build (build-patched-kernel.sh) and a bisect step (python -m pytest_pktgen
# bisect-run) both build so, so a bisect step is an incremental build.
# Usage: scripts/build-lab-kernel.sh TREE [KCONFIG]   (prints the tree's path last)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tree=$1
kconfig=${2:-$top/patches/kconfig}
cd "$tree"
# the config is made again when the kconfig file says something else (a fresh clone's file is
# newer than the cache, but the same): allnoconfig with it forced on top (KCONFIG_ALLCONFIG),
# so the build holds what the lab needs and nothing else; every option the file turns on must
# have survived Kconfig's dependencies
want_config=$(sha256sum < "$kconfig" | cut -d' ' -f1)
if [ ! -f .config ] || [ "$want_config" != "$(cat .pktgen-kconfig.sha256 2>/dev/null)" ]; then
  KCONFIG_ALLCONFIG="$kconfig" make -s allnoconfig
  missing=$(grep '^CONFIG_[A-Z0-9_]*=y$' "$kconfig" | while read -r line; do
    grep -qx "$line" .config || echo "$line"; done)
  if [ -n "$missing" ]; then
    echo "$kconfig: Kconfig dropped (a dependency is off):" $missing >&2; exit 3
  fi
  echo "$want_config" > .pktgen-kconfig.sha256
fi
make -s -j"$(nproc)" bzImage >&2
echo "$tree"
