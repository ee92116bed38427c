#!/bin/bash
# End-to-end test of restarts and dead peer detection between two hostsecd, in network namespaces:
#   dpd-a  198.51.100.1  hostsecd, rule for B (require), dpd_interval = 5s
#   dpd-b  198.51.100.2  hostsecd, rule for A (require), dpd_interval = 5s
# (a) kill -9 of A's hostsecd in the middle of a ping (every 0.2 s) and an iperf3 stream, then a restart: traffic
#     resumes within 10 s (measured from the restart and printed), B's stale SAs are gone (its `sas --json` shows
#     only the new Main Mode SA and Quick Mode pair: A's INITIAL-CONTACT), the iperf3 stream survives, and after
#     SIGTERM A's `ip rule`, routes of all tables and nftables ruleset are exactly as before the first start.
# (b) B's hostsecd frozen with SIGSTOP: A declares B dead within 3 × dpd_interval (measured and printed; 2 × after
#     the last packet, plus up to one interval before A's daemon notices the ESP stopped), its SAs with B are gone;
#     after SIGCONT traffic re-keys within 10 s (measured) and B holds only the new pair within 15 s (both sides
#     may have negotiated at once: they keep the same one of the two pairs).
# Needs root. Binaries from $HOSTSEC_BIN_DIR (default target/release). Prints PASS/FAIL per check; exit 0 only if
# all passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-dpd.XXXXXX)
NA=dpd-a NB=dpd-b NS=dpd-sw
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
  sleep 0.5
  for n in $NA $NB $NS; do ip netns del $n 2>/dev/null; done
  rm -rf "$W"
}
trap cleanup EXIT

for p in nftables:nft iperf3:iperf3 iputils-ping:ping; do
  command -v "${p#*:}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${p%%:*}"; }
done

# --- a switch and two hosts (IPv4 only) -------------------------------------------------------------------------
two_hosts $NS $NA $NB
snapshot() { # namespace -> the host state a daemon must leave as it found it
  { ip -n "$1" rule; ip -n "$1" -6 rule; ip -n "$1" route show table all; ip -n "$1" -6 route show table all
    ip netns exec "$1" nft list ruleset; ip -n "$1" -br link; } 2>&1 | grep -v "^$"
}
for k in $(seq 100); do ip -n $NA -6 route show table local | grep -q "local fe80" && break; sleep 0.1; done
sleep 0.5
snapshot $NA > "$W/a.before"

conf() { # name me peer
  printf '[global]\nlisten = ["%s"]\ncontrol_socket = "%s/%s.sock"\ndpd_interval = "5s"\n' "$2" "$W" "$1"
  printf '[[rule]]\nname = "peer"\nremote = "%s"\naction = "require"\npsk = "dpd-e2e-psk-0123456789"\npfs = true\n' "$3"
}
conf a 198.51.100.1 198.51.100.2 > "$W/a.toml"
conf b 198.51.100.2 198.51.100.1 > "$W/b.toml"
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
# first_reply_after T: the time of the first ping reply after epoch T (from ping -D), or nothing.
first_reply_after() {
  python3 - "$1" "$W/ping.log" <<'EOF'
import re, sys
t = float(sys.argv[1])
for line in open(sys.argv[2]):
    m = re.match(r"\[(\d+\.\d+)\] \d+ bytes from", line)
    if m and float(m.group(1)) > t:
        print(m.group(1)); break
EOF
}
# wait_reply_after T LIMIT: waits up to LIMIT seconds for a ping reply after T; prints its time.
wait_reply_after() {
  local r
  for k in $(seq $(($2 * 10))); do r=$(first_reply_after "$1"); [ -n "$r" ] && { echo "$r"; return 0; }; sleep 0.1; done
  return 1
}
spis() { hs "$1" sas --json | jq_ "' '.join(sorted(q['spi_in'] for q in d['quick_mode']))"; }
cookies() { hs "$1" sas --json | jq_ "' '.join(sorted(m['cookie_i'] + m['cookie_r'] for m in d['main_mode']))"; }
stat_() { hs "$1" stats --json | jq_ "d['ike']['$2']"; }

check "hostsecd A starts" start a $NA --log-level debug
check "hostsecd B starts" start b $NB --log-level debug
ip netns exec $NA ping -D -i 0.2 198.51.100.2 > "$W/ping.log" 2>&1 & PING=$!; PIDS+=($PING)
check "ping A -> B gets answers (IKE on demand)" quiet wait_reply_after "$(now)" 10
sleep 1
check "both sides run DPD with each other (sas --json: dpd)" test "$(hs a sas --json | jq_ "d['main_mode'][0]['dpd']['state']"):$(hs b sas --json | jq_ "d['main_mode'][0]['dpd']['state']")" = idle:idle

