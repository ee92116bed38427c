# shellcheck shell=bash
# Reusable functions of the hostsec interop lab (source it: . tests/lab/lib.sh).
#
# Sections: messages · host packages · network · guests · guest command channel · strongSwan configuration and
#           proposal names · ESP SA records (ip xfrm state, Wireshark esp_sa) · swanctl --list-sas parsing ·
#           interop case matrix · strongSwan guest operations and checks · peer guests (strongSwan or libreswan
#           with the lab PKI) · lock, waits · capture and IKEv1 decryption check (tshark) · ESP traffic checks ·
#           traffic between endpoints.
#
# SA record: one line per ESP SA direction, the common form of `ip xfrm state` (guest kernel) and of the
# Wireshark ESP SA UAT file `esp_sa` (hostsec key log), so that the two can be compared with a string compare:
#   SRC DST SPI ENC ENCKEY INTEG INTEGKEY
#   SPI      8 lowercase hex digits, no 0x
#   ENC      aes-gcm-16-128|192|256 (ENCKEY = key + 4-byte salt) | aes-cbc-128|192|256
#   INTEG    hmac-sha1-96 | hmac-sha256-128 | none (INTEGKEY "-")
#   keys     lowercase hex, no 0x
# ENC and INTEG are hostsec's algorithm names (`hostsec sas --json`).

LAB_DIR=${LAB_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
LAB_BUILD=${LAB_BUILD:-$LAB_DIR/build}
LAB_RUN=${LAB_RUN:-$LAB_DIR/run}
LAB_NETNS=${LAB_NETNS:-lab-host}
export LAB_PSK_DEFAULT=lab-psk-0123456789abcdef

# ---------------------------------------------------------------- messages
lab_ts() { date +%H:%M:%S; }
lab_log() { echo "[$(lab_ts)] $*" >&2; }
lab_die() { echo "ERROR: $*" >&2; exit 1; }
lab_now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
lab_require_root() { [ "$(id -u)" = 0 ] || lab_die "$(basename "$0") needs root (network namespaces, TAP devices, chroot)"; }

# ---------------------------------------------------------------- host packages
# Debian packages the lab needs on the host (a clean Debian 12 machine gets them with apt-get).
LAB_HOST_PKGS=(qemu-system-x86 debootstrap e2fsprogs nftables iperf3 tcpdump tshark bc conntrack socat
               iproute2 jq procps util-linux)

# lab_install_host_pkgs [PKG...]: apt-get install the packages (default: LAB_HOST_PKGS) that are not installed.
lab_install_host_pkgs() {
  local p missing=()
  [ $# -gt 0 ] || set -- "${LAB_HOST_PKGS[@]}"
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  lab_log "installing host packages: ${missing[*]}"
  command -v apt-get >/dev/null || lab_die "missing packages ${missing[*]} and no apt-get on this host"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || lab_die "apt-get update failed (needed to install ${missing[*]})"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    lab_die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------- network
# Namespace $LAB_NETNS (lab-host): bridge br0 198.51.100.1/24 and 2001:db8:1::1/64 (nodad; multicast snooping
# off: with snooping and no querier the bridge can starve IPv6 neighbour discovery), the taps of the guests, and
# the daemon under test. Optional NAT router namespace lab-nat (lab_net_up nat): veth into br0 as 198.51.100.254,
# masquerade out of it, bridge brn 192.0.2.1/24 for guests behind the NAT. Only documentation addresses,
# nothing is routed out of the lab.
# Bridge-family counters (lab_net_counters) count at prerouting (every frame entering a bridge port) and output
# (frames the host itself sends): the forward hook alone never sees traffic to or from the bridge's own address,
# where the daemon lives. Each frame is counted once; names and what they count:
#   c_esp c_esp6 (ESP)  c_natt (UDP dport 4500)  c_ike (UDP dport 500, v4+v6)  c_icmp_clear (any IPv4 ICMP)
#   c_icmp_echo c_icmp6_echo (echo request/reply)  c_tcp_clear c_tcp6_clear (TCP)  c_udp_clear (other UDP, v4+v6)
#   c_nd6 (ICMPv6 neighbour/router discovery 133-137: cleartext by design, also next to an IPsec policy)
LAB_HOST_ADDR4=198.51.100.1 LAB_HOST_ADDR6=2001:db8:1::1

# lab_netns_free NS: true when NS does not exist, or exists without any process in it (a leftover: it is deleted).
lab_netns_free() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1" || return 0
  if [ -n "$(ip netns pids "$1" 2>/dev/null)" ]; then
    echo "network namespace $1 exists and has processes in it (pids: $(ip netns pids "$1" | tr '\n' ' ')): another lab run?" >&2
    return 1
  fi
  lab_log "removing leftover network namespace $1 (no process in it)"
  ip netns del "$1"
}

lab_net_up() { # [nat]
  lab_netns_free "$LAB_NETNS" || return 1
  ip netns add "$LAB_NETNS" || return 1
  ip -n "$LAB_NETNS" link set lo up
  # IPv6 without SLAAC, router solicitations or DAD delays (set as defaults before br0 exists)
  ip netns exec "$LAB_NETNS" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
    net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.default.autoconf=0 net.ipv6.conf.default.accept_dad=0 \
    net.ipv6.conf.default.router_solicitations=0 2>/dev/null || true
  ip -n "$LAB_NETNS" link add br0 type bridge mcast_snooping 0 || return 1
  ip -n "$LAB_NETNS" addr add "$LAB_HOST_ADDR4/24" dev br0
  ip -n "$LAB_NETNS" addr add "$LAB_HOST_ADDR6/64" dev br0 nodad || return 1
  ip -n "$LAB_NETNS" link set br0 up
  ip netns exec "$LAB_NETNS" nft -f - <<'NFT' || return 1
table bridge labcnt {
  counter c_esp {}
  counter c_esp6 {}
  counter c_natt {}
  counter c_ike {}
  counter c_icmp_clear {}
  counter c_icmp_echo {}
  counter c_icmp6_echo {}
  counter c_nd6 {}
  counter c_tcp_clear {}
  counter c_tcp6_clear {}
  counter c_udp_clear {}
  chain count {
    ip protocol esp counter name "c_esp"
    ip6 nexthdr esp counter name "c_esp6"
    udp dport 4500 counter name "c_natt"
    udp dport 500 counter name "c_ike"
    ip protocol icmp counter name "c_icmp_clear"
    icmp type { echo-request, echo-reply } counter name "c_icmp_echo"
    icmpv6 type { echo-request, echo-reply } counter name "c_icmp6_echo"
    icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } counter name "c_nd6"
    ip protocol tcp counter name "c_tcp_clear"
    ip6 nexthdr tcp counter name "c_tcp6_clear"
    udp dport != { 500, 4500 } udp sport != { 500, 4500 } counter name "c_udp_clear"
  }
  chain pre { type filter hook prerouting priority 0; policy accept; jump count; }
  chain out { type filter hook output priority 0; policy accept; jump count; }
}
NFT
  if [ "${1:-}" = nat ]; then
    lab_netns_free lab-nat || return 1
    ip netns add lab-nat
    ip -n lab-nat link set lo up
    ip link add br0-nat netns "$LAB_NETNS" type veth peer name nat-out netns lab-nat
    ip -n "$LAB_NETNS" link set br0-nat master br0 up
    ip -n lab-nat addr add 198.51.100.254/24 dev nat-out
    ip -n lab-nat link set nat-out up
    ip -n lab-nat link add brn type bridge mcast_snooping 0
    ip -n lab-nat addr add 192.0.2.1/24 dev brn
    ip -n lab-nat link set brn up
    ip netns exec lab-nat sysctl -qw net.ipv4.ip_forward=1
    ip netns exec lab-nat nft -f - <<'NFT' || return 1
table ip labnat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "nat-out" counter masquerade
  }
}
NFT
  fi
}
# lab_nat_forward ADDR: lab-nat also forwards UDP 500/4500 arriving from outside to ADDR behind it (a responder
# behind the NAT that the other side can initiate to)
lab_nat_forward() {
  printf 'table ip labfwd {\n  chain pre {\n    type nat hook prerouting priority dstnat; policy accept;\n    iifname "nat-out" udp dport { 500, 4500 } dnat to %s\n  }\n}\n' "$1" |
    ip netns exec lab-nat nft -f -
}
# lab_nat2_up NETNS ADDR: a second NAT router lab-nat2 (198.51.100.253 on br0, 203.0.113.1/24 inside, masquerade)
# with a new namespace NETNS at ADDR/24 behind it (IPv4 only), to which it forwards UDP 500/4500 from outside.
# lab_net_down removes it.
lab_nat2_up() {
  local ns=$1 addr=$2
  lab_netns_free lab-nat2 && lab_netns_free "$ns" || return 1
  ip netns add lab-nat2 && ip -n lab-nat2 link set lo up || return 1
  ip link add br0-nat2 netns "$LAB_NETNS" type veth peer name nat2-out netns lab-nat2 || return 1
  ip -n "$LAB_NETNS" link set br0-nat2 master br0 up
  ip -n lab-nat2 addr add 198.51.100.253/24 dev nat2-out && ip -n lab-nat2 link set nat2-out up || return 1
  ip netns add "$ns" && ip -n "$ns" link set lo up || return 1
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip link add hsn0 netns "$ns" type veth peer name in2 netns lab-nat2 || return 1
  ip -n lab-nat2 addr add 203.0.113.1/24 dev in2 && ip -n lab-nat2 link set in2 up || return 1
  ip -n "$ns" addr add "$addr/24" dev hsn0 && ip -n "$ns" link set hsn0 up || return 1
  ip -n "$ns" route add default via 203.0.113.1 || return 1
  ip netns exec lab-nat2 sysctl -qw net.ipv4.ip_forward=1
  printf 'table ip labnat2 {
  chain post { type nat hook postrouting priority srcnat; policy accept; oifname "nat2-out" masquerade; }
  chain pre { type nat hook prerouting priority dstnat; policy accept; iifname "nat2-out" udp dport { 500, 4500 } dnat to %s; }
}\n' "$addr" | ip netns exec lab-nat2 nft -f -
}
lab_net_down() {
  ip netns del lab-nat2 2>/dev/null || true
  ip netns del lab-nat 2>/dev/null || true
  ip netns del "$LAB_NETNS" 2>/dev/null || true
}
# lab_net_counters: "c_esp PKTS pkts BYTES bytes" lines (packets seen on br0 ports, each packet counted once)
# lab_net_counter NAME: packets of one counter (0 when absent)
lab_net_counters() {
  ip netns exec "$LAB_NETNS" nft list counters table bridge labcnt 2>/dev/null |
    awk '/counter c_/{n=$2} /packets/{print n, $2, "pkts", $4, "bytes"}'
}
lab_net_counter() { lab_net_counters | awk -v n="$1" '$1 == n { p = $2 } END { print p + 0 }'; }
lab_net_reset() { ip netns exec "$LAB_NETNS" nft reset counters table bridge labcnt >/dev/null; }

