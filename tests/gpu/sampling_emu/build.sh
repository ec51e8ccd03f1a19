#!/usr/bin/env bash
# Builds the row sampler's CPU emulation (see sampling_rows_emu.cc) into
# $OUT (default /tmp/sampling_emu) and, with arguments, runs it:
#   tests/gpu/sampling_emu/build.sh              build only
#   tests/gpu/sampling_emu/build.sh 32000 8 1    sweep up to vocab 32000, 8 rows, seed 1
# Needs a configured build dir with dms_core and dms_common built ($BUILD, default build).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${OUT:-/tmp/sampling_emu}
build=${BUILD:-$root/build}
mkdir -p "$out"
# The kernel without its launcher; dynamic shared memory as a static array.
sed -n '/^namespace dms::cuda {/,/^}  \/\/ namespace$/p' "$root/kernels/sampling_rows.cu" |
  sed 's/extern __shared__ __align__(16) unsigned char smem_raw\[\];/alignas(16) static unsigned char smem_raw[sizeof(sampling::SampleSmem)];/' \
  > "$out/rows_body.inc"
echo "}" >> "$out/rows_body.inc"
# The GPU test's CPU-side helpers (TraceSample, MakeRow, RandomParams, ...).
{
  echo "constexpr double kTol = 1e-9;"
  awk '/^\/\/ ---- The CPU.s arithmetic/{p=1} /^\/\/ Runs `steps` steps/{p=0} p' "$root/tests/gpu/ops_sampling_rows_test.cc"
  awk '/^std::vector<int32_t> RandomPrompt/{p=1} p{print} p&&/^}/{exit}' "$root/tests/gpu/ops_sampling_rows_test.cc"
} > "$out/helpers.inc"
g++ -std=c++20 -O2 -w -I"$root" -I"$out" -isystem /usr/local/cuda/include \
  "$root/tests/gpu/sampling_emu/sampling_rows_emu.cc" "$build/lib/libdms_core.a" "$build/lib/libdms_common.a" \
  -o "$out/sampling_rows_emu"
if [ $# -gt 0 ]; then "$out/sampling_rows_emu" "$@"; fi
