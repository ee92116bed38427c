#!/bin/bash
# Self-test of the lab kit without hostsec: two strongSwan guests (kernel ESP) negotiate IKEv1 Main Mode +
# Quick Mode, PSK, transport mode, and the kit's own parsers check each case:
#   - swanctl --list-sas on both sides: IKE SA ESTABLISHED with the expected algorithms, CHILD_SA INSTALLED,
#     TRANSPORT, expected ESP algorithms and PFS group (lab_check_ss_sa)
#   - ip xfrm state on both sides: both SAs, transport mode, expected algorithms (lab_check_xfrm_pair)
#   - KEYS: the initiator's outbound SA = the responder's inbound SA and vice versa, key for key, compared
#     directly and through the Wireshark esp_sa UAT format that hostsec's key log uses
#     (lab_records_to_uat | lab_uat_records), i.e. the same path as the hostsec interop test
#   - after swanctl --terminate on A, B drops the CHILD_SA (DELETE handled)
#   - IKE keys: A's Ka (from its ike level 4 log) written as a Wireshark ikev1_decryption_table (hostsec's key
#     log format) lets tshark decrypt Main Mode messages 5 and 6 of every case in the capture of br0
#   - refusals: a proposal B does not accept fails with NO_PROPOSAL_CHOSEN in A's log and "no proposal found"
#     in B's log (the patterns the hostsec test greps for)
#
#   a 198.51.100.2  strongSwan initiator: one connection per case
#   b 198.51.100.3  strongSwan responder: accepts every proposal of the case matrix
#
# Usage: tests/lab/selftest.sh [quick|all]    (root; quick (default): 6 cases, ~45 s; all: the 36-case matrix,
#        ~2.5 min; add ~1 min for guest boots on a loaded machine, and the image build the first time)
# Results: tests/lab/results/selftest/ (summary.txt, per case: both sides' list-sas, xfrm state, logs)
set -u
LAB_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lab/lib.sh
. "$LAB_DIR/lib.sh"
SET=${1:-quick}
case $SET in quick|all) ;; *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2;; esac
A=198.51.100.2 B=198.51.100.3
R=$LAB_DIR/results/selftest
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
  lab_capture_stop
  lab_stop_guest st-a st-b >/dev/null 2>&1
  [ "$NET_UP" = yes ] && lab_net_down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NET_UP=yes
lab_net_up || lab_die "could not create the lab network"

mapfile -t CASES < <(lab_case_matrix "$SET")
# A: one connection per case + two refused ones; B: one responder connection accepting the whole matrix
{
  echo "connections {"
  for c in "${CASES[@]}"; do read -r n ike esp <<< "$c"; lab_swanctl_conn "$n" "$A" "$B" "$ike" "$esp"; done
  lab_swanctl_conn weak-mm "$A" "$B" aes128-sha1-modp1536 aes128-sha1
  lab_swanctl_conn weak-qm "$A" "$B" aes256-sha256-ecp256 aes128-md5
  echo "}"
  lab_swanctl_secrets
} > "$R/a-swanctl.conf"
GROUPS_KW=$(for g in "${LAB_DH_GROUPS[@]}"; do lab_dh_keyword "$g"; done | paste -sd-)
{
  echo "connections {"
  lab_swanctl_conn resp "$B" %any "aes128-aes192-aes256-sha1-sha256-sha384-$GROUPS_KW" \
    "aes128gcm16-aes192gcm16-aes256gcm16-$GROUPS_KW, aes128gcm16-aes192gcm16-aes256gcm16, aes128-aes192-aes256-sha1-sha256-$GROUPS_KW, aes128-aes192-aes256-sha1-sha256" %any
  echo "}"
  lab_swanctl_secrets
} > "$R/b-swanctl.conf"
mkdir -p "$R/a" "$R/b"; cp "$R/a-swanctl.conf" "$R/a/swanctl.conf"; cp "$R/b-swanctl.conf" "$R/b/swanctl.conf"
# A logs its IKE keys (ike level 4: "encryption key Ka"): the self-test writes them as a Wireshark
# ikev1_decryption_table, the key log format of hostsec, and checks it with tshark on the capture
printf 'charon {\n  filelog {\n    lab {\n      ike = 4\n    }\n  }\n}\n' > "$R/a/strongswan.conf"
: > "$R/ikev1_decryption_table"

