#!/usr/bin/env bash
# Starts the local PostgreSQL cluster (Debian's) for the tests and prints the admin URL to use as
# SLICELAB_TEST_PG. Idempotent; needs root.
set -euo pipefail
PW=${SLICELAB_PG_PASSWORD:-slicelab}
ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$ver main$"; then
  pg_createcluster "$ver" main >/dev/null
fi
# Bulk-write settings a deployment would set too (crates/store/README.md, "PostgreSQL server
# settings"): flow ingest writes ~500 MB of WAL and ~400 MB of table and index per million
# records; the defaults (128 MB shared_buffers, 4 MB wal_buffers, 1 GB max_wal_size) evict dirty
# pages and force checkpoints mid-ingest. synchronous_commit stays on.
conf=/etc/postgresql/$ver/main/conf.d/slicelab.conf
want="shared_buffers = 1GB
wal_buffers = 64MB
max_wal_size = 4GB"
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  printf '%s\n' "$want" >"$conf"
fi
pg_ctlcluster "$ver" main start >/dev/null 2>&1 || true
ready() {
  for _ in $(seq 1 30); do
    runuser -u postgres -- pg_isready -q -h 127.0.0.1 && return 0
    sleep 1
  done
}
ready
# A running server picks shared_buffers and wal_buffers up only on restart.
if [ "$(runuser -u postgres -- psql -Atq -h /var/run/postgresql -c 'SHOW shared_buffers')" != 1GB ]; then
  pg_ctlcluster "$ver" main restart >/dev/null
  ready
fi
runuser -u postgres -- psql -q -h /var/run/postgresql -c "ALTER USER postgres PASSWORD '$PW'" >/dev/null
echo "postgres://postgres:$PW@127.0.0.1:5432/postgres"
