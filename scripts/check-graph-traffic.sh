#!/usr/bin/env bash
# Validates the Microsoft Graph traffic the test suite's fake Graph recorded — every request
# body it accepted and every answer it gave, one file per distinct shape (graph-*.json, each
# with a .args file naming method, path template and "request" or the status) — with
# `check-json` from $EXSYNC_GRAPH_OPENAPI (else ../shared/graph-openapi). Fails on any invalid
# document, and when nothing was recorded. Without the checker or python3/jsonschema: a failure
# when CI=true, a loud warning otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${EXSYNC_FAKE_TRAFFIC_DIR:-${CARGO_TARGET_DIR:-target}/tmp/ews-traffic}"
openapi="${EXSYNC_GRAPH_OPENAPI:-../shared/graph-openapi}"

unavailable() {
  if [ "${CI:-}" = "true" ]; then
    echo "check-graph-traffic: $1; in CI the Graph traffic must be validated" >&2
    exit 1
  fi
  echo "" >&2
  echo "WARNING: check-graph-traffic: $1." >&2
  echo "WARNING: the Graph traffic of the suite was NOT validated against Microsoft's description." >&2
  echo "" >&2
  exit 0
}

[ -f "$openapi/check-json" ] || unavailable "no check-json in $openapi (set EXSYNC_GRAPH_OPENAPI)"
python3 -c 'import jsonschema' 2>/dev/null || unavailable "python3 with jsonschema is not available"

shopt -s nullglob
args=("$dir"/graph-*.args)
if [ ${#args[@]} -lt 10 ]; then
  echo "check-graph-traffic: only ${#args[@]} Graph documents recorded in $dir (run the suite first)" >&2
  exit 1
fi

# One check-json run per (method, path template, request-or-status), with all its files.
python3 - "$openapi/check-json" "${args[@]}" <<'PY'
import collections, subprocess, sys
script, files = sys.argv[1], sys.argv[2:]
groups = collections.defaultdict(list)
for f in files:
    with open(f) as fh:
        method, path, what = fh.read().split("\n")[:3]
    groups[(method, path, what)].append(f[: -len(".args")] + ".json")
failed = 0
for (method, path, what), bodies in sorted(groups.items()):
    cmd = [sys.executable, script, "--method", method, "--path", path]
    cmd += ["--request"] if what == "request" else ["--status", what]
    out = subprocess.run(cmd + bodies, capture_output=True, text=True)
    if out.returncode != 0:
        failed += 1
        print(f"check-graph-traffic: {method} {path} ({what}) does not conform:", file=sys.stderr)
        print((out.stdout + out.stderr)[:4000], file=sys.stderr)
if failed:
    sys.exit(1)
print(f"check-graph-traffic: {len(files)} Graph request and response shapes valid against Microsoft's Graph description ({len(groups)} operations)")
PY
