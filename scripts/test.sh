#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit tests, the registry on SQLite and PostgreSQL, (as
# root) the node manager's real-kernel tests, then the API fuzzer against the OpenAPI document.
# Run from the repository root: sudo ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
if [ "$(id -u)" = 0 ]; then
  export SLICELAB_TEST_PG=${SLICELAB_TEST_PG:-$(bash scripts/pg.sh)}
else
  echo "note: not root: PostgreSQL is not started and root-only tests will skip (say why)" >&2
fi
cargo build --workspace --all-targets --quiet
cargo test --workspace --all-targets -- --test-threads="${SLICELAB_TEST_THREADS:-2}"
echo
echo "== API contract: schemathesis against /api/v1/openapi.json (scripts/fuzz-api.sh) =="
bash scripts/fuzz-api.sh
