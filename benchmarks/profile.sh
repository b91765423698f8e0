#!/usr/bin/env bash
# Per-op profile of a variant's artifacts (made by benchmarks/run.sh): why int8 is or is not faster than
# float32, and where the builtin kernels lose time on grouped convs.   usage: benchmarks/profile.sh 200mf|800mf
set -euo pipefail
variant=${1:-200mf}
py=${PYTHON:-.venv/bin/python}
base=benchmarks/artifacts/$variant/regnety_${variant//./_}
out=benchmarks/${variant}_ops.md
for file in "${base}"_{float32,int8}_{native,split}.tflite; do
  [ -f "$file" ] || { echo "error: $file is missing; run benchmarks/run.sh $variant first" >&2; exit 2; }
done
profile() {  # profile <title> <kernels> <file> <file>
  printf '\n## %s\n\n```\npython -m edge.profile --kernels %s --model %s --model %s\n```\n\n' "$1" "$2" "$3" "$4"
  "$py" -m edge.profile --kernels "$2" --threads 2 --runs 30 --model "$3" --model "$4"
}
{
  echo "# RegNetY-$variant: per-op profile"
  echo
  echo "Each op of the file timed as a one-op model (same kernels, 2 threads, median of 30 runs);"
  echo "ops summed by kind. Made by \`benchmarks/profile.sh $variant\` on $(date -u +%Y-%m-%d)."
  profile "XNNPACK: float32 [1] against full int8 [2], native grouped convs" xnnpack \
    "${base}_float32_native.tflite" "${base}_int8_native.tflite"
  profile "Builtin kernels, float32: native grouped convs [1] against split [2]" builtin \
    "${base}_float32_native.tflite" "${base}_float32_split.tflite"
  profile "Builtin kernels, int8: native grouped convs [1] against split [2]" builtin \
    "${base}_int8_native.tflite" "${base}_int8_split.tflite"
} > "$out.partial"
mv "$out.partial" "$out"
echo "wrote $out"
