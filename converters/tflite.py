"""`python -m converters.tflite --variant 200mf --int8`: a RegNetY as a validated LiteRT/TFLite file.

Precisions: float32 (default), --fp16 (float16 weights), --dynamic (int8 weights, float activations),
--int8 (full integer, calibrated on representative images; I/O float32, uint8 or int8). The file
holds builtin ops only; grouped convs are written the way the --target runs them. The artifact is
run and compared with the reference before it is written (converters.pipeline).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from calibration.representative import Prepared
from converters import cli, tflite_metadata
from converters.int8_calibration import (TFLITE_DEFAULT, TFLITE_METHODS, check_method, equalized_lowered, join, parts,
                                         uses_mse)
from converters.metadata import embed_tflite
from converters.pipeline import Candidate, Job, convert as run_pipeline, log as default_log
from converters.plan import Evaluation, Plan, Result
from converters.reference import KerasGraph, Lowered, Reference
from converters.tflite_converter import IO_TYPES, check_ops, to_tflite
from edge.errors import ConfigError, exit_now, run_cli

FORMAT = "tflite"


@dataclass(frozen=True)
class TFLiteOptions:
    io: str = "float32"                      # input/output type of a full-int8 file
    keep_float: tuple[str, ...] = ()         # layers to keep in float (full int8 only), or ("auto",)
    calibration: str = TFLITE_DEFAULT        # full int8 calibration method (converters.int8_calibration)

    def check(self, precision: str) -> None:
        check_method(self.calibration, TFLITE_METHODS, TFLITE_DEFAULT, precision, FORMAT)
        if self.io not in IO_TYPES:
            raise ConfigError(f"unknown --io {self.io!r}; valid: {', '.join(IO_TYPES)}")
        if self.io != "float32" and precision != "int8":
            raise ConfigError(f"--io {self.io} needs --int8 (only a fully integer model has integer I/O)")
        if self.keep_float and (precision != "int8" or self.io != "float32"):
            raise ConfigError("--keep-float needs --int8 with --io float32")


@dataclass
class TFLiteFacts:
    io_type: str
    ops: list[str]
    keep_float: dict | None = None
    worst_layers: list | None = None
    calibration: dict | None = None          # full int8: the calibration method asked for and used

    def record(self, bands: dict | None = None) -> dict:
        """The metadata entries (in the order the reports have always listed them)."""
        record = {"io_type": self.io_type, **({"depthwise_bands": bands} if bands else {}), "format": FORMAT,
                  "ops": self.ops}
        if self.calibration is not None:
            record["calibration_method"] = self.calibration
        if self.keep_float is not None:
            record["keep_float"] = self.keep_float
        if self.worst_layers is not None:
            record["worst_layers"] = self.worst_layers
        return record

    def remedies(self, precision: str) -> str:
        selective = precision == "int8" and self.io_type == "float32"  # --keep-float needs float I/O
        return "Calibrate on images like yours (--calib DIR)" + (
            ", keep the worst layers in float (--keep-float auto)" if selective else "")


@dataclass
class TFLiteExporter:
    options: TFLiteOptions = TFLiteOptions()

    def describe(self, job: Job) -> str:
        plan = job.plan
        return (f"converting {job.reference.name} to TFLite {plan.precision} (grouped convs: {plan.lowering}, "
                f"target {plan.target.name})")

    def export(self, lowered: Lowered, job: Job) -> Candidate:
        self._check_layer_names(lowered)
        note = tflite_metadata.mediapipe_note(job.reference.preprocessing, self.options.io)
        if note:
            job.log(f"note: {note}")
        record, mse = None, False
        if job.plan.precision == "int8":
            lowered, calibration = equalized_lowered(lowered, job, self.options.calibration, TFLITE_DEFAULT)
            record, mse = calibration.to_dict(), uses_mse(calibration)
        data = to_tflite(lowered.graph, job.plan.precision, job.plan.calibration, self.options.io, mse=mse)
        return Candidate(data, TFLiteFacts(self.options.io, check_ops(data, job.plan.target), calibration=record),
                         lowered)

    def evaluate(self, candidate: Candidate, job: Job) -> Evaluation:
        return job.evaluate(candidate.data)

    def _check_layer_names(self, lowered: Lowered) -> None:
        """--keep-float names that match no layer are refused before converting (a Keras graph's layers are known;
        a SavedModel's are not, so its names are checked against the converted tensors later)."""
        names = [n for n in self.options.keep_float if n != "auto"]
        if not names or not isinstance(lowered.graph, KerasGraph):
            return
        layers = [layer.name for layer in lowered.graph.model.layers]
        for name in names:
            if not any(name in layer for layer in layers):
                raise ConfigError(f"--keep-float {name}: no layer of the model has that name (its layers are named "
                                  f"like {', '.join(layers[1:4])}); pass a layer name, or auto")

    def refine(self, lowered: Lowered, candidate: Candidate, evaluation: Evaluation,
               job: Job) -> tuple[Candidate, Evaluation]:
        """The keep-float step (converters.selective): with --keep-float, or to name the worst layers when full int8
        is over budget."""
        plan, keep = job.plan, list(self.options.keep_float)
        over = evaluation.violations and not plan.allow_drift
        if plan.precision != "int8" or self.options.io != "float32" or not (keep or over):
            return candidate, evaluation
        from dataclasses import replace

        from converters.selective import keep_float

        outcome = keep_float((candidate.lowered or lowered).graph, job, candidate.data, evaluation, keep)
        facts = replace(candidate.facts, keep_float=outcome.keep_float, worst_layers=outcome.worst_layers,
                        calibration=_selective_calibration(candidate.facts.calibration, outcome.data, candidate.data,
                                                           job))
        return Candidate(outcome.data, facts, candidate.lowered), outcome.evaluation

    def embed(self, data: bytes, record: dict) -> bytes:
        return embed_tflite(data, record, tflite_metadata.from_record(record))


def _selective_calibration(record: dict | None, written: bytes, full: bytes, job: Job) -> dict | None:
    """The keep-float file is quantized by LiteRT's debugger, which calibrates with min/max: when it replaces a
    file whose ranges the kit chose, the record says so instead of naming ranges the file does not have."""
    if record is None or written == full or "mse" not in parts(record["used"]):
        return record
    used = join([p for p in parts(record["used"]) if p != "mse"])
    note = f"--keep-float quantizes with LiteRT's debugger, which calibrates with min/max: used {used}"
    job.log(f"note: {note}")
    return {**record, "used": used, "note": note}


def convert(reference: Reference, plan: Plan, validation: Prepared, io: str = "float32",
            keep_float: Sequence[str] | None = None, calibration: str = TFLITE_DEFAULT, log=default_log) -> Result:
    """Lower, convert, check and validate one TFLite artifact, and write it when within budget (converters.pipeline).

    keep_float (full int8 only): layer names to leave in float, or ["auto"]: the fewest of the worst
    layers (1, 2, 4, ...) that bring the drift within budget. calibration: the full int8 calibration method
    (converters.int8_calibration).
    """
    options = TFLiteOptions(io, tuple(keep_float or ()), calibration)
    options.check(plan.precision)
    return run_pipeline(reference, plan, validation, TFLiteExporter(options), log=log)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    precision = parser.add_argument_group("precision (default float32)").add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_const", dest="precision", const="float16", help="float16 weights")
    precision.add_argument("--dynamic", action="store_const", dest="precision", const="dynamic",
                           help="dynamic-range: int8 weights, float activations")
    precision.add_argument("--int8", action="store_const", dest="precision", const="int8",
                           help="full integer, calibrated on representative images (per-channel weights)")
    parser.set_defaults(precision="float32")
    parser.add_argument("--io", default="float32", choices=IO_TYPES,
                        help="input/output type of a full-int8 file (default float32: the file quantizes inside)")
    parser.add_argument("--keep-float", nargs="+", metavar="LAYER",
                        help="with --int8: leave these layers (e.g. s2_b1_se_fc1) in float; 'auto': the fewest of the "
                             "worst layers (by LiteRT's quantization debugger) that bring the drift within budget, "
                             "with the size and speed cost reported")
    parser.add_argument("--calibration", default=TFLITE_DEFAULT, choices=TFLITE_METHODS, metavar="METHOD",
                        help="with --int8: how activations are calibrated. minmax: the converter's own min/max; "
                             "mse: each activation range shrunk to the least quantization error; equalize: cross-layer "
                             "equalization of the float model first (exact in float); bias: bias correction of the "
                             "int8 weights' mean error; gptq: each layer's int8 rounding chosen for its output (with "
                             "bias correction); joined with + to combine "
                             f"(default {TFLITE_DEFAULT}; measured in docs/drift.md)")


def exporter_from(args: argparse.Namespace) -> tuple[str, TFLiteExporter, str]:
    """(precision, exporter, file-name suffix) from the parsed arguments, checked before anything is loaded."""
    options = TFLiteOptions(args.io, tuple(args.keep_float or ()), args.calibration)
    options.check(args.precision)
    return args.precision, TFLiteExporter(options), "" if args.io == "float32" else f"_io{args.io}"


FRONTEND = cli.Frontend(
    format=FORMAT, module="converters.tflite", add_arguments=add_arguments, exporter_from=exporter_from,
    description="Convert a RegNetY to a LiteRT/TFLite file, run it against the reference on validation images, and "
                "write it only when its drift is within budget. Writes FILE, FILE.json and FILE.md.")


main = FRONTEND.main


if __name__ == "__main__":
    exit_now(run_cli(main))
