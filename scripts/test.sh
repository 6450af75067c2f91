#!/usr/bin/env bash
# Runs exsync's whole test suite: makes sure Postgres is up and the EWS schema checker's
# Python dependency is present, then `cargo test`, then scans the logs the suite captured for
# secrets (scripts/scan-logs.sh) and validates the EWS traffic its fake Exchange recorded —
# exsync's requests and the fake's answers — against the schema (scripts/check-traffic.sh), and
# the Graph traffic its fake Graph recorded with check-json (scripts/check-graph-traffic.sh).
# Extra arguments go to `cargo test` (and skip both checks). With CI=true a missing schema
# checker or lxml is a failure; otherwise a loud warning.
# Each test gets its own fresh database on the server named by DATABASE_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if command -v pg_isready >/dev/null && ! pg_up; then
  if command -v pg_ctlcluster >/dev/null; then
    echo "starting Postgres…" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi

# Microsoft's schemas and checkers live in a `shared` folder beside the repository. A clone
# made elsewhere (e.g. CI's `git clone -q . /tmp/cleanci`) finds it beside the repository it
# was cloned from (its origin). Both paths are exported absolute: crate tests run in crates/*.
shared_dir() {
  if [ -d ../shared ]; then (cd ../shared && pwd); return; fi
  local origin
  origin="$(git config --get remote.origin.url 2>/dev/null || true)"
  if [ -n "$origin" ] && [ -d "$origin/../shared" ]; then (cd "$origin/../shared" && pwd); return; fi
  echo "$(cd .. && pwd)/shared"
}
shared="$(shared_dir)"

# The schema-conformance tests run ../shared/ews-schema/check-soap, which needs lxml.
export EXSYNC_EWS_SCHEMA="${EXSYNC_EWS_SCHEMA:-$shared/ews-schema}"
export EXSYNC_GRAPH_OPENAPI="${EXSYNC_GRAPH_OPENAPI:-$shared/graph-openapi}"
if [ -d "$EXSYNC_EWS_SCHEMA" ] && ! python3 -c 'import lxml' 2>/dev/null; then
  python3 -m pip install --quiet lxml >&2 || echo "warning: could not install lxml; schema checks will be skipped" >&2
fi
if [ "${CI:-}" = "true" ] && ! { [ -f "$EXSYNC_EWS_SCHEMA/check-soap" ] && python3 -c 'import lxml' 2>/dev/null; }; then
  echo "test.sh: the EWS schema checker ($EXSYNC_EWS_SCHEMA/check-soap) or python3/lxml is missing; in CI that is a failure" >&2
  exit 1
fi

# The Graph conformance tests run ../shared/graph-openapi/check-json, which needs jsonschema.
if [ -d "$EXSYNC_GRAPH_OPENAPI" ] && ! python3 -c 'import jsonschema' 2>/dev/null; then
  python3 -m pip install --quiet 'jsonschema>=4.18' >&2 || echo "warning: could not install jsonschema; Graph conformance checks will be skipped (they fail under CI=true)" >&2
fi

# Logs the suite writes (tests/it/support/world.rs) are scanned for secrets afterwards, and the
# EWS traffic its fakes record is checked against the schema.
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$(pwd)/$target" ;; esac
rm -rf "$target/tmp/test-logs"
export EXSYNC_FAKE_TRAFFIC_DIR="${EXSYNC_FAKE_TRAFFIC_DIR:-$target/tmp/ews-traffic}"
rm -rf "$EXSYNC_FAKE_TRAFFIC_DIR"
cargo test "$@"
if [ $# -eq 0 ]; then
  scripts/scan-logs.sh
  scripts/check-traffic.sh
  scripts/check-graph-traffic.sh
fi
