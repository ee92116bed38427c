#!/bin/bash
# The host plumbing of the ESP datapath (crates/hostsecd/src/host/) against the real kernel: TUN, policy routing,
# raw ESP sockets, the nftables table and restore after kill -9, in network namespaces that the tests create and
# delete (crates/hostsecd/tests/host_netns.rs). Needs root, iproute2 and nftables (installed if missing).
# Also checks that the tests left the host's own namespace exactly as it was. Prints PASS/FAIL lines and the
# route/nft timings; exits non-zero if anything failed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
if [ "$(id -u)" != 0 ]; then echo "FAIL host plumbing: needs root"; exit 1; fi
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
snapshot() { { ip rule; ip -6 rule; ip route show table all; ip -6 route show table all; nft list tables; ip -o link | cut -d: -f2; } 2>&1; }
before=$(snapshot)
FAILS=0
out=$(mktemp)
HOSTSEC_HOST_TESTS=require cargo test -p hostsecd --test host_netns -- --nocapture >"$out" 2>&1
rc=$?
grep -E '^test |TIMING|panicked' "$out"
if [ $rc -eq 0 ]; then echo "PASS host plumbing tests"; else FAILS=$((FAILS + 1)); echo "FAIL host plumbing tests"; tail -40 "$out"; fi
rm -f "$out"
left=$(ip netns list | grep -c '^hsh-')
if [ "$left" = 0 ]; then echo "PASS no test namespace left"; else FAILS=$((FAILS + 1)); echo "FAIL $left test namespaces left"; fi
if [ "$(snapshot)" = "$before" ]; then echo "PASS the host's own namespace is unchanged"; else
  FAILS=$((FAILS + 1)); echo "FAIL the host's own namespace changed:"; diff <(echo "$before") <(snapshot); fi
echo "$(( 3 - FAILS )) passed, $FAILS failed"
[ $FAILS = 0 ]
