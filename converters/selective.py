"""Selective int8: find the layers whose quantization hurts most, and keep them in float.

LiteRT's quantization debugger runs the float and the quantized model side by side and measures,
for each quantized tensor, the RMSE between the two in units of that tensor's quantization step
(uniform rounding alone gives about 0.29). Layers far above that are the suspects; denylisting
them makes the converter leave those ops in float (with quantize/dequantize around them).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

import numpy as np

from calibration.representative import Prepared
from converters.tflite import make_converter, run_converter
from edge.errors import ConfigError


@dataclass(frozen=True)
class LayerError:
    tensor: str          # the quantized tensor, as the converter names it (fused names joined by ';')
    op: str
    error_steps: float   # RMSE(float, quantized) / quantization step

    @property
    def layer(self) -> str:
        """The Keras layer the tensor comes from (e.g. s2_b1_se_fc1), when the name says."""
        parts = self.tensor.split(";")[0].split("/")
        return re.sub(r"_\d+$", "", parts[1]) if len(parts) > 1 else parts[0]


def layer_errors(model, calibration: Prepared, debug_inputs: np.ndarray) -> list[LayerError]:
    """Every quantized tensor's error on `debug_inputs`, worst first."""
    import tensorflow as tf

    def dump(console) -> bytes:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=make_converter(model, "int8", calibration, progress=console),
            debug_dataset=lambda: ([x[None]] for x in debug_inputs))
        debugger.run()
        text = io.StringIO()
        debugger.layer_statistics_dump(text)
        return text.getvalue().encode()

    rows = csv.DictReader(io.StringIO(run_converter(dump).decode()))
    found = []
    for row in rows:
        scale = float(row["scale"] or 0)
        steps = float(row["mean_squared_error"]) ** 0.5 / scale if scale > 0 else 0.0
        found.append(LayerError(row["tensor_name"], row["op_name"], steps))
    return sorted(found, key=lambda e: -e.error_steps)


def matching(errors: list[LayerError], names: list[str]) -> list[LayerError]:
    """The tensors of the named layers (a layer name matches a part of a fused tensor name)."""
    chosen = []
    for name in names:
        hits = [e for e in errors if e.layer == name] or [e for e in errors if name in e.tensor]
        if not hits:
            worst = ", ".join(dict.fromkeys(e.layer for e in errors[:5]))
            raise ConfigError(f"--keep-float {name}: no quantized tensor of that layer; the worst layers here: {worst}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def selective_int8(model, calibration: Prepared, keep: list[LayerError]) -> bytes:
    """Full int8 except the ops producing `keep`, which stay float."""
    import tensorflow as tf

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[e.tensor for e in keep])

    def convert(console):
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=make_converter(model, "int8", calibration, progress=console),
            debug_dataset=lambda: iter([[calibration.inputs[0][None]]]), debug_options=options)
        return debugger.get_nondebug_quantized_model()

    return run_converter(convert)


def growth(total: int):
    """How many of the worst layers to try in float, in order: 1, 2, 4, ... (never all of them)."""
    k = 1
    while k < total:
        yield k
        k *= 2
