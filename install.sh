#!/usr/bin/env bash
# Installs slicelab on this machine: Debian packages, then the release binary in /usr/local/bin.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
  echo "error: run as root (sudo ./install.sh): it installs packages and /usr/local/bin/slicelab" >&2
  exit 1
fi
bash scripts/deps.sh
cargo build --release --locked -p slicelab
install -m 0755 target/release/slicelab /usr/local/bin/slicelab
echo "installed $(/usr/local/bin/slicelab --version 2>/dev/null || echo slicelab) to /usr/local/bin/slicelab"
