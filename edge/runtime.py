"""Running an artifact on the device: LiteRT (or its fallbacks) for .tflite, ONNX Runtime for .onnx.

A `Runner` takes float32 model inputs (what the model's PreprocessSpec produces) and returns float32
outputs: it quantizes the input and dequantizes the output when the file asks for integer I/O, so
callers never see the difference. It never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.capture import captured_native_output
from edge import seal
from edge.errors import ConfigError, KitError, MissingExtraError, first_line
from edge.guard import first_load
from edge.onnx_file import read_onnx_bytes
from edge.tflite_check import check_structure
from edge.tflite_file import METADATA_NAME, ModelFileError, metadata_buffers, read_model_bytes, require_model_file

ONNX_BATCH = 32


@dataclass(frozen=True)
class RuntimeOptions:
    threads: int = 2
    xnnpack: bool = True  # LiteRT only: False runs the builtin kernels (what runs where no delegate applies)
    fused: bool = True    # ONNX only: False stops at ONNX Runtime's basic graph optimizations, so a QDQ int8 graph
                          # runs as written (quantize, dequantize, float op) instead of through its fused int8 kernels

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ConfigError(f"thread count must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0       # integer tensors: real = (q - zero_point) * scale
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype in ("uint8", "int8") and self.scale > 0

    def to_dict(self, *, name: bool = True, always_quantization: bool = False) -> dict:
        """{"name", "shape" (a list), "dtype"}, plus "scale" and "zero_point" when quantized. The Android
        golden vectors record tensors without the name and always with scale and zero point (name=False,
        always_quantization=True)."""
        d = {"name": self.name} if name else {}
        d.update(shape=list(self.shape), dtype=self.dtype)
        if self.quantized or always_quantization:
            d.update(scale=self.scale, zero_point=self.zero_point)
        return d


@dataclass
class Runner:
    """A loaded artifact: `run(inputs)` maps float32 model inputs to float32 outputs."""

    path: Path
    kind: str                      # "tflite" | "onnx"
    runtime: str                   # e.g. "ai_edge_litert 2.3.0 (xnnpack)"
    input: TensorInfo
    output: TensorInfo
    metadata: dict | None
    load_seconds: float
    _session: object = field(repr=False, default=None)
    batch: int = 1                 # images per native call (ONNX: ONNX_BATCH; TFLite: see set_batch)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Outputs for inputs (N, H, W, C), fed `batch` images per call (the last call pads nothing: it
        falls back to single images for a TFLite remainder)."""
        inputs = np.asarray(inputs, np.float32)
        if inputs.ndim != 4:
            raise KitError(f"model inputs must be (N, H, W, C), got shape {inputs.shape}")
        self.check_fits(inputs.shape)
        try:
            return self._run_batches(inputs)
        except KitError:
            raise
        except Exception as exc:  # the runtime's own errors: RuntimeError, ValueError, ONNX Runtime's Fail, ...
            raise ModelFileError(f"{self.path}: the runtime failed running it ({first_line(exc, 300)}); the file may "
                                 "be damaged: convert or copy it again") from None

    def check_fits(self, shape: tuple[int, ...]) -> None:
        """KitError when images of `shape` (N, H, W, C) cannot be this model's input (another rank or size)."""
        model = tuple(self.input.shape)
        if len(model) != len(shape) or any(m > 0 and m != d for m, d in zip(model[1:], shape[1:])):
            per_image = "x".join("?" if d < 0 else str(d) for d in model[1:]) or "a scalar"
            raise KitError(f"{self.path.name} takes {per_image} per input, not {'x'.join(map(str, shape[1:]))} "
                           "images; it is not an image model of this size")

    def _run_batches(self, inputs: np.ndarray) -> np.ndarray:
        if self.kind == "onnx":
            return np.concatenate([self._run_onnx(inputs[i:i + ONNX_BATCH]) for i in range(0, len(inputs), ONNX_BATCH)])
        parts, i = [], 0
        while i < len(inputs):
            step = self.batch if len(inputs) - i >= self.batch else 1
            if step != self._tflite_batch():
                self._resize_tflite(step)
            parts.append(self._run_tflite(inputs[i:i + step]))
            i += step
        return np.concatenate(parts)

    def set_batch(self, batch: int) -> None:
        """Feed `batch` images per call: ONNX always batches; a TFLite file needs a dynamic batch dimension."""
        if batch < 1:
            raise ConfigError(f"batch must be at least 1, got {batch}")
        if self.kind == "tflite" and batch != 1:
            signature = self._session.get_input_details()[0].get("shape_signature")
            if signature is None or len(signature) == 0 or signature[0] != -1:
                raise KitError(f"{self.path.name} has a fixed batch of 1; it runs one image per call")
            self._resize_tflite(batch)
        self.batch = batch

    def run_raw(self, tensor: np.ndarray) -> np.ndarray:
        """One batch in the file's own input type, and the output as the file stores it: no quantization
        either way (what an app with integer I/O feeds and reads; the golden vectors record it)."""
        if self.kind != "tflite":
            raise KitError(f"{self.path.name}: raw tensors are read from .tflite files only")
        if self._tflite_batch() != len(tensor):
            self._resize_tflite(len(tensor))
        interpreter = self._session
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.asarray(tensor, self.input.dtype))
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()

    def _tflite_batch(self) -> int:
        return int(self._session.get_input_details()[0]["shape"][0])

    def _resize_tflite(self, batch: int) -> None:
        detail = self._session.get_input_details()[0]
        self._session.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        self._session.allocate_tensors()

    def _run_onnx(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self.input.name: batch})[0], np.float32)

    def _run_tflite(self, batch: np.ndarray) -> np.ndarray:
        interpreter = self._session
        in_detail = interpreter.get_input_details()[0]
        out_detail = interpreter.get_output_details()[0]
        interpreter.set_tensor(in_detail["index"], quantize(batch, self.input))
        interpreter.invoke()
        return dequantize(interpreter.get_tensor(out_detail["index"]), self.output)


