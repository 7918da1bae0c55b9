#!/usr/bin/env bash
# Smoke test of a deployed tikflow: liveness, readiness, the expected version, and an MCP
# session that lists the tools.
#
# Usage: deploy/ci/smoke.sh BASE_URL EXPECTED_VERSION
# SMOKE_TOKEN (optional) is a bearer token accepted by the deployment. Without it, the MCP step
# only checks that unauthenticated calls are rejected with 401.
set -euo pipefail

base=${1:?usage: deploy/ci/smoke.sh BASE_URL EXPECTED_VERSION}
expected=${2:?usage: deploy/ci/smoke.sh BASE_URL EXPECTED_VERSION}
curl_opts=(--silent --show-error --fail --max-time 10 --retry 5 --retry-delay 3 --retry-all-errors)

curl "${curl_opts[@]}" "$base/healthz" >/dev/null
curl "${curl_opts[@]}" "$base/readyz" >/dev/null

running=$(curl "${curl_opts[@]}" "$base/version" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
if [ "$running" != "$expected" ]; then
  echo "smoke.sh: $base runs version $running, expected $expected" >&2
  exit 1
fi

initialize='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tikflow-smoke","version":"1"}}}'
if [ -z "${SMOKE_TOKEN:-}" ]; then
  status=$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 10 \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    --data "$initialize" "$base/mcp")
  if [ "$status" != 401 ]; then
    echo "smoke.sh: unauthenticated MCP call returned HTTP $status, expected 401" >&2
    exit 1
  fi
else
  curl "${curl_opts[@]}" -H "Authorization: Bearer $SMOKE_TOKEN" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    --data "$initialize" "$base/mcp" >/dev/null
fi
echo "smoke.sh: $base is healthy, ready and runs $running"
