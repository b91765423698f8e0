#!/usr/bin/env bash
# Reproduce a variant's benchmark table (benchmarks/README.md): convert every artifact, then time them all
# in one run, Keras reference included.   usage: benchmarks/run.sh 200mf|800mf  (about 15-30 minutes)
set -euo pipefail
variant=${1:-200mf}
py=${PYTHON:-.venv/bin/python}
dir=benchmarks/artifacts/$variant
mkdir -p "$dir"
extra=()
[ "$variant" = 200mf ] || extra=(--allow-drift)  # no reference checkpoint: random weights, timed for speed only
name=regnety_${variant//./_}
models=()
convert() {  # convert <module> <file> <args...>
  local module=$1 file=$2; shift 2
  [ -f "$dir/$file" ] || "$py" -m "converters.$module" --variant "$variant" --out "$dir/$file" "${extra[@]}" "$@"
  models+=(--model "$dir/$file")
}
for lowering in native split dense; do
  convert tflite "${name}_float32_${lowering}.tflite" --grouped-conv "$lowering"
  convert tflite "${name}_int8_${lowering}.tflite" --grouped-conv "$lowering" --int8
done
convert tflite "${name}_float16_native.tflite" --fp16
convert tflite "${name}_dynamic_native.tflite" --dynamic
convert onnx "${name}_float32.onnx"
convert onnx "${name}_int8.onnx" --int8
"$py" -m edge.benchmark "${models[@]}" --reference --variant "$variant" --kernels both --threads 2 \
  --runs 100 --warmup 10 --batch 8 --json "benchmarks/$variant.json" --plot "benchmarks/$variant.png" \
  | tee "benchmarks/$variant.md"
benchmarks/profile.sh "$variant"