# ---------------------------------------------------------------- guests
# Guest NAME: run dir $LAB_RUN/NAME (9p share, mounted on /lab in the guest): console.log, init.log, charon.log,
# ready, qemu.pid, netinfo, cmd/ (command channel). Image $LAB_BUILD/VARIANT.img, booted with snapshot=on so
# that any number of guests share one image and nothing a guest writes survives it.
LAB_BOOT_TIMEOUT=${LAB_BOOT_TIMEOUT:-300}

# lab_accel_args: QEMU accelerator arguments. KVM only with hardware virtualisation: on hosts where /dev/kvm is
# kvm_pvm (no VMX/SVM) the stock Debian kernel does not boot under KVM, so TCG (multi-threaded) is used there.
lab_accel_args() {
  local accel=${LAB_ACCEL:-auto}
  if [ "$accel" = auto ]; then
    if [ -w /dev/kvm ] && grep -q -w -E 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
  fi
  if [ "$accel" = kvm ]; then echo "-enable-kvm -cpu ${LAB_CPU:-host,-arch-capabilities}"
  else echo "-accel tcg,thread=multi,tb-size=256 -cpu ${LAB_CPU:-max}"; fi
}

# lab_guest_pid NAME: PID of the guest's QEMU if it is running (from its pidfile), else fails.
lab_guest_pid() {
  local f=$LAB_RUN/$1/qemu.pid pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  # the PID must still be that guest's QEMU (PIDs are reused)
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "-name lab-$1 " || return 1
  echo "$pid"
}

# lab_boot_guest -n NAME -a ADDR/PFX [-6 ADDR6/PFX] [-i strongswan|libreswan|none] [-s NETNS] [-b BRIDGE] [-g GW]
#                [-m MB] [-c FILE]...
# Boots a guest and waits until its init reports ready. Prints one line with the boot time. Without -6 the guest
# has IPv6 disabled; with it, eth0 also gets ADDR6 (kernel command line lab.ip6=, see guest/lab-init).
lab_boot_guest() {
  local OPTIND o name='' addr='' addr6='' gw='' ike=strongswan ns=$LAB_NETNS br=br0 mem=512 files=() img run tap mac append f t0 t1 i
  while getopts n:a:6:g:i:s:b:m:c: o; do
    case $o in
      n) name=$OPTARG;; a) addr=$OPTARG;; 6) addr6=$OPTARG;; g) gw=$OPTARG;; i) ike=$OPTARG;;
      s) ns=$OPTARG;; b) br=$OPTARG;; m) mem=$OPTARG;; c) files+=("$OPTARG");;
      *) echo "lab_boot_guest: bad option" >&2; return 2;;
    esac
  done
  [ -n "$name" ] && [ -n "$addr" ] || { echo "lab_boot_guest: -n NAME and -a ADDR/PFX are required" >&2; return 2; }
  img=$LAB_BUILD/$ike.img; [ "$ike" = none ] && img=$LAB_BUILD/strongswan.img
  [ -f "$img" ] || { echo "missing $img: run tests/lab/build-guest.sh" >&2; return 1; }
  run=$LAB_RUN/$name
  if lab_guest_pid "$name" >/dev/null; then echo "guest $name is already running" >&2; return 1; fi
  rm -rf "$run"; mkdir -p "$run/cmd"
  for f in "${files[@]}"; do cp -a "$f" "$run/" || return 1; done
  tap=t-$name
  ip -n "$ns" link del "$tap" 2>/dev/null || true
  ip -n "$ns" tuntap add "$tap" mode tap || return 1
  ip -n "$ns" link set "$tap" master "$br" up || return 1
  echo "$ns $tap" > "$run/netinfo"
  mac=52:54:00:$(echo -n "$name" | md5sum | sed 's/^\(..\)\(..\)\(..\).*/\1:\2:\3/')
  append="root=/dev/vda rw edd=off net.ifnames=0 console=ttyS0 init=/sbin/lab-init quiet loglevel=4 panic=-1"
  append="$append lab.name=$name lab.ip=$addr${addr6:+ lab.ip6=$addr6} lab.ike=$ike${gw:+ lab.gw=$gw}"
  t0=$(date +%s%N)
  # shellcheck disable=SC2046
  ip netns exec "$ns" qemu-system-x86_64 \
    -name "lab-$name" $(lab_accel_args) -smp 1 -m "$mem" -M pc \
    -nodefaults -no-user-config -vga none -display none -no-reboot \
    -kernel "$LAB_BUILD/vmlinuz" -initrd "$LAB_BUILD/initrd.img" -append "$append" \
    -drive "file=$img,format=raw,if=virtio,snapshot=on" \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=$mac" \
    -virtfs "local,path=$run,mount_tag=lab,security_model=none,id=lab" \
    -device virtio-rng-pci \
    -chardev "socket,id=con,path=$run/console.sock,server=on,wait=off,logfile=$run/console.log" -serial chardev:con \
    -pidfile "$run/qemu.pid" -daemonize > "$run/qemu.out" 2>&1 9>&- ||
    { echo "qemu failed to start guest $name: $(cat "$run/qemu.out")" >&2; lab_stop_guest "$name" >/dev/null; return 1; }
  for (( i = 0; i < LAB_BOOT_TIMEOUT * 10; i++ )); do
    [ -s "$run/ready" ] && break
    if (( i % 10 == 0 )) && ! lab_guest_pid "$name" >/dev/null; then
      echo "guest $name: QEMU exited during boot; last console lines:" >&2; tail -n 20 "$run/console.log" >&2
      lab_stop_guest "$name" >/dev/null; return 1
    fi
    sleep 0.1
  done
  t1=$(date +%s%N)
  if [ ! -s "$run/ready" ]; then
    echo "guest $name not ready after ${LAB_BOOT_TIMEOUT}s; last console lines ($run/console.log):" >&2
    tail -n 20 "$run/console.log" >&2
    lab_stop_guest "$name" >/dev/null; return 1
  fi
  echo "$(( (t1 - t0) / 1000000 ))" > "$run/boot_ms"
  printf '%s up in %d.%03ds (guest uptime at ready %ss; ike=%s addr=%s accel=%s)\n' "$name" \
    $(( (t1 - t0) / 1000000000 )) $(( (t1 - t0) / 1000000 % 1000 )) "$(cat "$run/ready")" "$ike" "$addr${addr6:+ $addr6}" \
    "$(lab_accel_args | awk '{print ($1 == "-enable-kvm") ? "kvm" : "tcg"}')"
}

# lab_stop_guest NAME...: kill the guest's QEMU by its PID (only if it is that guest's QEMU), remove its tap.
lab_stop_guest() {
  local n pid i ns tap
  for n in "$@"; do
    if pid=$(lab_guest_pid "$n"); then
      kill "$pid" 2>/dev/null
      for (( i = 0; i < 50; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$LAB_RUN/$n/qemu.pid"
    if [ -f "$LAB_RUN/$n/netinfo" ]; then
      read -r ns tap < "$LAB_RUN/$n/netinfo"
      ip -n "$ns" link del "$tap" 2>/dev/null || true
      rm -f "$LAB_RUN/$n/netinfo"
    fi
    echo "stopped $n"
  done
}

# ---------------------------------------------------------------- guest command channel
# lab_gexec NAME 'shell command' [TIMEOUT_S=120]: run the command in the guest over the 9p command channel
# (guest init polls $LAB_RUN/NAME/cmd every 0.1 s); prints its stdout+stderr, returns its exit code,
# 124 on timeout, 125 when the guest is not running.
lab_gexec() {
  local run=$LAB_RUN/$1 cmd=$2 tmo=${3:-120} id i rc
  [ -d "$run/cmd" ] || { echo "lab_gexec: no guest $1" >&2; return 125; }
  id=$(date +%s%N).$BASHPID.$RANDOM
  printf '%s\n' "$cmd" > "$run/cmd/$id.tmp" && mv "$run/cmd/$id.tmp" "$run/cmd/$id.sh" || return 125
  for (( i = 0; i < tmo * 50; i++ )); do
    [ -f "$run/cmd/$id.rc" ] && break
    if (( i % 50 == 49 )) && ! lab_guest_pid "$1" >/dev/null; then echo "lab_gexec: guest $1 is not running" >&2; return 125; fi
    sleep 0.02
  done
  if [ ! -f "$run/cmd/$id.rc" ]; then
    echo "lab_gexec: timeout after ${tmo}s in guest $1: $cmd" >&2
    rm -f "$run/cmd/$id.sh"   # not picked up yet: withdraw it
    return 124
  fi
  cat "$run/cmd/$id.out"; rc=$(cat "$run/cmd/$id.rc"); rm -f "$run/cmd/$id".*
  return "$rc"
}

# ---------------------------------------------------------------- strongSwan configuration and proposal names
# Case proposals are strongSwan proposal keywords: IKE "aes256-sha384-ecp384", ESP "aes128gcm16[-ecp256]" or
# "aes256-sha256[-modp2048]" (a trailing DH group = Quick Mode PFS with that group).

# lab_dh_keyword NUM -> strongSwan keyword (modp2048 ...); lab_dh_num KEYWORD -> number
lab_dh_keyword() {
  case $1 in
    1) echo modp768;; 2) echo modp1024;; 5) echo modp1536;; 14) echo modp2048;; 15) echo modp3072;; 16) echo modp4096;;
    17) echo modp6144;; 18) echo modp8192;; 22) echo modp1024s160;; 23) echo modp2048s224;; 24) echo modp2048s256;;
    19) echo ecp256;; 20) echo ecp384;; 21) echo ecp521;; 31) echo curve25519;; 32) echo curve448;;
    *) echo "unknown DH group $1" >&2; return 1;;
  esac
}
lab_dh_num() {
  local n
  for n in 1 2 5 14 15 16 17 18 22 23 24 19 20 21 31 32; do
    [ "$(lab_dh_keyword "$n")" = "$1" ] && { echo "$n"; return 0; }
  done
  echo "unknown DH keyword $1" >&2; return 1
}
# lab_dh_swanctl_name KEYWORD -> name in swanctl --list-sas (modp2048 -> MODP_2048, modp2048s256 -> MODP_2048_256)
lab_dh_swanctl_name() {
  case $1 in
    modp*s*) local b=${1#modp}; echo "MODP_${b%s*}_${b#*s}";;
    modp*) echo "MODP_${1#modp}";;
    ecp*) echo "ECP_${1#ecp}";;
    curve25519) echo CURVE_25519;; curve448) echo CURVE_448;;
    *) echo "unknown DH keyword $1" >&2; return 1;;
  esac
}

