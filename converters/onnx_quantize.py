"""ONNX int8: ONNX Runtime's static quantization (QDQ, per-channel), and the check of its fused int8 kernels."""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.representative import Prepared
from converters.onnx_export import INPUT_NAME
from converters.pipeline import Job
from converters.plan import Evaluation
from converters.report import finite
from edge.capture import captured_native_output, tail
from edge.errors import ConversionError, first_line
from edge.runtime import RuntimeOptions

ACTIVATIONS = ("int8", "uint8")


# Images whose every activation ONNX Runtime's percentile calibrator holds before folding them into its running
# histograms (its CalibStridedMinMax; a window that divides the image count). Unbounded, it keeps all of them:
# EfficientNet-B7 at 600x600 holds gigabytes per image. Its CalibMaxIntermediateOutputs would drop every full window
# instead of folding it (ONNX Runtime 1.31.1: "No data is collected"). Min/max calibration does not run ONNX
# Runtime's calibrator at all (`sample_ranges`).
CALIBRATION_WINDOW = 4


def quantize_int8(proto, calibration: Prepared, activations: str = "int8", window: int | None = CALIBRATION_WINDOW,
                  reduce_range: bool = False, percentile: float | None = None, mse: bool = False):
    """ONNX Runtime static quantization: QDQ, per-channel int8 weights, int8 (S8S8) or uint8 (U8S8) activations.

    int8 activations are the more accurate, uint8 ones can be faster on x86 without VNNI (measured:
    docs/drift.md). Min/max ranges (the default) are the kit's own (`sample_ranges`: the same numbers ONNX Runtime's
    calibrator computes, read within MSE_MEMORY), handed to ONNX Runtime as its calibration cache, so its calibrator,
    which holds a whole run's buffers (EfficientNet-B7 at 600 px: 8 GB), never runs. `percentile`: ONNX Runtime's
    percentile calibrator at that percentile instead (converters.int8_calibration), with at most `window` images
    calibrated between foldings of its histograms (None: all at once). `reduce_range`: 7-bit weights, so that x86
    int8 kernels without VNNI cannot saturate (see `kernel_check`). `mse`: every activation range the kit can sample
    replaced by the one with the least quantization error (converters.activation_ranges), through ONNX Runtime's
    TensorQuantOverrides."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if percentile is not None and mse:
        raise ValueError("percentile and mse ranges exclude each other")
    if not len(calibration.inputs):
        raise ConversionError("int8 calibration needs at least one image; pass --calib DIR with images in it")

    with tempfile.TemporaryDirectory() as tmp, captured_native_output() as captured:
        src, pre, dst, table = (Path(tmp) / n for n in ("float.onnx", "pre.onnx", "int8.onnx", "ranges.json"))
        onnx.save(proto, src)
        reader, extra = None, {}
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            if percentile is None:
                ranges = cached_ranges(pre, calibration.inputs, mse, captured.console)
                save_tensors_data(TensorsData(CalibrationMethod.MinMax, {
                    name: (np.array([lo], np.float32), np.array([hi], np.float32))
                    for name, (lo, hi) in ranges.bounds.items()}), table)
                if mse:
                    extra["TensorQuantOverrides"] = _overrides(ranges.mse)
            else:
                reader = _reader(calibration.inputs, captured.console)
                count = len(calibration.inputs)
                stride = max(d for d in range(1, min(window, count) + 1) if count % d == 0) if window else None
                # the window bounds memory: ONNX Runtime folds each window's histograms into the running ones
                # ("CalibStridedMinMax" is only the name of its windowing option)
                extra = {"CalibStridedMinMax": stride} if stride else {}
                extra["CalibPercentile"] = percentile
            method = CalibrationMethod.MinMax if reader is None else CalibrationMethod.Percentile
            quantize_static(str(pre), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, reduce_range=reduce_range, calibrate_method=method,
                            calibration_cache_path=str(table) if reader is None else None, extra_options=extra)
        except Exception as exc:
            raise ConversionError(f"ONNX Runtime quantization failed: {first_line(exc)} "
                                  f"[{tail(captured())}]") from None
        finally:
            if reader is not None:
                reader.bar.close()
        return onnx.load(dst)


def _reader(inputs, progress):
    """ONNX Runtime's CalibrationDataReader over the calibration images, one at a time, with a progress bar."""
    from onnxruntime.quantization import CalibrationDataReader
    from tqdm import tqdm

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.bar = tqdm(total=len(inputs), desc="calibrating", unit="img", leave=False, disable=None, file=progress)
            self.set_range(0, len(inputs))

        def __len__(self) -> int:
            return len(inputs)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.items = iter(range(start_index, end_index))

        def get_next(self):
            i = next(self.items, None)
            if i is None:
                return None
            self.bar.update(1)
            return {INPUT_NAME: inputs[i][None]}

    return Reader()


@dataclass
class Ranges:
    """Activation ranges of an ONNX graph on the calibration images."""

    bounds: dict  # {tensor: (min, max)}, exact, of every tensor ONNX Runtime's static quantization calibrates
    mse: dict     # {tensor: (lo, hi)} with the least quantization error, of every float tensor a node computes


