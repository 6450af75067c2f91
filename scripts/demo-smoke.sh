#!/usr/bin/env bash
# Smoke test of the README's main command: `exsync demo --once` against a throw-away database,
# run from a temporary directory as a newcomer would run it from a fresh clone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export EXSYNC__DATABASE__URL="${base%/*}/exsync_demo_smoke"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
out="$work/demo.out"
# Twice: the second run replaces the first one's rows (mailboxes with synced activities).
for run in first second; do
  echo "-- $run run"
  cargo run --quiet --manifest-path "$root/Cargo.toml" -- demo --once --mailboxes-per-profile 4 --timeout-secs 240 | tee "$out"
  grep -q "every mailbox completed a full pass" "$out"
done
echo "demo smoke test passed"