# lab_ike_parse PROPOSAL -> "ENC_BITS HASH DH_KEYWORD" (aes256-sha384-ecp384 -> "256 sha384 ecp384")
lab_ike_parse() {
  local enc hash dh rest
  IFS=- read -r enc hash dh rest <<< "$1"
  [[ $enc =~ ^aes(128|192|256)$ ]] && [[ $hash =~ ^sha(1|256|384|512)$ ]] && [ -n "$dh" ] && [ -z "$rest" ] ||
    { echo "unsupported IKE proposal '$1' (want aesN-shaN-DH)" >&2; return 1; }
  echo "${enc#aes} $hash $dh"
}
# lab_ike_swanctl_algs PROPOSAL -> IKE algorithm line of swanctl --list-sas
#   aes256-sha256-ecp256 -> AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256
lab_ike_swanctl_algs() {
  local bits hash dh integ prf
  read -r bits hash dh < <(lab_ike_parse "$1") || return 1
  [ -n "$bits" ] || return 1
  case $hash in
    sha1) integ=HMAC_SHA1_96 prf=PRF_HMAC_SHA1;;
    sha256) integ=HMAC_SHA2_256_128 prf=PRF_HMAC_SHA2_256;;
    sha384) integ=HMAC_SHA2_384_192 prf=PRF_HMAC_SHA2_384;;
    sha512) integ=HMAC_SHA2_512_256 prf=PRF_HMAC_SHA2_512;;
  esac
  echo "AES_CBC-$bits/$integ/$prf/$(lab_dh_swanctl_name "$dh")"
}
# lab_ike_hostsec PROPOSAL -> "ENCRYPTION HASH DH_GROUP" as in hostsec's Main Mode JSON (aes-cbc-256 sha384 20)
lab_ike_hostsec() {
  local bits hash dh
  read -r bits hash dh < <(lab_ike_parse "$1") || return 1
  [ -n "$bits" ] || return 1
  echo "aes-cbc-$bits $hash $(lab_dh_num "$dh")"
}

# lab_esp_parse PROPOSAL -> "ENC INTEG PFS_KEYWORD|-" in hostsec names
#   aes128gcm16-ecp256 -> "aes-gcm-16-128 none ecp256";  aes256-sha1 -> "aes-cbc-256 hmac-sha1-96 -"
lab_esp_parse() {
  local a b c rest enc integ pfs=-
  IFS=- read -r a b c rest <<< "$1"
  if [[ $a =~ ^aes(128|192|256)gcm16$ ]]; then
    enc=aes-gcm-16-${BASH_REMATCH[1]} integ=none
    [ -n "$b" ] && pfs=$b
    [ -z "$c" ] || { echo "unsupported ESP proposal '$1'" >&2; return 1; }
  elif [[ $a =~ ^aes(128|192|256)$ ]]; then
    enc=aes-cbc-${BASH_REMATCH[1]}
    case $b in
      sha1) integ=hmac-sha1-96;; sha256) integ=hmac-sha256-128;; sha384) integ=hmac-sha384-192;; sha512) integ=hmac-sha512-256;;
      *) echo "unsupported ESP proposal '$1' (integrity '$b')" >&2; return 1;;
    esac
    [ -n "$c" ] && pfs=$c
    [ -z "$rest" ] || { echo "unsupported ESP proposal '$1'" >&2; return 1; }
  else
    echo "unsupported ESP proposal '$1' (want aesNgcm16[-DH] or aesN-shaN[-DH])" >&2; return 1
  fi
  echo "$enc $integ $pfs"
}
# lab_esp_swanctl_algs PROPOSAL -> algorithms of the CHILD_SA line of swanctl --list-sas (after "ESP:")
#   aes128gcm16-ecp256 -> AES_GCM_16-128/ECP_256;  aes256-sha256 -> AES_CBC-256/HMAC_SHA2_256_128
lab_esp_swanctl_algs() {
  local enc integ pfs s
  read -r enc integ pfs < <(lab_esp_parse "$1") || return 1
  [ -n "$enc" ] || return 1
  case $enc in
    aes-gcm-16-*) s="AES_GCM_16-${enc##*-}";;
    aes-cbc-*) s="AES_CBC-${enc##*-}";;
  esac
  case $integ in
    hmac-sha1-96) s="$s/HMAC_SHA1_96";; hmac-sha256-128) s="$s/HMAC_SHA2_256_128";;
    hmac-sha384-192) s="$s/HMAC_SHA2_384_192";; hmac-sha512-256) s="$s/HMAC_SHA2_512_256";;
  esac
  [ "$pfs" != - ] && s="$s/$(lab_dh_swanctl_name "$pfs")"
  echo "$s"
}

# lab_swanctl_conn NAME LOCAL REMOTE IKE_PROPOSALS ESP_PROPOSALS [REMOTE_ID]: one IKEv1 Main Mode PSK
# transport-mode connection (identities = the addresses) with a child of the same NAME. REMOTE may be %any
# (then give REMOTE_ID %any too). Proposal lists are comma-separated strongSwan proposals.
lab_swanctl_conn() {
  cat <<EOC
  $1 {
    version = 1
    aggressive = no
    local_addrs = $2
    remote_addrs = $3
    proposals = $4
    encap = no
    dpd_delay = 0
    local {
      auth = psk
      id = $2
    }
    remote {
      auth = psk
      id = ${6:-$3}
    }
    children {
      $1 {
        mode = transport
        esp_proposals = $5
        start_action = none
      }
    }
  }
EOC
}
# lab_swanctl_secrets [PSK]: the secrets section (one PSK for any identity)
lab_swanctl_secrets() {
  printf 'secrets {\n  ike-lab {\n    secret = "%s"\n  }\n}\n' "${1:-$LAB_PSK_DEFAULT}"
}

# ---------------------------------------------------------------- ESP SA records (see the top of this file)
# lab_xfrm_records: `ip xfrm state` or `ip -s xfrm state` output (stdin) -> SA records, one per ESP state
# (-s adds "(decimal)" after the SPI and "(N bits)" before the ICV/truncation length: the last field is used)
lab_xfrm_records() {
  awk '
    function flush() {
      if (spi != "" && enc != "") printf "%s %s %s %s %s %s %s\n", src, dst, spi, enc, ekey, integ, ikey
      spi = ""; enc = ""; ekey = ""; integ = "none"; ikey = "-"
    }
    function hex(k) { k = tolower(k); sub(/^0x/, "", k); return k }
    BEGIN { integ = "none"; ikey = "-" }
    /^src / { flush(); src = $2; dst = $4; next }
    /^[ \t]+proto esp spi / { s = hex($4); sub(/\(.*/, "", s); while (length(s) < 8) s = "0" s; spi = s; next }
    /^[ \t]+aead rfc4106\(gcm\(aes\)\) / { ekey = hex($3); enc = sprintf("aes-gcm-%d-%d", $NF / 8, (length(ekey) - 8) * 4); next }
    /^[ \t]+enc cbc\(aes\) / { ekey = hex($3); enc = sprintf("aes-cbc-%d", length(ekey) * 4); next }
    /^[ \t]+enc / { ekey = hex($3); enc = "unknown:" $2; next }
    /^[ \t]+auth-trunc hmac\(sha[0-9]+\) / { a = $2; gsub(/hmac\(|\)/, "", a); integ = sprintf("hmac-%s-%d", a, $NF); ikey = hex($3); next }
    /^[ \t]+auth / { integ = "unknown:" $2; ikey = hex($3); next }
    END { flush() }
  '
}
# lab_xfrm_modes: `ip xfrm state` output (stdin) -> "SPI MODE" lines (mode transport|tunnel|...)
lab_xfrm_modes() {
  awk '/^[ \t]+proto esp spi / { s = tolower($4); sub(/^0x/, "", s); sub(/\(.*/, "", s); while (length(s) < 8) s = "0" s
                                for (i = 5; i < NF; i++) if ($i == "mode") print s, $(i + 1) }'
}