def cached_ranges(path: Path, inputs, mse: bool, progress=None) -> Ranges:
    """sample_ranges of the ONNX file at `path`, kept in the cache folder (edge.cache) under a key of the file's
    bytes, the images, and the code and settings that choose them."""
    import onnx
    import onnxruntime

    from converters import activation_ranges
    from edge import cache

    data = path.read_bytes()
    if cache.cache_dir() is None:
        return sample_ranges(onnx.load_from_string(data), inputs, mse, progress)
    key = cache.Key("onnx-ranges v1").versions(onnx, onnxruntime).settings(activation_ranges).facts(mse=mse)
    key = key.sources("converters/onnx_quantize.py", "converters/activation_ranges.py").data(data)
    key = key.array(np.asarray(inputs, np.float32)).hexdigest()
    stored = cache.read("onnx-ranges", key)
    if stored is not None and set(stored) == {"names", "bounds", "mse_names", "mse"}:
        return Ranges(dict(zip(cache.untext(stored["names"]), map(tuple, stored["bounds"].tolist()))),
                      dict(zip(cache.untext(stored["mse_names"]), map(tuple, stored["mse"].tolist()))))
    ranges = sample_ranges(onnx.load_from_string(data), inputs, mse, progress)
    cache.write("onnx-ranges", key, {"names": cache.text(list(ranges.bounds)), "bounds": _pairs(ranges.bounds),
                                     "mse_names": cache.text(list(ranges.mse)), "mse": _pairs(ranges.mse)})
    return ranges


def _pairs(ranges: dict) -> np.ndarray:
    return np.array(list(ranges.values()), np.float32).reshape(-1, 2)


def _overrides(ranges: dict) -> dict:
    """{tensor: [{"rmin", "rmax"}]}: ranges as ONNX Runtime's TensorQuantOverrides."""
    return {name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in ranges.items()}


def calibrated_tensors(proto) -> list[str]:
    """The tensors ONNX Runtime's static quantization calibrates (its calibrator's own selection): float inputs and
    outputs of the nodes whose op it quantizes, with a known type (value_info, graph inputs and outputs), not
    initializers; in the order the graph first uses them."""
    import onnx
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    ops = set(QLinearOpsRegistry) | set(QDQRegistry)
    known = {v.name: v for v in (*proto.graph.value_info, *proto.graph.output, *proto.graph.input)}
    weights = {t.name for t in proto.graph.initializer}
    names: dict[str, None] = {}
    for node in proto.graph.node:
        if node.op_type in ops:
            for name in (*node.input, *node.output):
                info = known.get(name)
                if info is not None and name not in weights and info.type.HasField("tensor_type") \
                        and info.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
                    names[name] = None
    return list(names)


def sample_ranges(proto, inputs, mse: bool = True, progress=None) -> Ranges:
    """The exact min/max of every tensor `calibrated_tensors` names and, with `mse`, the mse range of every float
    activation a node computes (the graph's own value_info), from the float graph run by ONNX Runtime on the
    calibration images (converters.activation_ranges)."""
    import onnx
    import onnxruntime as ort
    from tqdm import tqdm

    from converters.activation_ranges import Samples

    bounded = calibrated_tensors(proto)
    chosen = [v.name for v in proto.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT] \
        if mse else []
    graph_inputs = {v.name for v in proto.graph.input}
    wanted = [n for n in dict.fromkeys([*chosen, *bounded]) if n not in graph_inputs]
    infos = {v.name: v for v in (*proto.graph.value_info, *proto.graph.output)}
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads, so.log_severity_level = 2, 3
    # without ONNX Runtime's arena and memory pattern, a run's buffers are freed as it goes instead of held at their
    # peak for the next
    so.enable_cpu_mem_arena = so.enable_mem_pattern = False
    samples, keep = Samples(per_key=True), set(chosen)
    for name in graph_inputs & set(bounded):
        for x in inputs:
            samples.add(name, x, keep_values=False)
    # ONNX Runtime runs the whole graph on every run and keeps every graph output to its end, so each group of
    # tensors gets a session of its own whose outputs are that group alone: a run holds one group's values
    # (EfficientNet-B7 at 600 px: 4.1 GiB of activations per image, in 6 groups)
    groups = _output_groups([infos[n] for n in wanted], MSE_MEMORY) if wanted else []
    bar = tqdm(total=len(groups) * len(inputs), desc="calibrating", unit="img", leave=False, disable=None,
               file=progress)
    for group in groups:
        session = ort.InferenceSession(_prefix(proto, [infos[n] for n in group]).SerializeToString(), so,
                                       providers=["CPUExecutionProvider"])
        for x in inputs:
            for name, value in zip(group, session.run(group, {INPUT_NAME: x[None]})):
                samples.add(name, value, keep_values=name in keep)
            bar.update(1)
        del session
    bar.close()
    mse_ranges = {n: (float(np.float32(lo)), float(np.float32(hi))) for n, (lo, hi) in samples.mse_ranges().items()}
    return Ranges({n: samples.bounds[n] for n in bounded}, {n: mse_ranges[n] for n in chosen if n in mse_ranges})