def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """float32 -> the tensor's dtype (rounded and clipped with its scale and zero point)."""
    if not info.quantized:
        return x.astype(info.dtype, copy=False)
    limits = np.iinfo(info.dtype)
    q = np.round(x / np.float32(info.scale)) + info.zero_point
    return np.clip(q, limits.min, limits.max).astype(info.dtype)


def dequantize(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    if not info.quantized:
        return q.astype(np.float32, copy=False)
    return ((q.astype(np.float32) - info.zero_point) * np.float32(info.scale)).astype(np.float32)


def _tflite_interpreter_class():
    """LiteRT first, then tflite_runtime (its predecessor, same API). Never TensorFlow: edge/ stays light."""
    try:
        from ai_edge_litert import interpreter as litert
        from importlib.metadata import version

        return litert, f"ai_edge_litert {version('ai-edge-litert')}"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as tflite_runtime  # type: ignore[import-not-found]

        return tflite_runtime, "tflite_runtime"
    except ImportError:
        pass
    raise MissingExtraError("ai_edge_litert")


def _tensor_info(detail: dict) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(detail["name"], tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                      float(scale), int(zero_point))


def _kit_metadata(raw: bytes | str | None, path: Path) -> dict | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFileError(f"{path}: its {METADATA_NAME} metadata is not valid JSON; the file is damaged: copy it "
                             "again or re-convert the model") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: its {METADATA_NAME} metadata is not a JSON object; the file is damaged: copy "
                             "it again or re-convert the model")
    return data