# lab_uat_records: Wireshark ESP SA UAT lines (esp_sa, stdin) -> SA records; unknown algorithms give
# "unknown:<name>" so that a comparison fails visibly. Other address families / wildcards are passed through.
lab_uat_records() {
  awk '
    function hex(k) { k = tolower(k); sub(/^0x/, "", k); return k }
    /^[ \t]*(#|$)/ { next }
    {
      line = $0; sub(/^[ \t]*"/, "", line); sub(/"[ \t\r]*$/, "", line)
      n = split(line, f, /"[ \t]*,[ \t]*"/)
      if (n != 8) { print "malformed-uat-line: " $0; next }
      spi = hex(f[4]); while (length(spi) < 8) spi = "0" spi
      ekey = hex(f[6]); ikey = hex(f[8])
      if (f[5] ~ /^AES-GCM with 16 octet ICV/) enc = sprintf("aes-gcm-16-%d", (length(ekey) - 8) * 4)
      else if (f[5] ~ /^AES-GCM with 12 octet ICV/) enc = sprintf("aes-gcm-12-%d", (length(ekey) - 8) * 4)
      else if (f[5] ~ /^AES-GCM with 8 octet ICV/) enc = sprintf("aes-gcm-8-%d", (length(ekey) - 8) * 4)
      else if (f[5] ~ /^AES-CBC \[RFC3602\]/) enc = sprintf("aes-cbc-%d", length(ekey) * 4)
      else enc = "unknown:" f[5]
      if (f[7] == "NULL") { integ = "none"; ikey = "-" }
      else if (f[7] ~ /^HMAC-SHA-1-96 /) integ = "hmac-sha1-96"
      else if (f[7] ~ /^HMAC-SHA-256-128 /) integ = "hmac-sha256-128"
      else if (f[7] ~ /^HMAC-SHA-384-192 /) integ = "hmac-sha384-192"
      else if (f[7] ~ /^HMAC-SHA-512-256 /) integ = "hmac-sha512-256"
      else integ = "unknown:" f[7]
      printf "%s %s %s %s %s %s %s\n", f[2], f[3], spi, enc, ekey, integ, (ikey == "" ? "-" : ikey)
    }
  '
}
# lab_records_to_uat: SA records (stdin) -> Wireshark ESP SA UAT lines (for tshark -o "uat:esp_sa:LINE")
lab_records_to_uat() {
  awk '
    {
      enc = $4; integ = $6
      if (enc ~ /^aes-gcm-16-/) e = "AES-GCM with 16 octet ICV [RFC4106]"
      else if (enc ~ /^aes-gcm-12-/) e = "AES-GCM with 12 octet ICV [RFC4106]"
      else if (enc ~ /^aes-gcm-8-/) e = "AES-GCM with 8 octet ICV [RFC4106]"
      else if (enc ~ /^aes-cbc-/) e = "AES-CBC [RFC3602]"
      else e = enc
      if (integ == "none") a = "NULL"
      else if (integ == "hmac-sha1-96") a = "HMAC-SHA-1-96 [RFC2404]"
      else if (integ == "hmac-sha256-128") a = "HMAC-SHA-256-128 [RFC4868]"
      else if (integ == "hmac-sha384-192") a = "HMAC-SHA-384-192 [RFC4868]"
      else if (integ == "hmac-sha512-256") a = "HMAC-SHA-512-256 [RFC4868]"
      else a = integ
      printf "\"%s\",\"%s\",\"%s\",\"0x%s\",\"%s\",\"0x%s\",\"%s\",\"%s\"\n", ($1 ~ /:/ ? "IPv6" : "IPv4"), $1, $2, $3, e, $5, a, (integ == "none" ? "" : "0x" $7)
    }
  '
}
# lab_record_for_spi SPI: the record(s) with that SPI (stdin: records); the last one wins if a log has several
lab_record_for_spi() { awk -v s="$1" '$3 == s { r = $0 } END { if (r != "") print r }'; }
# lab_record_cmp NAME_A REC_A NAME_B REC_B: "" when equal, else a one-line description of the first difference
lab_record_cmp() {
  [ "$2" = "$4" ] && return 0
  local -a a b; local i names=(src dst spi enc enc-key integ integ-key)
  read -r -a a <<< "$2"; read -r -a b <<< "$4"
  [ -n "$2" ] || { echo "no SA in $1"; return 1; }
  [ -n "$4" ] || { echo "no SA in $3"; return 1; }
  for i in 0 1 2 3 4 5 6; do
    if [ "${a[i]:-}" != "${b[i]:-}" ]; then
      echo "${names[i]} differs: $1=${a[i]:-<none>} $3=${b[i]:-<none>}"; return 1
    fi
  done
  echo "records differ: $1='$2' $3='$4'"; return 1
}

# lab_ikev1_table_lookup CKY_I: Ka for that initiator cookie from an ikev1_decryption_table (stdin), lowercase
lab_ikev1_table_lookup() {
  awk -F, -v c="$(echo "$1" | tr 'A-F' 'a-f')" '
    { k = tolower($1); gsub(/[ \t"]|^0x/, "", k); v = tolower($2); gsub(/[ \t\r"]|^0x/, "", v); if (k == c) r = v }
    END { if (r != "") print r }'
}

# ---------------------------------------------------------------- swanctl --list-sas (human format) parsing
# lab_swanctl_sa CONN [CHILD=CONN]: stdin = `swanctl --list-sas` output; prints, for the last IKE SA named CONN:
#   ike_state=ESTABLISHED  ike_algs=AES_CBC-256/...  ike_spi_i=<CKY-I>  ike_spi_r=<CKY-R>
#   child_state=INSTALLED  child_mode=TRANSPORT  esp_algs=AES_GCM_16-128/ECP_256  spi_in=...  spi_out=...
# (child: the last CHILD_SA named CHILD of that IKE SA; empty values when absent; nothing when no such IKE SA)
lab_swanctl_sa() {
  awk -v conn="$1" -v child="${2:-$1}" '
    function out() {
      if (!have) return
      printf "ike_state=%s\nike_algs=%s\nike_spi_i=%s\nike_spi_r=%s\nchild_state=%s\nchild_mode=%s\nesp_algs=%s\nspi_in=%s\nspi_out=%s\n",
        st, algs, spi_i, spi_r, cst, cmode, esp, s_in, s_out
    }
    /^[^ \t]/ {                                # IKE SA line: "name: #1, ESTABLISHED, IKEv1, <spi>_i* <spi>_r"
      inike = 0
      if ($1 == conn ":") {
        inike = 1; have = 1; st = $3; sub(/,$/, "", st); spi_i = ""; spi_r = ""; algs = ""
        cst = ""; cmode = ""; esp = ""; s_in = ""; s_out = ""; inchild = 0
        for (i = 5; i <= NF; i++) { s = $i; if (s ~ /_i\*?$/) { sub(/_i\*?$/, "", s); spi_i = s } else if (s ~ /_r\*?$/) { sub(/_r\*?$/, "", s); spi_r = s } }
      }
      next
    }
    !inike { next }
    /^  [A-Z0-9_]+-[0-9]+\// && algs == "" { algs = $1; next }
    /^  [^ ].*: #[0-9]+, reqid / {             # CHILD_SA line: "  name: #1, reqid 1, INSTALLED, TRANSPORT, ESP:algs"
      inchild = ($1 == child ":")
      if (inchild) {
        line = $0; sub(/^.*reqid [0-9]+, /, "", line); n = split(line, f, /, /)
        cst = f[1]; cmode = f[2]; esp = f[3]; sub(/^ESP:/, "", esp); s_in = ""; s_out = ""
      }
      next
    }
    inchild && /^    in  / { s = $2; sub(/,$/, "", s); s_in = s; next }
    inchild && /^    out / { s = $2; sub(/,$/, "", s); s_out = s; next }
    END { out() }
  '
}
# lab_kv KEY: value of KEY from "key=value" lines (stdin)
lab_kv() { awk -v k="$1" 'index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }'; }

# ---------------------------------------------------------------- interop case matrix
# lab_case_matrix [all|quick]: one line per case "NAME IKE_PROPOSAL ESP_PROPOSAL" (strongSwan keywords).
#   all (36 cases): every DH group 14, 24, 19, 20 x every ESP transform (AES-GCM-16 128/192/256, AES-CBC
#   128/192/256 x HMAC-SHA1-96 / HMAC-SHA256-128). Quick Mode PFS (with the Main Mode group) alternates so that
#   every group and every ESP transform is tested with and without PFS; the Main Mode cipher x hash pair
#   rotates through all nine AES-CBC-128/192/256 x SHA-1/256/384 combinations (each 4 times).
#   quick (6 cases): a subset with every group, PFS on and off, GCM and CBC with both integrity algorithms.
LAB_DH_GROUPS=(14 24 19 20)
LAB_ESP_TRANSFORMS=(aes128gcm16 aes192gcm16 aes256gcm16 aes128-sha1 aes192-sha1 aes256-sha1 aes128-sha256 aes192-sha256 aes256-sha256)
lab_case_matrix() {
  local set=${1:-all} gi t c dh enc hash esp pfs n=0 name
  local -a encs=(aes128 aes192 aes256) hashes=(sha1 sha256 sha384)
  for gi in 0 1 2 3; do
    for t in 0 1 2 3 4 5 6 7 8; do
      n=$(( n + 1 ))
      if [ "$set" = quick ]; then
        case "$gi:$t" in 0:0|0:5|1:7|2:1|2:8|3:2) ;; *) continue;; esac
      fi
      dh=$(lab_dh_keyword "${LAB_DH_GROUPS[gi]}")
      c=$(( (t + 2 * gi) % 9 ))
      enc=${encs[c % 3]} hash=${hashes[c / 3]}
      esp=${LAB_ESP_TRANSFORMS[t]}
      pfs=$(( (gi + t) % 2 == 0 ))
      name=$(printf 'c%02d-dh%s-%s%s' "$n" "${LAB_DH_GROUPS[gi]}" "${esp//-/}" "$( [ $pfs = 1 ] && echo -pfs)")
      [ $pfs = 1 ] && esp="$esp-$dh"
      echo "$name $enc-$hash-$dh $esp"
    done
  done
}

# ---------------------------------------------------------------- strongSwan guest operations
# Files of a case are written by the guest to /lab/cases/CASE/ = $LAB_RUN/GUEST/cases/CASE/ on the host.

