#!/bin/bash
# ESP self-test of the lab kit without hostsec: two strongSwan guests (kernel ESP, transport mode) protect real
# traffic over IPv4 and IPv6, and the kit's traffic, capture, decryption, counter and injection machinery -- the
# same lib.sh functions tests/interop/strongswan-esp.sh relies on -- is checked against them. Per case:
#   sa       swanctl --initiate (A -> B), CHILD_SA INSTALLED in transport mode with the case's algorithms
#   ping     ping -c 5 A -> B and B -> A, every reply received
#   marker   a unique TCP marker A -> B and B -> A (nc), received intact
#   iperf    iperf3 TCP for IPERF_S seconds A -> B and B -> A (server in B, -R for the reverse); Mbit/s printed
#   wire     the br0 capture between A and B holds only IKE, ESP (and ARP / IPv6 neighbour discovery): no
#            cleartext ICMP echo, TCP or UDP, counted three ways (tshark classification without ESP decryption,
#            a tcpdump filter, the bridge nft counters of the kit)
#   decrypt  tshark decrypts the capture with esp_sa lines made from A's `ip xfrm state` (lab_records_to_uat: the
#            format of hostsec's key log), every ESP packet of both SAs decrypts with a good ICV, and both markers
#            are found in the decrypted TCP payload
#   counters `ip -s xfrm state`: A's outbound SA and B's inbound SA count the same packets (and the reverse)
#   replay   one captured ESP packet A -> B injected again into br0 (esp-inject.py through a veth port): B's
#            replay counter +1; the same packet with the top byte of its sequence number flipped: B's
#            integrity-failed counter +1; B's other counters unchanged; ping A -> B still works
# Then: lab_host_state sees an added ip rule, nft table and link, and sees them gone again.
#
#   a 198.51.100.2 2001:db8:1::2  strongSwan initiator (one connection per case)
#   b 198.51.100.3 2001:db8:1::3  strongSwan responder (one IPv4 and one IPv6 connection, both transforms)
#
# Usage: tests/lab/selftest-esp.sh [--only REGEX] [--iperf-seconds N] [--keep]   (root; ~3-4 min on 2 cores)
# Results: tests/lab/results/selftest-esp/ (summary.txt, results.tsv, per case: captures cut before the iperf3
# bulk, decryption table, xfrm state of both guests, iperf3 JSON)
set -u
LAB_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
ONLY='' IPERF_S=5 KEEP=no
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --only) ONLY=${2:-}; shift 2;;
    --iperf-seconds) IPERF_S=${2:-}; shift 2;;
    --keep) KEEP=yes; shift;;
    *) usage;;
  esac
done
A4=198.51.100.2 B4=198.51.100.3 A6=2001:db8:1::2 B6=2001:db8:1::3
GA=se-a GB=se-b
R=$LAB_DIR/results/selftest-esp
T_START=$(lab_now_ms)

lab_require_root
lab_install_host_pkgs
lab_lock
"$LAB_DIR/build-guest.sh" strongswan || lab_die "guest image build failed"
lab_netns_free "$LAB_NETNS" || lab_die "the lab network namespace is in use"
rm -rf "$R"; mkdir -p "$R"
say() { echo "$*" | tee -a "$R/summary.txt"; }

NET_UP=no
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  lab_capture_stop
  [ -n "$LAB_CAPTURE_ONE_PID" ] && kill "$LAB_CAPTURE_ONE_PID" 2>/dev/null
  if [ "$KEEP" = yes ]; then
    echo "--keep: guests $GA $GB and namespace $LAB_NETNS left running; stop: $LAB_DIR/stop-peer.sh $GA $GB; $LAB_DIR/net.sh down"
    exit $rc
  fi
  lab_stop_guest "$GA" "$GB" >/dev/null 2>&1
  [ "$NET_UP" = yes ] && lab_net_down
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

