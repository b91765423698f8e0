"""Arm NN 20.08 (Debian's python3-pyarmnn, TfLiteParser + CpuRef) against LiteRT: the minimal models behind the Arm NN
section of docs/lowering.md, and whole artifacts.

    .venv/bin/python benchmarks/armnn.py > benchmarks/armnn.md                  # the minimal cases (about a minute)
    .venv/bin/python benchmarks/armnn.py --model a.tflite --images 176          # whole files, on the validation crops

Each minimal model is built in Keras and converted here (TensorFlow's TFLiteConverter, builtin ops), then run by LiteRT
(builtin kernels) and by Arm NN, which runs under Debian's /usr/bin/python3 (tests/edge/armnn_runner.py), on the same
inputs. A crash of Arm NN is reported as its signal or its last line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUNNER = ROOT / "tests" / "edge" / "armnn_runner.py"
PYTHON = os.environ.get("ARMNN_PYTHON", "/usr/bin/python3")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def armnn(model: Path, x: np.ndarray, folder: Path) -> tuple[np.ndarray | None, str]:
    """Arm NN's outputs for x, or None and why it failed."""
    np.save(folder / "x.npy", x)
    proc = subprocess.run([PYTHON, str(RUNNER), "run", str(model), str(folder / "x.npy"), str(folder / "y.npy")],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode < 0:
        return None, f"crashes (signal {-proc.returncode})"
    if proc.returncode:
        lines = [line for line in proc.stderr.splitlines() if "Skipped" not in line]
        return None, f"fails: {(lines or ['?'])[-1][-160:]}"
    return np.load(folder / "y.npy"), "runs"


def litert(model: Path, x: np.ndarray) -> np.ndarray:
    from edge.runtime import RuntimeOptions, load

    return load(model, RuntimeOptions(xnnpack=False)).run(x).reshape(len(x), -1)


def convert(model, precision: str, x: np.ndarray) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with contextlib.redirect_stdout(sys.stderr):  # the converter prints the SavedModel it writes
        return converter.convert()


def cases():
    """(name, precision, keras model, input shape): each failing form, then the form the kit writes now."""
    import keras
    from keras import layers, ops

    from converters.rewrite import dense_as_conv, lower_grouped_convs

    rng = np.random.default_rng(0)

    def weights(model):
        model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in model.get_weights()])
        return model

    def split_model(axis):
        x = keras.Input((6, 6, 4))
        parts = ops.split(x, 2, axis=axis)
        y = layers.Concatenate()([layers.Conv2D(2, 3, padding="same", name=f"c{i}")(p) for i, p in enumerate(parts)])
        return weights(keras.Model(x, y))

    def padded_grouped_model():
        """conv + ReLU (an int8 zero point of -128), zero padding, grouped stride-2 conv: a RegNetY stage entry."""
        x = keras.Input((8, 8, 3))
        y = layers.Conv2D(8, 1, activation="relu")(x)
        y = layers.ZeroPadding2D(1, name="pad")(y)
        y = layers.Conv2D(8, 3, strides=2, groups=2, name="gconv")(y)
        return weights(keras.Model(x, y))

    def pad_then_split(model):
        """The old split form: the grouped conv's PAD stays before the SPLIT (axis 3, so that Arm NN parses it)."""
        conv = model.get_layer("gconv")
        kernel = conv.kernel.numpy()
        x = keras.Input((8, 8, 3))
        y = model.layers[1](x)
        y = layers.ZeroPadding2D(1)(y)
        outs = []
        for i, part in enumerate(ops.split(y, 2, axis=3)):
            c = layers.Conv2D(4, 3, strides=2, name=f"g{i}")
            outs.append(c(part))
            c.set_weights([kernel[..., 4 * i:4 * i + 4], conv.bias.numpy()[4 * i:4 * i + 4]])
        return keras.Model(x, layers.Concatenate()(outs))

    def dense_model():
        x = keras.Input((4, 4, 8))
        y = layers.GlobalAveragePooling2D()(x)
        return weights(keras.Model(x, layers.Dense(5)(y)))

    grouped = padded_grouped_model()
    dense = dense_model()
    return [
        ("SPLIT with axis -1 (what ops.split(x, G, axis=-1) writes)", "float32", split_model(-1)),
        ("SPLIT with axis 3", "float32", split_model(3)),
        ("int8: PAD, then SPLIT, then a CONV_2D per group (the old split form)", "int8", pad_then_split(grouped)),
        ("int8: SPLIT, then a PAD right before each CONV_2D (the split lowering now)", "int8",
         lower_grouped_convs(grouped, "split")),
        ("float: grouped CONV_2D v6 (native)", "float32", grouped),
        ("int8: PAD right before a grouped CONV_2D v6 (native)", "int8", grouped),
        ("int8: FULLY_CONNECTED, weights per channel (TensorFlow's default)", "int8", dense),
        ("int8: the same Dense as a 1x1 CONV_2D (dense_as_conv)", "int8", dense_as_conv(dense)),
    ]


def minimal_table() -> str:
    rows = ["| case | Arm NN | max abs difference from LiteRT / LiteRT's output range |", "| --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, precision, model in cases():
            x = np.random.default_rng(1).uniform(0, 1, (16, *model.input_shape[1:])).astype(np.float32)
            path = folder / "case.tflite"
            path.write_bytes(convert(model, precision, x))
            y, status = armnn(path, x[:4], folder)
            if y is None:
                rows.append(f"| {name} | {status} | - |")
                continue
            ref = litert(path, x[:4])
            error = float(np.abs(y.reshape(ref.shape) - ref).max() / (ref.max() - ref.min()))
            rows.append(f"| {name} | {status} | {error:.2g} |")
    return "\n".join(rows)


def whole_files(models: list[str], images: int) -> str:
    """Arm NN against LiteRT on the first `images` validation crops (spread over the bundled photographs)."""
    from calibration.representative import validation_set
    from edge.preprocessing import PreprocessSpec
    from edge.runtime import load

    rows = ["| file | images | Arm NN | max abs error / logit range | top-1 agreement |", "| --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            runner = load(model)
            spec = PreprocessSpec.from_dict(runner.metadata["preprocessing"])
            x = validation_set(spec, limit=images).inputs
            ref = runner.run(x)
            y, status = armnn(Path(model), x, Path(tmp))
            if y is None:
                rows.append(f"| {Path(model).name} | {len(x)} | {status} | - | - |")
                continue
            error = float(np.abs(y - ref).max() / (ref.max() - ref.min()))
            agree = float(np.mean(y.argmax(1) == ref.argmax(1)))
            rows.append(f"| {Path(model).name} | {len(x)} | {status} | {error:.2e} | {agree:.2%} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="a .tflite artifact (repeat for more)")
    parser.add_argument("--images", type=int, default=11, help="validation crops per file (default 11)")
    args = parser.parse_args()
    if args.model:
        print(whole_files(args.model, args.images))
        return
    print("# Arm NN 20.08 against LiteRT on minimal models\n\n"
          "Debian's python3-pyarmnn (TfLiteParser, CpuRef backend) against LiteRT's builtin kernels, on 4 random inputs "
          "per model; the findings behind docs/lowering.md's Arm NN section. Reproduce with "
          "`.venv/bin/python benchmarks/armnn.py > benchmarks/armnn.md`.\n")
    print(minimal_table())


if __name__ == "__main__":
    main()
