#!/usr/bin/env bash
# A/B of the prefill attention kernel between builds, on one card in one run
# (timings from different runs or cards are not comparable: docs/cuda.md).
# dms-cuda-bench links the kernels statically, so a copy of it is a variant.
#
#   HERE:  scripts/gpu.sh build                  (build-cuda from this tree)
#          scripts/gpu-kernel-ab.sh keep NAME    copies build-cuda's dms-cuda-bench
#                                                to .carry/ab/bench-NAME (stripped)
#          ... change the tree, build again, keep another name ...
#   THERE: run(command="bash scripts/gpu-kernel-ab.sh run A B",
#              carry=[".carry/gpu.tgz", ".carry/ab"])
#          (.carry/gpu.tgz, made by gpu.sh build, for dms-engine and the
#          shared libraries: .carry/gpu itself is too large to carry next to
#          the variants)
#
# run: the variants in the order given, then in reverse (A B B A), each one
# process of `dms-cuda-bench --micro 1 --attn-lengths $LENGTHS` on a
# `make-model --preset small` checkpoint; prints each run's sparse DMS
# attention rows ("mode":"dms": the kept-key list and the kernel, timed
# together). docs/prefill-attention.md has the tables made with it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ab="$root/.carry/ab"
lengths="${LENGTHS:-16384,32768}"

case "${1:-}" in
  keep)
    [ -n "${2:-}" ] || { echo "usage: $0 keep NAME" >&2; exit 2; }
    mkdir -p "$ab"
    strip --strip-unneeded -o "$ab/bench-$2" "${BUILD_DIR:-$root/build-cuda}/bin/dms-cuda-bench"
    echo "kept $ab/bench-$2"
    ;;
  run)
    shift
    [ "$#" -ge 1 ] || { echo "usage: $0 run NAME [NAME ...]" >&2; exit 2; }
    source "$root/scripts/gpu-bundle.sh"
    export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
    model="${TMPDIR:-/tmp}/dms-ab-small"
    [ -f "$model/config.json" ] ||
      "$bundle/bin/dms-engine" make-model --out "$model" --preset small > /dev/null
    nvidia-smi --query-gpu=name --format=csv,noheader || true
    order=("$@")
    for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done
    for v in "${order[@]}"; do
      echo "== $v"
      "$ab/bench-$v" --model "$model" --prompts "" --decode-contexts "" --micro 1 \
        --attn-lengths "$lengths" | grep '"mode":"dms"' || echo "(no dms rows: $v failed)"
    done
    ;;
  *)
    echo "usage: $0 keep NAME | run NAME [NAME ...]" >&2
    exit 2
    ;;
esac
