#!/bin/bash
# Build the QEMU guest images of the interop lab from Debian packages only (debootstrap + apt in a chroot).
#
# Usage: tests/lab/build-guest.sh [--force] [VARIANT...]      (root; default VARIANT: strongswan)
#   VARIANT  strongswan  strongSwan 5.9.8 (charon, swanctl, plugins)
#            libreswan   libreswan 4.10 (pluto); it Conflicts with strongSwan's packages, so it has its own image
#                        (defined for a later issue, not built by default)
# Output in tests/lab/build/ (gitignored):
#   vmlinuz, initrd.img   stock Debian 12 kernel (linux-image-amd64) + initramfs with virtio/9p modules
#   VARIANT.img           ext4 root fs (iproute2, nftables, tcpdump, iperf3, ping, /sbin/lab-init, /sbin/lab-ike)
# Idempotent: each layer carries a content hash (package lists, guest scripts, this script's layout version);
# a layer is rebuilt only when its hash changed, so a second run with nothing changed takes about a second.
# Changing only guest/lab-init or guest/lab-ike re-makes the ext4 image (~20 s), not the root fs.
# Environment: MIRROR (default: the host's apt configuration), SECURITY_MIRROR, IMG_MB (default: auto).
# Exits non-zero with a message naming the failed step; the full log is tests/lab/build/build.log.
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
B=$LAB_BUILD
SUITE=bookworm
LAYOUT=2            # bump when the build steps change in a way the package lists do not show

FORCE=no VARIANTS=()
for a in "$@"; do
  case $a in
    --force) FORCE=yes;;
    -h|--help) sed -n '2,17p' "$0"; exit 0;;
    strongswan|libreswan) VARIANTS+=("$a");;
    *) echo "unknown argument: $a" >&2; sed -n '2,17p' "$0" >&2; exit 2;;
  esac
done
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=(strongswan)

BASE_PKGS=linux-image-amd64,initramfs-tools,kmod,iproute2,iputils-ping,tcpdump,iperf3,nftables,procps,netcat-openbsd,netbase,less,ca-certificates,openssl,strace
INITRD_MODULES='virtio_pci virtio_blk ext4 crc32c_generic'
variant_pkgs() {
  case $1 in
    strongswan) echo strongswan-charon strongswan-swanctl charon-systemd libstrongswan-standard-plugins \
                     libcharon-extra-plugins libstrongswan-extra-plugins libcharon-extauth-plugins strongswan-pki;;
    libreswan)  echo libreswan;;
  esac
}

lab_require_root
mkdir -p "$B"
# one build at a time on this machine (it is shared with engineers compiling): wait for another one
exec 8> "$B/.lock"
flock -n 8 || { lab_log "another build-guest.sh is running; waiting for it"; flock -w 3600 8; } ||
  { echo "build-guest.sh: could not get $B/.lock" >&2; exit 1; }
