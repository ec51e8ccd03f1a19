#!/usr/bin/env bash
# Where a batched decode step's time goes (issue 30 point 1; docs/batch-decode.md):
# Nsight Compute times every kernel of one DMS decode step at each stream
# count (8K context a stream, `make-model --preset qwen3-8b --evict-rate 0.875`)
# with the bytes each moved from DRAM; a table per stream count, summed per
# kernel, goes to $OUT/decode-profile.txt (the raw CSVs beside it).
#
#   scripts/gpu.sh build                      here
#   scripts/gpu-decode-profile.sh run         on the GPU machine, .carry/gpu.tgz carried
# Env: STREAMS (8,32,64), CONTEXT (8192), CONFIGS (dms), and the sampling of
# the rows: TEMPERATURE (0 = greedy), TOP_P, TOP_K.
set -euo pipefail
source "$(dirname "$0")/gpu-bench-env.sh"
ensure_bench_model
ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1 || true)
[ -n "$ncu_bin" ] || { echo "gpu-decode-profile: ncu not found" >&2; exit 2; }
for S in ${STREAMS:-8 32 64}; do
  for config in ${CONFIGS:-dms}; do
    csv="$out/ncu-decode-$config-$S.csv"
    timeout 400 "$ncu_bin" --profile-from-start off --cache-control none --clock-control none \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum --csv --page raw \
      "$bundle/bin/dms-cuda-bench" --model "$model" --batch-streams "$S" --batch-context "${CONTEXT:-8192}" \
      --batch-steps 1 --batch-configs "$config" --batch-profile 1 --batch-capacity 0 \
      --batch-temperature "${TEMPERATURE:-0}" --batch-top-p "${TOP_P:-1}" --batch-top-k "${TOP_K:-0}" \
      > "$csv" 2> "$out/ncu-decode-$config-$S.log" || echo "ncu failed for $config $S streams (see the log)"
  done
done
python3 - "$out" <<'PY' | tee "$out/decode-profile.txt"
# Sums ncu's raw page per kernel name: calls, microseconds, DRAM bytes, GB/s.
import csv, glob, os, re, sys
out = sys.argv[1]
for path in sorted(glob.glob(os.path.join(out, "ncu-decode-*.csv"))):
    rows = []
    with open(path) as f:
        lines = [l for l in f if l.startswith('"')]
    if len(lines) < 3:
        print(f"{os.path.basename(path)}: no kernels captured")
        continue
    reader = csv.DictReader(lines)
    units = next(reader)  # ncu's second line holds the units
    per = {}
    for r in reader:
        name = re.sub(r"\(.*", "", r["Kernel Name"])[:60]
        t = float(r["gpu__time_duration.sum"].replace(",", "") or 0)
        rd = float(r["dram__bytes_read.sum"].replace(",", "") or 0)
        wr = float(r["dram__bytes_write.sum"].replace(",", "") or 0)
        tu, bu = units["gpu__time_duration.sum"], units["dram__bytes_read.sum"]
        t *= {"ns": 1e-3, "us": 1, "usecond": 1, "nsecond": 1e-3, "ms": 1e3, "msecond": 1e3}.get(tu, 1)
        scale = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}.get(bu, 1)
        c = per.setdefault(name, [0, 0.0, 0.0])
        c[0] += 1; c[1] += t; c[2] += (rd + wr) * scale
    total = sum(v[1] for v in per.values())
    print(f"== {os.path.basename(path)}: {sum(v[0] for v in per.values())} launches, {total / 1e3:.3f} ms of kernels")
    print(f"{'kernel':60s} {'calls':>6s} {'us':>10s} {'share':>6s} {'GB':>8s} {'GB/s':>8s}")
    for name, (n, t, b) in sorted(per.items(), key=lambda kv: -kv[1][1]):
        print(f"{name:60s} {n:6d} {t:10.1f} {t / total:6.1%} {b / 1e9:8.3f} {b / 1e3 / t if t else 0:8.0f}")
    print()
PY
