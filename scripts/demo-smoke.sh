#!/usr/bin/env bash
# Smoke test of the README's main command: `exsync demo --once` against a throw-away database,
# run from a temporary directory as a newcomer would run it from a fresh clone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# A database of its own, dropped afterwards: a stale one (from an older checkout with other
# migrations) would make the demo refuse to migrate.
db="exsync_demo_smoke_$$"
export EXSYNC__DATABASE__URL="${base%/*}/$db"
drop_db() { psql -q "$base" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
work="$(mktemp -d)"
trap 'cd /; drop_db; rm -rf "$work"' EXIT
cd "$work"
out="$work/demo.out"
# Twice: the second run replaces the first one's rows (mailboxes with synced activities).
for run in first second; do
  echo "-- $run run"
  cargo run --quiet --manifest-path "$root/Cargo.toml" -- demo --once --mailboxes-per-profile 4 --timeout-secs 240 | tee "$out"
  grep -q "every mailbox completed a full pass" "$out"
done
echo "demo smoke test passed"
