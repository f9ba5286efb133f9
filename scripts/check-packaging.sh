#!/usr/bin/env bash
# Checks the packaging, as CI runs it (scripts/test.sh, after the tests): builds the .deb with
# scripts/build-deb.sh, then checks that
#   1. `systemd-analyze verify` accepts both units as packaged, with nothing to say;
#   2. `dpkg -c` lists the binary, both units, the man pages, the completions and the examples;
#   3. `dpkg-deb -I` shows sane control fields (name, the workspace's version, dependencies,
#      conffiles, maintainer scripts);
#   4. the packaged binary runs (`slicelab --version` from `dpkg -x`), its man pages document the
#      node's variables, and its maintainer scripts parse;
#   5. as root: dpkg itself unpacks it into a throwaway root (`dpkg --root`) and lists its files.
#
#   scripts/check-packaging.sh [--profile release|debug] [--no-build]
#
# The default profile is debug: CI packages the binary scripts/test.sh has just built.
# `COND && ok … || bad …` throughout: ok only echoes, so bad runs exactly when COND fails.
# shellcheck disable=SC2015
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
build_args=()
while (($#)); do
  case "$1" in
    --profile)
      (($# >= 2)) || { echo "usage: $0 [--profile release|debug] [--no-build]" >&2; exit 2; }
      profile=$2
      shift 2
      ;;
    --no-build)
      build_args+=(--no-build)
      shift
      ;;
    *)
      echo "usage: $0 [--profile release|debug] [--no-build]" >&2
      exit 2
      ;;
  esac
done

failures=0
ok() { echo "  ok: $1"; }
bad() {
  echo "  FAILED: $1" >&2
  failures=$((failures + 1))
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== packaging: build the .deb (scripts/build-deb.sh --profile $profile) =="
start=$(date +%s)
deb=$(bash scripts/build-deb.sh --profile "$profile" "${build_args[@]}" "$work/out")
echo "  built $(basename "$deb") ($(du -h "$deb" | cut -f1)) in $(($(date +%s) - start)) s"

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
x=$work/x
dpkg-deb -x "$deb" "$x"
dpkg-deb -e "$deb" "$x/DEBIAN"

echo "== packaging: systemd-analyze verify =="
# verify checks that ExecStart's program exists: point it at the packaged binary.
mkdir -p "$work/units"
for unit in slicelab-central.service slicelab-node.service; do
  if [ ! -f "$x/lib/systemd/system/$unit" ]; then
    bad "$unit is not in the package"
    continue
  fi
  sed "s|/usr/bin/slicelab|$x/usr/bin/slicelab|g" "$x/lib/systemd/system/$unit" >"$work/units/$unit"
  if out=$(systemd-analyze verify --man=no "$work/units/$unit" 2>&1) && [ -z "$out" ]; then
    ok "$unit"
  else
    bad "$unit: systemd-analyze verify says:"
    printf '    %s\n' "$out" >&2
  fi
done
grep -qx 'KillMode=process' "$x/lib/systemd/system/slicelab-node.service" &&
  ok "slicelab-node.service signals only the daemon (KillMode=process)" ||
  bad "slicelab-node.service lacks KillMode=process: a restart would kill slivers"
grep -qx 'EnvironmentFile=/etc/slicelab/node.env' "$x/lib/systemd/system/slicelab-node.service" &&
  ok "slicelab-node.service reads /etc/slicelab/node.env" ||
  bad "slicelab-node.service does not read /etc/slicelab/node.env"

echo "== packaging: dpkg -c (contents) =="
contents=$(dpkg -c "$deb" | awk '{print $6}')
want=(
  ./usr/bin/slicelab
  ./lib/systemd/system/slicelab-central.service
  ./lib/systemd/system/slicelab-node.service
  ./usr/share/man/man1/slicelab.1.gz
  ./usr/share/man/man1/slicelab-central.1.gz
  ./usr/share/man/man1/slicelab-node.1.gz
  ./usr/share/man/man1/slicelab-slice-add.1.gz
  ./usr/share/bash-completion/completions/slicelab
  ./etc/slicelab/node.env.example
  ./etc/slicelab/central.env.example
  ./usr/share/doc/slicelab/copyright
)
for f in "${want[@]}"; do
  grep -qxF "$f" <<<"$contents" && ok "$f" || bad "$f is not in the package"
done
pages=$(grep -c '^\./usr/share/man/man1/.*\.1\.gz$' <<<"$contents" || true)
((pages > 20)) && ok "$pages man pages" || bad "only $pages man pages"
if dpkg -c "$deb" | awk '$2 != "root/root" {bad=1} END {exit bad}'; then
  ok "every file belongs to root"
else
  bad "files not owned by root/root"
fi

echo "== packaging: dpkg-deb -I (control) =="
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = slicelab ] && ok "Package: slicelab" || bad "Package: $(field Package)"
[ "$(field Version)" = "$version" ] && ok "Version: $version (Cargo.toml)" ||
  bad "Version: $(field Version), Cargo.toml says $version"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] && ok "Architecture: $(field Architecture)" ||
  bad "Architecture: $(field Architecture)"