# lab_ss_load GUEST FILE: install FILE as the guest's swanctl.conf and load it (swanctl --load-all unloads
# connections that are no longer in it; a file without connections is fine: "no connections found"). Fails,
# with swanctl's output, when swanctl reports an error.
lab_ss_load() {
  local out rc
  cp "$2" "$LAB_RUN/$1/swanctl.conf" || return 1
  out=$(lab_gexec "$1" 'lab-ike reload' 60); rc=$?
  if [ $rc -ne 0 ] || ! grep -qE 'successfully loaded|no connections found' <<< "$out" || grep -qiE 'failed|error|invalid' <<< "$out"; then
    echo "swanctl --load-all in $1 failed (rc=$rc): $out" >&2; return 1
  fi
}
# lab_ss_snapshot GUEST CASE [TAG]: swanctl --list-sas and ip xfrm state of the guest into cases/CASE/
#   (list-sas[-TAG].txt, xfrm[-TAG].txt)
lab_ss_snapshot() {
  local sfx=${3:+-$3}
  lab_gexec "$1" "mkdir -p /lab/cases/$2; swanctl --list-sas > /lab/cases/$2/list-sas$sfx.txt 2>&1; ip xfrm state > /lab/cases/$2/xfrm$sfx.txt 2>&1" 60
}
# lab_ss_initiate GUEST CHILD [TIMEOUT_S=30]: swanctl --initiate --child CHILD in the guest, then a snapshot
# (cases/CHILD/initiate.log, list-sas.txt, xfrm.txt). Prints "rc=N ms=M" (M: time of swanctl --initiate,
# measured in the guest); returns swanctl's exit code.
lab_ss_initiate() {
  local tmo=${3:-30} out rc
  out=$(lab_gexec "$1" "mkdir -p /lab/cases/$2; t0=\$(date +%s%N)
swanctl --initiate --child $2 --timeout $tmo > /lab/cases/$2/initiate.log 2>&1; rc=\$?; t1=\$(date +%s%N)
swanctl --list-sas > /lab/cases/$2/list-sas.txt 2>&1; ip xfrm state > /lab/cases/$2/xfrm.txt 2>&1
echo rc=\$rc ms=\$(( (t1 - t0) / 1000000 )); exit \$rc" $(( tmo + 60 ))); rc=$?
  echo "$out"
  return $rc
}
# lab_ss_terminate GUEST IKE_NAME: swanctl --terminate --ike (sends the DELETEs; waits up to 10 s)
lab_ss_terminate() { lab_gexec "$1" "swanctl --terminate --ike $2 --timeout 10 2>&1" 40; }
# lab_ss_lists_spi GUEST SPI: the guest's swanctl --list-sas shows a CHILD_SA with this SPI (in or out); use it to
# wait for the responder's SAs, which it installs after the initiator's swanctl --initiate has returned
lab_ss_lists_spi() { lab_gexec "$1" 'swanctl --list-sas' 20 | grep -qE "^ +(in|out) +$2[ ,]"; }
# lab_charon_log_mark GUEST: current line count of the guest's charon.log (to slice a case's part later)
lab_charon_log_mark() { local n; n=$(wc -l < "$LAB_RUN/$1/charon.log" 2>/dev/null) || n=0; echo "${n:-0}"; }
# lab_charon_log_since GUEST MARK: charon.log lines after MARK
lab_charon_log_since() { tail -n "+$(( $2 + 1 ))" "$LAB_RUN/$1/charon.log" 2>/dev/null; }

# lab_check_ss_sa LISTSAS_FILE CONN IKE_PROPOSAL ESP_PROPOSAL [MODE=TRANSPORT]: check the strongSwan view of a
# case: IKE SA ESTABLISHED with the expected algorithms, CHILD_SA INSTALLED, in MODE (TRANSPORT-in-UDP across a
# NAT), expected ESP algorithms (incl. the PFS group). Prints "spi_in spi_out ike_spi_i" of the CHILD_SA
# (strongSwan's view) or the reason of the failure.
lab_check_ss_sa() {
  local kv want_ike want_esp v
  kv=$(lab_swanctl_sa "$2" < "$1")
  [ -n "$kv" ] || { echo "strongSwan has no IKE SA $2"; return 1; }
  want_ike=$(lab_ike_swanctl_algs "$3") && want_esp=$(lab_esp_swanctl_algs "$4") || { echo "bad case proposals"; return 1; }
  v=$(lab_kv ike_state <<< "$kv"); [ "$v" = ESTABLISHED ] || { echo "strongSwan IKE SA $2 is '$v', not ESTABLISHED"; return 1; }
  v=$(lab_kv ike_algs <<< "$kv"); [ "$v" = "$want_ike" ] || { echo "strongSwan IKE algorithms '$v', expected '$want_ike'"; return 1; }
  v=$(lab_kv child_state <<< "$kv"); [ "$v" = INSTALLED ] || { echo "strongSwan CHILD_SA $2 is '${v:-absent}', not INSTALLED"; return 1; }
  v=$(lab_kv child_mode <<< "$kv"); [ "$v" = "${5:-TRANSPORT}" ] || { echo "strongSwan CHILD_SA mode '$v', not ${5:-TRANSPORT}"; return 1; }
  v=$(lab_kv esp_algs <<< "$kv"); [ "$v" = "$want_esp" ] || { echo "strongSwan ESP algorithms '$v', expected '$want_esp'"; return 1; }
  echo "$(lab_kv spi_in <<< "$kv") $(lab_kv spi_out <<< "$kv") $(lab_kv ike_spi_i <<< "$kv")"
}
# lab_check_xfrm_pair XFRM_FILE LOCAL REMOTE SPI_IN SPI_OUT ESP_PROPOSAL: the guest kernel holds both ESP SAs,
# in transport mode, with the expected algorithms. Prints the two records (in, out) or the failure reason.
lab_check_xfrm_pair() {
  local recs rin rout enc integ r
  recs=$(lab_xfrm_records < "$1")
  rin=$(lab_record_for_spi "$4" <<< "$recs"); rout=$(lab_record_for_spi "$5" <<< "$recs")
  [ -n "$rin" ] || { echo "kernel has no ESP SA with SPI $4 (inbound)"; return 1; }
  [ -n "$rout" ] || { echo "kernel has no ESP SA with SPI $5 (outbound)"; return 1; }
  read -r enc integ _ < <(lab_esp_parse "$6")
  for r in "$rin" "$rout"; do
    [ "$(awk '{print $4, $6}' <<< "$r")" = "$enc $integ" ] ||
      { echo "kernel SA has $(awk '{print $4 "/" $6}' <<< "$r"), expected $enc/$integ: $r"; return 1; }
  done
  [ "$(awk '{print $1, $2}' <<< "$rin")" = "$3 $2" ] || { echo "kernel inbound SA $4 is not $3 -> $2: $rin"; return 1; }
  [ "$(awk '{print $1, $2}' <<< "$rout")" = "$2 $3" ] || { echo "kernel outbound SA $5 is not $2 -> $3: $rout"; return 1; }
  for r in "$4" "$5"; do
    [ "$(lab_xfrm_modes < "$1" | awk -v s="$r" '$1 == s { m = $2 } END { print m }')" = transport ] ||
      { echo "kernel SA $r is not in transport mode"; return 1; }
  done
  printf '%s\n%s\n' "$rin" "$rout"
}

# ---------------------------------------------------------------- peer guests: strongSwan or libreswan with the lab PKI
# Used by tests/interop/matrix.sh and authip-fallback.sh. A peer is KIND ss (strongSwan: charon + swanctl) or ls
# (libreswan 4.10: pluto with ikev1-policy=accept). Its credentials come from a PKI made with pki.sh in PKI_DIR:
# ca.pem and, per certificate TYPE (rsa, p256, p384 ...), peer.TYPE.pem + peer.TYPE.key (and for libreswan the
# PKCS#12 peer-TYPE.p12, password "lab"). In the guest they are named peer-TYPE: swanctl's certs = peer-TYPE.pem,
# libreswan's leftcert=peer-TYPE. The connection to hostsec is called "hs" in both. pki_dn (pki.sh) names the
# identities: peer.TYPE for the guest, hostsec.TYPE for hostsec, so the caller sources pki.sh too.

# lab_ss_flush GUEST: strongSwan terminates every IKE SA it holds (forced, without waiting for the peer) and the guest
# kernel's SAs and policies are flushed: a clean guest for the next case
lab_ss_flush() {
  # shellcheck disable=SC2016 # expanded in the guest
  lab_gexec "$1" 'for i in $(swanctl --list-sas 2>/dev/null | sed -n "s/^\([^ ]*\): #.*/\1/p" | sort -u); do
      swanctl --terminate --ike "$i" --force --timeout 3 >/dev/null 2>&1; done; ip xfrm state flush; ip xfrm policy flush' 40 >/dev/null
}
# lab_ls_setup: pluto's "config setup" (pluto reads it only when it starts: log to /lab/pluto.log, IKEv1 accepted)
lab_ls_setup() {
  cat <<EOC
config setup
    logfile=/lab/pluto.log
    logtime=yes
    uniqueids=no
    ikev1-policy=accept
EOC
}
# lab_peer_boot KIND NAME PKI_DIR PSK [lab_boot_guest options: -a ADDR/PFX ...]: boots the peer's guest (libreswan
# with lab_ls_setup and a PSK for any pair of identities) and installs every peer credential of PKI_DIR (swanctl's
# directories; libreswan's NSS database). Prints the boot line and the peer's version line; fails with the reason.
lab_peer_boot() {
  local kind=$1 name=$2 pki=$3 psk=$4 ike t boot rc d f a out
  shift 4
  case $kind in ss) ike=strongswan;; ls) ike=libreswan;; *) echo "lab_peer_boot: KIND is ss or ls, not '$kind'" >&2; return 2;; esac
  t=$(mktemp -d) || return 1
  lab_ls_setup > "$t/ipsec.conf"
  echo "%any %any : PSK \"$psk\"" > "$t/ipsec.secrets"
  boot=$(lab_boot_guest -n "$name" -i "$ike" -c "$t/ipsec.conf" -c "$t/ipsec.secrets" "$@" 2>&1); rc=$?
  rm -rf "$t"
  [ $rc = 0 ] || { echo "guest boot failed: $boot" >&2; return 1; }
  echo "$boot"
  case $kind in
    ss)
      d=$LAB_RUN/$name/swanctl; mkdir -p "$d/x509" "$d/x509ca" "$d/private"
      cp "$pki/ca.pem" "$d/x509ca/"
      for f in "$pki"/peer.*.pem; do
        [ -e "$f" ] || continue
        a=${f##*/peer.}; a=${a%.pem}
        [[ $a == *.chain ]] && continue
        cp "$f" "$d/x509/peer-$a.pem"; cp "$pki/peer.$a.key" "$d/private/peer-$a.key"
      done
      echo "strongSwan: $(lab_gexec "$name" 'swanctl --version 2>&1 | head -n 1' 20)"
      ;;
    ls)
      cp "$pki/ca.pem" "$pki"/peer-*.p12 "$LAB_RUN/$name/" 2>/dev/null
      # shellcheck disable=SC2016 # expanded in the guest
      out=$(lab_gexec "$name" 'd=sql:/var/lib/ipsec/nss; certutil -A -d $d -n labca -t CT,, -a -i /lab/ca.pem 2>&1 &&
        for f in /lab/peer-*.p12; do [ -e "$f" ] || continue; pk12util -i "$f" -d $d -W lab 2>&1 || exit 1; done' 60) ||
        { echo "importing the lab PKI into libreswan's NSS database: $out" >&2; return 1; }
      echo "libreswan: $(lab_gexec "$name" 'ipsec --version 2>&1 | head -n 1' 20)"
      ;;
  esac
}
# lab_peer_log KIND GUEST: the peer daemon's log file (charon.log, pluto.log); lab_peer_log_mark KIND GUEST: its line
# count now; lab_peer_log_since KIND GUEST MARK: what it logged after the mark; lab_pluto_text: pluto's lines
# (stdin) without their timestamps
lab_peer_log() { case $1 in ss) echo "$LAB_RUN/$2/charon.log";; ls) echo "$LAB_RUN/$2/pluto.log";; esac; }
lab_peer_log_mark() { local n; n=$(wc -l < "$(lab_peer_log "$1" "$2")" 2>/dev/null) || n=0; echo "${n:-0}"; }
lab_peer_log_since() { tail -n "+$(( $3 + 1 ))" "$(lab_peer_log "$1" "$2")" 2>/dev/null; }
lab_pluto_text() { sed -E 's/^[A-Z][a-z]{2} [ 0-9]{2} [0-9:.]+: //'; }

