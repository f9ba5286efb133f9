#!/usr/bin/env bash
# Fuzzes central's REST API against its own OpenAPI document with schemathesis, every check on:
# a real `slicelab central` on loopback (plain HTTP: the contract is the same over TLS, which
# tests/tls.rs and the e2e tests cover) with a fresh SQLite database, seeded (fuzz-api-seed.py)
# so that path parameters hit real objects; configuration in fuzz-api.toml. Logout and token
# deletion are left out (they would revoke the fuzzer's token). Exits non-zero on any failure,
# or if the run does not finish in time. scripts/test.sh runs it after the cargo tests.
#
#   FUZZ_EXAMPLES  generated cases per operation in each phase (default 40)
#   FUZZ_MAX_TIME  seconds the run may take before it is stopped and failed (default 420)
#   FUZZ_SEED      seed (default: a fixed one, so CI is repeatable; `random` for a new one each
#                  run, printed, to explore)
#   FUZZ_PHASES    schemathesis phases (default examples,coverage,fuzzing; the stateful phase
#                  trips over the objects fuzz-api.toml pins for destructive operations)
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${FUZZ_EXAMPLES:-40}
max_time=${FUZZ_MAX_TIME:-420}
seed=${FUZZ_SEED:-252867434}
[ "$seed" = random ] && seed=$((RANDOM * 32768 + RANDOM))
if ! python3 -m schemathesis.cli --version >/dev/null 2>&1; then
  echo "fuzz-api: schemathesis is not installed; run scripts/deps.sh" >&2
  exit 1
fi

cargo build --quiet -p slicelab --bin slicelab
bin=${CARGO_TARGET_DIR:-target}/debug/slicelab
tmp=$(mktemp -d)
central=
cleanup() {
  if [ -n "$central" ]; then
    kill "$central" 2>/dev/null || true
    wait "$central" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

password="fuzz-$RANDOM-$RANDOM-password"
SLICELAB_ADMIN_PASSWORD=$password "$bin" central --db "sqlite://$tmp/central.db" \
  --listen 127.0.0.1:0 --no-tls >"$tmp/central.out" 2>"$tmp/central.log" &
central=$!
url=
for _ in $(seq 300); do
  url=$(grep -o 'http://[^ ]*/api/v1' "$tmp/central.out" || true)
  [ -n "$url" ] && break
  if ! kill -0 "$central" 2>/dev/null; then
    echo "fuzz-api: central exited at start:" >&2
    cat "$tmp/central.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$url" ] || { echo "fuzz-api: central did not start" >&2; exit 1; }
origin=${url%/api/v1}
eval "$(python3 scripts/fuzz-api-seed.py "$origin" admin@localhost "$password")"
export FUZZ_TOKEN FUZZ_NODE_KEY

echo "fuzz-api: schemathesis against $url (seed $seed, $examples cases per operation and phase)"
status=0
timeout --signal=INT --kill-after=30 "$max_time" \
  python3 -m schemathesis.cli --config-file scripts/fuzz-api.toml run "$url/openapi.json" --url "$origin" \
  --checks all --phases "${FUZZ_PHASES:-examples,coverage,fuzzing}" --max-examples "$examples" --seed "$seed" \
  --workers 1 --request-timeout 70 --no-color \
  --exclude-name 'POST /api/v1/auth/logout' --exclude-name 'DELETE /api/v1/tokens/{id}' \
  --report junit --report-junit-path "$tmp/junit.xml" || status=$?

if [ "$status" -eq 124 ] || [ "$status" -eq 130 ]; then
  echo "fuzz-api: stopped after ${max_time}s: the run must finish in time" >&2
fi
if grep -qaE 'ERROR|panicked' "$tmp/central.log"; then
  echo "fuzz-api: central's log has errors (last 20):" >&2
  grep -aE 'ERROR|panicked' "$tmp/central.log" | tail -20 >&2
fi
python3 - "$tmp/junit.xml" "$status" <<'EOF'
import sys
import xml.etree.ElementTree as ET
path, status = sys.argv[1], int(sys.argv[2])
try:
    cases = ET.parse(path).getroot().iter("testcase")
except (OSError, ET.ParseError):
    print(f"fuzz-api: no report (schemathesis exit status {status})")
    sys.exit(0)
passed = failed = 0
for c in cases:
    if c.find("failure") is not None or c.find("error") is not None:
        failed += 1
        print(f"  failed: {c.get('name')}")
    else:
        passed += 1
print(f"fuzz-api: {passed + failed} operations fuzzed, schemathesis exit status {status}")
print(f"fuzz-api: {passed} passed, {failed} failed")
EOF
exit "$status"
