"""`python -m edge.profile --model FILE [--model FILE ...]`: where a .tflite file spends its time, per op.

LiteRT's Python package has no op profiler, so this one cuts the file itself: every operator becomes
a one-op model (the same op, options, weights and quantization, its activations as inputs), timed
in the same runtime with the same kernels and threads as the whole model. Each one-op model is fed the
values its inputs take in one run of the whole model, so computed shapes (a RESHAPE's target) are real. Ops are then summed by
kind (op type and shape class: grouped 3x3 conv, 1x1 conv, SE's 1x1-on-1x1 conv, ...), so two files
(float32 and int8, native and split) compare kind by kind. The sum of the per-op medians is printed
beside the whole model's p50: the gap is the per-invoke overhead that one-op models each pay and a
whole model pays once, plus what XNNPACK fuses across ops.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.command import add_json_argument, emit, parser_for
from edge.errors import KitError, run_cli
from edge.runtime import RuntimeOptions, tflite_interpreter
from edge.tflite_file import ModelFileError, builtin_op_names, layer_of, litert_schema, read_model_bytes
from edge.timing import call_latencies_ms


@dataclass(frozen=True)
class OpTiming:
    index: int          # position in the execution order
    op: str             # builtin op name, e.g. CONV_2D
    kind: str           # op and shape class, e.g. "CONV_2D 3x3 grouped"
    layer: str          # the Keras layer the op came from, when the tensor names tell
    dtype: str          # the output's element type
    macs: int           # multiply-accumulates (convolutions and fully connected layers; 0 otherwise)
    ms: float           # median of the timed runs


@dataclass(frozen=True)
class Profile:
    model: str
    runtime: str
    whole_ms: float     # the whole model's median, same settings
    ops: tuple[OpTiming, ...]

    @property
    def ops_ms(self) -> float:
        return sum(op.ms for op in self.ops)

    def by_kind(self) -> dict[str, dict]:
        kinds: dict[str, dict] = {}
        for op in self.ops:
            row = kinds.setdefault(op.kind, {"count": 0, "ms": 0.0, "macs": 0})
            row["count"] += 1
            row["ms"] += op.ms
            row["macs"] += op.macs
        return dict(sorted(kinds.items(), key=lambda item: -item[1]["ms"]))


def _classify(op: str, shapes_in: list, shapes_out: list) -> tuple[str, int]:
    """Kind and MACs of one op from its tensor shapes (batch 1)."""
    out = shapes_out[0] if shapes_out else []
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(shapes_in) >= 2 and len(out) == 4:
        x, w = shapes_in[0], shapes_in[1]
        kh, kw = int(w[1]), int(w[2])
        out_elems = int(np.prod(out))
        if op == "DEPTHWISE_CONV_2D":
            return f"DEPTHWISE_CONV_2D {kh}x{kw}", out_elems * kh * kw
        per_group = int(w[3])
        groups = int(x[3]) // per_group if per_group else 1
        kind = f"CONV_2D {kh}x{kw}"
        if groups > 1:
            kind += " grouped"
        elif (kh, kw) == (1, 1) and out[1] == out[2] == 1:
            kind += " on 1x1 map"
        return kind, out_elems * kh * kw * per_group
    if op == "FULLY_CONNECTED" and len(shapes_in) >= 2:
        return op, int(np.prod(out)) * int(shapes_in[1][-1])
    return op, 0


def single_op_models(data: bytes, name: str, shapes: dict[int, tuple[int, ...]] | None = None):
    """Yield (OpTiming without its time, one-op model bytes) for each operator of subgraph 0.

    shapes: the shape each tensor (by index) took in a run of the whole model; tensors whose size the file
    leaves to run time (a dynamic batch, a computed RESHAPE target) get it, so each op runs at its real size."""
    import flatbuffers

    schema = litert_schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # the generated reader raises whatever the bytes provoke
        raise ModelFileError(f"{name}: not a readable .tflite model ({exc}); re-export it") from None
    if not model.subgraphs:
        raise ModelFileError(f"{name}: the model has no subgraph; re-export it")
    names = builtin_op_names()
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    tensors, buffers = graph.tensors or [], model.buffers or []

    def constant(t: int) -> bool:
        b = tensors[t].buffer
        return 0 < b < len(buffers) and buffers[b].data is not None and len(buffers[b].data) > 0

    for index, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        op_name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        used = [t for t in list(op.inputs) + list(op.outputs) if t >= 0]
        remap = {t: i for i, t in enumerate(dict.fromkeys(used))}
        sub = schema.SubGraphT()
        sub.tensors, new_buffers = [], [schema.BufferT()]  # buffer 0: the schema's empty sentinel
        for t in remap:
            clone = schema.TensorT()
            clone.__dict__.update(tensors[t].__dict__)
            if shapes and t in shapes and not constant(t):
                clone.shape, clone.shapeSignature = list(shapes[t]), None
            # weights keep their data; every activation gets its own empty buffer slot
            new_buffers.append(buffers[tensors[t].buffer] if constant(t) else schema.BufferT())
            clone.buffer = len(new_buffers) - 1
            sub.tensors.append(clone)
        one = schema.OperatorT()
        one.__dict__.update(op.__dict__)
        one.inputs = [remap[t] if t >= 0 else -1 for t in op.inputs]
        one.outputs = [remap[t] for t in op.outputs]
        one.intermediates = None
        sub.operators = [one]
        sub.inputs = [remap[t] for t in dict.fromkeys(op.inputs) if t >= 0 and not constant(t)]
        sub.outputs = list(one.outputs)
        sub.name = graph.name
        single = schema.ModelT()
        single.version = model.version
        single.operatorCodes = model.operatorCodes
        single.subgraphs = [sub]
        single.buffers = new_buffers
        builder = flatbuffers.Builder(1024)
        builder.Finish(single.Pack(builder), file_identifier=b"TFL3")
        shape = (lambda t: list(shapes[t]) if shapes and t in shapes else list(tensors[t].shape))
        shapes_in = [shape(t) for t in op.inputs if t >= 0]
        shapes_out = [shape(t) for t in op.outputs]
        kind, macs = _classify(op_name, shapes_in, shapes_out)
        out_tensor = tensors[op.outputs[0]]
        dtype = type_names.get(out_tensor.type, str(out_tensor.type))
        layer = layer_of(out_tensor.name.decode("utf-8", "replace") if out_tensor.name else "")
        yield OpTiming(index, op_name, kind, layer, dtype, macs, 0.0), bytes(builder.Output())


def _random_input(detail: dict, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    shape = [max(1, int(d)) for d in detail["shape"]]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 255) + 1, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _median_ms(interpreter, runs: int, warmup: int, rng: np.random.Generator, values=None) -> float:
    """values(detail): the input's value from a whole-model run, or None for random data."""
    for detail in interpreter.get_input_details():
        value = values(detail) if values else None
        interpreter.set_tensor(detail["index"], _random_input(detail, rng) if value is None else value)
    return float(np.median(call_latencies_ms(interpreter.invoke, runs=runs, warmup=warmup)))


