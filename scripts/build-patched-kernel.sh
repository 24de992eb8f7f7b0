#!/usr/bin/env bash
# Build Debian's linux-source-6.1 with patches/*.patch for the VM lab, incrementally:
# unpacked once into a cache directory, the patch set re-applied only when it changed, the
# config made once (virtme-ng's minimal one plus patches/kconfig), then make only rebuilds
# what changed (a few minutes the first time on 2 cores, seconds after an ip_input.c edit).
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
# newer than the cache, but the same)
want_config=$(sha256sum < "$top/patches/kconfig" | cut -d' ' -f1)
if [ ! -f .config ] || [ "$want_config" != "$(cat .pktgen-kconfig.sha256 2>/dev/null)" ]; then
  PATH="$top/.venv/bin:$PATH" vng --kconfig --config "$top/patches/kconfig" >/dev/null
  # vng appends its own options after ours (graphics, sound, tracing, debug info): patches/kconfig
  # is applied again on top; no modules: everything needed is built in
  opts=()
  while read -r line; do
    case "$line" in
      CONFIG_*=y) name=${line%%=*}; opts+=(--enable "${name#CONFIG_}") ;;
      "# CONFIG_"*" is not set") name=${line#"# CONFIG_"}; opts+=(--disable "${name% is not set}") ;;
    esac
  done < "$top/patches/kconfig"
  ./scripts/config "${opts[@]}" --disable DEBUG_INFO --enable DEBUG_INFO_NONE \
    --disable DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT --disable MODULES
  make -s olddefconfig
  grep -q '^CONFIG_NET_PKTGEN=y' .config || { echo "config lacks CONFIG_NET_PKTGEN=y" >&2; exit 3; }
  if grep -q '^CONFIG_DRM=y' .config; then echo "config still has CONFIG_DRM=y" >&2; exit 3; fi
  echo "$want_config" > .pktgen-kconfig.sha256
fi
make -s -j"$(nproc)" bzImage >&2
echo "$tree"