LOG=$B/build.log
STEP=start
MOUNTED=()
umount_all() { local m i; for (( i=${#MOUNTED[@]}-1; i>=0; i-- )); do m=${MOUNTED[i]}; umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done; MOUNTED=(); }
on_exit() {
  local rc=$?
  umount_all
  if [ $rc -ne 0 ]; then
    echo "build-guest.sh: FAILED in step '$STEP' (exit $rc). Last lines of $LOG:" >&2
    tail -n 15 "$LOG" >&2 2>/dev/null || true
  fi
}
trap on_exit EXIT
step() { STEP=$*; lab_log "$*"; echo "=== $(date -u +%FT%TZ) $*" >> "$LOG"; }
# safe_rm DIR: remove a root fs directory, but never while something is mounted below it (a bound /dev!)
safe_rm() {
  [ -e "$1" ] || return 0
  if findmnt -rn -o TARGET | grep -q "^$1/"; then echo "refusing to remove $1: something is mounted below it" >&2; exit 1; fi
  rm -rf "$1"
}
hash_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
chroot_in() { local r=$1; shift; chroot "$r" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
with_mounts() { # ROOT CMD...
  local r=$1 rc=0; shift
  mount -t proc proc "$r/proc" || return 1; MOUNTED+=("$r/proc")
  mount -t sysfs sys "$r/sys" || return 1; MOUNTED+=("$r/sys")
  mount --bind /dev "$r/dev" || return 1; MOUNTED+=("$r/dev")
  if mount --bind /dev/pts "$r/dev/pts"; then MOUNTED+=("$r/dev/pts"); fi
  "$@" >> "$LOG" 2>&1 || rc=$?
  umount_all
  return $rc
}

# The Debian mirror: $MIRROR, else the first ".../debian" URI of this host's apt configuration.
apt_uris() {
  { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{for(i=2;i<=NF;i++) print $i}'
    grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed 's/\[[^]]*\]//' | awk '{print $2}'
  } 2>/dev/null
}
MIRROR=${MIRROR:-$(apt_uris | grep -E '/debian/?$' | head -n 1 || true)}
[ -n "$MIRROR" ] || { echo "no Debian mirror (a URI ending in /debian) in /etc/apt; set MIRROR=http://..." >&2; exit 1; }
SECURITY_MIRROR=${SECURITY_MIRROR:-$(apt_uris | grep -E '/debian-security/?$' | head -n 1 || true)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://security.debian.org/debian-security}

STEP="host packages"
lab_install_host_pkgs debootstrap e2fsprogs
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

t_start=$(date +%s)
BASE=$B/rootfs-base
BASE_KEY=$(hash_of "layout=$LAYOUT" "suite=$SUITE" "pkgs=$BASE_PKGS" "initrd=MODULES=list $INITRD_MODULES")

# ---------------------------------------------------------------- layer 1: base root fs + kernel
if [ "$FORCE" = yes ] || [ "$(cat "$BASE/.lab-key" 2>/dev/null)" != "$BASE_KEY" ]; then
  step "base root fs: debootstrap $SUITE from $MIRROR (a few minutes)"
  t0=$(date +%s)
  safe_rm "$BASE.tmp"; safe_rm "$BASE"
  debootstrap --variant=minbase --include="$BASE_PKGS" "$SUITE" "$BASE.tmp" "$MIRROR" >> "$LOG" 2>&1
  R=$BASE.tmp
  printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"   # no services in the chroot
  rm -f "$R/etc/apt/sources.list.d/"*
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE" > "$R/etc/apt/sources.list"
  echo lab-peer > "$R/etc/hostname"
  sed -i 's/^root:[^:]*:/root::/' "$R/etc/shadow"          # passwordless root on the serial console
  step "base root fs: security/point updates (apt-get upgrade, same kernel ABI)"
  with_mounts "$R" chroot_in "$R" sh -c 'apt-get update -qq && apt-get -y upgrade && apt-get clean'
  step "base root fs: small initramfs (virtio block + ext4 only)"
  # shellcheck disable=SC2086
  printf '%s\n' $INITRD_MODULES >> "$R/etc/initramfs-tools/modules"
  # only the listed modules (+ their dependencies): a 34 MB "most" initrd took ~4 s to unpack under TCG
  sed -i 's/^MODULES=.*/MODULES=list/' "$R/etc/initramfs-tools/initramfs.conf"
  KV=$(ls "$R/lib/modules" | sort -V | tail -n 1)
  with_mounts "$R" chroot_in "$R" update-initramfs -u -k "$KV"
  rm -rf "$R/var/lib/apt/lists/"*
  echo "$BASE_KEY" > "$R/.lab-key"
  mv "$R" "$BASE"
  lab_log "base root fs built in $(( $(date +%s) - t0 ))s"
fi
KV=$(ls "$BASE/lib/modules" | sort -V | tail -n 1)
[ -f "$BASE/boot/vmlinuz-$KV" ] && [ -f "$BASE/boot/initrd.img-$KV" ] || { STEP="kernel"; echo "no kernel/initrd $KV in $BASE/boot" >&2; exit 1; }
cmp -s "$BASE/boot/vmlinuz-$KV" "$B/vmlinuz" 2>/dev/null || cp -L "$BASE/boot/vmlinuz-$KV" "$B/vmlinuz"
cmp -s "$BASE/boot/initrd.img-$KV" "$B/initrd.img" 2>/dev/null || cp -L "$BASE/boot/initrd.img-$KV" "$B/initrd.img"
echo "$KV" > "$B/kernel-version"

# ---------------------------------------------------------------- layer 2: variant root fs, layer 3: image
mkvariant() { # NAME
  local name=$1 pkgs vkey ikey R t0 used mb
  pkgs=$(variant_pkgs "$name")
  R=$B/rootfs-$name
  vkey=$(hash_of "$BASE_KEY" "variant=$name" "pkgs=$pkgs")
  ikey=$(hash_of "$vkey" "lab-init=$(sha256sum < "$LAB_DIR/guest/lab-init")" "lab-ike=$(sha256sum < "$LAB_DIR/guest/lab-ike")" "img_mb=${IMG_MB:-auto}")
  if [ "$FORCE" = no ] && [ -f "$B/$name.img" ] && [ "$(cat "$B/$name.img.key" 2>/dev/null)" = "$ikey" ]; then
    lab_log "$name.img is up to date (key $ikey)"
    return 0
  fi
  if [ "$FORCE" = yes ] || [ "$(cat "$R/.lab-key" 2>/dev/null)" != "$vkey" ]; then
    step "$name root fs: apt-get install $pkgs"
    t0=$(date +%s)
    safe_rm "$R.tmp"; safe_rm "$R"
    cp -a "$BASE" "$R.tmp"
    with_mounts "$R.tmp" chroot_in "$R.tmp" sh -c "apt-get update -qq && apt-get install -y --no-install-recommends $pkgs && apt-get clean"
    rm -rf "$R.tmp/var/lib/apt/lists/"*
    echo "$name" > "$R.tmp/etc/lab-variant"
    chroot_in "$R.tmp" dpkg-query -W > "$R.tmp/etc/lab-packages"
    echo "$vkey" > "$R.tmp/.lab-key"
    mv "$R.tmp" "$R"
    lab_log "$name root fs built in $(( $(date +%s) - t0 ))s"
  fi
  step "$name.img: ext4 image (mkfs.ext4 -d)"
  install -m 0755 "$LAB_DIR/guest/lab-init" "$R/sbin/lab-init"
  install -m 0755 "$LAB_DIR/guest/lab-ike" "$R/sbin/lab-ike"
  used=$(du -sm "$R" | cut -f1)
  mb=${IMG_MB:-$(( used * 5 / 4 + 256 ))}
  rm -f "$B/$name.img.tmp"
  mkfs.ext4 -q -F -L labroot -d "$R" "$B/$name.img.tmp" "${mb}M" >> "$LOG" 2>&1
  mv "$B/$name.img.tmp" "$B/$name.img"
  echo "$ikey" > "$B/$name.img.key"
  lab_log "built $B/$name.img: ${mb} MB file ($(du -sm "$B/$name.img" | cut -f1) MB allocated), root fs ${used} MB"
}
for v in "${VARIANTS[@]}"; do mkvariant "$v"; done
STEP=finished
lab_log "images ready in $(( $(date +%s) - t_start ))s: $(cd "$B" && du -sh --apparent-size vmlinuz initrd.img "${VARIANTS[@]/%/.img}" | awk '{printf "%s %s  ", $2, $1}')"
