#!/usr/bin/env bash
# Scans the logs the test suite captured (JSON lines under <target>/tmp/test-logs) for every
# password and secret the tests use. Fails when one appears, or when no logs were captured
# (an empty scan would prove nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
logs="${CARGO_TARGET_DIR:-target}/tmp/test-logs"
shopt -s nullglob
files=("$logs"/*.jsonl)
if [ ${#files[@]} -eq 0 ] || [ "$(cat "${files[@]}" | wc -l)" -lt 100 ]; then
  echo "scan-logs: no captured test logs in $logs (run the suite first)" >&2
  exit 1
fi
# Secrets as the tests write them: password = "…", "password": "…", client_secret, …
# and the passwords handed to the fake Exchange's accounts ("Alice-Pw1!", …).
secrets=$( { grep -rhoE '(password|secret)[a-z_]*"?\s*[:=]\s*"[^"{}]{6,}"' tests src/operator/demo.rs \
  | sed -E 's/.*[:=]\s*"([^"]*)"/\1/'
  grep -rhoE '"[A-Za-z0-9.-]+-(Pw1|Passw0rd|Demo1)!"' tests | tr -d '"'
  # The fixtures' private keys (OAuth certificate credential, the fake's RSA CA): a line of each.
  for key in tests/fixtures/*.key; do sed -n 2p "$key"; done
  echo "PRIVATE KEY"; } | sort -u)
count=$(printf '%s\n' "$secrets" | grep -c . || true)
if [ "$count" -lt 5 ]; then
  echo "scan-logs: found only $count secrets in the test sources; the pattern is broken" >&2
  exit 1
fi
lines=$(cat "${files[@]}" | wc -l)
leaks=0
while IFS= read -r secret; do
  [ -z "$secret" ] && continue
  if grep -rqF -- "$secret" "${files[@]}"; then
    echo "scan-logs: a test secret appears in the captured logs (${#secret} characters, starts with ${secret:0:2}…)" >&2
    leaks=$((leaks + 1))
  fi
done <<< "$secrets"
if [ "$leaks" -gt 0 ]; then
  exit 1
fi
echo "scan-logs: $lines log lines, $count test secrets, none found"