def load(path: str | Path, options: RuntimeOptions = RuntimeOptions(), guard: bool = True) -> Runner:
    """Open a .tflite or .onnx artifact with the right runtime, after checking the file: its structure, and its
    content digest when the kit wrote it. A file without a digest is first loaded and run once in a child process
    (edge.guard), so a native crash becomes a ModelFileError; guard=False skips that (a file this process just
    wrote, like a converter's candidate)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return _load_tflite(path, options, guard)
    if suffix == ".onnx":
        return _load_onnx(path, options, guard)
    require_model_file(path)
    raise ModelFileError(f"{path}: unknown model type {suffix or '(no suffix)'}; the edge runtime runs .tflite and .onnx")


def _one_input_one_output(path: Path, inputs, outputs) -> None:
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(f"{path}: the kit runs single-input, single-output classifiers; this model has "
                             f"{len(inputs)} inputs and {len(outputs)} outputs")


def tflite_interpreter(data: bytes, options: RuntimeOptions, name: str, keep_intermediates: bool = False,
                       capture: bool = True):
    """A LiteRT (or fallback) interpreter over checked model bytes, tensors allocated; also the runtime's name.
    keep_intermediates: every tensor stays readable after invoke (with the builtin kernels, which XNNPACK's
    fused graph does not allow)."""
    module, runtime = _tflite_interpreter_class()
    kwargs: dict = {"model_content": data, "num_threads": options.threads}
    if keep_intermediates:
        kwargs["experimental_preserve_all_tensors"] = True
    if not options.xnnpack:
        kwargs["experimental_op_resolver_type"] = module.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES \
            if hasattr(module, "experimental") else module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        # LiteRT announces its XNNPACK delegate on stderr (capture=False: a guarded child's output is the message)
        with captured_native_output() if capture else contextlib.nullcontext():
            interpreter = module.Interpreter(**kwargs)
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{name}: the TFLite runtime refused the model ({first_line(exc, 300)})") from None
    return interpreter, f"{runtime} ({'xnnpack' if options.xnnpack else 'builtin kernels'}, {options.threads} threads)"


def _load_tflite(path: Path, options: RuntimeOptions, guard: bool) -> Runner:
    data = read_model_bytes(path)
    metadata = _kit_metadata(metadata_buffers(data, str(path)).get(METADATA_NAME), path)
    sealed = seal.verify(data, str(path), metadata)  # first: any change to a kit file is named as such
    check_structure(data, str(path))
    if not sealed and guard:
        first_load(str(path), data, lambda: _run_once(tflite_interpreter(data, options, str(path), capture=False)[0]),
                   key=repr(options))
    start = time.perf_counter()
    interpreter, runtime = tflite_interpreter(data, options, str(path))
    seconds = time.perf_counter() - start
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    _one_input_one_output(path, inputs, outputs)
    return Runner(path, "tflite", runtime, _tensor_info(inputs[0]), _tensor_info(outputs[0]), metadata, seconds,
                  interpreter)


def _run_once(interpreter) -> None:
    """One inference on zeros (the guarded first load's test run)."""
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()


def _onnx_session(path: Path, options: RuntimeOptions):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if options.fused
                                   else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    so.log_severity_level = 3
    try:  # ONNX Runtime prints an "EP Error ... Falling back" banner on stdout before it raises: keep it off stdout
        with contextlib.redirect_stdout(io.StringIO()):
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/InvalidProtobuf types
        raise ModelFileError(f"{path}: ONNX Runtime refused the model ({first_line(exc, 300)})") from None


def _run_onnx_once(session) -> None:
    """One inference on zeros, dynamic dimensions as 1 (the guarded first load's test run)."""
    feeds = {}
    for arg in session.get_inputs():
        dtype = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}.get(arg.type)
        if dtype is None:
            return
        feeds[arg.name] = np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in arg.shape], dtype)
    session.run(None, feeds)


def _load_onnx(path: Path, options: RuntimeOptions, guard: bool) -> Runner:
    require_model_file(path)
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("onnxruntime") from None
    parsed, data = read_onnx_bytes(path)  # the kit's own bounds-checked reader (the structure), before ONNX Runtime
    record = _kit_metadata(parsed.metadata.get(METADATA_NAME), path)
    if not seal.verify(data, str(path), record) and guard:
        first_load(str(path), data, lambda: _run_onnx_once(_onnx_session(path, options)), key=repr(options))
    start = time.perf_counter()
    session = _onnx_session(path, options)
    seconds = time.perf_counter() - start
    inputs, outputs = session.get_inputs(), session.get_outputs()
    _one_input_one_output(path, inputs, outputs)

    def info(arg) -> TensorInfo:
        dtype = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}.get(arg.type, arg.type)
        return TensorInfo(arg.name, tuple(d if isinstance(d, int) else -1 for d in arg.shape), dtype)

    try:
        described = info(inputs[0]), info(outputs[0])
    except UnicodeDecodeError:  # ONNX Runtime's Python binding decodes names as UTF-8
        raise ModelFileError(f"{path}: its input or output name is not UTF-8 text; the file is damaged: convert or "
                             "copy it again") from None
    return Runner(path, "onnx", f"onnxruntime {ort.__version__} ({options.threads} threads)", *described, record,
                  seconds, session)