# lab_ss_conf AUTH LOCAL REMOTE IKE ESP [REMOTE_OWN=REMOTE] [PSK]: a whole swanctl.conf: one IKEv1 Main Mode
# connection "hs" (child "hs", transport mode, no DPD, no forced encapsulation) from LOCAL to REMOTE with the IKE and
# ESP proposals, and the secrets section with PSK. AUTH psk: the identities are the addresses (REMOTE_OWN: the
# remote's own address, when a NAT shows it as REMOTE); rsa|p256|p384: certificate peer-AUTH.pem, identities the
# DNs of peer.AUTH and hostsec.AUTH.
lab_ss_conf() {
  local auth=$1 lid rid la ra
  if [ "$auth" = psk ]; then lid=$2 rid=${6:-$3} la="auth = psk" ra="auth = psk"
  else lid="\"$(pki_dn "peer.$auth")\"" rid="\"$(pki_dn "hostsec.$auth")\"" la="auth = pubkey
      certs = peer-$auth.pem" ra="auth = pubkey"
  fi
  cat <<EOC
connections {
  hs {
    version = 1
    aggressive = no
    local_addrs = $2
    remote_addrs = $3
    proposals = $4
    encap = no
    dpd_delay = 0
    local {
      $la
      id = $lid
    }
    remote {
      $ra
      id = $rid
    }
    children {
      hs {
        mode = transport
        esp_proposals = $5
        start_action = none
      }
    }
  }
}
EOC
  lab_swanctl_secrets "${7:-$LAB_PSK_DEFAULT}"
}
# lab_ls_conf AUTH LEFT RIGHT IKE PHASE2ALG [ENCAPSULATION=no] [RIGHT_OWN=RIGHT]: a whole ipsec.conf (lab_ls_setup
# and conn "hs": IKEv1, transport, no PFS, no rekey, auto=add) from LEFT (the guest) to RIGHT. AUTH psk: the
# identities are the addresses (RIGHT_OWN: the right's own address behind a NAT); rsa: rsasig with the
# certificate peer-rsa; p256|p384: ecdsa with peer-AUTH (libreswan 4.10 refuses ECDSA with IKEv1).
lab_ls_conf() {
  local auth=$1 a
  case $auth in
    psk) a="    authby=secret
    leftid=$2
    rightid=${7:-$3}";;
    *) a="    authby=$( [ "$auth" = rsa ] && echo rsasig || echo ecdsa )
    leftcert=peer-$auth
    leftid=%fromcert
    rightid=\"$(pki_dn "hostsec.$auth")\"
    rightca=%same";;
  esac
  lab_ls_setup
  cat <<EOC

conn hs
    ikev2=no
$a
    type=transport
    left=$2
    right=$3
    ike=$4
    phase2=esp
    phase2alg=$5
    pfs=no
    encapsulation=${6:-no}
    rekey=no
    auto=add
EOC
}
# lab_ls_load GUEST FILE: install FILE as the guest's ipsec.conf and (re)add conn "hs"; prints libreswan's complaint
# and fails when it refuses it (pluto writes why it did not add a conn to its log, not always to whack's output)
lab_ls_load() {
  local out rc mark why
  mark=$(lab_peer_log_mark ls "$1")
  [ "$2" -ef "$LAB_RUN/$1/ipsec.conf" ] || cp "$2" "$LAB_RUN/$1/ipsec.conf" || return 1
  out=$(lab_gexec "$1" 'cp /lab/ipsec.conf /etc/ipsec.conf; ipsec auto --delete hs >/dev/null 2>&1; ipsec auto --add hs 2>&1; ipsec auto --rereadsecrets 2>&1' 60); rc=$?
  why=$(lab_peer_log_since ls "$1" "$mark" | grep -m 1 -E 'failed to add (IKEv1 )?connection' | lab_pluto_text)
  [ -n "$why" ] || why=$(grep -i -m 1 '^While loading' <<< "$out")
  if [ $rc -ne 0 ] || [ -n "$why" ] || grep -qiE 'error|not supported|unknown|invalid|failed|did not load' <<< "$out"; then
    echo "${why:-$(echo "$out" | tr '\n' ' ' | sed 's/  */ /g')}"; return 1
  fi
}
# lab_ls_up GUEST: ipsec auto --up hs; prints pluto's last verdict line, fails unless the IPsec SA is established
lab_ls_up() {
  local out rc
  out=$(lab_gexec "$1" 'ipsec auto --up hs 2>&1' 60); rc=$?
  { [ "$rc" = 0 ] && ! grep -q 'IPsec SA established' <<< "$out"; } && rc=1
  grep -E 'IPsec SA established|failed|FAIL|timed out' <<< "$out" | tail -n 1
  return "$rc"
}

# lab_xfrm_pair XFRM_FILE REMOTE LOCAL: the guest's ESP pair with REMOTE from its `ip xfrm state` (LOCAL: the guest's
# own address): "SPI_IN SPI_OUT" (the guest's view), nothing when it does not hold both
lab_xfrm_pair() {
  lab_xfrm_records < "$1" | awk -v h="$2" -v l="$3" '$1 == h && $2 == l { i = $3 } $1 == l && $2 == h { o = $3 } END { if (i != "" && o != "") print i, o }'
}
# lab_record_keys RECORD: the SPI, algorithms and keys of an SA record (without the addresses, which differ across a NAT)
lab_record_keys() { awk 'NF { print $3, $4, $5, $6, $7 }' <<< "$1"; }
# lab_keys_cmp XFRM_FILE ESP_SA_FILE SPI_IN SPI_OUT: the guest kernel's ESP SAs (SPIs in the guest's view) against
# hostsec's key log (esp_sa): "" and true when keys and algorithms are equal both ways, else the first difference
lab_keys_cmp() {
  local recs uat
  recs=$(lab_xfrm_records < "$1"); uat=$(lab_uat_records < "$2" 2>/dev/null)
  lab_record_cmp kernel "$(lab_record_keys "$(lab_record_for_spi "$3" <<< "$recs")")" \
                 hostsec-esp_sa "$(lab_record_keys "$(lab_record_for_spi "$3" <<< "$uat")")" &&
  lab_record_cmp kernel "$(lab_record_keys "$(lab_record_for_spi "$4" <<< "$recs")")" \
                 hostsec-esp_sa "$(lab_record_keys "$(lab_record_for_spi "$4" <<< "$uat")")"
}

# ---------------------------------------------------------------- misc
# lab_lock: serialize lab runs on this machine (one namespace lab-host, guest names, run dirs). Holds fd 9,
# which long-running children must not inherit (start them with 9>&-), or they keep the lock after the run.
lab_lock() {
  mkdir -p "$LAB_RUN"
  exec 9> "$LAB_RUN/.lock"
  flock -n 9 || { echo "another lab run holds $LAB_RUN/.lock; waiting up to ${LAB_LOCK_WAIT:-600}s" >&2
                  flock -w "${LAB_LOCK_WAIT:-600}" 9; } || lab_die "could not get the lab lock $LAB_RUN/.lock"
}
# lab_wait_until TIMEOUT_S COMMAND...: run COMMAND every 0.2 s until it succeeds; fails after TIMEOUT_S
lab_wait_until() {
  local end=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  while :; do
    "$@" && return 0
    [ "$(date +%s%N)" -lt "$end" ] || return 1
    sleep 0.2
  done
}
# lab_ms_fmt MS -> "12.345s"
lab_ms_fmt() { printf '%d.%03ds' $(( $1 / 1000 )) $(( $1 % 1000 )); }

# ---------------------------------------------------------------- packet capture and IKEv1 decryption check
# lab_capture_start FILE [PCAP_FILTER] [IFACE=br0]: tcpdump on br0 in the lab namespace (sees traffic to/from the
# daemon on the bridge's own address, too); sets LAB_CAPTURE_PID. Default filter: IKE, NAT-T and ESP.
# --immediate-mode: without it the last packets before lab_capture_stop could still sit in the kernel's capture
# buffer (block timeout) and be lost when tcpdump is stopped ("6 received by filter, 4 captured").
LAB_CAPTURE_PID=''
lab_capture_start() {
  ip netns exec "$LAB_NETNS" tcpdump -i "${3:-br0}" --immediate-mode -nn -s 0 -U -w "$1" \
    "${2:-udp port 500 or udp port 4500 or esp}" > "$1.log" 2>&1 9>&- &
  LAB_CAPTURE_PID=$!
  lab_wait_until 10 grep -qs 'listening on' "$1.log" || { echo "tcpdump did not start: $(cat "$1.log")" >&2; return 1; }
}
lab_capture_stop() {
  [ -n "$LAB_CAPTURE_PID" ] || return 0
  sleep 0.5; kill "$LAB_CAPTURE_PID" 2>/dev/null; wait "$LAB_CAPTURE_PID" 2>/dev/null; LAB_CAPTURE_PID=''
}
# lab_ikev1_decrypted PCAP TABLE_FILE: decrypt the capture with a Wireshark ikev1_decryption_table file
# (lines "CKY-I,Ka") and print "CKY-I N" per initiator cookie, N = number of Main Mode messages (exchange type
# 2) that tshark could decrypt (their ID payload dissects). A correct Ka gives 2 (MM5 and MM6).
lab_ikev1_decrypted() {
  local -a args=()
  local l
  while IFS= read -r l; do
    l=${l%$'\r'}; [ -n "$l" ] && args+=(-o "uat:ikev1_decryption_table:$l")
  done < "$2"
  { tshark -r "$1" -n "${args[@]}" -Y 'isakmp.exchangetype == 2 && isakmp.id.type' -T fields -e isakmp.ispi 2>&1 1>&3 |
      grep -v 'Running as user' >&2; } 3>&1 | sort | uniq -c | awk '{print $2, $1}'
}
# lab_charon_ka: stdin = charon log at ike level 4; prints the hex of the last "encryption key Ka" dump
lab_charon_ka() {
  awk '
    /encryption key Ka => [0-9]+ bytes/ { n = $0; sub(/.*Ka => /, "", n); n = n + 0; ka = ""; grab = 1; next }
    grab && /\] .*[ \t]+[0-9]+: / {
      line = $0; sub(/.*[ \t][0-9]+: /, "", line)
      m = split(line, b, " ")
      for (i = 1; i <= m && length(ka) < 2 * n; i++) if (b[i] ~ /^[0-9A-Fa-f][0-9A-Fa-f]$/) ka = ka tolower(b[i])
      if (length(ka) >= 2 * n) { last = ka; grab = 0 }
      next
    }
    { grab = 0 }
    END { if (last != "") print last }
  '
}

# ---------------------------------------------------------------- ESP traffic checks (captures, decryption, counters)
# Used by selftest-esp.sh (strongSwan <-> strongSwan) and tests/interop/strongswan-esp.sh (hostsec <-> strongSwan).

