"""The seed-model table: every model x format x precision, from the artifacts' own drift reports and the
latency rows `edge.benchmark` wrote. Markdown on stdout.

    python benchmarks/zoo_table.py > benchmarks/zoo.md

Reads benchmarks/artifacts/MODEL/*.json (written beside each artifact by the converters) and
benchmarks/MODEL.json (edge.benchmark --json); RegNetY-200MF's come from benchmarks/run.sh, the others
from benchmarks/zoo.sh. A model whose artifacts are absent is left out, and said so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = {  # artifacts folder -> (benchmark JSON, title, which of its files make the table)
    "200mf": ("200mf.json", "RegNetY-200MF (kit reference)", ("float32_native.tflite", "float16_native.tflite",
              "dynamic_native.tflite", "int8_native.tflite", "float32.onnx", "int8.onnx")),
    "convnext_tiny": ("convnext_tiny.json", "ConvNeXt-Tiny 224 (kit reference)", None),
    "convnext_tiny_strict": ("convnext_tiny_strict.json", "ConvNeXt-Tiny 224, `--max-error 0.01`", None),
    "efficientnet_b7": ("efficientnet_b7.json", "EfficientNet-B7 600 (seeded random weights, 22 crops)", None),
}


FORMATS = ("tflite", "onnx")
PRECISIONS = ("float32", "float16", "dynamic", "int8")


def latencies(bench: Path) -> dict[str, float]:
    """p50 ms per artifact name, with XNNPACK (LiteRT) or ONNX Runtime, 2 threads."""
    if not bench.is_file():
        return {}
    rows = json.loads(bench.read_text())["rows"]
    return {Path(r["model"]).name: r["p50_ms"] for r in rows if r["kernels"] in ("xnnpack", "ort") and r["threads"] == 2}


def rows(folder: str, bench: str, title: str, pick) -> list[str]:
    directory = HERE / "artifacts" / folder
    reports = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if pick:
        reports = [r for r in reports if r.name.removesuffix(".json").endswith(pick)]
    timing = latencies(HERE / bench)
    metas = sorted(((json.loads(r.read_text()), r) for r in reports), key=lambda m: (
        FORMATS.index(m[0]["format"]), PRECISIONS.index(m[0]["precision"]), "keep_float" in m[0], bool(m[0].get("reduce_range"))))
    out = []
    for meta, report in metas:
        artifact = report.name.removesuffix(".json")
        drift = meta["drift"]
        kept = meta.get("keep_float")
        precision = ", ".join([meta["precision"]]
                              + ([f"keep-float {' '.join(kept['requested'])}: {kept['tensors']} tensors in float"] if kept else [])
                              + (["7-bit weights (`--reduce-range`)"] if meta.get("reduce_range") else []))
        accuracy = (f"{drift['reference_accuracy']:.1%} → {drift['artifact_accuracy']:.1%}"
                    if drift.get("reference_accuracy") is not None else "— (no labels)")
        verdict = "within" if drift["within_budget"] else "over: " + "; ".join(drift["violations"])
        p50 = timing.get(artifact)
        out.append(f"| {title} | {meta['format']} | {precision} | {(directory / artifact).stat().st_size / 1e6:.1f} | "
                   f"{meta['validated_with'].replace('ai_edge_litert', 'LiteRT')} | {drift['top1_agreement']:.2%} | {drift['sqnr_db']:.1f} | {accuracy} | "
                   f"{verdict} | {'' if p50 is None else f'{p50:.1f}'} |")
    return out


def main() -> int:
    print("| model | format | precision | size MB | runs in | top-1 agreement | SQNR dB | accuracy (reference → "
          "artifact) | drift budget | p50 ms, batch 1, 2 threads |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    missing = []
    for folder, (bench, title, pick) in MODELS.items():
        found = rows(folder, bench, title, pick)
        if found:
            print("\n".join(found))
        else:
            missing.append(folder)
    if missing:
        print(f"\nNot in this table (no artifacts under benchmarks/artifacts/): {', '.join(missing)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