#        name          family IKE proposal          ESP proposal
CASES=("v4-gcm128      4 aes128-sha256-ecp256 aes128gcm16"
       "v4-cbc256-pfs  4 aes256-sha384-ecp384 aes256-sha256-ecp384"
       "v6-gcm128      6 aes128-sha256-ecp256 aes128gcm16"
       "v6-cbc256-pfs  6 aes256-sha384-ecp384 aes256-sha256-ecp384")
SEL=()
for c in "${CASES[@]}"; do read -r n _ <<< "$c"; [ -z "$ONLY" ] || [[ $n =~ $ONLY ]] && SEL+=("$c"); done
[ ${#SEL[@]} -gt 0 ] || lab_die "no case matches --only '$ONLY'"

NET_UP=yes
lab_net_up || lab_die "could not create the lab network"
lab_inject_up || lab_die "could not create the injection port"
mkdir -p "$R/a" "$R/b"
{
  echo "connections {"
  for c in "${SEL[@]}"; do
    read -r n fam ike esp <<< "$c"
    if [ "$fam" = 4 ]; then lab_swanctl_conn "$n" "$A4" "$B4" "$ike" "$esp"; else lab_swanctl_conn "$n" "$A6" "$B6" "$ike" "$esp"; fi
  done
  echo "}"; lab_swanctl_secrets
} > "$R/a/swanctl.conf"
{
  echo "connections {"
  lab_swanctl_conn r4 "$B4" "$A4" aes128-aes256-sha256-sha384-ecp256-ecp384 "aes128gcm16, aes256-sha256-ecp384"
  lab_swanctl_conn r6 "$B6" "$A6" aes128-aes256-sha256-sha384-ecp256-ecp384 "aes128gcm16, aes256-sha256-ecp384"
  echo "}"; lab_swanctl_secrets
} > "$R/b/swanctl.conf"

say "== lab ESP self-test (${#SEL[@]} cases) $(date -u +%FT%TZ); guest kernel $(cat "$LAB_BUILD/kernel-version"), $(tshark --version 2>/dev/null | head -n 1)"
t0=$(lab_now_ms)
lab_boot_guest -n "$GA" -a "$A4/24" -6 "$A6/64" -c "$R/a/swanctl.conf" > "$R/boot-a.txt" 2>&1 & pa=$!
lab_boot_guest -n "$GB" -a "$B4/24" -6 "$B6/64" -c "$R/b/swanctl.conf" > "$R/boot-b.txt" 2>&1 & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
say "$(cat "$R/boot-a.txt" "$R/boot-b.txt")"
[ $ra = 0 ] && [ $rb = 0 ] || lab_die "guest boot failed (see $R/boot-*.txt)"
BOOT_MS=$(( $(lab_now_ms) - t0 ))
say "   both guests ready in $(lab_ms_fmt $BOOT_MS) (booted in parallel)"

PASS=0 FAIL=0 CASE_MS=()
result() { # case check PASS|FAIL text
  if [ "$3" = PASS ]; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); fi
  say "$(printf '%-4s %-15s %-9s %s' "$3" "$1" "$2" "$4")"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$R/results.tsv"
}
check() { # case check ok(0/1) text
  if [ "$3" = 0 ]; then result "$1" "$2" PASS "$4"; else result "$1" "$2" FAIL "$4"; fi
}

run_case() { # name family ike esp
  local n=$1 fam=$2 ike=$3 esp=$4 a b c0 d v spi_in spi_out out ok m_ab m_ba g_ab g_ba mb_ab mb_ba cls clr \
        t_bulk recs s_out s_in sa_stats sb_stats x y rb fb rb2 fb2 cnt cb ce
  c0=$(lab_now_ms)
  if [ "$fam" = 4 ]; then a=$A4 b=$B4; else a=$A6 b=$B6; fi
  d=$R/$n; mkdir -p "$d"
  lab_net_reset
  lab_capture_start "$d/full.pcap" "host $a and host $b" || { result "$n" capture FAIL "tcpdump did not start"; return; }
  out=$(lab_ss_initiate "$GA" "$n" 30)
  cp "$LAB_RUN/$GA/cases/$n/"* "$d/" 2>/dev/null
  if ! v=$(lab_check_ss_sa "$d/list-sas.txt" "$n" "$ike" "$esp"); then
    lab_capture_stop; result "$n" sa FAIL "$out: $v"; return
  fi
  read -r spi_in spi_out _ <<< "$v"
  lab_wait_until 15 lab_ss_lists_spi "$GB" "$spi_out" || { lab_capture_stop; result "$n" sa FAIL "B does not list SA $spi_out 15 s after A's initiate"; return; }
  result "$n" sa PASS "$(lab_esp_swanctl_algs "$esp") SPIs in $spi_in out $spi_out ($out)"

  # (a) ping both ways
  x=$(lab_ep_ping "guest:$GA" "$b" 5); ok=$?; y=$(lab_ep_ping "guest:$GB" "$a" 5); [ $ok = 0 ] && ok=$?
  check "$n" ping "$ok" "A->B $x, B->A $y (tx rx)"
  # markers both ways (before the bulk: the saved capture keeps them)
  m_ab=$(lab_marker "$n-ab") m_ba=$(lab_marker "$n-ba")
  g_ab=$(lab_marker_xfer "guest:$GA" "guest:$GB" "$b" 5301 "$m_ab" "$d"); ok=$?
  g_ba=$(lab_marker_xfer "guest:$GB" "guest:$GA" "$a" 5302 "$m_ba" "$d"); [ $ok = 0 ] && ok=$?
  check "$n" marker "$ok" "A->B got '$g_ab'; B->A got '$g_ba'"
  # (b) iperf3 both ways
  t_bulk=$(date +%s.%N)
  if lab_iperf_server_start "guest:$GB" "$b"; then
    mb_ab=$(lab_iperf_guest "$GA" "$b" "$IPERF_S" "$n-iperf-ab.json"); ok=$?
    mb_ba=$(lab_iperf_guest "$GA" "$b" "$IPERF_S" "$n-iperf-ba.json" -R); [ $ok = 0 ] && ok=$?
    lab_iperf_server_stop "guest:$GB"
    cp "$LAB_RUN/$GA/cases/$n-iperf-"*.json "$d/" 2>/dev/null
    check "$n" iperf "$ok" "A->B ${mb_ab} Mbit/s, B->A ${mb_ba} Mbit/s (${IPERF_S} s each, TCP)"
  else
    result "$n" iperf FAIL "iperf3 server in B did not start"
  fi
  lab_capture_stop
  # (c) only IKE and ESP on the wire
  cls=$(lab_pcap_classify "$d/full.pcap" "$a" "$b")
  clr=$(lab_pcap_cleartext_tcpdump "$d/full.pcap" "$a" "$b")
  cnt=$(lab_net_counters | awk '{printf "%s=%s ", substr($1, 3), $2}')
  x=$(awk '{for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
           END { print v["esp"], v["icmp_echo"] + v["icmp_other"] + v["tcp"] + v["udp"] + v["other"] }' <<< "$cls")
  ok=1
  if [ "$fam" = 4 ]; then cb=$(( $(lab_net_counter c_icmp_echo) + $(lab_net_counter c_tcp_clear) )); ce=$(lab_net_counter c_esp)
  else cb=$(( $(lab_net_counter c_icmp6_echo) + $(lab_net_counter c_tcp6_clear) )); ce=$(lab_net_counter c_esp6); fi
  [ "${x% *}" -gt 100 ] && [ "${x#* }" = 0 ] && [ "$clr" = 0 ] && [ "$cb" = 0 ] && [ "$ce" -gt 100 ] && ok=0
  check "$n" wire "$ok" "tshark: $cls | tcpdump cleartext filter: $clr | nft: esp=$ce cleartext=$cb"
  echo "$cnt" > "$d/nft-counters.txt"
  # (d) decryption with esp_sa lines made from A's kernel SAs
  lab_gexec "$GA" "ip -s xfrm state" 20 > "$d/xfrm-a.txt"; lab_gexec "$GB" "ip -s xfrm state" 20 > "$d/xfrm-b.txt"
  recs=$(lab_xfrm_records < "$d/xfrm-a.txt")
  { lab_record_for_spi "$spi_out" <<< "$recs"; lab_record_for_spi "$spi_in" <<< "$recs"; } | lab_records_to_uat > "$d/esp_sa"
  lab_esp_decrypt "$d/full.pcap" "$d/esp_sa" > "$d/decrypted.tsv"
  s_out=$(lab_esp_decrypt_summary "$spi_out" < "$d/decrypted.tsv"); s_in=$(lab_esp_decrypt_summary "$spi_in" < "$d/decrypted.tsv")
  x=$(lab_esp_find_marker "$m_ab" < "$d/decrypted.tsv" | head -n 1); y=$(lab_esp_find_marker "$m_ba" < "$d/decrypted.tsv" | head -n 1)
  ok=1
  if awk -v a="$s_out" -v b="$s_in" 'BEGIN { n = split(a " " b, f, /[ =]/); for (i = 1; i < n; i += 2) v[i] = f[i + 1]
        exit !(v[1] > 0 && v[1] == v[3] && v[3] == v[5] && v[7] == 0 && v[9] > 0 && v[9] == v[11] && v[11] == v[13] && v[15] == 0) }' &&
     [ "$(awk '{print $4, $5}' <<< "$x")" = "$spi_out good" ] && [ "$(awk '{print $4, $5}' <<< "$y")" = "$spi_in good" ]; then ok=0; fi
  check "$n" decrypt "$ok" "A->B SA $spi_out: $s_out; B->A SA $spi_in: $s_in; marker A->B in frame ${x%% *} (${x:-not found}); B->A in frame ${y%% *} (${y:-not found}); iperf3 parameter JSON in $(lab_esp_find_marker '"tcp":true' < "$d/decrypted.tsv" | grep -c .) frames"
  # (e) packet counters of the two kernels agree
  sa_stats=$(lab_xfrm_stats < "$d/xfrm-a.txt"); sb_stats=$(lab_xfrm_stats < "$d/xfrm-b.txt")
  x="$(lab_xfrm_stat_of "$spi_out" packets <<< "$sa_stats") $(lab_xfrm_stat_of "$spi_out" packets <<< "$sb_stats")"
  y="$(lab_xfrm_stat_of "$spi_in" packets <<< "$sb_stats") $(lab_xfrm_stat_of "$spi_in" packets <<< "$sa_stats")"
  ok=1; lab_near "${x% *}" "${x#* }" && lab_near "${y% *}" "${y#* }" && [ "${x% *}" -gt 0 ] && [ "${y% *}" -gt 0 ] && ok=0
  check "$n" counters "$ok" "A->B packets: A out $(cut -d' ' -f1 <<< "$x") B in $(cut -d' ' -f2 <<< "$x"); B->A: B out $(cut -d' ' -f1 <<< "$y") A in $(cut -d' ' -f2 <<< "$y"); bytes A out $(lab_xfrm_stat_of "$spi_out" bytes <<< "$sa_stats")"
  # replay and bad ICV, injected into br0
  rb=$(lab_xfrm_stat_of "$spi_out" replay <<< "$sb_stats"); fb=$(lab_xfrm_stat_of "$spi_out" failed <<< "$sb_stats")
  ok=1 x=''
  if lab_capture_one "$d/one.pcap" "esp and src $a and dst $b"; then
    lab_gexec "$GA" "ping -c 2 -i 0.2 -W 1 $b" 20 >/dev/null
    wait "$LAB_CAPTURE_ONE_PID"; LAB_CAPTURE_ONE_PID=''
    x=$(lab_inject "$d/one.pcap" 2>&1); sleep 0.5
    sb_stats=$(lab_gexec "$GB" "ip -s xfrm state" 20 | lab_xfrm_stats)
    rb2=$(lab_xfrm_stat_of "$spi_out" replay <<< "$sb_stats"); fb2=$(lab_xfrm_stat_of "$spi_out" failed <<< "$sb_stats")
    [ "$rb2" = $(( rb + 1 )) ] && [ "$fb2" = "$fb" ] && ok=0
    check "$n" replay "$ok" "$x | B's SA $spi_out: replay $rb -> $rb2, integrity-failed $fb -> $fb2"
    x=$(lab_inject "$d/one.pcap" --flip esp-seq 2>&1); sleep 0.5
    sb_stats=$(lab_gexec "$GB" "ip -s xfrm state" 20 | lab_xfrm_stats)
    rb=$(lab_xfrm_stat_of "$spi_out" replay <<< "$sb_stats"); fb=$(lab_xfrm_stat_of "$spi_out" failed <<< "$sb_stats")
    y=$(lab_ep_ping "guest:$GA" "$b" 3)
    ok=1; [ "$rb" = "$rb2" ] && [ "$fb" = $(( fb2 + 1 )) ] && [ "$y" = "3 3" ] && ok=0
    check "$n" bad-icv "$ok" "$x | B's SA $spi_out: replay $rb2 -> $rb, integrity-failed $fb2 -> $fb; ping A->B after it: $y"
  else
    result "$n" replay FAIL "could not capture one ESP packet A->B"
  fi
  lab_ss_terminate "$GA" "$n" > "$d/terminate.log" 2>&1
  lab_pcap_cut "$d/full.pcap" "$d/capture.pcap" "$t_bulk"; rm -f "$d/full.pcap"
  CASE_MS+=("$(( $(lab_now_ms) - c0 ))")
  say "   case $n took $(lab_ms_fmt "${CASE_MS[-1]}")"
}

say "== cases (A initiates, B responds; transport mode)"
for c in "${SEL[@]}"; do
  # shellcheck disable=SC2086
  run_case $c
done

say "== host state snapshots (lab_host_state, used for hostsecd's restore check)"
lab_inject_down
s0=$(lab_host_state); s1=$(lab_host_state)
ip -n "$LAB_NETNS" rule add not fwmark 0x4853 table 4853 pref 4853
ip -n "$LAB_NETNS" -6 rule add not fwmark 0x4853 table 4853 pref 4853
ip -n "$LAB_NETNS" route add 198.51.100.2/32 dev br0 table 4853
ip -n "$LAB_NETNS" tuntap add hs0 mode tun
ip netns exec "$LAB_NETNS" nft add table inet hostsec-selftest
s2=$(lab_host_state)
ip -n "$LAB_NETNS" rule del pref 4853; ip -n "$LAB_NETNS" -6 rule del pref 4853
ip -n "$LAB_NETNS" route flush table 4853; ip -n "$LAB_NETNS" link del hs0
ip netns exec "$LAB_NETNS" nft delete table inet hostsec-selftest
s3=$(lab_host_state)
dsec=$(diff <(echo "$s0") <(echo "$s2") | grep -c '^[<>]')
ok=1; [ "$s0" = "$s1" ] && [ "$s0" = "$s3" ] && [ "$dsec" -ge 5 ] && ok=0
check host-state snapshot "$ok" "unchanged host: equal; after adding 2 rules, 1 route, a TUN device, 1 nft table: $dsec lines differ; after removing them: $( [ "$s0" = "$s3" ] && echo equal || echo DIFFERENT)"
echo "$s0" > "$R/host-state.txt"

stats() { [ $# -gt 0 ] || { echo n=0; return; }; printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "n=%d min=%.1fs median=%.1fs max=%.1fs", NR, v[1]/1000, v[int((NR+1)/2)]/1000, v[NR]/1000}'; }
say "== timings: guest boot (2 in parallel) $(lab_ms_fmt $BOOT_MS); case $(stats "${CASE_MS[@]}")"
say "== $PASS passed, $FAIL failed, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START )))"
[ "$FAIL" -eq 0 ]
