#!/usr/bin/env bash
# Builds the Debian package `slicelab` with dpkg-deb (no cargo-deb: nothing to install or compile
# first, and the maintainer scripts are ours either way). It holds /usr/bin/slicelab (stripped),
# the systemd units of dist/systemd/, man pages generated from the clap definitions
# (slicelab-man), shell completions and /etc/slicelab/{node,central}.env.example (conffiles).
# DEBFULLNAME and DEBEMAIL name the maintainer (set them for a release: lintian refuses
# the default's localhost).
#
#   scripts/build-deb.sh [--profile release|debug] [--no-build] [OUTDIR]
#
# --profile release (the default) builds the optimised binary, for real releases; debug packages
# the dev-profile binary that CI has already built (scripts/check-packaging.sh), so CI does not
# compile everything a second time. --no-build packages what is in target/ as it is.
# OUTDIR defaults to target/debian. Prints the path of the .deb on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/build-deb.sh [--profile release|debug] [--no-build] [OUTDIR]" >&2
  exit 2
}
profile=release
build=1
outdir=
while (($#)); do
  case "$1" in
    --profile)
      (($# >= 2)) || usage
      profile=$2
      shift 2
      ;;
    --profile=*)
      profile=${1#--profile=}
      shift
      ;;
    --no-build)
      build=0
      shift
      ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
      [ -z "$outdir" ] || usage
      outdir=$1
      shift
      ;;
  esac
done
# xz (dpkg's default) makes the smallest package but takes ~50 s on the debug binary; CI's
# throwaway debug package gets gzip (~4 s).
case "$profile" in
  release) cargo_profile=(--release) compress=(-Zxz) ;;
  debug) cargo_profile=() compress=(-Zgzip) ;;
  *) usage ;;
esac
outdir=${outdir:-target/debian}
target_dir=${CARGO_TARGET_DIR:-target}
bindir=$target_dir/$profile

# The version is the workspace's ([workspace.package] in Cargo.toml).
version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || {
  echo "build-deb.sh: no version in Cargo.toml's [workspace.package]" >&2
  exit 1
}
arch=$(dpkg --print-architecture)
# Who built it (Debian's usual variables), and when: the last commit, for reproducible packages.
maintainer="${DEBFULLNAME:-slicelab developers} <${DEBEMAIL:-slicelab@localhost}>"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

if ((build)); then
  cargo build --locked "${cargo_profile[@]}" -p slicelab --bin slicelab --bin slicelab-man >&2
fi
for b in slicelab slicelab-man; do
  [ -x "$bindir/$b" ] || {
    echo "build-deb.sh: $bindir/$b is missing (build it, or drop --no-build)" >&2
    exit 1
  }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
install -d -m 0755 "$root"/{DEBIAN,usr/bin,lib/systemd/system,etc/slicelab} \
  "$root"/usr/share/{man/man1,doc/slicelab,bash-completion/completions} \
  "$root"/usr/share/{zsh/vendor-completions,fish/vendor_completions.d}

# The binary, stripped as Debian strips binaries (dh_strip's options). Backtraces then show no
# function names: debug with a build from source.
install -m 0755 "$bindir/slicelab" "$root/usr/bin/slicelab"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/slicelab"

# Units and configuration examples (conffiles: dpkg keeps local changes on upgrade).
install -m 0644 dist/systemd/slicelab-central.service dist/systemd/slicelab-node.service \
  "$root/lib/systemd/system/"
install -m 0644 dist/etc/node.env.example dist/etc/central.env.example "$root/etc/slicelab/"
printf '%s\n' /etc/slicelab/central.env.example /etc/slicelab/node.env.example \
  >"$root/DEBIAN/conffiles"

# Man pages from the clap definitions, compressed without timestamps (reproducible).
"$bindir/slicelab-man" "$work/man" >&2
gzip -9n "$work"/man/*.1
install -m 0644 "$work"/man/*.1.gz "$root/usr/share/man/man1/"

# Shell completions from the binary itself.
"$bindir/slicelab" completions bash >"$root/usr/share/bash-completion/completions/slicelab"
"$bindir/slicelab" completions zsh >"$root/usr/share/zsh/vendor-completions/_slicelab"
"$bindir/slicelab" completions fish >"$root/usr/share/fish/vendor_completions.d/slicelab.fish"

# Documentation.
install -m 0644 dist/README.md "$root/usr/share/doc/slicelab/README.md"
cat >"$root/usr/share/doc/slicelab/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: slicelab

Files: *
Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) the slicelab developers
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
cat >"$work/changelog" <<EOF
slicelab ($version) unstable; urgency=medium

  * Built from commit $commit (scripts/build-deb.sh, profile $profile).

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9nc "$work/changelog" >"$root/usr/share/doc/slicelab/changelog.gz"
# Deliberate, each said why in dist/debian/prerm and postinst.
install -d -m 0755 "$root/usr/share/lintian/overrides"
cat >"$root/usr/share/lintian/overrides/slicelab" <<'EOF'
# prerm runs this package's binary, not another slicelab earlier in $PATH (/usr/local/bin).
slicelab: command-with-path-in-maintainer-script /usr/bin/slicelab *
# systemctl only where deb-systemd-invoke is missing, and only when systemd runs.
slicelab: maintainer-script-calls-systemctl *
EOF
find "$root/usr/share" -type f -exec chmod 0644 {} +

# Maintainer scripts (dist/debian/: why each step there).
install -m 0755 dist/debian/postinst dist/debian/prerm dist/debian/postrm "$root/DEBIAN/"

# Shared libraries the binary needs, as Debian package relations.
mkdir -p "$work/debian"
printf 'Source: slicelab\n\nPackage: slicelab\nArchitecture: any\n' >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O -e"$root/usr/bin/slicelab" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || {
  echo "build-deb.sh: dpkg-shlibdeps found no libraries for the binary" >&2
  exit 1
}
rm -rf "$work/debian"
# libpcap (the node's packet capture, `slicelab capture`) is linked only once a command reaches
# it (the linker drops unused libraries); the package needs it either way.
case ", $shlibs" in
*", libpcap0.8"*) ;;
*) shlibs="$shlibs, libpcap0.8" ;;
esac

# What the node manager runs (ip, tc, nft, mkfs.ext4/e2fsck/resize2fs for quota layers, busybox
# for the built-in `base` image; losetup, nsenter and cp are in essential packages); adduser for
# central's user. Recommended: conntrack (looking at flows by hand), ssh for `slicelab exec`,
# mmdebstrap for `slicelab image build`.
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# Quoted here-document for the description: nothing in it is expanded or run.
{
  cat <<EOF
Package: slicelab
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $shlibs, adduser, iproute2, nftables, e2fsprogs, busybox-static
Recommends: conntrack, openssh-client, mmdebstrap
Suggests: postgresql
Section: admin
Priority: optional
EOF
  cat <<'EOF'
Description: shared testbed of slices (PlanetLab, rebuilt)
 One binary holds the central authority (registry, REST API, web interface),
 the node manager that runs the slivers assigned to a machine as containers,
 and the commands people use to manage sites, persons, keys, nodes and slices.
 .
 This package installs systemd units for central (slicelab-central.service)
 and the node manager (slicelab-node.service), neither enabled: configure
 /etc/slicelab/node.env, then run "systemctl enable --now slicelab-node".
 Upgrades restart running daemons; slivers keep running.
EOF
} >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$outdir"
deb=$outdir/slicelab_${version}_${arch}.deb
# Every file root's (no fakeroot needed); timestamps clamped to SOURCE_DATE_EPOCH.
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >&2
echo "$deb"
