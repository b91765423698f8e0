"""`python -m converters.inspect ARTIFACT [--json PATH|-]`: what is inside a .tflite or .onnx file.

Ops with their versions (TFLite) or opset (ONNX), tensor types, I/O types and quantization, size,
and the kit metadata embedded by the converters. Needs only the `edge` extra (no TensorFlow, keras or onnx):
a .tflite file is read with LiteRT and the kit's FlatBuffer reader, an .onnx file with ONNX Runtime and the
kit's protobuf reader (edge.onnx_file).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from edge import seal
from edge.command import add_json_argument, emit, parser_for
from edge.errors import run_cli
from edge.onnx_file import read_onnx
from edge.runtime import load
from edge.tflite_file import builtin_op_name, operator_codes, read_model_bytes, standard_metadata


def inspect_tflite(path: Path) -> dict:
    data = read_model_bytes(path)
    runner = load(path)
    interpreter = runner._session
    tensor_types = Counter(str(t["dtype"].__name__) for t in interpreter.get_tensor_details())
    ops = Counter()
    for code, custom, op_version in operator_codes(data, str(path)):
        ops[custom or f"{builtin_op_name(code)} v{op_version}"] += 1
    per_op = Counter()
    for op in interpreter._get_ops_details():
        per_op[op["op_name"]] += 1
    return {"ops": {name: per_op.get(name.split(" v")[0], 0) for name in sorted(ops)},
            "tensor_types": dict(tensor_types), "standard_metadata": standard_metadata(data, str(path)),
            **_common(runner, path)}


def inspect_onnx(path: Path) -> dict:
    runner = load(path)  # ONNX Runtime checks the model first and names what it refuses
    model = read_onnx(path)
    return {"ops": dict(sorted(model.op_counts().items())),
            "initializer_types": dict(model.initializer_type_counts()), "opset": model.opset, **_common(runner, path)}


def _common(runner, path: Path) -> dict:
    return {"file": str(path), "size_bytes": path.stat().st_size, "input": runner.input.to_dict(),
            "output": runner.output.to_dict(), "metadata": runner.metadata}


def render(info: dict) -> str:
    lines = [f"{info['file']}: {info['size_bytes'] / 1e6:.2f} MB"]
    for key in ("input", "output"):
        t = info[key]
        quant = f", scale {t['scale']:.6g}, zero point {t['zero_point']}" if "scale" in t else ""
        lines.append(f"{key}: {t['name']} {t['dtype']} {t['shape']}{quant}")
    if "opset" in info:
        lines.append(f"opset: {info['opset']}")
    lines.append("ops: " + ", ".join(f"{k} x{v}" for k, v in info["ops"].items()))
    types = info.get("tensor_types") or info.get("initializer_types")
    lines.append(("tensor types: " if "tensor_types" in info else "initializer types: ")
                 + ", ".join(f"{k} x{v}" for k, v in sorted(types.items())))
    if "standard_metadata" in info:
        lines.append(_standard_line(info["standard_metadata"]))
    meta = info["metadata"]
    if meta is None:
        lines.append("kit metadata: none (not written by this kit's converters)")
    else:
        drift = meta.get("drift", {})
        lines.append(f"model: {meta['model']['name']}, {meta['model']['num_classes']} classes "
                     f"(labels {', '.join(meta['labels'][:5])}{', ...' if len(meta['labels']) > 5 else ''})")
        lines.append(f"precision: {meta['precision']}; grouped convs: {meta['grouped_conv']['lowering']} "
                     f"(target {meta['grouped_conv']['target']})")
        lines.append(f"weights: {meta['weights']['description']} {meta['weights']['path'] or ''} "
                     f"sha256 {(meta['weights']['sha256'] or '-')[:12]}")
        lines.append(f"preprocessing: {json.dumps(meta['preprocessing'], sort_keys=True)}")
        if meta.get("calibration"):
            c = meta["calibration"]
            lines.append(f"calibration: {c['images']} images from {c['source']}, fingerprint {c['fingerprint'][:12]}")
        lines.append(f"drift: top-1 agreement {drift.get('top1_agreement', 0):.2%} on {drift.get('images')} images, "
                     f"SQNR {drift.get('sqnr_db') or float('inf'):.1f} dB, within budget: {drift.get('within_budget')}")
        lines.append(f"versions: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}")
        digest = meta.get(seal.FIELD)
        lines.append(f"integrity: content digest {digest[:12]} verified (any changed byte is refused)" if digest
                     else "integrity: no content digest (an earlier kit's file): structure checked, first load guarded")
    return "\n".join(lines)


def _standard_line(standard: dict | None) -> str:
    if standard is None:
        return "standard metadata: none (MediaPipe and the LiteRT Support Library find no labels or normalization)"
    norm = standard["normalization"]
    shown = (f"input (pixel - {norm['mean']}) / {norm['std']}" if norm else "input takes raw pixels")
    files = ", ".join(f"{f}{'' if f in standard['packed'] else ' (missing from the file)'}"
                      for f in standard["associated_files"]) or "none"
    return f"standard metadata: {standard['name']}; {shown}; associated files: {files}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = parser_for("converters.inspect",
                        description="Show what a .tflite or .onnx artifact holds: ops and versions, tensor types, I/O "
                                    "quantization, size and the kit's embedded metadata.")
    parser.add_argument("artifact", type=Path)
    add_json_argument(parser, "what the file holds")
    args = parser.parse_args(argv)
    suffix = args.artifact.suffix.lower()
    info = inspect_onnx(args.artifact) if suffix == ".onnx" else inspect_tflite(args.artifact) \
        if suffix == ".tflite" else load(args.artifact)  # load() names the problem for anything else
    emit(render(info), info, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
