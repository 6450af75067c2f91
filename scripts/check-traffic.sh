#!/usr/bin/env bash
# Validates the EWS traffic the test suite's fake Exchange recorded — every request exsync sent
# and every SOAP answer the fake gave, one file per distinct document shape — with Microsoft's
# EWS schema (`check-soap` in $EXSYNC_EWS_SCHEMA, else ../shared/ews-schema). Fails on any
# invalid document, and when nothing was recorded (an empty check would prove nothing).
# Without the checker or python3/lxml: a failure when CI=true, a loud warning otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${EXSYNC_FAKE_TRAFFIC_DIR:-${CARGO_TARGET_DIR:-target}/tmp/ews-traffic}"
schema="${EXSYNC_EWS_SCHEMA:-../shared/ews-schema}"

unavailable() {
  if [ "${CI:-}" = "true" ]; then
    echo "check-traffic: $1; in CI the EWS traffic must be validated" >&2
    exit 1
  fi
  echo "" >&2
  echo "WARNING: check-traffic: $1." >&2
  echo "WARNING: the EWS traffic of the suite was NOT validated against the schema." >&2
  echo "" >&2
  exit 0
}

[ -f "$schema/check-soap" ] || unavailable "no check-soap in $schema (set EXSYNC_EWS_SCHEMA)"
python3 -c 'import lxml' 2>/dev/null || unavailable "python3 with lxml is not available"

shopt -s nullglob
requests=("$dir"/request-*.xml)
responses=("$dir"/response-*.xml)
if [ ${#requests[@]} -lt 10 ] || [ ${#responses[@]} -lt 10 ]; then
  echo "check-traffic: only ${#requests[@]} requests and ${#responses[@]} responses recorded in $dir (run the suite first)" >&2
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
printf '%s\0' "${requests[@]}" "${responses[@]}" \
  | xargs -0 -n 500 python3 "$schema/check-soap" >"$out" 2>&1 || status=$?
invalid=$(grep -v '^schema: ' "$out" || true)
if [ "$status" -ne 0 ] || [ -n "$invalid" ]; then
  echo "check-traffic: documents the schema rejects:" >&2
  echo "$invalid" | head -n 40 >&2
  exit 1
fi
echo "check-traffic: ${#requests[@]} request and ${#responses[@]} response shapes valid against the EWS schema"