# --- (a) kill -9 mid-transfer, restart ----------------------------------------------------------------------------
ip netns exec $NB iperf3 -s -1 -D --pidfile "$W/iperf.pid" >/dev/null; sleep 0.3
ip netns exec $NA iperf3 -c 198.51.100.2 -t 22 -b 20M > "$W/iperf.log" 2>&1 & IPERF=$!; PIDS+=($IPERF)
sleep 3
old_spis=$(spis b) old_cookies=$(cookies b)
check "B has one SA pair with A before the kill ($old_spis)" test "$(wc -w <<<"$old_spis")" = 1
kill -9 "$PID_a"; wait "$PID_a" 2>/dev/null; t_kill=$(now)
sleep 2
t_start=$(now)
check "hostsecd A restarts after kill -9" start a $NA --log-level debug
check "and its log says what it removed" grep -q "removed what an earlier hostsecd left" "$W/a.log"
if r=$(wait_reply_after "$t_start" 10); then
  pass "traffic resumes $(secs "$t_start" "$r")s after the restart ($(secs "$t_kill" "$r")s after the kill -9, 2s of it down)"
else
  fail "traffic did not resume within 10s of the restart"
fi
# (A collision's second pair, should both sides have negotiated at once, goes within seconds.)
for k in $(seq 100); do [ "$(spis b | wc -w)" = 1 ] && break; sleep 0.1; done
new_spis=$(spis b) new_cookies=$(cookies b)
check "B's stale SAs are gone: one new SA pair ($old_spis -> $new_spis)" \
  test "$(wc -w <<<"$new_spis")" = 1 -a "$new_spis" != "$old_spis"
check "B's Main Mode SA is the new one only" test "$(wc -w <<<"$new_cookies")" = 1 -a "$new_cookies" != "$old_cookies"
check "B's log: A's INITIAL-CONTACT removed the stale SAs" grep -q "the peer restarted (INITIAL-CONTACT)" "$W/b.log"
check "the iperf3 stream A -> B survived the restart" wait $IPERF
tail -n 4 "$W/iperf.log" | grep -E "sender|receiver" | sed 's/^/     /'
stop a
check "kill -9 + restart + SIGTERM: A's host state is exactly as before the first start" diff "$W/a.before" <(snapshot $NA)

# --- (b) a frozen peer: dead peer detection -----------------------------------------------------------------------
check "hostsecd A starts again" start a $NA --log-level debug
check "traffic flows again" quiet wait_reply_after "$(now)" 10
sleep 2
old_a=$(spis a) old_b=$(spis b)
dead0=$(stat_ a dpd_peers_dead)
kill -STOP "$PID_b"; t_stop=$(now)
dead_after=""
for k in $(seq 250); do
  if [ "$(stat_ a dpd_peers_dead)" -gt "$dead0" ]; then dead_after=$(secs "$t_stop" "$(now)"); break; fi
  sleep 0.1
done
if [ -n "$dead_after" ]; then
  check "A declares the frozen B dead after ${dead_after}s (dpd_interval 5s: at most 15s)" \
    python3 -c "import sys; sys.exit(not float('$dead_after') <= 15.5)"
else
  fail "A did not declare the frozen B dead within 25s"
fi
check "A's log says why" grep -q "dead peer: 198.51.100.2 answered none of 5 R-U-THERE" "$W/a.log"
sent=$(stat_ a dpd_requests_sent) acked=$(stat_ a dpd_acks_received)
check "A sent R-U-THEREs, the last 5 without answer ($sent sent, $acked acked in all)" test "$sent" -ge $((acked + 5))
a_now=$(spis a)
check "A's SA pair with B is gone ($old_a -> '$a_now')" not grep -qw "$old_a" <<<"$a_now"
kill -CONT "$PID_b"; t_cont=$(now)
if r=$(wait_reply_after "$t_cont" 10); then
  pass "after SIGCONT traffic re-keys and resumes in $(secs "$t_cont" "$r")s"
else
  fail "traffic did not resume within 10s of SIGCONT"
fi
# Both sides may have negotiated at once (A for its pings, B for its replies once A's DELETE reached it): both
# then keep the same one of the two pairs and delete the other within seconds.
one_after=""
for k in $(seq 150); do
  b_now=$(spis b)
  if [ "$(wc -w <<<"$b_now")" = 1 ]; then one_after=$(secs "$t_cont" "$(now)"); break; fi
  sleep 0.1
done
collided=$(grep -c "carry the same traffic (a collision)" "$W/b.log")
check "B holds only the new SA pair after ${one_after:-15+}s ($old_b -> $b_now; collisions resolved: $collided)" \
  test "$(wc -w <<<"$b_now")" = 1 -a "$b_now" != "$old_b"
check "A and B agree on the new pair" test "$(hs a sas --json | jq_ "d['quick_mode'][0]['spi_out']")" = "$b_now"

kill "$PING" 2>/dev/null
stop a; stop b
check "A's host state is as before after all of it" diff "$W/a.before" <(snapshot $NA)
check "no panics in the logs" bash -c "! grep -qi panick '$W/a.log' '$W/b.log'"
echo "dpd: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
