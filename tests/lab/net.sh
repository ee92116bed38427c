#!/bin/bash
# Lab network namespaces (TEST-NET addresses only, nothing is routed out of them). See lib.sh (lab_net_up).
#   netns lab-host : bridge br0 198.51.100.1/24 + 2001:db8:1::1/64 (multicast snooping off) <- taps of the guests
#                    (198.51.100.2, .3 ... / 2001:db8:1::2, ::3 ...)
#                    the daemon under test runs here: ip netns exec lab-host hostsecd ...
#   netns lab-nat  : (only with "up nat") NAT router: veth into br0 as 198.51.100.254, masquerade;
#                    bridge brn 192.0.2.1/24 <- taps of guests behind the NAT
# Usage: tests/lab/net.sh up [nat] | down | show | reset      (show/reset: packet counters on br0)
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
case ${1:-} in
  up)    lab_require_root; lab_install_host_pkgs iproute2 nftables; lab_net_up "${2:-}";;
  down)  lab_net_down;;
  show)  lab_net_counters;;
  reset) lab_net_reset;;
  *) sed -n '2,8p' "$0" >&2; exit 2;;
esac