def _whole_model_run(data: bytes, name: str, rng: np.random.Generator):
    """One builtin-kernel run of the whole model on random input: every tensor's shape in it (by index), and a
    lookup of an input's value by name (None where the name is absent or ambiguous, or the shape differs)."""
    interpreter, _ = tflite_interpreter(data, RuntimeOptions(xnnpack=False), name, keep_intermediates=True)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _random_input(detail, rng))
    interpreter.invoke()
    names: dict[str, list[int]] = {}
    shapes = {}
    for t in interpreter.get_tensor_details():
        names.setdefault(t["name"], []).append(t["index"])
        shapes[t["index"]] = tuple(int(d) for d in t["shape"])

    def value(detail: dict):
        found = names.get(detail["name"], [])
        if len(found) != 1:
            return None
        try:
            array = interpreter.get_tensor(found[0])
        except ValueError:  # a tensor with no data (an optional or never-written one)
            return None
        return array if array.shape == tuple(detail["shape"]) and array.dtype == detail["dtype"] else None

    return shapes, value


def profile(path: str | Path, options: RuntimeOptions = RuntimeOptions(), runs: int = 30, warmup: int = 3,
            progress=None) -> Profile:
    """Time every op of a .tflite file as a one-op model, and the whole model, with the same settings."""
    path = Path(path)
    if path.suffix.lower() != ".tflite":
        raise ModelFileError(f"{path}: the op profile reads .tflite files; profile ONNX models with ONNX Runtime's "
                             "own profiler (SessionOptions.enable_profiling)")
    if runs < 1 or warmup < 0:
        raise KitError(f"--runs must be at least 1 and --warmup at least 0 (got {runs}, {warmup})")
    data = read_model_bytes(path)
    rng = np.random.default_rng(0)
    interpreter, runtime = tflite_interpreter(data, options, str(path))
    whole = _median_ms(interpreter, runs, warmup, rng)
    del interpreter
    shapes, values = _whole_model_run(data, str(path), rng)
    timed = []
    singles = list(single_op_models(data, str(path), shapes))
    for n, (op, single) in enumerate(singles):
        interpreter, _ = tflite_interpreter(single, options, f"{path} op {op.index} ({op.op})")
        timed.append(OpTiming(**{**asdict(op), "ms": _median_ms(interpreter, runs, warmup, rng, values)}))
        if progress:
            progress(n + 1, len(singles))
    return Profile(str(path), runtime, whole, tuple(timed))


