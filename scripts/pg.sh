#!/usr/bin/env bash
# Starts the local PostgreSQL cluster (Debian's) for the tests and prints the admin URL to use as
# SLICELAB_TEST_PG. Idempotent; needs root.
set -euo pipefail
PW=${SLICELAB_PG_PASSWORD:-slicelab}
ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$ver main$"; then
  pg_createcluster "$ver" main >/dev/null
fi
pg_ctlcluster "$ver" main start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  runuser -u postgres -- pg_isready -q -h 127.0.0.1 && break
  sleep 1
done
runuser -u postgres -- psql -q -h /var/run/postgresql -c "ALTER USER postgres PASSWORD '$PW'" >/dev/null
echo "postgres://postgres:$PW@127.0.0.1:5432/postgres"