depends=$(field Depends)
for d in libc6 libpcap0.8 adduser iproute2 nftables e2fsprogs busybox-static; do
  grep -qE "(^|, )$d( |,|$)" <<<"$depends" && ok "Depends on $d" || bad "Depends lacks $d: $depends"
done
[ -n "$(field Description)" ] && [ -n "$(field Maintainer)" ] && [ "$(field Installed-Size)" -gt 0 ] &&
  ok "Description, Maintainer, Installed-Size" || bad "Description, Maintainer or Installed-Size missing"
info=$(dpkg-deb -I "$deb")
for s in conffiles postinst prerm postrm md5sums; do
  grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$s( |$)" <<<"$info" && ok "control member $s" ||
    bad "control member $s missing"
done
if [ "$(sort "$x/DEBIAN/conffiles")" = "$(printf '%s\n' /etc/slicelab/central.env.example /etc/slicelab/node.env.example)" ]; then
  ok "conffiles: the two examples"
else
  bad "conffiles: $(tr '\n' ' ' <"$x/DEBIAN/conffiles")"
fi
for s in postinst prerm postrm; do
  sh -n "$x/DEBIAN/$s" && ok "$s parses (sh -n)" || bad "$s does not parse"
done
grep -q 'try-restart' "$x/DEBIAN/postinst" && ok "postinst restarts running daemons on upgrade" ||
  bad "postinst does not try-restart"
if awk '/^upgrade *\|/,/;;/' "$x/DEBIAN/prerm" | grep -q 'stop'; then
  bad "prerm stops something on upgrade"
else
  ok "prerm stops nothing on upgrade"
fi

echo "== packaging: the packaged binary and man pages =="
if v=$("$x/usr/bin/slicelab" --version) && [ "$v" = "slicelab $version" ]; then
  ok "$v"
else
  bad "packaged slicelab --version says: ${v:-nothing}"
fi
node_page=$(zcat "$x/usr/share/man/man1/slicelab-node.1.gz")
for var in SLICELAB_CENTRAL SLICELAB_NODE_KEY SLICELAB_STATE_DIR; do
  grep -q "$var" <<<"$node_page" && ok "slicelab-node(1) documents $var" ||
    bad "slicelab-node(1) lacks $var"
done
for var in SLICELAB_CENTRAL SLICELAB_NODE_KEY SLICELAB_STATE_DIR; do
  grep -q "^#\?$var=" "$x/etc/slicelab/node.env.example" && ok "node.env.example names $var" ||
    bad "node.env.example lacks $var"
done

if [ "$(id -u)" = 0 ]; then
  echo "== packaging: dpkg --root (a throwaway root) =="
  r=$work/root
  mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates"
  touch "$r/var/lib/dpkg/status"
  # --unpack runs no maintainer script (there is no preinst) and needs no dependency installed.
  if out=$(dpkg --root="$r" --force-depends --unpack "$deb" 2>&1); then
    ok "dpkg --root --unpack"
    listed=$(dpkg --root="$r" -L slicelab)
    grep -qx /usr/bin/slicelab <<<"$listed" && ok "dpkg -L lists /usr/bin/slicelab" ||
      bad "dpkg -L does not list /usr/bin/slicelab"
    [ "$("$r/usr/bin/slicelab" --version)" = "slicelab $version" ] &&
      ok "installed slicelab --version" || bad "installed slicelab does not run"
  else
    bad "dpkg --root --unpack failed:"
    printf '    %s\n' "$out" >&2
  fi
else
  echo "== packaging: dpkg --root skipped (not root) =="
fi

if ((failures)); then
  echo "check-packaging.sh: $failures check(s) failed (above)" >&2
  exit 1
fi
echo "check-packaging.sh: all packaging checks passed"
