#!/usr/bin/env bash
# Installs the Debian packages slicelab needs to build, run and test (idempotent; needs root).
set -euo pipefail
PKGS=(
  build-essential pkg-config          # crates that build C
  libpcap-dev tcpdump                 # packet capture: libpcap to build, tcpdump -r in its tests
  iproute2 nftables conntrack         # sliver networking, NAT, flow auditing
  busybox-static                      # the built-in minimal sliver image
  postgresql                          # the production store; registry tests run against it
  openssh-client                      # real ssh clients against the SSH gateway
  runc lxc iperf3 util-linux procps psmisc  # benchmark peers, bandwidth tests, unshare/runuser, ps
  pssh                                # parallel-ssh: the peer of `slicelab exec`'s benchmark
  chromium chromium-driver fonts-liberation  # the web interface's end-to-end test (headless)
  mmdebstrap skopeo umoci docker-registry    # images: Debian builds, a real registry, benchmark peers
  systemd dpkg-dev                    # packaging: systemd-analyze verify, dpkg-shlibdeps (check-packaging.sh)
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The API fuzzer of scripts/fuzz-api.sh, pinned (its checks change between versions).
SCHEMATHESIS=4.32.5
if ! python3 -m schemathesis.cli --version 2>/dev/null | grep -q "version $SCHEMATHESIS\$"; then
  echo "installing: schemathesis $SCHEMATHESIS (pip)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "schemathesis==$SCHEMATHESIS"
fi
if ! command -v cargo >/dev/null; then
  echo "error: cargo not found. Install a current Rust toolchain (https://rustup.rs), then re-run." >&2
  exit 1
fi
