#!/bin/bash
# End-to-end test of hostsecd and hostsec as an administrator uses them: two hosts in network namespaces
# (198.51.100.1 and .2), real UDP 500, the CLI's verbs, exit codes and JSON, the key log, refusals and shutdown.
# Needs root. Prints PASS/FAIL per check and exits non-zero if any failed. Cleans up what it creates.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${HOSTSEC_BIN_DIR:-$ROOT/target/release}
W=$(mktemp -d /tmp/hostsec-e2e.XXXXXX)
NA=hse2e-a NB=hse2e-b
PIDS=()
# shellcheck source=tests/e2e/lib.sh
. "$ROOT/tests/e2e/lib.sh"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  ip netns del $NA 2>/dev/null; ip netns del $NB 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
json() { jq_ "$@"; }

ip netns add $NA; ip netns add $NB
ip link add hse-a netns $NA type veth peer name hse-b netns $NB
ip -n $NA addr add 198.51.100.1/24 dev hse-a; ip -n $NB addr add 198.51.100.2/24 dev hse-b
for n in $NA $NB; do ip -n $n link set lo up; done
ip -n $NA link set hse-a up; ip -n $NB link set hse-b up

conf() { # name me peer psk extra
  cat <<CONF
[global]
listen = ["$2"]
control_socket = "$W/$1.sock"
key_log = "$W/$1-keys"
[[rule]]
name = "peer"
remote = ["$3"]
psk_file = "$W/$1.psk"
auto = "none"
pfs = true
$5
CONF
  printf '%s\n' "$4" > "$W/$1.psk"; chmod 600 "$W/$1.psk"
}

# --- config validation: exit code 2 and messages that name file, line, rule, field -------------------------
cat > "$W/bad.toml" <<'CONF'
[global]
minimum_strength = "medium"
[[rule]]
name = "x"
remote = ["10.0.0.1/8", "DNS"]
psk = "short"
action = "allow"
CONF
out=$("$BIN/hostsec" config check "$W/bad.toml" 2>&1); rc=$?
check "config check of a bad file exits 2" test "$rc" = 2
check "errors name file:line and the field" grep -q "bad.toml:2: field 'global.minimum_strength': 'medium' is not a level" <<<"$out"
check "errors name the rule" grep -q "bad.toml:7: rule 'x': field 'action'" <<<"$out"
ip netns exec $NA "$BIN/hostsecd" --config "$W/bad.toml" --foreground 2>/dev/null; rc=$?
check "hostsecd with an invalid config exits 2" test "$rc" = 2
conf open 198.51.100.1 198.51.100.2 "k" "" > "$W/open.toml"; chmod 644 "$W/open.psk"
out=$("$BIN/hostsec" config check "$W/open.toml" 2>&1); rc=$?
check "a world-readable PSK file is refused" bash -c "[ $rc = 2 ] && grep -q 'chmod 600' <<<'$out'"

# --- two daemons, a negotiation, the CLI's views --------------------------------------------------------------
PSK=e2e-pre-shared-key-0123456789
conf a 198.51.100.1 198.51.100.2 "$PSK" "" > "$W/a.toml"
conf b 198.51.100.2 198.51.100.1 "$PSK" "" > "$W/b.toml"
check "hostsecd a starts" start a $NA
check "hostsecd b starts" start b $NB
hs a initiate peer >"$W/init.out" 2>&1; rc=$?
check "initiate exits 0" test "$rc" = 0
hs a sas --json > "$W/a.json"; hs b sas --json > "$W/b.json"
a_in=$(json 'd["quick_mode"][0]["spi_in"]' < "$W/a.json"); a_out=$(json 'd["quick_mode"][0]["spi_out"]' < "$W/a.json")
b_in=$(json 'd["quick_mode"][0]["spi_in"]' < "$W/b.json"); b_out=$(json 'd["quick_mode"][0]["spi_out"]' < "$W/b.json")
check "SPIs mirror each other ($a_in/$a_out)" test "$a_in" = "$b_out" -a "$a_out" = "$b_in"
check "SPIs are 8 lowercase hex digits" grep -Eq '^[0-9a-f]{8}$' <<<"$a_in"
check "Main Mode fields per SPEC" test "$(json '",".join(str(d["main_mode"][0][k]) for k in ["state","auth","encryption","hash","dh_group","nat"])' < "$W/a.json")" = "established,psk,aes-cbc-256,sha256,19,none"
check "Quick Mode fields per SPEC" test "$(json '",".join(str(d["quick_mode"][0][k]) for k in ["encryption","integrity","pfs_group","mode","encapsulation"])' < "$W/a.json")" = "aes-gcm-16-256,none,19,transport,none"
check "key logs of both sides hold the same ESP keys" diff <(sort "$W/a-keys/esp_sa") <(sort "$W/b-keys/esp_sa")
check "key log has the Main Mode key" test "$(wc -l < "$W/a-keys/ikev1_decryption_table")" = 1
check "key log is private" test "$(stat -c %a "$W/a-keys/esp_sa")" = 600
check "control socket is private" test "$(stat -c %a "$W/a.sock")" = 600
hs a initiate peer >/dev/null 2>&1; rc=$?
check "a second initiate reuses the SA (exit 0)" test "$rc" = 0 -a "$(hs b sas --json | json 'len(d["quick_mode"])')" = 1
hs a status >/dev/null; check "status exits 0" test $? = 0
hs a stats --json | json 'd["ike"]["main_mode_established"]' | grep -qx 1; check "stats count the Main Mode SA" test $? = 0
hs a rules --json | json 'd[0]["name"]' | grep -qx peer; check "rules lists the rule" test $? = 0
hs a rule explain --peer 198.51.100.2 --json | json 'd["rule"]["name"]' | grep -qx peer; check "rule explain names the rule" test $? = 0

# --- refusals and errors with their exit codes ----------------------------------------------------------------
hs a initiate nosuchrule >/dev/null 2>&1; check "unknown rule exits 2" test $? = 2
"$BIN/hostsec" --socket "$W/nothing.sock" status >/dev/null 2>&1; check "unreachable daemon exits 3" test $? = 3
"$BIN/hostsec" frobnicate >/dev/null 2>&1; check "unknown verb exits 2" test $? = 2
hs a terminate peer >/dev/null; check "terminate exits 0" test $? = 0
sleep 0.3
check "the peer removed its SAs on DELETE" test "$(hs b sas --json | json 'len(d["main_mode"]) + len(d["quick_mode"])')" = 0
printf '%s\n' "a-different-key-9876543210" > "$W/b.psk"
hs b reload >/dev/null; check "reload exits 0" test $? = 0
hs a initiate peer >"$W/mismatch.out" 2>&1; rc=$?
check "a PSK mismatch fails with exit 1" test "$rc" = 1
check "and says the keys differ" grep -q "pre-shared keys" "$W/mismatch.out"
check "the responder logged why" grep -q "pre-shared keys of the two sides" "$W/b.log"
cp "$W/bad.toml" "$W/b.toml"
hs b reload >/dev/null 2>&1; check "reloading an invalid file exits 2" test $? = 2
check "and leaves the daemon running" quiet hs b status

# --- shutdown ---------------------------------------------------------------------------------------------------
kill -TERM "$PID_a"; wait "$PID_a"; rc=$?
check "SIGTERM exits 0" test "$rc" = 0
check "the control socket is removed" test ! -e "$W/a.sock"
check "no panics in the logs" bash -c "! grep -qi panick '$W/a.log' '$W/b.log'"

echo "hostsec-pair: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