say "== lab self-test ($SET, ${#CASES[@]} cases) $(date -u +%FT%TZ); host $(uname -r), guest kernel $(cat "$LAB_BUILD/kernel-version"), $(qemu-system-x86_64 --version | head -1)"
t0=$(lab_now_ms)
lab_boot_guest -n st-a -a "$A/24" -c "$R/a/swanctl.conf" -c "$R/a/strongswan.conf" > "$R/boot-a.txt" 2>&1 & pa=$!
lab_boot_guest -n st-b -a "$B/24" -c "$R/b/swanctl.conf" > "$R/boot-b.txt" 2>&1 & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
say "$(cat "$R/boot-a.txt" "$R/boot-b.txt")"
[ $ra = 0 ] && [ $rb = 0 ] || lab_die "guest boot failed (see $R/boot-*.txt)"
say "   both guests ready in $(lab_ms_fmt $(( $(lab_now_ms) - t0 ))) (booted in parallel)"
grep -q "loaded connection 'resp'" "$LAB_RUN/st-b/init.log" || lab_die "B did not load its connection: $(cat "$LAB_RUN/st-b/init.log")"

lab_capture_start "$R/ike.pcap" || lab_die "packet capture failed"
PASS=0 FAIL=0 INIT_MS=() CASE_MS=() CKYS=()
result() { # case status reason
  if [ "$2" = PASS ]; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); fi
  say "$(printf '%-4s %-28s %s' "$2" "$1" "$3")"
}
child_gone() { # guest spi: the guest no longer lists a CHILD_SA with this SPI
  ! lab_gexec "$1" 'swanctl --list-sas' 20 | grep -qE "^ +(in|out) +$2[ ,]"
}