# lab_xfrm_stats: `ip -s xfrm state` (stdin) -> "SPI SRC DST BYTES PACKETS REPLAY_WINDOW REPLAY FAILED" per ESP SA
#   BYTES/PACKETS: "lifetime current" (what the SA protected); REPLAY_WINDOW: outside the window, REPLAY:
#   duplicates, FAILED: integrity check failed (the kernel's per-SA statistics)
lab_xfrm_stats() {
  awk '
    function flush() { if (spi != "") print spi, src, dst, by, pk, rw, rp, fl; spi = ""; by = pk = rw = rp = fl = "-" }
    BEGIN { spi = "" }
    /^src / { flush(); src = $2; dst = $4; next }
    /^[ \t]+proto esp spi / { s = tolower($4); sub(/^0x/, "", s); sub(/\(.*/, "", s); while (length(s) < 8) s = "0" s; spi = s; next }
    /^[ \t]+lifetime current:/ { cur = 1; next }
    cur && /\(bytes\), .*\(packets\)/ { b = $1; sub(/\(bytes\),?/, "", b); p = $2; sub(/\(packets\)/, "", p); by = b; pk = p; cur = 0; next }
    /^[ \t]+replay-window [0-9]+ replay [0-9]+ failed [0-9]+/ { rw = $2; rp = $4; fl = $6; next }
    END { flush() }
  '
}
# lab_xfrm_stat_of SPI FIELD: one field (bytes|packets|replay_window|replay|failed) of lab_xfrm_stats output (stdin)
lab_xfrm_stat_of() {
  awk -v s="$1" -v f="$2" 'BEGIN { c = (f == "bytes") ? 4 : (f == "packets") ? 5 : (f == "replay_window") ? 6 : (f == "replay") ? 7 : 8 }
                           $1 == s { v = $c } END { print (v == "" ? "-" : v) }'
}
# lab_near A B [ABS=5] [PERCENT=2]: true when |A-B| <= max(ABS, PERCENT % of the larger)
lab_near() {
  awk -v a="$1" -v b="$2" -v t="${3:-5}" -v p="${4:-2}" 'BEGIN {
    if (a !~ /^[0-9]+$/ || b !~ /^[0-9]+$/) exit 1
    d = a - b; if (d < 0) d = -d; m = (a > b ? a : b) * p / 100; if (m < t) m = t; exit !(d <= m) }'
}

# lab_pcap_classify PCAP [ADDR_A ADDR_B]: what went over the wire, from tshark WITHOUT ESP decryption (so a
# packet inside ESP is counted as esp, never as its payload). Only packets between A and B when given (either
# direction; IPv4 or IPv6). Prints one line of key=value:
#   total esp ike (UDP 500) natt (UDP 4500) nd (ICMPv6 133-137) arp icmp_echo icmp_other tcp udp other
# "Cleartext" for the ESP checks = icmp_echo + tcp + udp (+ icmp_other: errors and the like).
lab_pcap_classify() {
  local ea=${2:-} eb=${3:-} yflt=() ip=ip
  [[ $ea == *:* ]] && ip=ipv6
  [ -n "$ea" ] && yflt=(-Y "($ip.src == $ea && $ip.dst == $eb) || ($ip.src == $eb && $ip.dst == $ea) || arp")
  tshark -r "$1" -n -o esp.enable_encryption_decode:FALSE "${yflt[@]}" \
      -T fields -E separator=/t -e frame.protocols -e udp.srcport -e udp.dstport -e icmp.type -e icmpv6.type 2>/dev/null |
    awk -F'\t' '
      BEGIN { split("total esp ike natt nd arp icmp_echo icmp_other tcp udp other", K, " ") }
      {
        c["total"]++; p = ":" $1 ":"
        if (p ~ /:esp:/) c["esp"]++
        else if (p ~ /:arp:/) c["arp"]++
        else if (p ~ /:udp:/ && ($2 == 500 || $3 == 500)) c["ike"]++
        else if (p ~ /:udp:/ && ($2 == 4500 || $3 == 4500)) c["natt"]++
        else if (p ~ /:icmpv6:/ && $5 >= 133 && $5 <= 137) c["nd"]++
        else if (p ~ /:icmp:/ && ($4 == 0 || $4 == 8)) c["icmp_echo"]++
        else if (p ~ /:icmpv6:/ && ($5 == 128 || $5 == 129)) c["icmp_echo"]++
        else if (p ~ /:icmp:|:icmpv6:/) c["icmp_other"]++
        else if (p ~ /:tcp:/) c["tcp"]++
        else if (p ~ /:udp:/) c["udp"]++
        else c["other"]++
      }
      END { for (i = 1; i <= 11; i++) printf "%s=%d%s", K[i], c[K[i]], (i < 11 ? " " : "\n") }'
}
# lab_pcap_cleartext_tcpdump PCAP ADDR_A ADDR_B: the same question asked with a tcpdump filter (a second opinion):
# number of cleartext ICMP echo / TCP / UDP (other than 500, 4500) packets between A and B
lab_pcap_cleartext_tcpdump() {
  tcpdump -r "$1" -nn "host $2 and host $3 and (tcp or (udp and not port 500 and not port 4500) or icmp[0] == 0 or icmp[0] == 8 or (icmp6 and (ip6[40] == 128 or ip6[40] == 129)))" 2>/dev/null | wc -l
}
# lab_pcap_cut IN OUT EPOCH: packets of IN captured before EPOCH (s, may be fractional) -> OUT (keeps results small)
lab_pcap_cut() { tshark -r "$1" -Y "frame.time_epoch < $3" -w "$2" 2>/dev/null; }