# bytes of one image's activations one session's run holds. EfficientNet-B7 at 600 px, 8 images, each session cut to
# the graph its group needs (`_prefix`): 1 GiB 2.00 GB over the process in 28 s, 768 MiB 1.29 GB in 31 s, 512 MiB 1.35
# GB in 42 s; sessions over the whole graph at 1 GiB took 2.41 GB and 45 s
MSE_MEMORY = 768 * 2**20


def _prefix(proto, outputs):
    """`proto` cut to the nodes `outputs` (value infos) depend on, with those as its outputs and only the weights
    those nodes read: a session for an early group of tensors runs only the beginning of the graph and holds only
    its weights. A graph with subgraphs (If, Loop, Scan), model-local functions or sparse weights is kept whole (only
    its outputs replaced), since what they read from the outer graph is not in its nodes' inputs."""
    import onnx
    from onnx import helper

    graph = proto.graph
    nodes = list(graph.node)
    if proto.functions or graph.sparse_initializer or any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in nodes for a in n.attribute):
        whole = onnx.ModelProto()
        whole.CopyFrom(proto)
        del whole.graph.output[:]
        whole.graph.output.extend(outputs)
        return whole
    producer = {name: i for i, node in enumerate(nodes) for name in node.output}
    keep, pending, seen = set(), [o.name for o in outputs], set()
    while pending:
        name = pending.pop()
        if name in seen or name not in producer:
            continue
        seen.add(name)
        keep.add(producer[name])
        pending.extend(x for x in nodes[producer[name]].input if x)
    kept = [nodes[i] for i in sorted(keep)]
    read = {x for node in kept for x in node.input}
    cut = helper.make_graph(kept, graph.name, graph.input, outputs,
                            initializer=[t for t in graph.initializer if t.name in read], value_info=graph.value_info)
    return helper.make_model(cut, ir_version=proto.ir_version, opset_imports=proto.opset_import)


def _output_groups(infos, budget: int) -> list[list[str]]:
    """The tensors' names in order, cut into runs whose float32 values for one image fit `budget` bytes (a dimension
    without a size, the batch, counts as 1; a tensor larger than the budget is a run of its own)."""
    groups: list[list[str]] = [[]]
    held = 0
    for info in infos:
        size = 4 * int(np.prod([d.dim_value or 1 for d in info.type.tensor_type.shape.dim]))
        if groups[-1] and held + size > budget:
            groups.append([])
            held = 0
        groups[-1].append(info.name)
        held += size
    return groups


# A fused-kernel loss above this, against the same QDQ graph run as written, is the kernels' doing.
KERNEL_LOSS_DB = 3.0


@dataclass
class KernelCheck:
    """An int8 graph's SQNR through ONNX Runtime's fused kernels and as written, on this CPU."""

    sqnr_db_fused: float | None
    sqnr_db_unfused: float | None
    fused_loss_db: float | None
    saturation_suspected: bool
    cpu: str


def kernel_check(job: Job, data: bytes, reduce_range: bool) -> tuple[Evaluation, KernelCheck]:
    """Validate a QDQ int8 graph twice: through ONNX Runtime's fused int8 kernels (what users run), and as
    written (quantize, dequantize, float op: the quantization's own error). On x86 CPUs without VNNI (AVX2,
    AVX-512) the int8 conv kernels multiply-add pairs of 8-bit products into 16 bits, which can saturate:
    EfficientNet-B7 lost most of its SQNR that way here (docs/drift.md). Warns when the fused kernels lose more
    than KERNEL_LOSS_DB. Returns the fused evaluation (the artifact's drift) and the record for its metadata."""
    fused = job.evaluate(data)
    written = job.evaluate(data, RuntimeOptions(threads=2, fused=False), " (unfused QDQ)")
    loss = float(written.drift.sqnr_db - fused.drift.sqnr_db)
    check = KernelCheck(finite(fused.drift.sqnr_db), finite(written.drift.sqnr_db), finite(round(loss, 2)),
                        loss > KERNEL_LOSS_DB, cpu())
    if check.saturation_suspected:
        advice = ("the kit already used 7-bit weights (--reduce-range)" if reduce_range else
                  "re-convert with --reduce-range (7-bit weights) for such CPUs")
        job.log(f"WARNING: ONNX Runtime's fused int8 kernels on this CPU lose {loss:.1f} dB against the quantized graph "
            f"run as written ({check.sqnr_db_fused:.1f} vs {check.sqnr_db_unfused:.1f} dB SQNR): int8 conv "
            f"kernels can saturate on x86 CPUs without VNNI; {advice}")
    return fused, check


def cpu() -> str:
    """The machine and, on x86 Linux, whether it has VNNI (what decides whether int8 conv kernels can saturate)."""
    machine = platform.machine()
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return machine
    if "avx2" not in flags:
        return machine
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    return f"{machine}, {'AVX-512' if 'avx512f' in flags else 'AVX2'}, {'with' if vnni else 'no'} VNNI"
