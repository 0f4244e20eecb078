#!/usr/bin/env bash
# Runs every bench target (harness = false) once as `cargo test --benches` would: each binary with
# no arguments, under scripts/test-time-limit.sh, printing its name and failing by name. Called
# by scripts/test.sh after the build; CARGO_TARGET_DIR as there.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

benches=$(cargo test --workspace --benches --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and "bench" in message["target"]["kind"] and message.get("executable"):
        package = message["manifest_path"].rsplit("/", 1)[0]
        print(message["target"]["name"] + "\t" + message["executable"] + "\t" + package)
')
[ -n "$benches" ] || { echo "test-benches: no bench binaries found" >&2; exit 1; }
failed=0
while IFS=$'\t' read -r name executable package; do
  started=$(date +%s)
  # In its package's folder, as cargo runs it.
  if (cd "$package" && "$repo/scripts/test-time-limit.sh" "$executable") > "$CARGO_TARGET_DIR/bench-$name.log" 2>&1; then
    echo "PASS [$(( $(date +%s) - started )) s] bench $name"
  else
    echo "FAIL [$(( $(date +%s) - started )) s] bench $name:" >&2
    tail -n 40 "$CARGO_TARGET_DIR/bench-$name.log" >&2
    failed=$((failed + 1))
  fi
done <<< "$benches"
[ "$failed" -eq 0 ] || { echo "test-benches: $failed failed" >&2; exit 1; }
