#!/bin/bash
# The whole hostsec test suite, as CI runs it (bash .ci/run calls this). As root on Debian 12:
#   1. formatting and lints (cargo fmt --check, cargo clippy -D warnings)
#   2. unit, property, known-answer, capture and in-memory pair tests (cargo test); every fuzz target for a fixed
#      budget (tests/fuzz.sh, HOSTSEC_FUZZ_SECONDS per target, default 10)
#   3. hostsecd + hostsec end to end in network namespaces (tests/e2e/hostsec-pair.sh, datapath.sh, keywords.sh,
#      selectors.sh, reload.sh, certs.sh, authip.sh, natt.sh, dpd.sh, rekey-loss.sh, flood.sh)
#   4. interop with strongSwan in a QEMU guest with kernel ESP: IKE (tests/interop/strongswan-ike.sh) and protected
#      traffic through hostsec's ESP datapath (tests/interop/strongswan-esp.sh), certificate authentication
#      (tests/interop/strongswan-certs.sh), rekeying under load (tests/interop/strongswan-rekey.sh), NAT traversal
#      (tests/interop/strongswan-natt.sh: the NAT cases that the matrix does not have); the interop matrix's pairwise
#      subset with strongSwan and libreswan (tests/interop/matrix.sh --set pairwise: every pair of values of peer,
#      role, authentication, DH group, ESP transform and NAT situation; --set full runs the 576 cells); the AuthIP
#      fallback (tests/interop/authip-fallback.sh: a keying = "authip" hostsec initiator sends AuthIP #1 and IKEv1 MM1
#      side by side and goes on with IKEv1 against strongSwan and libreswan; strongSwan's plain IKEv1 to a
#      keying = "authip" responder)
# Options: --no-interop (skip 4), --interop-cases all|quick (default quick: the IKE interop's 6 cases per role that
# cover every DH group, both ESP families with both integrity algorithms, PFS on and off, about 70 s; all: its 36
# cases per role, about 270 s, which would leave CI too little of its 45 minutes).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
INTEROP=yes CASES=quick
while [ $# -gt 0 ]; do
  case $1 in
    --no-interop) INTEROP=no; shift;;
    --interop-cases) CASES=$2; shift 2;;
    *) echo "usage: tests/run.sh [--no-interop] [--interop-cases all|quick]" >&2; exit 2;;
  esac
done
t0=$(date +%s)
step() { printf '\n==== %s (%ss)\n' "$*" "$(( $(date +%s) - t0 ))"; }

step "host packages"
need=()
for p in iproute2:ip python3:python3 gcc:gcc make:make pkg-config:pkg-config curl:curl nftables:nft tcpdump:tcpdump \
         tshark:tshark iperf3:iperf3 iputils-ping:ping netcat-openbsd:nc; do
  command -v "${p#*:}" >/dev/null || need+=("${p%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH=$HOME/.cargo/bin:$PATH
fi
if ! command -v cargo >/dev/null; then
  echo "installing Rust with rustup (needs https://sh.rustup.rs)"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  export PATH=$HOME/.cargo/bin:$PATH
fi
cargo --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

step "fuzzing: every cargo-fuzz target for a fixed budget (tests/fuzz.sh)"
bash tests/fuzz.sh --seconds "${HOSTSEC_FUZZ_SECONDS:-10}"

step "release build"
cargo build --release -p hostsecd -p hostsec

step "end to end: two hostsecd in network namespaces (IKE, CLI)"
bash tests/e2e/hostsec-pair.sh

step "end to end: the ESP datapath between two hostsecd (IPv4/IPv6, actions, replay, restore)"
bash tests/e2e/datapath.sh

step "end to end: rule keywords follow the host's configuration (LocalSubnet, DNS, WINS)"
bash tests/e2e/keywords.sh

step "end to end: traffic selectors (require tcp/9100 beside bypass)"
bash tests/e2e/selectors.sh

step "end to end: reload under traffic, removed rules, a config full of typos"
bash tests/e2e/reload.sh

step "end to end: certificate authentication between two hostsecd (P-256, P-384, RSA-3072, intermediate, refusals, PSK fallback, hostsec certs)"
bash tests/e2e/certs.sh

step "end to end: AuthIP between two hostsecd (experimental: Anonymous and TLS Main Mode, fast and normal Quick Mode over ESP, the IKEv1 twin discarded, reliable delete through loss, DoS cookie under a flood)"
bash tests/e2e/authip.sh

step "end to end: NAT traversal through a masquerading NAT (UDP 4500, ESP in UDP, off refused, NAT rebinding)"
bash tests/e2e/natt.sh

step "end to end: restarts and dead peer detection (kill -9 mid-transfer and restart, a frozen peer found dead, re-keying)"
bash tests/e2e/dpd.sh

step "end to end: rekeying over a lossy link (5 % IKE loss and duplication, byte and Main Mode rekeys under ping + iperf3: 0 lost)"
SECONDS_RUN=90 bash tests/e2e/rekey-loss.sh

step "end to end: a flood of 100,000 forged Main Mode first messages (memory bound, established SA keeps its traffic)"
bash tests/e2e/flood.sh

if [ "$INTEROP" = yes ]; then
  step "interop: strongSwan in a QEMU guest with kernel ESP ($CASES cases)"
  bash tests/interop/strongswan-ike.sh --cases "$CASES"
  step "interop: hostsec's ESP datapath <-> strongSwan's kernel ESP (IPv4/IPv6, both roles, actions, replay, restore)"
  # 2 s of iperf3 each way shows TCP flows both ways through both ESP stacks; longer runs are for benchmarks
  bash tests/interop/strongswan-esp.sh --iperf-seconds 2
  step "interop: certificate authentication with strongSwan (P-256/P-384/RSA both roles, MTU 576 + IKE fragments, certificate-then-psk)"
  bash tests/interop/strongswan-certs.sh
  step "interop: rekeying under load with strongSwan (Quick Mode and Main Mode rekeys under ping + iperf3: 0 lost, no stall)"
  # the case where hostsec initiates takes as long again; tests/interop/strongswan-rekey.sh without --only runs both
  bash tests/interop/strongswan-rekey.sh --only ss-initiates
  step "interop: NAT traversal with strongSwan (hostsec behind NAT, off refused)"
  # strongSwan behind a NAT and both sides behind NATs are matrix cells (below)
  bash tests/interop/strongswan-natt.sh --only 'hostsec-behind-nat|off-refused'
  step "interop matrix, pairwise subset: strongSwan and libreswan x both roles x PSK/ECDSA P-256/P-384/RSA x DH 14/24/19/20 x ESP GCM/CBC-SHA1/CBC-SHA256 x no NAT/peer behind NAT/both behind NAT"
  bash tests/interop/matrix.sh --set pairwise
  step "interop: AuthIP fallback (keying = authip initiator falls back to IKEv1 with strongSwan and libreswan; plain IKEv1 to a keying = authip responder)"
  bash tests/interop/authip-fallback.sh
fi
step "all tests passed"
