"""Can the portable file's 1x1 convs run faster on LiteRT's builtin kernels? CONV_2D against FULLY_CONNECTED.

The split form makes the grouped convs cheap on builtin kernels; what is left of a RegNetY is mostly its 1x1 convs,
which the native file runs too (benchmarks/portable_ops.md). Here every 1x1 conv shape of RegNetY-200MF (with its
bias and ReLU) is written both ways, as a CONV_2D and as RESHAPE -> FULLY_CONNECTED -> RESHAPE, converted float32 and
full int8 (random weights, 8 random calibration inputs), and timed on the builtin kernels, one thread, every model
once per round in a shuffled order. A form faster here would be a lowering worth writing for the portable target.

    .venv/bin/python benchmarks/pointwise_forms.py [--rounds 200] > table.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import builtin_interpreter, converted, interleaved  # noqa: E402

# (map side, input channels, output channels) of RegNetY-200MF's 1x1 convs: stage by stage, conv1 then conv3
SHAPES = ((112, 32, 24), (56, 24, 24), (56, 24, 56), (28, 56, 56), (28, 56, 152), (14, 152, 152), (14, 152, 368),
          (7, 368, 368))
FORMS = ("CONV_2D", "FULLY_CONNECTED")


def _model(side: int, cin: int, cout: int, form: str, int8: bool) -> bytes:
    import tensorflow as tf

    rng = np.random.default_rng(cin * 1000 + cout)
    w = rng.normal(0, (2 / cin) ** 0.5, (1, 1, cin, cout)).astype(np.float32)
    b = rng.normal(0, 0.1, cout).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, side, side, cin], tf.float32)])
    def pointwise(x):
        if form == "CONV_2D":
            y = tf.nn.conv2d(x, w, 1, "VALID") + b
        else:
            y = tf.reshape(tf.matmul(tf.reshape(x, [side * side, cin]), w[0, 0]) + b, [1, side, side, cout])
        return tf.nn.relu(y)

    return converted(pointwise, int8, lambda: rng.uniform(0, 1, (1, side, side, cin)).astype(np.float32))


def main() -> None:
    from edge.tflite_file import builtin_op_name, operator_codes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds (default 200)")
    args = parser.parse_args()
    cases = []
    for int8 in (False, True):
        for shape in SHAPES:
            for form in FORMS:
                data = _model(*shape, form, int8)
                ops = {builtin_op_name(code) for code, _, _ in operator_codes(data)}
                assert form in ops and ({"CONV_2D", "FULLY_CONNECTED"} - {form}).isdisjoint(ops), ops
                interpreter, runtime = builtin_interpreter(data, form)
                cases.append(("int8" if int8 else "float32", shape, form, interpreter))
    timed = interleaved([c[3].invoke for c in cases], args.rounds)
    medians = {(p, s, f): float(np.median(t)) for (p, s, f, _), t in zip(cases, timed)}
    print(f"{args.rounds} interleaved rounds, batch 1, {runtime}\n")
    print("| precision | map, in -> out | MMACs | CONV_2D ms | FULLY_CONNECTED ms | CONV_2D GMAC/s | FC / CONV_2D |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for precision in ("float32", "int8"):
        for side, cin, cout in SHAPES:
            conv, fc = (medians[(precision, (side, cin, cout), f)] for f in FORMS)
            macs = side * side * cin * cout / 1e6
            print(f"| {precision} | {side}x{side}, {cin} -> {cout} | {macs:.1f} | {conv:.3f} | {fc:.3f} | "
                  f"{macs / conv:.1f} | {fc / conv:.2f}x |")
        total = [sum(medians[(precision, s, f)] for s in SHAPES) for f in FORMS]
        print(f"| {precision} | all eight | | {total[0]:.3f} | {total[1]:.3f} | | {total[1] / total[0]:.2f}x |")


if __name__ == "__main__":
    main()
