# shellcheck shell=bash
# The hostsecd under test in a lab network namespace, for the interop scripts (source it after lib.sh).
#
# The sourcing script sets HOSTSECD and HOSTSEC (the binaries), SOCK (the control socket its configs name), HSLOG
# (the daemon's log, appended to) and LOG_LEVEL; HS_CLI_TIMEOUT (s, default 60) bounds each CLI call.
#
#   hs_launch NETNS CONFIG [TIMEOUT_S=30]  start hostsecd with CONFIG in NETNS (HS_PID) and wait until it answers;
#                                          fails with the reason in HS_ERR (not ready, or exited: 2 = bad config)
#   hs_terminate                           SIGTERM (SIGKILL after 10 s) and reap; HS_EXIT = its exit status
#   hs_cli ARGS...                         the CLI against SOCK
#   hs_ready / hs_alive / hs_dead / hs_ready_or_dead
#   hs_log_mark, hs_log_since MARK         the log's size now, and what was logged after a mark
#   hs_sas                                 hostsec --json sas (fails when the CLI does)
#   hs_qm_count                            how many Quick Mode SAs hostsec holds
#   hs_auth_toml AUTH PKI_DIR PSK          a rule's authentication lines: AUTH psk (with PSK), or rsa|p256|p384: the
#                                          certificate hostsec.AUTH of a pki.sh PKI (chain, key, trusted DIR/ca.pem,
#                                          remote_id the DN of peer.AUTH; pki_dn from pki.sh)
HS_PID='' HS_ERR='' HS_EXIT=''
hs_cli() { timeout "${HS_CLI_TIMEOUT:-60}" "$HOSTSEC" --socket "$SOCK" "$@"; }
hs_ready() { [ -S "$SOCK" ] && hs_cli status >/dev/null 2>&1; }
hs_alive() { [ -n "$HS_PID" ] && kill -0 "$HS_PID" 2>/dev/null; }
hs_dead() { ! hs_alive; }
hs_ready_or_dead() { hs_ready || hs_dead; }
hs_log_mark() { wc -c < "$HSLOG"; }
hs_log_since() { tail -c "+$(( $1 + 1 ))" "$HSLOG"; }
hs_sas() { hs_cli --json sas; }
hs_qm_count() { hs_sas 2>/dev/null | jq '[.quick_mode[]?] | length'; }
hs_auth_toml() {
  if [ "$1" = psk ]; then printf 'authentication = "psk"\npsk = "%s"\n' "$3"
  else printf 'authentication = "certificate"\ncertificate = "%s"\nprivate_key = "%s"\ntrusted_cas = ["%s"]\nremote_id = "dn:%s"\n' \
         "$2/hostsec.$1.chain.pem" "$2/hostsec.$1.key" "$2/ca.pem" "$(pki_dn "peer.$1")"
  fi
}

hs_launch() {
  local ns=$1 cfg=$2 tmo=${3:-30} rc
  HS_ERR=''
  rm -f "$SOCK"
  echo "=== $(date -u +%FT%TZ) lab: starting hostsecd in $ns with $cfg" >> "$HSLOG"
  ip netns exec "$ns" "$HOSTSECD" --config "$cfg" --foreground --log-level "$LOG_LEVEL" >> "$HSLOG" 2>&1 9>&- &
  HS_PID=$!
  if ! lab_wait_until "$tmo" hs_ready_or_dead; then
    HS_ERR="hostsecd ($(basename "$cfg")) not ready after ${tmo}s: no control socket $SOCK or 'hostsec status' failing"
    hs_terminate; return 1
  fi
  if ! hs_alive; then
    wait "$HS_PID"; rc=$?; HS_PID=''
    HS_ERR="hostsecd exited with $rc during start-up with $(basename "$cfg")$( [ $rc = 2 ] && echo ' (invalid config)'): $(tail -n 3 "$HSLOG" | tr '\n' ' ')"
    return 1
  fi
}

hs_terminate() {
  HS_EXIT=''
  [ -n "$HS_PID" ] || return 0
  if kill -0 "$HS_PID" 2>/dev/null; then
    kill "$HS_PID" 2>/dev/null
    lab_wait_until 10 hs_dead || { echo "hostsecd $HS_PID ignored SIGTERM for 10 s: SIGKILL" >&2; kill -9 "$HS_PID" 2>/dev/null; }
  fi
  wait "$HS_PID" 2>/dev/null; HS_EXIT=$?
  echo "=== $(date -u +%FT%TZ) lab: hostsecd $HS_PID stopped, exit status $HS_EXIT" >> "$HSLOG"
  HS_PID=''
}
