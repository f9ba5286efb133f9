#!/usr/bin/env bash
# The whole test suite, as CI runs it: unit tests, the registry on SQLite and PostgreSQL, (as
# root) the node manager's real-kernel tests, the Debian package and its systemd units, then the
# API fuzzer against the OpenAPI document.
# Run from the repository root: sudo ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
if [ "$(id -u)" = 0 ]; then
  export SLICELAB_TEST_PG=${SLICELAB_TEST_PG:-$(bash scripts/pg.sh)}
else
  echo "note: not root: PostgreSQL is not started and root-only tests will skip (say why)" >&2
fi
# Built Debian images (mmdebstrap, ~30 s) are cached here and shared by the image tests, the
# images end-to-end test, `slicelab up` and the image benchmark.
export SLICELAB_IMAGE_CACHE=${SLICELAB_IMAGE_CACHE:-/var/cache/slicelab/images}
cargo build --workspace --all-targets --quiet

# Guardrails: formatting, lints (incl. `undocumented_unsafe_blocks`, see the root Cargo.toml) and
# the API docs' links. Each stops the run with a message saying how to fix it.
fail() {
  echo "test.sh: $1" >&2
  exit 1
}
cargo fmt --all --check ||
  fail "formatting differs from rustfmt's: run \`cargo fmt --all\` and commit the result"
cargo clippy --workspace --all-targets --quiet -- -D warnings ||
  fail "clippy found problems (above); fix them, every \`unsafe\` block needs a \`// SAFETY:\` comment"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet ||
  fail "rustdoc warnings (above), e.g. a broken intra-doc link: fix the doc comment"

cargo test --workspace --all-targets -- --test-threads="${SLICELAB_TEST_THREADS:-2}"
echo
echo "== Packaging: the .deb of the binary built above, its units and man pages (scripts/check-packaging.sh) =="
bash scripts/check-packaging.sh --no-build ||
  fail "the Debian package or its systemd units are broken (above); see dist/README.md"
echo
echo "== API contract: schemathesis against /api/v1/openapi.json (scripts/fuzz-api.sh) =="
bash scripts/fuzz-api.sh
