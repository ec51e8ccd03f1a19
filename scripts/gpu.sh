#!/usr/bin/env bash
# GPU work in two halves (docs/cuda.md):
#
#   scripts/gpu.sh build   HERE: configure and build the CUDA targets in
#                          build-cuda (sm_90a; CUDA_ARCHS=... to change), then
#                          bundle the binaries, the CUDA module, the non-system
#                          shared libraries they need (from ldd) and the outside
#                          fixtures into .carry/gpu (git-ignored), and the
#                          same as .carry/gpu.tgz (gpu-bundle.sh says why).
#   scripts/gpu.sh run     ON THE GPU MACHINE, from the repository root with
#                          .carry/gpu.tgz (or .carry/gpu) carried: every GPU test (ctest label gpu:
#                          the kernel-test binary and the end-to-end test),
#                          logs under $OUT (or .carry/gpu/logs), a summary last.
#
# One device call: run(command="bash scripts/gpu.sh run", carry=[".carry/gpu.tgz"]).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$root/.carry/gpu"
build="${BUILD_DIR:-$root/build-cuda}"

build_here() {
  local archs="${CUDA_ARCHS:-90a}"
  cmake -S "$root" -B "$build" -G Ninja -DDMS_CUDA=ON -DDMS_BUILD_SERVER=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$archs" >/dev/null
  cmake --build "$build" -j "$(nproc)" --target dms_cuda dms-engine cuda_kernel_ops_test cuda_golden_test dms-cuda-bench \
    dms-server server_cuda_test soak_test dms cuda_kv_policy_test
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/fixtures"
  cp "$build/bin/dms-engine" "$build/bin/cuda_kernel_ops_test" "$build/bin/cuda_golden_test" \
     "$build/bin/dms-cuda-bench" "$build/bin/dms-server" "$build/bin/server_cuda_test" \
     "$build/bin/soak_test" "$build/bin/dms" "$build/bin/cuda_kv_policy_test" "$bundle/bin/"
  cp "$build/lib/libdms_cuda.so" "$bundle/lib/"
  # Symbols off: the working tree that travels is limited to 64 MiB.
  strip --strip-unneeded "$bundle"/bin/* "$bundle/lib/libdms_cuda.so"
  # Non-system libraries: everything ldd resolves outside glibc/libstdc++
  # and outside the CUDA toolkit (the GPU machine has its own).
  local libs
  libs=$(for f in "$bundle"/bin/* "$bundle"/lib/*.so; do ldd "$f"; done | awk '/=> \//{print $3}' |
         grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' |
         grep -v -E '/usr/local/cuda|libcuda\.so' | sort -u)
  for l in $libs; do cp -L "$l" "$bundle/lib/"; done
  if [ -d "$root/../shared/fixtures/models" ]; then
    cp -r "$root/../shared/fixtures/models" "$bundle/fixtures/"
  fi
  tar czf "$bundle.tgz" -C "$(dirname "$bundle")" "$(basename "$bundle")"
  echo "bundled into $bundle ($(du -sh "$bundle" | cut -f1); $bundle.tgz $(du -sh "$bundle.tgz" | cut -f1)):"
  ls "$bundle/bin" "$bundle/lib"
}

run_there() {
  source "$root/scripts/gpu-bundle.sh"
  local out="${OUT:-$bundle/logs}"
  mkdir -p "$out"
  export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  export DMS_TEST_DATA="$root/tests/data" DMS_BIN_DIR="$bundle/bin"
  export DMS_SHARED_FIXTURES="$bundle/fixtures"
  [ -d "$bundle/fixtures/models" ] || export DMS_SHARED_FIXTURES=/nonexistent
  (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi") | tee "$out/gpu.txt"
  local sanitizer=""
  for s in compute-sanitizer /usr/local/cuda/bin/compute-sanitizer; do
    if command -v "$s" >/dev/null 2>&1; then sanitizer="$s"; break; fi
  done
  local rc=0 summary="$out/summary.txt"
  : > "$summary"
  # Each test in its own process (as ctest does): a broken CUDA context
  # cannot take the later tests down with it.
  # SUITE=0 skips the tests (e.g. a sanitizer-only rerun of the same build).
  local suites="cuda_kernel_ops_test cuda_golden_test cuda_kv_policy_test server_cuda_test"
  [ "${SUITE:-1}" = 1 ] || suites=""
  for bin in $suites; do
    local log="$out/$bin.log"
    : > "$log"
    for t in $("$bundle/bin/$bin" --gtest_list_tests | awk '/^[^ ]/{s=$1} /^  /{print s $1}'); do
      local t0=$SECONDS st=0
      echo "##### $t" >> "$log"
      timeout "${TEST_TIMEOUT:-300}" "$bundle/bin/$bin" --gtest_color=no --gtest_filter="$t" >> "$log" 2>&1 || st=$?
      local verdict=PASS
      if [ $st -ne 0 ]; then verdict="FAIL(rc=$st)"; rc=1; fi
      if grep -q "GPU test skipped" <(sed -n "/##### $t\$/,\$p" "$log"); then verdict=SKIP; fi
      printf '%-70s %s %ss\n' "$bin.$t" "$verdict" $((SECONDS - t0)) >> "$summary"
      if [ $st -ne 0 ] && [ -n "$sanitizer" ] &&
         sed -n "/##### $t\$/,\$p" "$log" | grep -q -i -E 'illegal|misaligned|unspecified launch|out of bounds'; then
        echo "##### $bin $t" >> "$out/sanitizer.log"
        timeout 90 "$sanitizer" --print-limit 20 "$bundle/bin/$bin" --gtest_filter="$t" \
          >> "$out/sanitizer.log" 2>&1 || true
      fi
    done
  done
  # memcheck over the kernels and a whole backend run (slow: a subset).
  if [ -n "$sanitizer" ] && [ "${SANITIZE:-1}" = 1 ]; then
    # (EvictionRatesAndSmallHeadDims runs the tensor-core attention on its
    # bf16 head_dim-128 cases, both cores; HeadDim128TensorCorePrefill the
    # wgmma core through the backend; GemmOp the GEMV kernels; racecheck looks for
    # shared-memory races in the attention kernels' pipelines and the
    # kernels that stage through shared memory: append, epilogue, RMSNorm,
    # the GEMV's reductions with the folded norm.)
    for spec in "memcheck:cuda_kernel_ops_test:KvAppendOp.MatchesTheCpuCacheBitForBit:AttentionOp.EvictionRatesAndSmallHeadDims:QkvEpilogueOp.*:ElementwiseOp.*:SamplingOp.*:GemmOp.*" \
                "memcheck:cuda_golden_test:CudaGolden.BatchedSequencesMatchSeparateRuns:CudaGolden.ErrorsAreTheCpuBackendsAndLeaveNoTrace" \
                "memcheck:cuda_golden_test:CudaGolden.HeadDim128TensorCorePrefillMatchesTheMmaSyncCore" \
                "racecheck:cuda_kernel_ops_test:AttentionOp.EvictionRatesAndSmallHeadDims" \
                "racecheck:cuda_kernel_ops_test:KvAppendOp.MatchesTheCpuCacheBitForBit:QkvEpilogueOp.SweepMatchesTheCpuReference:ElementwiseOp.RmsNormWithResidualMatches:GemmOp.FoldedRmsNormMatchesTheCpuAndTheUnfoldedChain" \
                "memcheck:cuda_kernel_ops_test:SampleRowsOp.PenaltiesAccumulateOnTheDevice:SampleRowsOp.PenaltyStateLaunchers" \
                "memcheck:cuda_golden_test:CudaGolden.SampledRowsAreTheHostSamplersOnTheFullRows" \
                "racecheck:cuda_kernel_ops_test:SampleRowsOp.PenaltiesAccumulateOnTheDevice"; do
      local tool="${spec%%:*}" rest="${spec#*:}"
      local bin="${rest%%:*}" filter="${rest#*:}"
      echo "##### $tool $bin $filter" >> "$out/sanitizer.log"
      timeout 90 "$sanitizer" --tool "$tool" --print-limit 20 "$bundle/bin/$bin" --gtest_filter="$filter" \
        >> "$out/sanitizer.log" 2>&1 || rc=1
    done
    echo "=== compute-sanitizer memcheck / racecheck"
    grep -E '^##### |ERROR SUMMARY|RACECHECK SUMMARY|^\[  (PASSED|FAILED)' "$out/sanitizer.log" || true
  fi
  # The fault soak with the server on the GPU (issue 10).
  if [ "${SOAK:-1}" = 1 ]; then
    local st=0
    DMS_SOAK_BACKEND=cuda DMS_SOAK_SECONDS="${SOAK_SECONDS:-20}" DMS_SOAK_REPORT="$out/soak-cuda.json" \
      timeout 300 "$bundle/bin/soak_test" --gtest_color=no > "$out/soak_test.log" 2>&1 || st=$?
    printf '%-70s %s\n' "soak_test (backend cuda)" "$([ $st -eq 0 ] && echo PASS || echo "FAIL(rc=$st)")" >> "$summary"
    [ $st -eq 0 ] || rc=1
    grep -h '^soak:' "$out/soak_test.log" || true
  fi
  echo "=== failures"
  grep -h -E 'Failure|FAIL$|error:' "$out"/cuda_*.log | head -60 || true
  echo "=== summary (rc=$rc)"
  cat "$summary"
  grep -h -E 'decision agreement|memory plan|KV policy agreement' "$out"/cuda_*.log || true
  return $rc
}

case "${1:-}" in
  build) build_here ;;
  run) run_there ;;
  *) echo "usage: scripts/gpu.sh build|run" >&2; exit 2 ;;
esac
