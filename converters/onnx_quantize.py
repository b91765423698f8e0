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


# Images whose every activation ONNX Runtime's calibrator holds before folding them into running min/max ranges
# (its CalibStridedMinMax; a window that divides the image count). Unbounded, it keeps all of them: EfficientNet-B7
# at 600x600 holds gigabytes per image. Min/max ranges fold exactly, so the quantized model does not depend on it
# (tests/converters/test_convert.py). Its CalibMaxIntermediateOutputs would drop every full window instead of folding
# it (ONNX Runtime 1.31.1: "No data is collected").
CALIBRATION_WINDOW = 4


def quantize_int8(proto, calibration: Prepared, activations: str = "int8", window: int | None = CALIBRATION_WINDOW,
                  reduce_range: bool = False, percentile: float | None = None, mse: bool = False):
    """ONNX Runtime static quantization: QDQ, per-channel int8 weights, int8 (S8S8) or uint8 (U8S8) activations.

    int8 activations are the more accurate, uint8 ones can be faster on x86 without VNNI (measured:
    docs/drift.md). `window`: at most
    this many images calibrated between foldings of the ranges (None: all at once). `reduce_range`: 7-bit
    weights, so that x86 int8 kernels without VNNI cannot saturate (see `kernel_check`). `percentile`: ONNX
    Runtime's percentile calibrator at that percentile instead of min/max (converters.int8_calibration). `mse`:
    min/max calibration, then every activation range the kit can sample replaced by the one with the least
    quantization error (converters.activation_ranges), through ONNX Runtime's TensorQuantOverrides."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    count = len(calibration.inputs)
    stride = max(d for d in range(1, min(window, count) + 1) if count % d == 0) if window else None
    # The window bounds memory for the percentile calibrator too: ONNX Runtime folds each window's histograms into
    # the running ones ("CalibStridedMinMax" is only the name of its windowing option).
    extra = {"CalibStridedMinMax": stride} if stride else {}
    method = CalibrationMethod.MinMax if percentile is None else CalibrationMethod.Percentile
    if percentile is not None:
        extra["CalibPercentile"] = percentile

    class Reader(CalibrationDataReader):
        def __init__(self, progress) -> None:
            from tqdm import tqdm

            self.bar = tqdm(total=count, desc="calibrating", unit="img", leave=False, disable=None, file=progress)
            self.set_range(0, count)

        def __len__(self) -> int:
            return count

        def set_range(self, start_index: int, end_index: int) -> None:
            self.items = iter(range(start_index, end_index))

        def get_next(self):
            i = next(self.items, None)
            if i is None:
                return None
            self.bar.update(1)
            return {INPUT_NAME: calibration.inputs[i][None]}

    with tempfile.TemporaryDirectory() as tmp, captured_native_output() as captured:
        src, pre, dst = (Path(tmp) / n for n in ("float.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(proto, src)
        reader = Reader(captured.console)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            if mse:
                extra["TensorQuantOverrides"] = cached_mse_overrides(pre, calibration.inputs)
            quantize_static(str(pre), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, reduce_range=reduce_range, calibrate_method=method,
                            extra_options=extra)
        except Exception as exc:
            raise ConversionError(f"ONNX Runtime quantization failed: {first_line(exc)} "
                                  f"[{tail(captured())}]") from None
        finally:
            reader.bar.close()
        return onnx.load(dst)


def cached_mse_overrides(path: Path, inputs) -> dict:
    """mse_overrides of the ONNX file at `path`, its ranges kept in the cache folder (edge.cache) under a key of
    the file's bytes, the images, and the code and settings that choose them."""
    import onnx
    import onnxruntime

    from converters import activation_ranges
    from edge import cache

    data = path.read_bytes()
    if cache.cache_dir() is None:
        return _overrides(mse_ranges(onnx.load_from_string(data), inputs))
    key = cache.Key("onnx-mse-ranges v1").versions(onnx, onnxruntime).settings(activation_ranges)
    key = key.sources("converters/onnx_quantize.py", "converters/activation_ranges.py").data(data)
    key = key.array(np.asarray(inputs, np.float32)).hexdigest()
    stored = cache.read("onnx-mse-ranges", key)
    if stored is not None and set(stored) == {"names", "ranges"}:
        return _overrides(dict(zip(cache.untext(stored["names"]), stored["ranges"])))
    ranges = mse_ranges(onnx.load_from_string(data), inputs)
    cache.write("onnx-mse-ranges", key, {"names": cache.text(list(ranges)),
                                         "ranges": np.array(list(ranges.values()), np.float32).reshape(-1, 2)})
    return _overrides(ranges)


def mse_overrides(proto, inputs) -> dict:
    """{tensor: [{"rmin", "rmax"}]}: mse_ranges as ONNX Runtime's TensorQuantOverrides."""
    return _overrides(mse_ranges(proto, inputs))


def _overrides(ranges: dict) -> dict:
    return {name: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}] for name, (lo, hi) in ranges.items()}


def mse_ranges(proto, inputs) -> dict:
    """{tensor: (min, max)} for every float activation a node computes (the graph's own value_info), from the float
    graph run by ONNX Runtime on the calibration images (converters.activation_ranges)."""
    import onnx
    import onnxruntime as ort

    from converters.activation_ranges import Samples

    infos = [v for v in proto.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    names = [v.name for v in infos]
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in known)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads, so.log_severity_level = 2, 3
    # without ONNX Runtime's arena and memory pattern, a run's buffers are freed as it goes instead of held at their
    # peak for the next (EfficientNet-B7 at 600 px, 8 images: the pass added 3.6 GB to the process, 6.2 with them)
    so.enable_cpu_mem_arena = so.enable_mem_pattern = False
    session = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    samples = Samples()
    groups = _output_groups(infos, MSE_MEMORY)  # one run per group and image: every output of a run is held at once
    for x in inputs:
        for group in groups:
            for name, value in zip(group, session.run(group, {INPUT_NAME: x[None]})):
                samples.add(name, value)
    return samples.mse_ranges()


MSE_MEMORY = 2**30  # bytes of one image's activations the mse pass reads from one run (EfficientNet-B7 at 600 px: more)


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