run_case() { # name ike esp
  local n=$1 ike=$2 esp=$3 c0 out rc ms v spi_in spi_out cky ka bits mark a_in a_out b_in b_out via d
  c0=$(lab_now_ms)
  mark=$(lab_charon_log_mark st-a)
  out=$(lab_ss_initiate st-a "$n" 30); rc=$?
  ms=$(sed -n 's/.*ms=\([0-9]*\).*/\1/p' <<< "$out")
  [ -n "$ms" ] && INIT_MS+=("$ms")
  lab_ss_snapshot st-b "$n" >/dev/null
  local da=$LAB_RUN/st-a/cases/$n db=$LAB_RUN/st-b/cases/$n
  cp -r "$da" "$R/a/$n" 2>/dev/null; cp -r "$db" "$R/b/$n" 2>/dev/null
  if [ $rc -ne 0 ]; then result "$n" FAIL "swanctl --initiate: $out ($(tail -n 1 "$da/initiate.log"))"; return; fi
  v=$(lab_check_ss_sa "$da/list-sas.txt" "$n" "$ike" "$esp") || { result "$n" FAIL "A: $v"; return; }
  read -r spi_in spi_out cky <<< "$v"
  ka=$(lab_charon_log_since st-a "$mark" | lab_charon_ka)
  read -r bits _ <<< "$(lab_ike_parse "$ike")"
  [ ${#ka} -eq $(( bits / 4 )) ] || { result "$n" FAIL "A logged no AES-$bits Ka for IKE SA $cky (got '$ka')"; return; }
  echo "$cky,$ka" >> "$R/ikev1_decryption_table"; CKYS+=("$n:$cky")
  d=$(lab_check_ss_sa "$db/list-sas.txt" resp "$ike" "$esp") || { result "$n" FAIL "B: $d"; return; }
  [ "$(awk '{print $1, $2}' <<< "$d")" = "$spi_out $spi_in" ] || { result "$n" FAIL "B's SPIs ($d) are not A's reversed ($spi_in $spi_out)"; return; }
  v=$(lab_check_xfrm_pair "$da/xfrm.txt" "$A" "$B" "$spi_in" "$spi_out" "$esp") || { result "$n" FAIL "A kernel: $v"; return; }
  a_in=$(sed -n 1p <<< "$v"); a_out=$(sed -n 2p <<< "$v")
  v=$(lab_check_xfrm_pair "$db/xfrm.txt" "$B" "$A" "$spi_out" "$spi_in" "$esp") || { result "$n" FAIL "B kernel: $v"; return; }
  b_in=$(sed -n 1p <<< "$v"); b_out=$(sed -n 2p <<< "$v")
  d=$(lab_record_cmp A-out "$a_out" B-in "$b_in") || { result "$n" FAIL "KEYS $d"; return; }
  d=$(lab_record_cmp A-in "$a_in" B-out "$b_out") || { result "$n" FAIL "KEYS $d"; return; }
  # the same comparison through the esp_sa UAT format (B's SAs written as a key log, parsed back)
  printf '%s\n%s\n' "$b_in" "$b_out" | lab_records_to_uat > "$R/b/$n/esp_sa"
  via=$(lab_uat_records < "$R/b/$n/esp_sa")
  d=$(lab_record_cmp A-out "$a_out" B-uat "$(lab_record_for_spi "$spi_out" <<< "$via")") || { result "$n" FAIL "KEYS via UAT $d"; return; }
  d=$(lab_record_cmp A-in "$a_in" B-uat "$(lab_record_for_spi "$spi_in" <<< "$via")") || { result "$n" FAIL "KEYS via UAT $d"; return; }
  lab_ss_terminate st-a "$n" > "$R/a/$n/terminate.log"
  lab_wait_until 15 child_gone st-b "$spi_in" || { result "$n" FAIL "B still lists CHILD_SA $spi_in 15 s after A's DELETE"; return; }
  CASE_MS+=("$(( $(lab_now_ms) - c0 ))")
  result "$n" PASS "$(lab_ike_swanctl_algs "$ike") | ESP $(lab_esp_swanctl_algs "$esp") | SPIs $spi_in/$spi_out keys equal ($(awk '{print $4}' <<< "$a_out")) | initiate $(lab_ms_fmt "${ms:-0}")"
}

say "== cases (A initiates, B responds)"
for c in "${CASES[@]}"; do
  # shellcheck disable=SC2086
  run_case $c
done

say "== refused proposals"
refused() { # conn a_pattern b_pattern
  local ma mb out rc
  ma=$(lab_charon_log_mark st-a); mb=$(lab_charon_log_mark st-b)
  out=$(lab_ss_initiate st-a "$1" 20); rc=$?
  sleep 1
  lab_charon_log_since st-a "$ma" > "$R/a/$1-charon.log"; lab_charon_log_since st-b "$mb" > "$R/b/$1-charon.log"
  if [ $rc -eq 0 ]; then result "$1" FAIL "initiation succeeded, expected a refusal"
  elif ! grep -qE "$2" "$R/a/$1-charon.log"; then result "$1" FAIL "A's log lacks /$2/"
  elif ! grep -qE "$3" "$R/b/$1-charon.log"; then result "$1" FAIL "B's log lacks /$3/"
  else result "$1" PASS "refused ($out): A: $(grep -m1 -oE "$2" "$R/a/$1-charon.log"); B: $(grep -m1 -oE "$3" "$R/b/$1-charon.log")"
  fi
  lab_gexec st-a "swanctl --terminate --ike $1 --timeout 5 >/dev/null 2>&1" 30 >/dev/null
}
refused weak-mm 'received NO_PROPOSAL_CHOSEN' 'no proposal found'
refused weak-qm 'received NO_PROPOSAL_CHOSEN' 'no matching proposal found'

say "== IKEv1 decryption with the Ka table (tshark on the capture of br0)"
lab_capture_stop
dec=$(lab_ikev1_decrypted "$R/ike.pcap" "$R/ikev1_decryption_table" 2> "$R/tshark.err")
bad=''
for x in "${CKYS[@]}"; do
  n=$(awk -v c="${x#*:}" '$1 == c {print $2}' <<< "$dec")
  [ "${n:-0}" = 2 ] || bad="$bad ${x%%:*}(${n:-0})"
done
if [ ${#CKYS[@]} -gt 0 ] && [ -z "$bad" ]; then result ikev1-decrypt PASS "tshark decrypted Main Mode messages 5 and 6 of all ${#CKYS[@]} IKE SAs"
else result ikev1-decrypt FAIL "MM5/MM6 not decrypted for:${bad:- (no IKE SA)} $(head -c 200 "$R/tshark.err")"; fi
say "   br0 packet counters: $(lab_net_counters | awk '{printf "%s=%s ", substr($1, 3), $2}')"
cp "$LAB_RUN/st-a/charon.log" "$R/a/charon.log"; cp "$LAB_RUN/st-b/charon.log" "$R/b/charon.log"
stats() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1; s+=$1} END {if (NR) printf "n=%d min=%.2fs median=%.2fs max=%.2fs mean=%.2fs", NR, v[1]/1000, v[int((NR+1)/2)]/1000, v[NR]/1000, s/NR/1000}'; }
say "== timings: swanctl --initiate (MM+QM, in guest): $(stats "${INIT_MS[@]}")"
say "   whole case (initiate, 2 snapshots, checks, terminate, wait for B's DELETE): $(stats "${CASE_MS[@]}")"
say "== $PASS passed, $FAIL failed, total $(lab_ms_fmt $(( $(lab_now_ms) - T_START )))"
[ "$FAIL" -eq 0 ]
