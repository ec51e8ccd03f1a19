#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz, runs each
# for a bounded time from its seed corpus, replays every saved regression
# input, and prints executions per target. Exit status 1 when any target
# crashed or violated a property (its input is kept under
# build-fuzz/fuzz-artifacts/<target>/; copy it to tests/fuzz/regressions/<target>/
# to make it a regression test). See docs/fuzzing.md.
#
# Environment:
#   DMS_FUZZ_SECONDS   seconds per target (default 20)
#   DMS_FUZZ_TARGETS   space-separated subset (default: all)
#   DMS_FUZZ_BUILD_DIR build directory (default build-fuzz)
#   DMS_FUZZ_REPORT    where to write the results as TSV (default $BUILD_DIR/fuzz-report.tsv)
#   JOBS               build parallelism and targets fuzzed at once (default nproc)
#   DMS_FUZZ_STACK_KB  stack of the JSON targets and their replays (default 1024), small
#                      so that recursion over deeply nested input crashes (docs/security.md)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${DMS_FUZZ_SECONDS:-20}
TARGETS=${DMS_FUZZ_TARGETS:-"tokenizer tokenizer_json safetensors shard_index model_config chat_template request_builder"}
BUILD_DIR=${DMS_FUZZ_BUILD_DIR:-build-fuzz}
REPORT=${DMS_FUZZ_REPORT:-$BUILD_DIR/fuzz-report.tsv}
JOBS=${JOBS:-$(nproc)}

CXX_BIN=$(command -v clang++-14 || command -v clang++ || true)
C_BIN=$(command -v clang-14 || command -v clang || true)
if [[ -z "$CXX_BIN" || -z "$C_BIN" ]]; then
  echo "fuzz: clang is not installed (scripts/setup.sh installs clang-14 and libclang-rt-14-dev)" >&2
  exit 2
fi

declare -A DICT=([safetensors]=json [shard_index]=json [model_config]=json [chat_template]=json
                 [tokenizer_json]=json
                 [tokenizer]=tokenizer)
# Targets that read JSON run on a small stack: a recursive walk of a deep
# input overflows it and shows as a crash instead of passing on 8 MB.
STACK_KB=${DMS_FUZZ_STACK_KB:-1024}
declare -A SMALL_STACK=([safetensors]=1 [shard_index]=1 [model_config]=1 [chat_template]=1
                        [tokenizer_json]=1)

start=$(date +%s)
mkdir -p "$BUILD_DIR"
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  CC="$C_BIN" CXX="$CXX_BIN" cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DDMS_FUZZ=ON -DDMS_CUDA=OFF >"$BUILD_DIR/fuzz-configure.log" 2>&1 ||
    { cat "$BUILD_DIR/fuzz-configure.log" >&2; exit 2; }
fi
build_targets=()
for t in $TARGETS; do build_targets+=("fuzz_$t"); done
cmake --build "$BUILD_DIR" --target "${build_targets[@]}" -j "$JOBS" >"$BUILD_DIR/fuzz-build.log" 2>&1 ||
  { tail -50 "$BUILD_DIR/fuzz-build.log" >&2; echo "fuzz: build failed (log: $BUILD_DIR/fuzz-build.log)" >&2; exit 2; }
built=$(date +%s)
echo "fuzz: built ${#build_targets[@]} targets in $((built - start)) s; ${SECONDS_PER_TARGET} s per target"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$BUILD_DIR/fuzz-logs"
# A libFuzzer final statistic ("stat::NAME: VALUE") from a log.
fuzz_stat() { grep -m1 "^stat::$1:" "$2" | awk '{print $2}' || true; }
# The first line saying what went wrong in a crash log.
first_error() {
  grep -m1 -E "fuzz property violated|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:" "$1" |
    cut -c1-160 || true
}

# Runs a target's binary, on a small stack when it reads JSON.
run_target() {
  local t=$1
  shift
  if [[ -n "${SMALL_STACK[$t]:-}" ]]; then
    (ulimit -s "$STACK_KB" && exec "$@")
  else
    "$@"
  fi
}

# One target: fuzz it, replay its saved regressions, write its report row to
# fuzz-logs/<target>.row; exit status 1 when anything failed. Targets run
# $JOBS at a time (each is single-threaded).
fuzz_target() {
  local t=$1 failed=0
  local bin="$BUILD_DIR/bin/fuzz_$t"
  local work="$BUILD_DIR/fuzz-corpus/$t"          # new inputs go here, never into the source tree
  local artifacts="$BUILD_DIR/fuzz-artifacts/$t/"
  local log="$BUILD_DIR/fuzz-logs/$t.log"
  mkdir -p "$work" "$artifacts"
  local args=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=8192
              -print_final_stats=1 -artifact_prefix="$artifacts")
  [[ -n "${DICT[$t]:-}" ]] && args+=(-dict="tests/fuzz/dicts/${DICT[$t]}.dict")
  local fuzz_result=ok
  local t0 t1
  t0=$(date +%s.%N)
  if ! run_target "$t" "$bin" "${args[@]}" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    fuzz_result=crash
    failed=1
    echo "fuzz: $t: $(first_error "$log")" >&2
    echo "fuzz: $t: input saved in $artifacts (log: $log); add it to tests/fuzz/regressions/$t/" >&2
  fi
  t1=$(date +%s.%N)
  local execs rate added
  execs=$(fuzz_stat number_of_executed_units "$log")
  rate=$(awk -v n="${execs:-0}" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", n / (b - a) }')
  added=$(fuzz_stat new_units_added "$log")
  # Saved regression inputs: each run once, as a normal (non-fuzzing) run.
  local nreg=0 nbad=0 input
  if [[ -d "tests/fuzz/regressions/$t" ]]; then
    while IFS= read -r input; do
      nreg=$((nreg + 1))
      if ! run_target "$t" "$bin" "$input" >"$log.replay" 2>&1; then
        nbad=$((nbad + 1))
        failed=1
        echo "fuzz: $t: regression $input fails: $(first_error "$log.replay")" >&2
      fi
      cat "$log.replay" >>"$log"
    done < <(find "tests/fuzz/regressions/$t" -type f | sort)
    rm -f "$log.replay"
  fi
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$t" "$SECONDS_PER_TARGET" "${execs:-?}" "$rate" "${added:-?}" \
    "$fuzz_result" "$nreg" "$nbad" >"$BUILD_DIR/fuzz-logs/$t.row"
  return $failed
}

failed=0
pids=()
for t in $TARGETS; do
  rm -f "$BUILD_DIR/fuzz-logs/$t.row"
  fuzz_target "$t" &
  pids+=($!)
  if ((${#pids[@]} >= JOBS)); then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done

printf "target\tseconds\texecutions\texec_per_s\tnew_inputs\tfuzz_result\tregressions\tregressions_failed\n" >"$REPORT"
for t in $TARGETS; do
  if [[ -f "$BUILD_DIR/fuzz-logs/$t.row" ]]; then
    cat "$BUILD_DIR/fuzz-logs/$t.row" >>"$REPORT"
  else
    echo "fuzz: $t: no result (the runner itself failed)" >&2
    failed=1
  fi
done

echo
column -t -s $'\t' "$REPORT"
echo "fuzz: total $(( $(date +%s) - start )) s (report: $REPORT)"
exit $failed
