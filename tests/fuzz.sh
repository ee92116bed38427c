#!/bin/bash
# Runs every cargo-fuzz target of fuzz/ for a fixed time budget, seeded with fuzz/seed_corpus.py and with the
# regression inputs of fuzz/regressions/<target>/ (inputs that once crashed a target; each is replayed first and
# must pass). Prints one line per target: executions, executions per second, corpus size, peak RSS. Exit 1 when a
# target crashes, leaks past libFuzzer's limits or times out on an input; the input is kept in the results
# directory with the replay command.
#
# Usage: tests/fuzz.sh [--seconds N] [--jobs N] [--targets REGEX]
#   --seconds  budget per target (default 20)
#   --jobs     targets fuzzed at once (default: the number of cores, at most 2)
#   --targets  only the targets whose name matches REGEX
# Environment: HOSTSEC_FUZZ_SANITIZER (default none: libFuzzer's coverage guidance, RSS/time limits and Rust's own
# checks, without AddressSanitizer, whose build of aws-lc-sys alone takes longer than CI's budget for fuzzing;
# set "address" for a deeper run).
# Results: tests/fuzz-results/ (summary.txt, per target: libFuzzer's log and any crash input).
# Needs cargo; installs cargo-fuzz with `cargo install` when it is missing. The toolchain may be stable:
# RUSTC_BOOTSTRAP=1 lets it take the nightly flags cargo-fuzz passes.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_TARGET=20 JOBS=$(( $(nproc) < 2 ? 1 : 2 )) ONLY=''
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) SECONDS_PER_TARGET=$2; shift 2;;
    --jobs) JOBS=$2; shift 2;;
    --targets) ONLY=$2; shift 2;;
    *) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2;;
  esac
done
SAN=${HOSTSEC_FUZZ_SANITIZER:-none}
R=$ROOT/tests/fuzz-results
rm -rf "$R"; mkdir -p "$R"
export RUSTC_BOOTSTRAP=1
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH=$HOME/.cargo/bin:$PATH

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install --locked cargo-fuzz)"
  cargo install --locked cargo-fuzz >"$R/install.log" 2>&1 || { tail -n 20 "$R/install.log"; exit 2; }
fi
cd "$ROOT/fuzz" || exit 2
python3 seed_corpus.py >"$R/seed.log" 2>&1 || { cat "$R/seed.log"; exit 2; }
mapfile -t TARGETS < <(cargo fuzz list | grep -E -- "${ONLY:-.}")
[ ${#TARGETS[@]} -gt 0 ] || { echo "no fuzz target matches '$ONLY'" >&2; exit 2; }
t0=$(date +%s)
if ! cargo fuzz build -O -s "$SAN" >"$R/build.log" 2>&1; then
  tail -n 30 "$R/build.log"; echo "FAIL: cargo fuzz build"; exit 1
fi
echo "built ${#TARGETS[@]} targets (sanitizer $SAN) in $(( $(date +%s) - t0 ))s"

# fuzz_one TARGET: replay the regressions, then fuzz for the budget; writes $R/TARGET.result (one line)
fuzz_one() {
  local t=$1 d=$R/$1 corpus=$ROOT/fuzz/corpus/$1 reg=$ROOT/fuzz/regressions/$1 rc n execs rss cov secs
  mkdir -p "$d" "$corpus"
  if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
    n=$(ls "$reg" | wc -l)
    if ! cargo fuzz run -O -s "$SAN" "$t" "$reg"/* -- -runs=1 >"$d/regressions.log" 2>&1; then
      echo "FAIL $t: a regression input crashes again (fuzz/regressions/$t, log $d/regressions.log)" >"$R/$t.result"
      return 1
    fi
  else n=0; fi
  secs=$SECONDS_PER_TARGET
  cargo fuzz run -O -s "$SAN" "$t" "$corpus" -- -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$d/" >"$d/fuzz.log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/fuzz.log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$d/fuzz.log" | tail -n 1)
  cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE).*cov: ' "$d/fuzz.log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*corp: \([0-9]*\).*/cov \1, corpus \2/p')
  if [ $rc = 0 ]; then
    printf 'PASS %-16s %10s executions in %ss (%s/s), %s, peak RSS %s MB, %s regression inputs\n' "$t" "${execs:-?}" \
      "$secs" "$(( ${execs:-0} / secs ))" "${cov:-cov ?}" "${rss:-?}" "$n" >"$R/$t.result"
  else
    printf 'FAIL %-16s exit %s after %s executions: %s; input: %s (replay: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O -s %s %s INPUT)\n' \
      "$t" "$rc" "${execs:-?}" "$(grep -m 1 -E '^==[0-9]+== ERROR|panicked at|^SUMMARY' "$d/fuzz.log" | cut -c1-200)" \
      "$(ls "$d"/crash-* "$d"/leak-* "$d"/timeout-* "$d"/oom-* 2>/dev/null | head -n 1)" "$SAN" "$t" >"$R/$t.result"
    return 1
  fi
}
export -f fuzz_one
export R ROOT SAN SECONDS_PER_TARGET
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'fuzz_one {}'
fail=0
for t in "${TARGETS[@]}"; do
  cat "$R/$t.result" 2>/dev/null || echo "FAIL $t: no result"
  grep -q '^PASS' "$R/$t.result" 2>/dev/null || fail=1
done | tee "$R/summary.txt"
grep -q '^FAIL' "$R/summary.txt" && fail=1
echo "fuzzing: ${#TARGETS[@]} targets x ${SECONDS_PER_TARGET}s, $JOBS at a time, $(( $(date +%s) - t0 ))s with the build -- $([ $fail = 0 ] && echo PASS || echo FAIL)"
exit $fail
