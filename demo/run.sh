#!/bin/bash
# hostsec demo: a print server protected with IPsec.
#
#   printserver  198.51.100.10   hostsecd, rule "print-clients": require IPsec with 198.51.100.20-198.51.100.99
#   client       198.51.100.20   hostsecd, rule "print-server": require IPsec with 198.51.100.10
#   visitor      198.51.100.66   no IPsec at all (inside the print-clients range)
#
# The client sends a print job over TCP port 9100 (raw printing). IKE (Main Mode with a pre-shared key, Quick
# Mode) starts on the first packet; the job travels in ESP transport mode; a capture on the switch proves that
# only IKE and ESP crossed it; the visitor's cleartext job is dropped. Then the SAs, the counters and the logs.
# Runs as root (network namespaces); everything it creates is removed at the end, also on failure.
# Usage: bash demo/run.sh      (builds the release binaries first if they are missing)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }
need=()
for p in iproute2:ip nftables:nft tcpdump:tcpdump netcat-openbsd:nc iputils-ping:ping python3:python3; do
  command -v "${p#*:}" >/dev/null || need+=("${p%%:*}")
done
[ ${#need[@]} -eq 0 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; }
if [ ! -x "$BIN/hostsecd" ] || [ ! -x "$BIN/hostsec" ]; then
  command -v cargo >/dev/null || { echo "demo: cargo is needed to build hostsec (see README)"; exit 1; }
  (cd "$ROOT" && cargo build --release -p hostsecd -p hostsec)
fi
t0=$(date +%s.%N)
W=$(mktemp -d /tmp/hostsec-demo.XXXXXX)
SRV=hsdemo-printserver CLI=hsdemo-client VIS=hsdemo-visitor SW=hsdemo-switch
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for n in $SRV $CLI $VIS $SW; do ip netns del $n 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

say "a switch and three hosts: print server 198.51.100.10, client .20, visitor .66 (no IPsec)"
ip netns add $SW; ip -n $SW link add br0 type bridge; ip -n $SW link set br0 up
i=0
for h in $SRV:10 $CLI:20 $VIS:66; do
  ns=${h%:*} addr=198.51.100.${h#*:}; i=$((i + 1))
  ip netns add $ns
  ip link add eth0 netns $ns type veth peer name port$i netns $SW
  ip -n $SW link set port$i master br0 up
  ip -n $ns link set lo up; ip -n $ns addr add $addr/24 dev eth0; ip -n $ns link set eth0 up
done

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/0x/' > "$W/site.psk"
chmod 600 "$W/site.psk"
cat > "$W/printserver.toml" <<CONF
# The print server: every host of the print-clients range must use IPsec (cleartext from them is dropped).
[global]
listen = ["198.51.100.10"]
minimum_strength = "high"           # AES-GCM or AES-CBC+SHA-256, ECDH P-256/P-384
control_socket = "$W/printserver.sock"
key_log = "$W/keys"                 # only so that the demo can show the capture decrypted; off by default

[defaults]
psk_file = "$W/site.psk"            # mode 600, as hostsecd insists

[[rule]]
name = "print-clients"
remote = ["198.51.100.20-198.51.100.99"]
action = "require"
pfs = true
CONF
cat > "$W/client.toml" <<CONF
[global]
listen = ["198.51.100.20"]
minimum_strength = "high"
control_socket = "$W/client.sock"

[defaults]
psk_file = "$W/site.psk"

[[rule]]
name = "print-server"
remote = ["198.51.100.10"]
action = "require"
pfs = true
CONF
say "the print server's configuration"
sed 's/^/  /' "$W/printserver.toml"
run "$BIN/hostsec" config check "$W/printserver.toml"

say "start hostsecd on the print server and on the client"
ip netns exec $SRV "$BIN/hostsecd" --config "$W/printserver.toml" --foreground 2>"$W/printserver.log" & PIDS+=($!)
ip netns exec $CLI "$BIN/hostsecd" --config "$W/client.toml" --foreground 2>"$W/client.log" & PIDS+=($!)
for s in printserver client; do for k in $(seq 100); do [ -S "$W/$s.sock" ] && break; sleep 0.1; done; done
run "$BIN/hostsec" --socket "$W/printserver.sock" status

say "the printer listens on TCP 9100 (raw printing); a capture runs on the switch"
ip netns exec $SRV python3 -c '
import socket, sys, hashlib
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 9100)); s.listen(4)
for _ in range(2):
    c, a = s.accept(); data = b""
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    open(sys.argv[1], "a").write("job from %s: %d bytes, sha256 %s\n" % (a[0], len(data), hashlib.sha256(data).hexdigest()))
    c.close()' "$W/printed.txt" & PIDS+=($!)
ip netns exec $SW tcpdump -i br0 -nn -U -w "$W/wire.pcap" 'ip and not arp' >/dev/null 2>&1 & TD=$!; PIDS+=($TD)
sleep 1

say "the client sends a print job (a PostScript document) to 198.51.100.10:9100"
python3 - "$W/job.ps" <<'PY'
import sys
lines = ["%!PS-Adobe-3.0", "%%Title: hostsec demo job", "/Helvetica findfont 12 scalefont setfont"]
for i in range(4000):
    lines.append("72 %d moveto (Protected by IPsec ESP transport mode, line %d) show" % (720 - (i % 50) * 14, i))
    if i % 50 == 49:
        lines.append("showpage")
lines.append("%%EOF")
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
sha=$(sha256sum "$W/job.ps" | cut -d' ' -f1)
run ip netns exec $CLI nc -q 1 -w 10 198.51.100.10 9100 < "$W/job.ps"
sleep 0.5
echo "  sent     $(stat -c %s "$W/job.ps") bytes, sha256 $sha"
echo "  printed  $(grep 198.51.100.20 "$W/printed.txt" | cut -d' ' -f4-)"

say "the visitor (no IPsec) tries to print in cleartext: the print server drops it"
if ip netns exec $VIS nc -q 1 -w 3 198.51.100.10 9100 < "$W/job.ps" 2>/dev/null; then echo "  (connection accepted?!)"; else echo "  connection failed, as it should"; fi

sleep 0.5; kill $TD 2>/dev/null || true; wait $TD 2>/dev/null || true
say "what crossed the switch between client and print server"
count() { tcpdump -r "$W/wire.pcap" -nn "host 198.51.100.10 and host 198.51.100.20 and ($1)" 2>/dev/null | wc -l; }
esp=$(count "ip proto 50"); ike=$(count "udp port 500"); clear_tcp=$(count "tcp"); other=$(count "not ip proto 50 and not udp port 500")
printf '  ESP packets: %s   IKE packets: %s   cleartext TCP: %s   anything else: %s\n' "$esp" "$ike" "$clear_tcp" "$other"
if [ "$clear_tcp" = 0 ] && [ "$other" = 0 ] && [ "$esp" -gt 0 ]; then echo "  => only IKE and ESP: the print job never crossed the network in cleartext"; else echo "  => UNEXPECTED cleartext on the wire"; exit 1; fi
args=(-o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE)
while IFS= read -r l; do args+=(-o "uat:esp_sa:$l"); done < "$W/keys/esp_sa"
if command -v tshark >/dev/null; then
  echo "  decrypted with the key log, the first ESP packet to port 9100 holds:"
  tshark -r "$W/wire.pcap" "${args[@]}" -Y "tcp.dstport == 9100 and tcp.len > 0" -T fields -e tcp.payload 2>/dev/null | head -1 \
    | python3 -c 'import sys; print("   ", bytes.fromhex(sys.stdin.read().strip()[:120]).decode(errors="replace").splitlines()[:2])' || true
fi

say "the SAs on the print server"
run "$BIN/hostsec" --socket "$W/printserver.sock" sas
say "the print server's counters (the visitor's cleartext was dropped by the firewall)"
"$BIN/hostsec" --socket "$W/printserver.sock" stats | sed -n '/ESP datapath/,$p' | grep -vE " 0( packets|$)" || true
say "what hostsecd logged on the print server"
sed 's/^/  /' "$W/printserver.log" | grep -vE "DEBUG" | cut -c1-220
printf '\n\033[1m== done in %.1f s: stopping the daemons (they delete their SAs, tell the peer, and restore the host)\033[0m\n' \
  "$(python3 -c "import time; print(time.time() - $t0)")"
