#!/usr/bin/env bash
# One seed model through every format and precision, then its latency: the seed-model table (docs/seed-models.md).
#   usage: benchmarks/zoo.sh convnext_tiny|efficientnet_b7   (ConvNeXt-Tiny about 40 minutes)
#   EfficientNet-B7 (about 40 minutes; its selective int8 is left out, see docs/seed-models.md):
#     ZOO_ARGS="--val-size 22 --calib-size 16" KEEP_FLOAT=0 RUNS=5 benchmarks/zoo.sh efficientnet_b7
# Artifacts go to benchmarks/artifacts/MODEL/ (not committed); their drift reports and the latency rows are
# gathered into benchmarks/zoo.md by benchmarks/zoo_table.py. Every precision is written with --allow-drift so
# the table can show what is over budget, except the selective int8 (--keep-float auto), which must meet it.
set -euo pipefail
model=${1:?usage: benchmarks/zoo.sh convnext_tiny|efficientnet_b7}
py=${PYTHON:-.venv/bin/python}
read -r -a extra <<< "${ZOO_ARGS:-}"   # more converter options, for every conversion
keep_float=${KEEP_FLOAT:-1}
dir=benchmarks/artifacts/$model
mkdir -p "$dir"
models=()
convert() {  # convert <module> <file> <args...>
  local module=$1 file=$2; shift 2
  [ -f "$dir/$file" ] || "$py" -m "converters.$module" --model "$model" --out "$dir/$file" "$@" "${extra[@]}" \
    || echo "zoo.sh: $file not written (see above); the table goes on without it" >&2
  [ ! -f "$dir/$file" ] || models+=(--model "$dir/$file")
}
convert tflite "${model}_float32.tflite" --allow-drift
convert tflite "${model}_float16.tflite" --fp16 --allow-drift
convert tflite "${model}_dynamic.tflite" --dynamic --allow-drift
convert tflite "${model}_int8.tflite" --int8 --allow-drift
[ "$keep_float" = 0 ] || convert tflite "${model}_int8_keep_float.tflite" --int8 --keep-float auto
convert onnx "${model}_float32.onnx" --allow-drift
convert onnx "${model}_int8.onnx" --int8 --allow-drift
convert onnx "${model}_int8_reduce_range.onnx" --int8 --reduce-range --allow-drift  # 7-bit weights: x86 without VNNI
runs=${RUNS:-30}
"$py" -m edge.benchmark "${models[@]}" --threads 2 --runs "$runs" --warmup 3 --batch 1 \
  --json "benchmarks/$model.json" | tee "benchmarks/$model.md"
# The same selective int8 under a stricter budget (logit error at most 1% of the range), to see which layers
# it keeps in float and what they cost when full int8 already meets the default budget.
strict=benchmarks/artifacts/${model}_strict/${model}_int8_keep_float_max_error_1pct.tflite
[ "$keep_float" = 0 ] || [ -f "$strict" ] \
  || "$py" -m converters.tflite --model "$model" --int8 --keep-float auto --max-error 0.01 --out "$strict" "${extra[@]}" \
  || echo "zoo.sh: $strict not written (see above)" >&2
[ "$keep_float" = 0 ] || [ ! -f "$strict" ] || "$py" -m edge.benchmark --model "$strict" --threads 2 --runs "$runs" --warmup 3 --batch 1 \
  --json "benchmarks/${model}_strict.json" > /dev/null
"$py" benchmarks/zoo_table.py > benchmarks/zoo.md
