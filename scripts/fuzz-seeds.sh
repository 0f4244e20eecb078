#!/usr/bin/env bash
# Seeds the fuzz corpora (fuzz/corpus/<target>) from the committed model fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures=crates/engine/tests/fixtures/upscalers
mkdir -p fuzz/corpus/safetensors fuzz/corpus/torch fuzz/corpus/ncnn
cp "$fixtures"/*.safetensors fuzz/corpus/safetensors/
cp "$fixtures"/*.pth "$fixtures"/real/*.pth fuzz/corpus/torch/
model=assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4
# A small ncnn seed: the bundled model's graph with its weights cut to the first layer's.
{ cat "$model.param"; printf '\0'; head -c 4096 "$model.bin"; } > fuzz/corpus/ncnn/animevideov3
