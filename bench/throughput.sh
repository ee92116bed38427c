#!/bin/bash
# Datapath throughput benchmark (a script, not a timed test): one iperf3 TCP stream between two network
# namespaces joined by a veth pair, 3 runs of 10 s per setup, in one go so that the figures are comparable:
#   plain veth | hostsec AES-GCM-128 | hostsec AES-CBC-256/HMAC-SHA-256-128 | boringtun (userspace WireGuard)
# Reported as Gbit/s (median of the runs) and as ratios to plain veth and to boringtun. Needs root.
# Usage: bench/throughput.sh [-t SECONDS] [-n RUNS]     (HOSTSEC_BIN_DIR: default target/release)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
SECS=10 RUNS=3
while getopts t:n: o; do case $o in t) SECS=$OPTARG;; n) RUNS=$OPTARG;; *) exit 2;; esac; done
need=()
for p in iperf3:iperf3 wireguard-tools:wg iproute2:ip; do command -v "${p#*:}" >/dev/null || need+=("${p%%:*}"); done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; }
BT=$(command -v boringtun-cli || echo "$HOME/.cargo/bin/boringtun-cli")
[ -x "$BT" ] || { echo "installing boringtun-cli (cargo install boringtun-cli)"; cargo install -q boringtun-cli; BT=$HOME/.cargo/bin/boringtun-cli; }
[ -x "$BIN/hostsecd" ] || (cd "$ROOT" && cargo build --release -q -p hostsecd -p hostsec)
W=$(mktemp -d /tmp/hostsec-tp.XXXXXX)
A=hstp-a B=hstp-b
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add tp-a netns $A type veth peer name tp-b netns $B
ip -n $A addr add 198.51.100.1/24 dev tp-a; ip -n $B addr add 198.51.100.2/24 dev tp-b
for n in $A $B; do ip -n $n link set lo up; done
ip -n $A link set tp-a up; ip -n $B link set tp-b up

measure() { # label target-address
  local label=$1 dst=$2 vals=()
  for i in $(seq "$RUNS"); do
    ip netns exec $B iperf3 -s -1 -D --pidfile "$W/iperf.pid" >/dev/null; sleep 0.3
    local bps
    ip netns exec $A iperf3 -c "$dst" -t "$SECS" -J > "$W/iperf-$i.json" || true
    bps=$(python3 - "$W/iperf-$i.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bps = d.get("end", {}).get("sum_received", {}).get("bits_per_second", 0)
if not bps or d.get("error"):
    # Say why a run has no figure instead of averaging a silent zero in.
    iv = [round(x["sum"]["bits_per_second"] / 1e9, 2) for x in d.get("intervals", [])]
    print("    run without a result: %s; per-second Gbit/s: %s" % (d.get("error", "no error given"), iv), file=sys.stderr)
print(bps)
PY
)
    vals+=("$bps")
    sleep 0.3
  done
  local med
  med=$(python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "${vals[@]}")
  python3 - "$label" "$med" "${vals[@]}" <<'PY'
import sys
label, med, runs = sys.argv[1], float(sys.argv[2]), [float(x) / 1e9 for x in sys.argv[3:]]
print("%-40s %6.2f Gbit/s   (runs: %s)" % (label, med / 1e9, " ".join("%.2f" % x for x in runs)))
PY
  echo "$label=$med" >> "$W/values"
}

echo "== $(date -u +%FT%TZ) $(nproc) cores, kernel $(uname -r), $SECS s x $RUNS runs per setup"
measure "plain veth" 198.51.100.2

hostsec_run() { # label esp-transform
  local label=$1 esp=$2
  for s in a b; do
    local me=198.51.100.1 peer=198.51.100.2 ns=$A
    [ $s = b ] && { me=198.51.100.2; peer=198.51.100.1; ns=$B; }
    cat > "$W/$s.toml" <<CONF
[global]
listen = ["$me"]
control_socket = "$W/$s.sock"
[[rule]]
name = "peer"
remote = ["$peer"]
psk = "throughput-benchmark-psk-0123"
CONF
    HOSTSEC_OFFER_ESP=$esp ip netns exec $ns "$BIN/hostsecd" --config "$W/$s.toml" --foreground 2>>"$W/$s.log" & PIDS+=($!)
    eval "PID_$s=$!"
  done
  for s in a b; do for i in $(seq 50); do [ -S "$W/$s.sock" ] && break; sleep 0.1; done; done
  "$BIN/hostsec" --socket "$W/a.sock" initiate peer >/dev/null
  measure "$label" 198.51.100.2
  "$BIN/hostsec" --socket "$W/a.sock" stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("    datapath:", {k: v for k, v in d["esp"]["datapath"].items() if v}, "drops:", d["esp"]["drops"])'
  echo "    Quick Mode SA pairs at the end: $("$BIN/hostsec" --socket "$W/a.sock" sas --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["quick_mode"]))') (100,000 KB lifetime: rekeyed by volume)"
  kill "$PID_a" "$PID_b"; wait "$PID_a" "$PID_b" 2>/dev/null || true
}
hostsec_run "hostsec ESP AES-GCM-128" aes-gcm-16-128
hostsec_run "hostsec ESP AES-CBC-256/HMAC-SHA-256-128" aes-cbc-256/hmac-sha256-128

# boringtun: userspace WireGuard over the same veth, tunnel addresses 203.0.113.1/.2.
ka=$(wg genkey); kb=$(wg genkey)
for s in a b; do
  ns=$A name=wgta me=203.0.113.1 key=$ka peerpub=$(echo "$kb" | wg pubkey) ep=198.51.100.2 port=51820 allowed=203.0.113.2/32
  [ $s = b ] && { ns=$B; name=wgtb; me=203.0.113.2; key=$kb; peerpub=$(echo "$ka" | wg pubkey); ep=198.51.100.1; allowed=203.0.113.1/32; }
  ip netns exec $ns env WG_SUDO=1 "$BT" "$name" --foreground --disable-drop-privileges -t 2 >/dev/null 2>&1 & PIDS+=($!)
  for i in $(seq 50); do ip -n $ns link show $name >/dev/null 2>&1 && break; sleep 0.1; done
  printf '%s\n' "$key" > "$W/$s.key"
  ip netns exec $ns wg set $name private-key "$W/$s.key" listen-port $port peer "$peerpub" allowed-ips $allowed endpoint $ep:$port
  ip -n $ns addr add $me/24 dev $name; ip -n $ns link set $name up
done
ip netns exec $A ping -c 1 -W 2 203.0.113.2 >/dev/null
measure "boringtun (WireGuard, userspace)" 203.0.113.2

echo "== ratios"
python3 - "$W/values" <<'PY'
import sys
v = dict(l.strip().split("=", 1) for l in open(sys.argv[1]))
v = {k: float(x) for k, x in v.items()}
plain, bt = v["plain veth"], v["boringtun (WireGuard, userspace)"]
for k, x in v.items():
    print(f"{k:40s} {x/plain:6.1%} of plain veth   {x/bt:5.2f}x boringtun")
PY
