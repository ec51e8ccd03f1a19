# shellcheck shell=bash
# Sourced by the GPU benchmark scripts (gpu-bench.sh, gpu-decode-ab.sh,
# gpu-prefill-ab.sh, gpu-policies.sh) on the GPU machine, with .carry/gpu.tgz
# or .carry/gpu carried. Sets root, bundle (.carry/gpu, unpacked by gpu-bundle.sh), out (OUT, else .carry/gpu/logs;
# created) and model (MODEL_DIR, else /tmp/dms-qwen3-8b), puts the bundle's
# libraries on LD_LIBRARY_PATH, and defines ensure_bench_model: the
# `make-model --preset qwen3-8b` checkpoint they share, made when missing.
# Each of them is run as `scripts/<name>.sh run`: anything else is a usage
# error (sourcing keeps the caller's $0 and arguments).
[ "${1:-}" = run ] || { echo "usage: scripts/$(basename "$0") run" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/gpu-bundle.sh"
out="${OUT:-$bundle/logs}"
model="${MODEL_DIR:-/tmp/dms-qwen3-8b}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"

ensure_bench_model() {
  if [ ! -f "$model/config.json" ]; then
    timeout 150 "$bundle/bin/dms-engine" make-model --out "$model" --preset qwen3-8b --evict-rate 0.875
  fi
}
