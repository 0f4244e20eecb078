# Shared by run.sh and test.sh: one cargo target folder (outside the clone when the caller sets
# CARGO_TARGET_DIR), the UI's npm packages, and the built UI.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Each step says when it began and how long the run has taken so far: CI logs show where the
# time went (package mirrors, the cold build, a slow test).
kiln_started=${kiln_started:-$(date +%s)}
step() { printf '\n== %s  [%s, %d s in]\n' "$*" "$(date -u +%H:%M:%S)" $(( $(date +%s) - kiln_started )); }

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 ($2)" >&2; exit 1; }
}

npm_packages() {
  need node "Node.js 20 or later"
  need npm "Node.js's package manager"
  # Install when node_modules is missing or older than the lockfile.
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

build_ui() {
  step "web UI (TypeScript check and Vite build into ui/dist)"
  npm run --silent build
}
