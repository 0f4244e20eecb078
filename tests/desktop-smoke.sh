#!/usr/bin/env bash
# The desktop shell in a real window: starts it in a virtual X display, waits for the "Kiln"
# window, lets the UI load, takes a screenshot and checks the window shows a rendered UI (many
# colours, not a blank or single-colour error page).
#   tests/desktop-smoke.sh PATH/TO/kiln-desktop OUT.png
set -euo pipefail
bin=$1
out=$(realpath -m "$2")
mkdir -p "$(dirname "$out")"
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
# A runtime folder of its own, so GTK and EGL need not complain that none is set.
mkdir -m 700 "$data/run"
export KILN_DATA_DIR="$data" XDG_RUNTIME_DIR="$data/run"
# WebKitGTK's own sandbox cannot start inside unprivileged containers such as CI runners, and
# there is no GPU for its compositor; neither matters for a screenshot of Kiln's page.
export WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS=1 WEBKIT_DISABLE_DMABUF_RENDERER=1 LIBGL_ALWAYS_SOFTWARE=1

xvfb-run -a -s "-screen 0 1440x900x24" bash -c '
  set -u
  "$0" & app=$!
  for _ in $(seq 1 90); do
    if xwininfo -root -tree 2>/dev/null | grep -q "\"Kiln\""; then break; fi
    if ! kill -0 $app 2>/dev/null; then echo "kiln-desktop exited before showing a window" >&2; exit 1; fi
    sleep 1
  done
  xwininfo -root -tree | grep -q "\"Kiln\"" || { echo "no Kiln window after 90 s" >&2; kill $app; exit 1; }
  sleep 8
  import -window root "$1"
  kill $app; wait $app 2>/dev/null || true
' "$bin" "$out"

colours=$(identify -format '%k' "$out")
echo "desktop screenshot: $out ($colours colours)"
if [ "$colours" -lt 200 ]; then
  echo "the window looks blank ($colours colours): the UI did not render" >&2
  exit 1
fi
