#!/usr/bin/env bash
# Regenerates every golden fixture that needs torch/transformers, and runs all
# reference checks. Meant for the GPU machine (everything runs on its CPUs):
#
#   tests/reference/run_on_device.sh TOKENIZER_DIR OUT_DIR [SHARED_MODELS_DIR]
#
# Writes OUT_DIR/tokenizer/*.jsonl, OUT_DIR/models/<name>/ and OUT_DIR/logs/.
# With SHARED_MODELS_DIR (a copy of ../shared/fixtures/models) the reference is
# also checked against those outside fixtures. Exit status 1 when anything failed.
set -uo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore
here=$(cd "$(dirname "$0")" && pwd)
tok=$1 out=$2 shared=${3:-}
mkdir -p "$out/models" "$out/logs"
status=0

python3 "$here/make_tokenizer_golden.py" --tokenizer-dir "$tok" --out-dir "$out/tokenizer" \
  > "$out/logs/tokenizer.log" 2>&1 &
tok_pid=$!

# One process per model: the matrices are tiny, the Python loops are not.
python3 "$here/make_golden_models.py" --list |
  xargs -P "$(nproc)" -I{} sh -c \
    "python3 '$here/make_golden_models.py' --out-dir '$out/models' --only {} > '$out/logs/make-{}.log' 2>&1" \
  || status=1
cat "$out"/logs/make-*.log

dirs=("$out"/models/*/)
if [[ -n "$shared" ]]; then dirs+=("$shared"/*/); fi
printf '%s\n' "${dirs[@]}" |
  xargs -P "$(nproc)" -I{} sh -c \
    "python3 '$here/check_fixtures.py' {} > \"$out/logs/check-\$(basename {}).log\" 2>&1" \
  || status=1
cat "$out"/logs/check-*.log

if [[ -n "$shared" ]]; then
  python3 "$here/crosscheck_hf.py" "$shared"/*/ 2>&1 | tee "$out/logs/crosscheck-shared.log" || status=1
fi

wait "$tok_pid" || status=1
cat "$out/logs/tokenizer.log"
echo "run_on_device: status $status"
exit "$status"
