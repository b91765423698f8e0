"""`python -m converters.onnx --variant 200mf [--int8]`: a RegNetY as a validated ONNX file.

Route: tf2onnx over a graph-mode trace (converters.onnx_export); --int8 adds ONNX Runtime static
quantization (QDQ, per-channel int8 weights and activations) calibrated on the same representative
images as TFLite, validated through the fused int8 kernels and as written (converters.onnx_quantize).
The artifact is run and compared with the reference before it is written (converters.pipeline).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from calibration.representative import Prepared
from converters import cli
from converters.int8_calibration import (ONNX_DEFAULT, ONNX_METHODS, PERCENTILE, check_method, equalized_lowered,
                                         uses_mse, uses_percentile)
from converters.metadata import embed_onnx
from converters.onnx_export import DEFAULT_OPSET, grouped_conv_nodes, to_onnx
from converters.onnx_quantize import ACTIVATIONS, KernelCheck, kernel_check, quantize_int8
from converters.pipeline import Candidate, Job, convert as run_pipeline, log as default_log
from converters.plan import Evaluation, Plan, Result
from converters.reference import Lowered, Reference
from edge.errors import ConfigError, ConversionError, exit_now, run_cli

FORMAT = "onnx"
OPSETS = range(13, 22)  # what tf2onnx and ONNX Runtime both support


@dataclass(frozen=True)
class OnnxOptions:
    opset: int = DEFAULT_OPSET
    activations: str = "int8"       # int8 activation type: int8 (S8S8) or uint8 (U8S8)
    reduce_range: bool = False      # 7-bit weights for x86 int8 kernels without VNNI
    calibration: str = ONNX_DEFAULT  # int8 calibration method (converters.int8_calibration)

    def check(self, precision: str) -> None:
        check_method(self.calibration, ONNX_METHODS, ONNX_DEFAULT, precision, FORMAT)
        if self.opset not in OPSETS:
            raise ConfigError(f"--opset must be between {OPSETS.start} and {OPSETS.stop - 1} (tf2onnx and ONNX Runtime "
                              f"both support those), got {self.opset}")
        if self.activations not in ACTIVATIONS:
            raise ConfigError(f"unknown --activations {self.activations!r}; valid: {', '.join(ACTIVATIONS)}")
        if self.activations != "int8" and precision != "int8":
            raise ConfigError("--activations needs --int8")
        if self.reduce_range and precision != "int8":
            raise ConfigError("--reduce-range needs --int8")


@dataclass
class OnnxFacts:
    opset: int
    grouped_conv_nodes: int
    ops: list[str]
    activations: str | None = None      # int8 only, like the two below
    reduce_range: bool | None = None
    int8_kernels: KernelCheck | None = None
    calibration: dict | None = None     # the calibration method asked for and used

    def record(self, bands: dict | None = None) -> dict:
        """The metadata entries (in the order the reports have always listed them)."""
        record = {"depthwise_bands": bands} if bands else {}
        if self.int8_kernels is not None:
            record.update(activations=self.activations, reduce_range=self.reduce_range,
                          int8_kernels=asdict(self.int8_kernels))
            if self.calibration is not None:
                record["calibration_method"] = self.calibration
        return record | {"format": FORMAT, "opset": self.opset, "grouped_conv_nodes": self.grouped_conv_nodes,
                         "ops": self.ops}

    def remedies(self, precision: str) -> str:
        if self.int8_kernels is not None and self.int8_kernels.saturation_suspected and not self.reduce_range:
            return "This CPU's int8 kernels saturate: re-convert with --reduce-range"
        return "Calibrate on images like yours (--calib DIR)"


@dataclass
class OnnxExporter:
    options: OnnxOptions = OnnxOptions()

    def describe(self, job: Job) -> str:
        return (f"converting {job.reference.name} to ONNX {job.plan.precision} (opset {self.options.opset}, grouped "
                f"convs: {job.plan.lowering})")

    def export(self, lowered: Lowered, job: Job) -> Candidate:
        calibration = None
        if job.plan.precision == "int8":
            lowered, calibration = equalized_lowered(lowered, job, self.options.calibration, ONNX_DEFAULT)
        proto = to_onnx(lowered.graph, self.options.opset, job.reference.output_kind)
        grouped = grouped_conv_nodes(proto)
        if job.plan.lowering == "native" and grouped == 0 and lowered.grouped_convs:
            raise ConversionError("the exported graph has no grouped Conv node; the grouped convs were not traced "
                                  "natively")
        facts = OnnxFacts(self.options.opset, grouped, [])
        if job.plan.precision == "int8":
            percentile = PERCENTILE if uses_percentile(calibration) else None
            proto = quantize_int8(proto, job.plan.calibration, self.options.activations,
                                  reduce_range=self.options.reduce_range, percentile=percentile,
                                  mse=uses_mse(calibration))
            facts.activations, facts.reduce_range = self.options.activations, self.options.reduce_range
            facts.calibration = calibration.to_dict()
        facts.ops = sorted({n.op_type for n in proto.graph.node})
        return Candidate(proto.SerializeToString(), facts)

    def evaluate(self, candidate: Candidate, job: Job) -> Evaluation:
        """int8: through ONNX Runtime's fused kernels and as written (converters.onnx_quantize.kernel_check)."""
        if job.plan.precision != "int8":
            return job.evaluate(candidate.data)
        evaluation, candidate.facts.int8_kernels = kernel_check(job, candidate.data, self.options.reduce_range)
        return evaluation

    def refine(self, lowered: Lowered, candidate: Candidate, evaluation: Evaluation,
               job: Job) -> tuple[Candidate, Evaluation]:
        return candidate, evaluation

    def embed(self, data: bytes, record: dict) -> bytes:
        import onnx

        loaded = onnx.load_from_string(data)
        embed_onnx(loaded, record)
        return loaded.SerializeToString()


