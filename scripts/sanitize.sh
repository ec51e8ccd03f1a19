#!/usr/bin/env bash
# Builds the CPU product with sanitizers and runs the whole CPU test suite
# (server end-to-end, client, deploy and fuzz-regression tests included).
#
#   scripts/sanitize.sh asan    AddressSanitizer + UndefinedBehaviorSanitizer (build-asan)
#   scripts/sanitize.sh tsan    ThreadSanitizer (build-tsan)
#
# Any report fails the run (halt_on_error, -fno-sanitize-recover).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kind="${1:?usage: scripts/sanitize.sh asan|tsan}"
case "$kind" in
  asan) flags="address,undefined" ;;
  tsan) flags="thread" ;;
  *) echo "sanitize: unknown kind '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
build="$root/build-$kind"
jobs="${JOBS:-$(nproc)}"
# -O1 without debug info for the engine (the compute the tests drive), -O0 for
# the glue directories (CMakeLists.txt: server, client, protobuf stubs, tests;
# 26 s -> 15 s for a client file under ASan+UBSan); symbolized stacks come
# from -fno-omit-frame-pointer.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="-O1" \
  -DCMAKE_C_FLAGS_SANITIZE="-O1" -DDMS_CUDA=OFF -DDMS_SANITIZE="$flags" >/dev/null
t0=$SECONDS
cmake --build "$build" -j "$jobs"
echo "sanitize($kind): build done in $((SECONDS - t0)) s"
t0=$SECONDS
supp="$root/tests/sanitizers"
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp"
# Sanitized code is slower: a shorter soak keeps CI inside its budget.
export DMS_SOAK_SECONDS="${DMS_SOAK_SECONDS:-10}"
ctest --test-dir "$build" --output-on-failure -j "$jobs" -LE gpu
echo "sanitize($kind): tests done in $((SECONDS - t0)) s"
