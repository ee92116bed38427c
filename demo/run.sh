#!/bin/bash
# hostsec demo: two hosts in network namespaces (198.51.100.1 and 198.51.100.2, documentation addresses), each
# running hostsecd; IKEv1 Main Mode + Quick Mode with a pre-shared key, then a refusal that explains itself.
# Needs root (network namespaces). Cleans up everything it creates, also on failure.
# Usage: bash demo/run.sh            (builds the release binaries first if they are missing)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
if [ ! -x "$BIN/hostsecd" ] || [ ! -x "$BIN/hostsec" ]; then
  command -v cargo >/dev/null || { echo "demo: cargo is needed to build hostsec (see README)"; exit 1; }
  (cd "$ROOT" && cargo build --release -p hostsecd -p hostsec)
fi
W=$(mktemp -d /tmp/hostsec-demo.XXXXXX)
NS_A=hsdemo-a NS_B=hsdemo-b
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  ip netns del $NS_A 2>/dev/null || true
  ip netns del $NS_B 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "two hosts: $NS_A (198.51.100.1) and $NS_B (198.51.100.2), joined by a veth pair"
ip netns add $NS_A; ip netns add $NS_B
ip link add hsd-a netns $NS_A type veth peer name hsd-b netns $NS_B
ip -n $NS_A addr add 198.51.100.1/24 dev hsd-a; ip -n $NS_B addr add 198.51.100.2/24 dev hsd-b
for n in $NS_A $NS_B; do ip -n $n link set lo up; done
ip -n $NS_A link set hsd-a up; ip -n $NS_B link set hsd-b up

conf() { # me peer name extra
  cat <<CONF
[global]
listen = ["$1"]
minimum_strength = "standard"
control_socket = "$W/$3.sock"

[defaults]
psk_file = "$W/site.psk"

[[rule]]
name = "print-server"
remote = ["$2"]
action = "require"
auto = "none"
pfs = true
$4
CONF
}
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/0x/' > "$W/site.psk"
chmod 600 "$W/site.psk"
conf 198.51.100.1 198.51.100.2 a "" > "$W/a.toml"
conf 198.51.100.2 198.51.100.1 b "" > "$W/b.toml"
say "the config of host A (the PSK is a file only root can read)"
cat "$W/a.toml"
run "$BIN/hostsec" config check "$W/a.toml"

say "start hostsecd on both hosts"
ip netns exec $NS_A "$BIN/hostsecd" --config "$W/a.toml" --foreground 2>"$W/a.log" & PIDS+=($!)
ip netns exec $NS_B "$BIN/hostsecd" --config "$W/b.toml" --foreground 2>"$W/b.log" & PIDS+=($!)
for s in a b; do for i in $(seq 50); do [ -S "$W/$s.sock" ] && break; sleep 0.1; done; done
run "$BIN/hostsec" --socket "$W/a.sock" status

say "A negotiates with B: Main Mode (PSK) + Quick Mode (ESP transport, PFS)"
run "$BIN/hostsec" --socket "$W/a.sock" initiate print-server
say "B's view of the SAs"
run "$BIN/hostsec" --socket "$W/b.sock" sas
say "the same as JSON, for scripts (A's Quick Mode SA)"
"$BIN/hostsec" --socket "$W/a.sock" sas --json | sed -n '/"quick_mode"/,$p'

say "what the daemons logged"
sed 's/^/  A| /' "$W/a.log"; sed 's/^/  B| /' "$W/b.log"

say "B raises its minimum strength to 'highest' and reloads; A renegotiates and gets AES-256/SHA-384/P-384 + AES-GCM-256"
conf 198.51.100.2 198.51.100.1 b 'minimum_strength = "highest"' > "$W/b.toml"
run "$BIN/hostsec" --socket "$W/b.sock" reload
run "$BIN/hostsec" --socket "$W/a.sock" terminate print-server
sleep 0.3
run "$BIN/hostsec" --socket "$W/a.sock" initiate print-server
"$BIN/hostsec" --socket "$W/a.sock" sas | sed -n '1,3p'

say "B gets another pre-shared key: the next negotiation fails, and both sides say why"
echo "not-the-same-key-0123456789" > "$W/other.psk"; chmod 600 "$W/other.psk"
sed -i "s#$W/site.psk#$W/other.psk#" "$W/b.toml"
run "$BIN/hostsec" --socket "$W/b.sock" reload
run "$BIN/hostsec" --socket "$W/a.sock" terminate print-server
sleep 0.3
set +e
run "$BIN/hostsec" --socket "$W/a.sock" initiate print-server
echo "(exit code $?: the negotiation failed)"
set -e
grep -h "failed" "$W/b.log" | tail -n 1 | sed 's/^/  B| /'
run "$BIN/hostsec" --socket "$W/b.sock" stats

say "done: stopping the daemons (they delete their SAs and tell the peer)"