# lab_uat_lines ESP_SA_FILE [SPI...]: the Wireshark ESP SA UAT lines of the file as they are (no comments, no blank
# lines), only those for the given SPIs when SPIs are given (8 hex digits; the file may write 0x..., any case)
lab_uat_lines() {
  local file=$1; shift
  awk -v want="$*" '
    BEGIN { n = split(tolower(want), w, " "); for (i = 1; i <= n; i++) ok[w[i]] = 1 }
    { sub(/\r$/, "") }
    /^[ \t]*(#|$)/ { next }
    n == 0 { print; next }
    { line = $0; sub(/^[ \t]*"/, "", line); split(line, f, /"[ \t]*,[ \t]*"/)
      s = tolower(f[4]); sub(/^0x/, "", s); while (length(s) < 8) s = "0" s
      if (s in ok) print }' "$file"
}
# lab_esp_decrypt PCAP ESP_SA_FILE [SPI...]: decrypt with Wireshark ESP SA UAT lines (hostsec's key log esp_sa as it
# is, or lab_records_to_uat output; only the lines of the given SPIs when SPIs are given: one line tshark rejects
# makes it refuse the whole table), with the ICV check on. tshark's errors go to $LAB_TSHARK_ERR (default
# /dev/null). One tab-separated line per ESP packet:
#   FRAME SRC DST SPI(8 hex) SEQ ICV(good|bad|-) INNER(protocols after esp, "-" when not decrypted) TCP_PAYLOAD_HEX
# The ICV verdict comes from a second pass with TCP and ICMP dissection off: tshark's ESP dissector adds the verdict
# after dissecting the inner packet, so an exception in a TCP payload dissector (random iperf3 bytes that a heuristic
# takes for some protocol) left a correctly authenticated packet without any verdict.
lab_esp_decrypt() {
  local -a args=()
  local l p=$1 file=$2 icv
  shift 2
  while IFS= read -r l; do args+=(-o "uat:esp_sa:$l"); done < <(lab_uat_lines "$file" "$@")
  icv=$(mktemp) || return 1
  tshark -r "$p" -n -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE "${args[@]}" \
      --disable-protocol tcp --disable-protocol icmp --disable-protocol icmpv6 \
      -Y esp -T fields -E separator=/t -E occurrence=f -e frame.number -e esp.icv_good -e esp.icv_bad \
      2>> "${LAB_TSHARK_ERR:-/dev/null}" > "$icv"
  tshark -r "$p" -n -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE "${args[@]}" \
      -Y esp -T fields -E separator=/t -E occurrence=f -e frame.number -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst \
      -e esp.spi -e esp.sequence -e frame.protocols -e tcp.payload 2>> "${LAB_TSHARK_ERR:-/dev/null}" |
    awk -F'\t' -v OFS='\t' -v icvfile="$icv" '
      BEGIN { while ((getline l < icvfile) > 0) { split(l, f, "\t")
                v[f[1]] = (f[2] == "1" || f[2] == "True") ? "good" : (f[3] == "1" || f[3] == "True") ? "bad" : "-" } }
      {
      spi = tolower($6); sub(/^0x/, "", spi); while (length(spi) < 8) spi = "0" spi
      icv = ($1 in v) ? v[$1] : "-"
      inner = $8; if (!sub(/^.*:esp:/, "", inner)) inner = "-"
      print $1, ($2 != "" ? $2 : $3), ($4 != "" ? $4 : $5), spi, $7, icv, inner, ($9 == "" ? "-" : $9)
    }'
  rm -f "$icv"
}
# lab_esp_decrypt_summary SPI: from lab_esp_decrypt output (stdin): "esp=N decrypted=N icv_good=N icv_bad=N"
lab_esp_decrypt_summary() {
  awk -F'\t' -v s="$1" '$4 == s { n++; if ($7 != "-") d++; if ($6 == "good") g++; if ($6 == "bad") b++ }
    END { printf "esp=%d decrypted=%d icv_good=%d icv_bad=%d\n", n, d, g, b }'
}
# lab_esp_find_marker TEXT: frames (stdin: lab_esp_decrypt output) whose decrypted TCP payload contains TEXT,
# as "FRAME SRC DST SPI ICV" lines
lab_esp_find_marker() {
  local hex
  hex=$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')
  awk -F'\t' -v h="$hex" 'index(tolower($8), h) { print $1, $2, $3, $4, $6 }'
}
# lab_marker NAME: a marker text unique to this run ("HOSTSEC-MARKER-NAME-<random>")
lab_marker() { printf 'HOSTSEC-MARKER-%s-%s' "$1" "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"; }

# lab_ping_result OUTPUT: "tx rx" from ping's summary line
lab_ping_result() { sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) \(packets \)\{0,1\}received.*/\1 \2/p' <<< "$1" | tail -n 1; }
# lab_iperf_mbps JSON_FILE: receiver throughput in Mbit/s (end.sum_received), or fails
lab_iperf_mbps() { jq -er '.end.sum_received.bits_per_second / 1e6 | . * 10 | round / 10' "$1" 2>/dev/null; }

# lab_inject_up / lab_inject_down: a veth pair in the lab namespace for injecting captured frames into br0 as if a
# guest had sent them: inj0 is a bridge port, frames written to inj1 enter the bridge through it. No addresses
# (addrgenmode none: silent). lab_inject PCAP [esp-inject.py options]: send one packet of PCAP through inj1 with
# inj1's MAC as source (the bridge must not learn a guest's MAC on the injection port); prints what was sent.
lab_inject_up() {
  ip -n "$LAB_NETNS" link add inj0 type veth peer name inj1 || return 1
  ip -n "$LAB_NETNS" link set inj1 addrgenmode none 2>/dev/null
  ip -n "$LAB_NETNS" link set inj0 addrgenmode none 2>/dev/null
  ip -n "$LAB_NETNS" link set inj0 master br0 up && ip -n "$LAB_NETNS" link set inj1 up
}
lab_inject_down() { ip -n "$LAB_NETNS" link del inj0 2>/dev/null || true; }
lab_inject() { local p=$1; shift; ip netns exec "$LAB_NETNS" python3 "$LAB_DIR/esp-inject.py" --pcap "$p" --iface inj1 "$@"; }
# lab_capture_one FILE FILTER [TIMEOUT_S=20] [IFACE=br0]: capture exactly one packet matching FILTER (waits for it);
# start it in the background, send traffic, then wait for its PID (LAB_CAPTURE_ONE_PID)
export LAB_CAPTURE_ONE_PID=''
lab_capture_one() {
  timeout "${3:-20}" ip netns exec "$LAB_NETNS" tcpdump -i "${4:-br0}" --immediate-mode -nn -s 0 -c 1 -U -w "$1" "$2" \
    > "$1.log" 2>&1 9>&- &
  LAB_CAPTURE_ONE_PID=$!
  lab_wait_until 10 grep -qs 'listening on' "$1.log" || { echo "tcpdump did not start: $(cat "$1.log")" >&2; return 1; }
}

# lab_host_state NETNS: the host side that a daemon must restore, normalized for comparison: ip rule (v4, v6),
# routes of every table (v4, v6), nft ruleset (counter values blanked), links (name, flags, master, state, MAC)
lab_host_state() {
  local ns=${1:-$LAB_NETNS}
  echo "## ip -4 rule"; ip -n "$ns" -4 rule show 2>&1
  echo "## ip -6 rule"; ip -n "$ns" -6 rule show 2>&1
  echo "## ip -4 route show table all"; ip -n "$ns" -4 route show table all 2>&1
  echo "## ip -6 route show table all"; ip -n "$ns" -6 route show table all 2>&1 | sed -E 's/ expires [0-9]+sec//'
  echo "## nft list ruleset"; ip netns exec "$ns" nft list ruleset 2>&1 | sed -E 's/packets [0-9]+ bytes [0-9]+/packets - bytes -/'
  echo "## ip link"; ip -n "$ns" -o link show 2>&1 | sed -E 's/^[0-9]+: //; s/\\ +/ /g'
}

# ---------------------------------------------------------------- traffic between endpoints
# An endpoint EP is "host" (the lab namespace, where the daemon under test lives) or "guest:NAME". Commands on the
# host run under `timeout` in the namespace; long-running helpers there (listeners, iperf3 servers) are started in
# the background and stopped by their PID. Addresses with a ":" are IPv6.

# lab_ep_sh EP 'shell command' [TIMEOUT_S=60]: run a command on the endpoint; output and exit code as lab_gexec
lab_ep_sh() {
  case $1 in
    host) timeout "${3:-60}" ip netns exec "$LAB_NETNS" bash -c "$2" 2>&1 9>&-;;
    guest:*) lab_gexec "${1#guest:}" "$2" "${3:-60}";;
    *) echo "lab_ep_sh: bad endpoint '$1'" >&2; return 2;;
  esac
}
# lab_ep_ping EP DST [COUNT=5] [EXTRA_ARGS]: ping -c COUNT -i 0.2 -W 2; prints "tx rx" (fails unless rx = COUNT);
# EXTRA_ARGS e.g. "-w 30" (wait up to 30 s for COUNT replies: on-demand negotiation, request fallback)
lab_ep_ping() {
  local out n=${3:-5} r tmo=$(( ${3:-5} + 30 ))
  [[ ${4:-} =~ -w\ ([0-9]+) ]] && tmo=$(( BASH_REMATCH[1] + 10 ))
  out=$(lab_ep_sh "$1" "ping -n -c $n -i 0.2 -W 2 ${4:-} $2" "$tmo")
  r=$(lab_ping_result "$out")
  echo "${r:-0 0}"
  [ -n "$r" ] && [ "${r#* }" = "$n" ]
}
# lab_tcp_listen EP ADDR PORT OUTFILE_ON_EP: one-connection TCP listener writing what it receives to OUTFILE (on the
# host: a path of the host; in a guest: a path in the guest). Sets LAB_LISTEN_PID (host: the socat PID; guest: the
# nc PID in the guest). The listener exits after one connection.
LAB_LISTEN_PID=''
lab_tcp_listen() {
  local ep=$1 addr=$2 port=$3 out=$4
  case $ep in
    host)
      if [[ $addr == *:* ]]; then
        ip netns exec "$LAB_NETNS" socat -u "TCP6-LISTEN:$port,bind=[$addr],reuseaddr" "CREATE:$out" > "$out.log" 2>&1 9>&- &
      else
        ip netns exec "$LAB_NETNS" socat -u "TCP4-LISTEN:$port,bind=$addr,reuseaddr" "CREATE:$out" > "$out.log" 2>&1 9>&- &
      fi
      LAB_LISTEN_PID=$!
      lab_wait_until 5 lab_tcp_listening host "$addr" "$port";;
    guest:*)
      LAB_LISTEN_PID=$(lab_gexec "${ep#guest:}" "rm -f $out; setsid nc -l -s $addr -p $port </dev/null >$out 2>$out.err & echo \$!; for i in \$(seq 50); do ss -ltnH | grep -q ':$port ' && exit 0; sleep 0.1; done; exit 1" 20) ||
        { echo "listener on $ep $addr:$port did not start" >&2; return 1; };;
  esac
}
lab_tcp_listening() { lab_ep_sh "$1" "ss -ltnH" 10 | awk -v p=":$3" '{ if (substr($4, length($4) - length(p) + 1) == p) f = 1 } END { exit !f }'; }
# lab_tcp_send EP ADDR PORT TEXT: send TEXT + newline over one TCP connection and close
lab_tcp_send() {
  case $1 in
    host)
      if [[ $2 == *:* ]]; then printf '%s\n' "$4" | timeout 20 ip netns exec "$LAB_NETNS" socat -u - "TCP6:[$2]:$3" 9>&-
      else printf '%s\n' "$4" | timeout 20 ip netns exec "$LAB_NETNS" socat -u - "TCP4:$2:$3" 9>&-; fi;;
    guest:*) lab_gexec "${1#guest:}" "printf '%s\n' '$4' | nc -N -w 10 $2 $3" 30;;
  esac
}
# lab_marker_xfer FROM_EP TO_EP TO_ADDR PORT MARKER WORKDIR: TO listens on TO_ADDR:PORT, FROM sends MARKER; true when
# TO received exactly MARKER. Prints what was received (or why not). Listeners are stopped by PID.
lab_marker_xfer() {
  local from=$1 to=$2 addr=$3 port=$4 m=$5 w=$6 got='' f pid
  case $to in host) f=$w/marker-$port.txt;; *) f=/tmp/marker-$port.txt;; esac
  lab_tcp_listen "$to" "$addr" "$port" "$f" || { echo "no listener"; return 1; }
  pid=$LAB_LISTEN_PID
  lab_tcp_send "$from" "$addr" "$port" "$m" > "$w/marker-send-$port.log" 2>&1 || { echo "send failed: $(head -c 200 "$w/marker-send-$port.log")"; }
  case $to in
    host) lab_wait_until 5 bash -c "! kill -0 $pid 2>/dev/null"; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
          got=$(cat "$f" 2>/dev/null);;
    *) got=$(lab_gexec "${to#guest:}" "for i in \$(seq 25); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done; kill $pid 2>/dev/null; cat $f" 20);;
  esac
  echo "${got:-<nothing>}"
  [ "$got" = "$m" ]
}
# lab_iperf_server_start EP ADDR [PORT=5201]: iperf3 server on EP (host: background process, PID in
# LAB_IPERF_PID; guest: iperf3 -D, PID file /tmp/iperf3-PORT.pid in the guest). lab_iperf_server_stop EP [PORT]
LAB_IPERF_PID=''
lab_iperf_server_start() {
  local port=${3:-5201}
  case $1 in
    host)
      ip netns exec "$LAB_NETNS" iperf3 -s -B "$2" -p "$port" > "${LAB_IPERF_LOG:-/dev/null}" 2>&1 9>&- &
      LAB_IPERF_PID=$!
      lab_wait_until 5 lab_tcp_listening host "$2" "$port";;
    guest:*) lab_gexec "${1#guest:}" "iperf3 -s -D -B $2 -p $port -I /tmp/iperf3-$port.pid; for i in \$(seq 50); do ss -ltnH | grep -q ':$port ' && exit 0; sleep 0.1; done; exit 1" 20 >/dev/null;;
  esac
}
lab_iperf_server_stop() {
  case $1 in
    host) [ -n "$LAB_IPERF_PID" ] && { kill "$LAB_IPERF_PID" 2>/dev/null; wait "$LAB_IPERF_PID" 2>/dev/null; LAB_IPERF_PID=''; } ;;
    guest:*) lab_gexec "${1#guest:}" "[ -f /tmp/iperf3-${2:-5201}.pid ] && kill \$(cat /tmp/iperf3-${2:-5201}.pid); rm -f /tmp/iperf3-${2:-5201}.pid" 20 >/dev/null;;
  esac
  return 0
}
# lab_iperf_guest GUEST SERVER_ADDR SECONDS JSON_NAME [-R]: iperf3 client in the guest (JSON written to the guest's
# share as cases/JSON_NAME, i.e. $LAB_RUN/GUEST/cases/JSON_NAME on the host); -R: the server sends. Prints Mbit/s.
lab_iperf_guest() {
  local g=$1 rc
  lab_gexec "$g" "mkdir -p /lab/cases; iperf3 -c $2 -p 5201 -t $3 ${5:-} -J > /lab/cases/$4 2>&1" $(( $3 + 60 )) >/dev/null; rc=$?
  lab_iperf_mbps "$LAB_RUN/$g/cases/$4" || { echo "iperf3 failed (rc=$rc): $(jq -r '.error // empty' "$LAB_RUN/$g/cases/$4" 2>/dev/null | head -c 200)"; return 1; }
}
