#!/usr/bin/env bash
# Tries the Debian package under a real systemd, by hand (not in CI: it downloads a Debian with
# mmdebstrap and uses loop devices and top-level cgroups of this machine, under names of its own).
# Boots a throwaway Debian 12 with systemd in systemd-nspawn (private network), then:
#   1. installs the package; starts slicelab-central under its hardened unit, defaults only (HTTPS
#      with its own CA), and logs in with the admin password and CA fingerprint it printed to the
#      journal;
#   2. runs the `slicelab node join` command `node add` printed: the kernel checks, the token for
#      the key over the pinned TLS, /etc/slicelab/node.env, slicelab-node enabled and started;
#      then a slice's sliver runs;
#   3. `systemctl restart slicelab-node`, then an upgrade (`dpkg -i` again): the sliver's init
#      process must be the same one afterwards, and reported running;
#   4. `dpkg -r` removes the sliver's kernel objects (prerm's cleanup); `dpkg --purge` the config.
#
#   sudo scripts/try-package.sh DEB [ROOTFS]
#
# ROOTFS: where to keep the pristine Debian between runs (made when missing; ~250 MB); each run
# boots a copy.
set -euo pipefail

deb=${1:?usage: scripts/try-package.sh DEB [ROOTFS]}
deb=$(realpath "$deb")
[ "$(id -u)" = 0 ] || { echo "try-package.sh: run as root" >&2; exit 1; }
for tool in systemd-nspawn mmdebstrap nsenter; do
  command -v "$tool" >/dev/null || {
    echo "try-package.sh: needs $tool (apt-get install systemd-container mmdebstrap)" >&2
    exit 1
  }
done

# A pristine Debian (kept in ROOTFS when given), and a copy of it that this run boots.
cache=${2:-}
work=$(mktemp -d)
pid=
stop() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # Whatever happened, take the sliver's kernel objects with us (cgroups are the machine's).
    inside "slicelab node cleanup $names >/dev/null 2>&1 || true" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT
pristine=${cache:-$work/pristine}
if [ ! -x "$pristine/usr/lib/systemd/systemd" ]; then
  echo "== a Debian 12 with systemd in $pristine (mmdebstrap, about 2 min) =="
  mmdebstrap --quiet --variant=minbase \
    --include=systemd,systemd-sysv,dbus,adduser,iproute2,nftables,e2fsprogs,busybox-static \
    bookworm "$pristine" >/dev/null
fi
rootfs=$pristine
if [ -n "$cache" ]; then
  rootfs=$work/root
  cp -a "$pristine" "$rootfs"
fi
cp "$deb" "$rootfs/root/slicelab.deb"
machine=slpkg-$$
names="--cgroup-parent slpkg$$ --nft-table slpkg$$ --gateway-if slpkg$$ --subnet 10.213.7.0"

inside() { nsenter -t "$leader" -a -- /bin/sh -c "$1"; }

echo "== boot it (systemd-nspawn, private network) =="
# No seccomp filter of nspawn's and every capability: the node manager makes namespaces, mounts
# and (idmapped) overlays. --keep-unit/--register=no: this machine need not run systemd.
SYSTEMD_SECCOMP=0 systemd-nspawn -q -b -D "$rootfs" --register=no --keep-unit -M "$machine" \
  --private-network --capability=all --console=read-only >"$work/boot.log" 2>&1 &
pid=$!
leader=
for _ in $(seq 60); do
  leader=$(pgrep -P "$pid" | head -n 1 || true)
  if [ -n "$leader" ] && inside 'systemctl is-system-running 2>/dev/null' | grep -qE 'running|degraded'; then
    break
  fi
  sleep 1
done
inside 'systemctl is-system-running' >/dev/null 2>&1 || inside 'test -d /run/systemd/system' ||
  { echo "try-package.sh: the container did not boot:" >&2; tail -n 20 "$work/boot.log" >&2; exit 1; }

# On cgroup v1/hybrid machines nspawn mounts the controllers read-only; loop devices are not in
# the container's /dev. (Neither is needed on a real machine.)
# shellcheck disable=SC2016 # expanded inside the container
inside '
for c in cpu cpuacct memory pids; do
  [ -d /sys/fs/cgroup/$c ] && mount -o remount,bind,rw /sys/fs/cgroup/$c
done
[ -e /dev/loop-control ] || mknod -m 660 /dev/loop-control c 10 237
for i in $(seq 0 255); do [ -e /dev/loop$i ] || mknod -m 660 /dev/loop$i b 7 $i; done
true'

