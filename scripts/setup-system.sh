#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Kiln needs to build, run and test, where they are missing.
#
#   scripts/setup-system.sh [run|test]
#
# run:  the desktop shell (webkit2gtk 4.1 and friends) and a Vulkan loader with Mesa's drivers,
#       lavapipe among them, so that machines without a GPU driver still get a real wgpu device.
# test: all of the above, plus headless Chromium (browser tests), Xvfb (desktop shell tests)
#       and the MinGW toolchain that lets `cargo check` reach the Windows code paths.
# Uses sudo when not root; where neither is possible it prints the apt-get line to run by hand.
set -euo pipefail

mode="${1:-run}"
packages=(
  build-essential pkg-config curl file ca-certificates
  libwebkit2gtk-4.1-dev libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev
  libvulkan1 mesa-vulkan-drivers
  python3-pip
)
if [ "$mode" = "test" ]; then
  packages+=(chromium xvfb xauth imagemagick x11-utils gcc-mingw-w64-x86-64 gdb)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup-system: not a Debian/Ubuntu system; install the equivalents of: ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup-system: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "setup-system: run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