def convert(reference: Reference, plan: Plan, validation: Prepared, opset: int = DEFAULT_OPSET,
            activations: str = "int8", reduce_range: bool = False, calibration: str = ONNX_DEFAULT,
            log=default_log) -> Result:
    """Export, check and validate one ONNX artifact, and write it when within budget (converters.pipeline)."""
    options = OnnxOptions(opset, activations, reduce_range, calibration)
    options.check(plan.precision)
    return run_pipeline(reference, plan, validation, OnnxExporter(options), log=log)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--int8", action="store_true", help="static int8 quantization (QDQ, per-channel) "
                        "calibrated on representative images")
    parser.add_argument("--reduce-range", action="store_true",
                        help="with --int8: 7-bit weights, for x86 CPUs without VNNI (AVX2, AVX-512), whose int8 conv "
                             "kernels can saturate; the converter warns when they do (docs/drift.md)")
    parser.add_argument("--activations", choices=ACTIVATIONS, default="int8",
                        help="with --int8: activation type. int8 (default) is the more accurate, uint8 can be faster "
                             "on x86 CPUs without VNNI (docs/drift.md)")
    parser.add_argument("--calibration", default=ONNX_DEFAULT, choices=ONNX_METHODS, metavar="METHOD",
                        help="with --int8: how activations are calibrated. minmax: ONNX Runtime's min/max; "
                             f"percentile: its {PERCENTILE}th percentile; mse: each activation range shrunk to the "
                             "least quantization error; equalize: cross-layer equalization of the "
                             "float model first (exact in float); bias: bias correction of the int8 weights; "
                             "gptq: each layer's int8 rounding chosen for its output (with bias correction); joined "
                             "with + to combine "
                             f"(default {ONNX_DEFAULT}; measured in docs/drift.md)")


def exporter_from(args: argparse.Namespace) -> tuple[str, OnnxExporter, str]:
    """(precision, exporter, file-name suffix) from the parsed arguments, checked before anything is loaded."""
    precision = "int8" if args.int8 else "float32"
    options = OnnxOptions(args.opset, args.activations, args.reduce_range, args.calibration)
    options.check(precision)
    return precision, OnnxExporter(options), ""


FRONTEND = cli.Frontend(
    format=FORMAT, module="converters.onnx", add_arguments=add_arguments, exporter_from=exporter_from,
    description="Convert a RegNetY to ONNX (float32, or --int8 QDQ), run it in ONNX Runtime against the reference, "
                "and write it only when its drift is within budget. Writes FILE, FILE.json, FILE.md.")


main = FRONTEND.main


if __name__ == "__main__":
    exit_now(run_cli(main))