inside "NAMES='$names' /bin/sh -eu" <<'EOF'
ok() { echo "  ok: $1"; }
fail() { echo "  FAILED: $1" >&2; exit 1; }
cd /root

echo "== install, central under its unit =="
dpkg -i slicelab.deb >/dev/null
systemctl is-enabled slicelab-central >/dev/null && fail "central enabled by the package" || ok "nothing enabled"
systemctl start slicelab-central
for _ in $(seq 30); do
  pw=$(journalctl -u slicelab-central --no-pager | sed -n 's/.*password: *//p' | head -n 1)
  [ -n "$pw" ] && break
  sleep 1
done
[ -n "$pw" ] && ok "admin password printed to the journal" || fail "no admin password in the journal"
fp=$(journalctl -u slicelab-central --no-pager | grep -o 'sha256:[0-9a-f]*' | head -n 1)
[ -n "$fp" ] && ok "central's CA fingerprint printed to the journal" || fail "no CA fingerprint in the journal"
echo "$pw" | slicelab login --central https://127.0.0.1:8080 --email admin@localhost --password-stdin \
  --ca-fingerprint "$fp" >/dev/null && ok "logged in over HTTPS, CA pinned"
p=$(systemctl show -p MainPID --value slicelab-central)
ok "central runs as $(stat -c %U /proc/"$p"), $(grep -E '^(Seccomp|NoNewPrivs):' /proc/"$p"/status | tr -s '\t\n' '  ')"

echo "== a node joined with the command \`node add\` printed, under its unit, with a sliver =="
slicelab site add demo --name Demo >/dev/null
slicelab slice add demo_pkg --description 'package test' >/dev/null
join=$(slicelab node add node1.example.org --site demo | sed -n 's/^ *\(slicelab node join .*\)$/\1/p')
[ -n "$join" ] || fail "node add printed no join command"
# shellcheck disable=SC2086 # the printed command, split as a shell would
$join --node-args "$NAMES" >/dev/null || fail "node join failed"
systemctl is-enabled slicelab-node >/dev/null && ok "node join enabled and started slicelab-node" ||
  fail "node join did not enable the unit"
slicelab slice add-nodes demo_pkg node1.example.org >/dev/null
slicelab slice tag set demo_pkg initscript 'while true; do sleep 1; done' >/dev/null
running() { slicelab node slivers node1.example.org -o json | grep -q '"running"'; }
for _ in $(seq 60); do running && break; sleep 1; done
running && ok "sliver running" || fail "no running sliver: $(journalctl -u slicelab-node --no-pager | tail -n 3)"
cg=$(grep -l . /sys/fs/cgroup/pids/*/demo_pkg/cgroup.procs /sys/fs/cgroup/*/demo_pkg/cgroup.procs 2>/dev/null | head -n 1)
init=$(head -n 1 "$cg")
daemon=$(systemctl show -p MainPID --value slicelab-node)

echo "== restart and upgrade: the sliver stays =="
systemctl restart slicelab-node
sleep 3
[ "$(systemctl show -p MainPID --value slicelab-node)" != "$daemon" ] || fail "daemon not restarted"
kill -0 "$init" && ok "systemctl restart slicelab-node: sliver init $init still runs" || fail "restart killed the sliver"
daemon=$(systemctl show -p MainPID --value slicelab-node)
dpkg -i slicelab.deb >/dev/null
sleep 3
[ "$(systemctl show -p MainPID --value slicelab-node)" != "$daemon" ] && ok "upgrade restarted the node manager" ||
  fail "upgrade did not restart the node manager"
kill -0 "$init" && ok "upgrade: sliver init $init still runs" || fail "upgrade killed the sliver"
for _ in $(seq 30); do running && break; sleep 1; done
running && ok "reported running by the new daemon" || fail "not reported running after the upgrade"

echo "== remove and purge =="
dpkg -r slicelab >/dev/null
kill -0 "$init" 2>/dev/null && fail "sliver survives removal" || ok "dpkg -r: sliver removed"
systemctl is-active slicelab-central >/dev/null && fail "central still runs" || ok "dpkg -r: central stopped"
dpkg --purge slicelab >/dev/null
[ ! -e /etc/slicelab ] && ok "dpkg --purge: /etc/slicelab gone" || fail "/etc/slicelab left after purge"
echo "try-package.sh: all passed"
EOF
