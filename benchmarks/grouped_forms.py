"""Can a RegNetY grouped conv run faster on LiteRT's builtin kernels in another exact form? Three forms, timed.

The portable file writes each 3x3 grouped conv as SPLIT -> one CONV_2D per group -> CONCATENATION (the split
lowering); the native file keeps one grouped CONV_2D, which the builtin kernels run on the reference kernel. A third
exact form: one DEPTHWISE_CONV_2D with a depth multiplier of the group width g (input channel c of group k gives g
partial outputs, one per output channel of its group), then RESHAPE -> SUM over the group's g input channels ->
RESHAPE. Same MACs as the grouped conv, in two ops instead of 2 + groups. Every grouped conv shape of RegNetY-200MF
(group width 8; stride-2 convs padded 1/1 as the kit pads them) is written the three ways, converted float32 and
full int8 (random weights, 8 random calibration inputs), checked against the grouped conv in float, and timed on the
builtin kernels, one thread, every model once per round in a shuffled order (benchmarks/portable_ops.md).

    .venv/bin/python benchmarks/grouped_forms.py [--rounds 200] > table.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import builtin_interpreter, converted, interleaved  # noqa: E402

GROUP_WIDTH = 8
# (input side, channels, stride, how many of RegNetY-200MF's 13 grouped convs have this shape)
SHAPES = ((112, 24, 2, 1), (56, 56, 2, 1), (28, 152, 2, 1), (14, 152, 1, 3), (14, 368, 2, 1), (7, 368, 1, 6))
FORMS = ("grouped", "split", "depthwise+sum")


def _function(side: int, channels: int, stride: int, form: str, kernel: np.ndarray):
    import tensorflow as tf

    groups, g = channels // GROUP_WIDTH, GROUP_WIDTH
    # depthwise kernel: input channel c = k*g + i, multiplier m -> kernel[:, :, i, k*g + m]
    depthwise = kernel.reshape(3, 3, g, groups, g).transpose(0, 1, 3, 2, 4).reshape(3, 3, channels, g)

    @tf.function(input_signature=[tf.TensorSpec([1, side, side, channels], tf.float32)])
    def grouped(x):
        x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        if form == "grouped":
            return tf.nn.relu(tf.nn.conv2d(x, kernel, stride, "VALID"))
        if form == "split":
            parts = tf.split(x, groups, axis=-1)
            return tf.nn.relu(tf.concat([tf.nn.conv2d(p, kernel[..., k * g:(k + 1) * g], stride, "VALID")
                                         for k, p in enumerate(parts)], axis=-1))
        y = tf.nn.depthwise_conv2d(x, depthwise, [1, stride, stride, 1], "VALID")
        out = (side - 1) // stride + 1  # padded 1/1, a 3x3 kernel
        y = tf.reduce_sum(tf.reshape(y, [out * out, groups, g, g]), axis=2)
        return tf.nn.relu(tf.reshape(y, [1, out, out, channels]))

    return grouped


def _models(side: int, channels: int, stride: int, form: str) -> tuple[bytes, bytes, float]:
    """(the float32 TFLite file, the int8 one, the form's largest float difference from the grouped conv in
    TensorFlow)."""
    rng = np.random.default_rng(side * 1000 + channels)
    kernel = rng.normal(0, (2 / (9 * GROUP_WIDTH)) ** 0.5, (3, 3, GROUP_WIDTH, channels)).astype(np.float32)
    fn = _function(side, channels, stride, form, kernel)
    x = rng.uniform(0, 1, (1, side, side, channels)).astype(np.float32)
    error = float(np.abs(fn(x).numpy() - _function(side, channels, stride, "grouped", kernel)(x).numpy()).max())
    sample = lambda: rng.uniform(0, 1, (1, side, side, channels)).astype(np.float32)  # noqa: E731
    return converted(fn, False, sample), converted(fn, True, sample), error


def main() -> None:
    from edge.tflite_file import builtin_op_name, operator_codes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds (default 200)")
    args = parser.parse_args()
    cases, errors = [], {}
    for shape in SHAPES:
        for form in FORMS:
            *files, errors[(shape, form)] = _models(*shape[:3], form)
            for precision, data in zip(("float32", "int8"), files):
                ops = sorted({builtin_op_name(code) for code, _, _ in operator_codes(data)})
                interpreter, runtime = builtin_interpreter(data, form)
                cases.append((precision, shape, form, interpreter, ops))
    timed = interleaved([c[3].invoke for c in cases], args.rounds)
    medians = {(p, s, f): float(np.median(t)) for (p, s, f, _, _), t in zip(cases, timed)}
    print(f"{args.rounds} interleaved rounds, batch 1, {runtime}\n")
    print("| precision | input, channels, stride (x convs) | " + " | ".join(f"{f} ms" for f in FORMS) +
          " | depthwise+sum / split | depthwise+sum max float error |")
    print("| --- | --- | " + " | ".join("---" for _ in FORMS) + " | --- | --- |")
    for precision in ("float32", "int8"):
        for shape in SHAPES:
            side, channels, stride, count = shape
            times = [medians[(precision, shape, f)] for f in FORMS]
            print(f"| {precision} | {side}x{side}, {channels}, {stride} (x{count}) | " +
                  " | ".join(f"{t:.3f}" for t in times) + f" | {times[2] / times[1]:.2f}x | "
                  f"{errors[(shape, 'depthwise+sum')]:.1e} |")
        totals = [sum(medians[(precision, s, f)] * s[3] for s in SHAPES) for f in FORMS]
        print(f"| {precision} | all 13, weighted | " + " | ".join(f"{t:.3f}" for t in totals) +
              f" | {totals[2] / totals[1]:.2f}x | |")
    print("\nops per form: " + "; ".join(f"{f}: {', '.join(next(c[4] for c in cases if c[2] == f))}" for f in FORMS))


if __name__ == "__main__":
    main()