def kind_table(profiles: Sequence[Profile]) -> str:
    """Markdown: one row per op kind, ms and share per model; with two models, their ratio."""
    kinds: list[str] = []
    for p in profiles:
        kinds += [k for k in p.by_kind() if k not in kinds]
    header = ["op kind"]
    for i, p in enumerate(profiles):
        header += [f"[{i + 1}] ops", f"[{i + 1}] ms", f"[{i + 1}] share", f"[{i + 1}] GMAC/s"]
    if len(profiles) == 2:
        header.append("[2] / [1]")
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for kind in kinds:
        cells = [kind]
        ms = []
        for p in profiles:
            row = p.by_kind().get(kind)
            if row is None:
                cells += ["", "", "", ""]
                ms.append(None)
                continue
            rate = f"{row['macs'] / row['ms'] / 1e6:.1f}" if row["macs"] and row["ms"] else ""
            cells += [str(row["count"]), f"{row['ms']:.3f}", f"{100 * row['ms'] / p.ops_ms:.1f}%", rate]
            ms.append(row["ms"])
        if len(profiles) == 2:
            cells.append(f"{ms[1] / ms[0]:.2f}x" if None not in ms and ms[0] > 0 else "")
        lines.append("| " + " | ".join(cells) + " |")
    totals = ["**sum of ops**"]
    for p in profiles:
        totals += [str(len(p.ops)), f"**{p.ops_ms:.3f}**", "100%", ""]
    if len(profiles) == 2:
        totals.append(f"{profiles[1].ops_ms / profiles[0].ops_ms:.2f}x" if profiles[0].ops_ms else "")
    lines.append("| " + " | ".join(totals) + " |")
    whole = ["whole model p50"]
    for p in profiles:
        whole += ["", f"{p.whole_ms:.3f}", "", ""]
    if len(profiles) == 2:
        whole.append(f"{profiles[1].whole_ms / profiles[0].whole_ms:.2f}x" if profiles[0].whole_ms else "")
    lines.append("| " + " | ".join(whole) + " |")
    return "\n".join(lines)


def top_ops(profile: Profile, count: int) -> str:
    lines = ["| # | op | kind | layer | type | MMACs | ms |", "|" + " --- |" * 7]
    for op in sorted(profile.ops, key=lambda o: -o.ms)[:count]:
        lines.append(f"| {op.index} | {op.op} | {op.kind} | {op.layer} | {op.dtype} | {op.macs / 1e6:.1f} | "
                     f"{op.ms:.3f} |")
    return "\n".join(lines)


def report(profiles: Sequence[Profile], top: int) -> str:
    parts = [f"[{i + 1}] {p.model}: {p.runtime}" for i, p in enumerate(profiles)]
    parts += ["", kind_table(profiles)]
    for i, p in enumerate(profiles):
        if top:
            parts += ["", f"Slowest ops of [{i + 1}]:", "", top_ops(p, top)]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = parser_for("edge.profile", __doc__)
    parser.add_argument("--model", action="append", type=Path, required=True, metavar="FILE",
                        help=".tflite artifact (repeat to compare, e.g. float32 then int8)")
    parser.add_argument("--threads", type=int, default=2, help="runtime threads (default 2)")
    parser.add_argument("--kernels", choices=("xnnpack", "builtin"), default="xnnpack",
                        help="LiteRT kernels (default xnnpack)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per op (default 30; the median is kept)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per op first (default 3)")
    parser.add_argument("--top", type=int, default=8, help="slowest ops listed per model (default 8; 0: none)")
    add_json_argument(parser, "every op's timing")
    args = parser.parse_args(argv)
    options = RuntimeOptions(threads=args.threads, xnnpack=args.kernels == "xnnpack")
    profiles = []
    for model in args.model:
        def progress(done: int, total: int, name=model.name) -> None:
            if sys.stderr.isatty() or done == total:  # a log file gets one line per model
                print(f"\rprofiling {name}: op {done}/{total}", end="" if done < total else "\n", file=sys.stderr)
        profiles.append(profile(model, options, args.runs, args.warmup, progress))
    record = [{"model": p.model, "runtime": p.runtime, "whole_ms": p.whole_ms, "ops_ms": p.ops_ms,
               "by_kind": p.by_kind(), "ops": [asdict(op) for op in p.ops]} for p in profiles]
    emit(report(profiles, args.top), record, args.json, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
