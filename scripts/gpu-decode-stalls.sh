#!/usr/bin/env bash
# Why the decode attention kernels run below the HBM's rate (issue 30;
# docs/batch-decode.md): Nsight Compute's full section set (warp stalls,
# memory workload, occupancy, source counters) for one launch of each decode
# attention kernel in a DMS decode step, at each stream count, on a 4-layer
# checkpoint with Qwen3-8B's attention geometry (the kernel sees the same
# shapes as in the 36-layer model). Reports go to $OUT/stalls-<config>-<S>.txt.
#
#   scripts/gpu.sh build                      here
#   scripts/gpu-decode-stalls.sh run          on the GPU machine, .carry/gpu.tgz carried
# Env: STREAMS (8 32), CONTEXT (8192), CONFIGS (dms dms-streamed), KERNEL
# (the ncu kernel-name regex).
set -euo pipefail
source "$(dirname "$0")/gpu-bench-env.sh"
model="${MODEL_DIR:-/tmp/dms-qwen3-8b-4l}"
[ -f "$model/config.json" ] ||
  timeout 150 "$bundle/bin/dms-engine" make-model --out "$model" --preset qwen3-8b --layers 4 --evict-rate 0.875
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1 || true)
[ -n "$ncu_bin" ] || { echo "gpu-decode-stalls: ncu not found" >&2; exit 2; }
for S in ${STREAMS:-8 32}; do
  for config in ${CONFIGS:-dms dms-streamed}; do
    rep="$out/stalls-$config-$S"
    timeout 300 "$ncu_bin" --profile-from-start off --set full --import-source no \
      -k "regex:${KERNEL:-Dms(Decode)?AttentionKernel}" --launch-skip 1 --launch-count 1 -f -o "$rep" \
      "$bundle/bin/dms-cuda-bench" --model "$model" --batch-streams "$S" --batch-context "${CONTEXT:-8192}" \
      --batch-steps 1 --batch-configs "$config" --batch-profile 1 --batch-capacity 0 \
      > "$rep.log" 2>&1 || echo "ncu failed for $config $S streams (see $rep.log)"
    "$ncu_bin" --import "$rep.ncu-rep" --page details --print-details all > "$rep.txt" 2>&1 || true
    grep -E "Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Stall|smsp__pcsamp" "$rep.txt" | head -40
  done
done
