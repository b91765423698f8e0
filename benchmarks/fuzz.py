"""Fuzzing the edge loading path: mutated model files through `Classifier(path)` and one inference.

Each case is a copy of a real artifact with one mutation — bit flips (1, 8 or 64 bits), a truncation, a splice of
another file's bytes, a zeroed range, or a 32-bit value overwritten in the first KB — half of them aimed at bytes
outside the weights (the structure an interpreter trusts). Every file is fed twice: as the kit wrote it
("sealed": its record carries the content digest) and as another tool or an older kit would have ("foreign": the
digest field renamed and metadata_version 1, both in place, so nothing else moves), which exercises the structure
check and the guarded first load instead of the digest.

A worker process loads and runs each file; the parent feeds it, counts what happened, and restarts it when it
dies. Outcomes: `rejected` (one KitError line), `ran` (loaded and classified; `top-1 changed` counts those whose
answer moved), `crash` (the worker died), `hang` (no answer within the time limit), `traceback` (any other
exception). Crashing and hanging files are kept in --keep with a one-line reproducer each.

    .venv/bin/python -m benchmarks.fuzz --tflite artifacts/regnety_200mf_int8.tflite \\
        --onnx artifacts/regnety_200mf_float32.onnx --tflite-cases 10000 --onnx-cases 2000 --table docs/fuzzing.md
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("flip1", "flip8", "flip64", "truncate", "splice", "zero", "offset32")
OUTCOMES = ("rejected", "ran", "crash", "hang", "traceback")
CASE_TIME_LIMIT_S = 200.0   # past the guarded first load's own limit (edge.guard.TIME_LIMIT_S)
IMAGE = ROOT / "calibration" / "samples" / "chelsea"


# ---------------------------------------------------------------------------------------------------- mutations

def weight_ranges(data: bytes, suffix: str) -> list[tuple[int, int]]:
    """Byte ranges of the file's weights (constant buffers / initializers), largest first."""
    ranges = []
    if suffix == ".tflite":
        from edge.tflite_file import FlatReader

        reader = FlatReader(data, "fuzz")
        for buffer in reader.tables(reader.u32(0), 4):  # Model.buffers
            start, length = reader.buffer_span(buffer)
            if length >= 64:
                ranges.append((start, start + length))
    else:
        import onnx

        model = onnx.load_from_string(data)
        for init in model.graph.initializer:
            raw = init.raw_data
            if len(raw) >= 64:
                at = data.find(raw)
                if at >= 0:
                    ranges.append((at, at + len(raw)))
    return sorted(ranges, key=lambda r: r[0] - r[1])


def _position(rng: random.Random, size: int, weights: list[tuple[int, int]], structural: bool) -> int:
    """A byte position: anywhere, or (structural) outside every weight range."""
    for _ in range(1000):
        pos = rng.randrange(size)
        if not structural or not any(a <= pos < b for a, b in weights):
            return pos
    return rng.randrange(size)


def mutate(data: bytes, kind: str, rng: random.Random, weights: list[tuple[int, int]], other: bytes,
           structural: bool) -> bytes:
    out = bytearray(data)
    size = len(out)
    if kind.startswith("flip"):
        for _ in range(int(kind[4:])):
            pos = _position(rng, size, weights, structural)
            out[pos] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        return bytes(out[:rng.randrange(size)])
    elif kind == "splice":
        length = rng.randint(1, 4096)
        src, dst = rng.randrange(max(1, len(other) - length)), _position(rng, size, weights, structural)
        piece = other[src:src + length]
        out[dst:dst + len(piece)] = piece
        del out[size:]
    elif kind == "zero":
        length = rng.randint(1, 256)
        start = _position(rng, size, weights, structural)
        out[start:start + length] = bytes(min(length, size - start))
    elif kind == "offset32":
        pos = rng.randrange(0, min(1024, size - 4)) & ~3
        value = rng.choice([0, 1, 4, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, rng.getrandbits(32), rng.getrandbits(12)])
        out[pos:pos + 4] = value.to_bytes(4, "little")
    else:
        raise ValueError(kind)
    return bytes(out)


def foreign(data: bytes) -> bytes:
    """The same file without its seal, as a tool other than this kit version would write it: the digest's key
    renamed and the record's metadata_version set to 1, in place (lengths kept, so no offset moves)."""
    from edge.seal import FIELD

    key = f'"{FIELD}":'.encode()
    if key not in data:
        return data
    out = data.replace(key, f'"{"x" * (len(FIELD) - 1)}_":'.encode(), 1)
    return re.sub(rb'"metadata_version":\d', b'"metadata_version":1', out, count=1)


@dataclass(frozen=True)
class Case:
    number: int
    source: str        # "tflite" | "onnx"
    variant: str       # "sealed" | "foreign"
    kind: str
    structural: bool
    seed: int


def plan_cases(tflite_cases: int, onnx_cases: int, seed: int) -> list[Case]:
    """Half of each format's cases sealed, half foreign; kinds in turn; every other case aimed at structure."""
    cases = []
    for source, count in (("tflite", tflite_cases), ("onnx", onnx_cases)):
        for i in range(count):
            cases.append(Case(len(cases), source, ("sealed", "foreign")[i % 2], KINDS[(i // 2) % len(KINDS)],
                              (i // (2 * len(KINDS))) % 2 == 1, seed * 1_000_003 + len(cases)))
    return cases


# ------------------------------------------------------------------------------------------------------- worker

def bare_run(path: str, image) -> int:
    """What a program without the kit's checks does: the runtime itself loads the file and runs it once
    (the kit's preprocessing, a float input). Returns the top-1 index."""
    import numpy as np

    x = image[None].astype(np.float32)
    if path.endswith(".tflite"):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        scale, zero = detail["quantization"]
        feed = np.clip(np.round(x / scale) + zero, -128, 127).astype(detail["dtype"]) if scale else x
        interpreter.set_tensor(detail["index"], feed)
        interpreter.invoke()
        logits = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    else:
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    return int(np.argmax(logits[0]))


def worker(bare: bool = False, paths=None, structure_check: bool = True) -> None:
    """Read file paths on stdin (or take `paths`); load each with Classifier, classify the fixed image; one JSON line
    per file. bare: load and run each with the runtime alone (bare_run), for comparison; structure_check=False: the
    kit's path without edge.tflite_check, to measure what the guarded first load alone catches."""
    from edge.classifier import Classifier
    from edge.errors import KitError
    from edge.images import load_image, to_input
    from edge.preprocessing import PreprocessSpec
    from edge.runtime import RuntimeOptions

    if not structure_check:
        import edge.runtime

        edge.runtime.check_structure = lambda data, name: None
    image = load_image(next(p for p in sorted(IMAGE.iterdir()) if p.suffix.lower() in (".jpg", ".png")))
    tensor = to_input(image, PreprocessSpec())
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything native code prints goes to stderr, never into the answers
    for line in (sys.stdin if paths is None else paths):
        path = str(line).strip()
        try:
            if bare:
                answer = {"outcome": "ran", "top1": bare_run(path, tensor)}
            else:
                result = Classifier(path, RuntimeOptions(threads=1)).classify(image, top=1)
                answer = {"outcome": "ran", "top1": result.top[0].index}
        except KitError as exc:
            answer = {"outcome": "rejected", "message": str(exc).splitlines()[0][:300],
                      "lines": len(str(exc).splitlines())}
        except Exception as exc:  # what the kit must never let through (a bare runtime raising is its refusal)
            answer = {"outcome": "rejected" if bare else "traceback", "message": f"{type(exc).__name__}: {exc}"[:300],
                      "lines": 1}
        out.write(json.dumps(answer) + "\n")


class Worker:
    def __init__(self, log: Path, flags: list[str]):
        self.log, self.flags = log, flags
        self.proc = None

    def start(self) -> None:
        if getattr(self, "stderr", None) is None:
            self.stderr = open(self.log, "wb")
        # its own process group: stopping a hung worker stops the guard's child it may be waiting on too
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.fuzz", "--worker", *self.flags],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     start_new_session=True)

    def ask(self, path: Path, time_limit: float) -> dict:
        import select

        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.stderr.seek(0)
        self.stderr.truncate()
        self.proc.stdin.write(f"{path}\n".encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], time_limit)
        if not ready:
            self.stop()
            return {"outcome": "hang"}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            said = self.log.read_bytes().decode("utf-8", "replace").strip().splitlines()
            self.stop()
            return {"outcome": "crash", "message": f"exit {code}: " + " | ".join(said[-3:])[:300]}
        return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
        if getattr(self, "stderr", None) is not None:
            self.stderr.close()
            self.stderr = None


# ----------------------------------------------------------------------------------------------------- campaign

@dataclass
class Tally:
    counts: collections.Counter = field(default_factory=collections.Counter)
    reasons: collections.Counter = field(default_factory=collections.Counter)
    changed: collections.Counter = field(default_factory=collections.Counter)
    multi_line: int = 0
    kept: list[str] = field(default_factory=list)
    examples: dict = field(default_factory=dict)
    said: dict = field(default_factory=dict)   # (source, variant, check) -> the first message of that kind
    seconds: float = 0.0


def reason(message: str) -> str:
    """Which check refused the file, read from its one line."""
    for key, words in (("content digest", "is damaged ("), ("runtime crashed (guarded)", "the runtime crashed"),
                       ("runtime hung (guarded)", "did not finish loading"), ("structure check", "malformed"),
                       ("structure check", "truncated"), ("not a model", "not a .tflite"),
                       ("not a model", "not an ONNX"), ("runtime refused", "refused the model"),
                       ("runtime failed running it", "failed running it"), ("kit metadata", "metadata")):
        if words in message:
            return key
    return "other"


def campaign(tflite: Path | None, onnx: Path | None, tflite_cases: int, onnx_cases: int, seed: int,
             keep: Path | None, progress=None, bare: bool = False, structure_check: bool = True) -> Tally:
    from edge.classifier import Classifier
    from edge.images import load_image
    from edge.runtime import RuntimeOptions

    sources = {"tflite": tflite, "onnx": onnx}
    originals = {k: Path(p).read_bytes() for k, p in sources.items() if p is not None}
    image = load_image(next(p for p in sorted(IMAGE.iterdir()) if p.suffix.lower() in (".jpg", ".png")))
    expected = {k: Classifier(sources[k], RuntimeOptions(threads=1)).classify(image, top=1).top[0].index
                for k in originals}
    weights = {k: weight_ranges(d, f".{k}") for k, d in originals.items()}
    cases = [c for c in plan_cases(tflite_cases if tflite else 0, onnx_cases if onnx else 0, seed)]
    tally = Tally()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kit-fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        tmp = Path(tmp)
        flags = ["--bare"] * bare + ["--no-structure-check"] * (not structure_check)
        runner = Worker(tmp / "worker.stderr", flags)
        try:
            for n, case in enumerate(cases):
                rng = random.Random(case.seed)
                base = originals[case.source]
                other = originals["onnx" if case.source == "tflite" and "onnx" in originals else case.source]
                data = base
                while data == base:  # a mutation that changes nothing (zeros over zeros) is drawn again
                    data = mutate(base, case.kind, rng, weights[case.source], other, case.structural)
                if case.variant == "foreign":
                    data = foreign(data)
                path = tmp / f"case{case.number}.{case.source}"
                path.write_bytes(data)
                answer = runner.ask(path, CASE_TIME_LIMIT_S)
                row = (case.source, case.variant, case.kind)
                outcome = answer["outcome"]
                tally.counts[row + (outcome,)] += 1
                if outcome == "rejected":
                    check = (case.source, case.variant, reason(answer["message"]))
                    tally.reasons[check] += 1
                    tally.said.setdefault(check, answer["message"].replace(str(tmp), "…")[:160])
                    tally.multi_line += answer.get("lines", 1) > 1
                elif outcome == "ran" and answer["top1"] != expected[case.source]:
                    tally.changed[(case.source, case.variant)] += 1
                if outcome in ("crash", "hang", "traceback"):
                    tally.examples.setdefault(outcome, []).append(f"case {case.number} ({case.kind}): "
                                                                  f"{answer.get('message', '')}")
                    if keep is not None:
                        keep.mkdir(parents=True, exist_ok=True)
                        kept = keep / f"{outcome}_{case.number}.{case.source}"
                        shutil.copyfile(path, kept)
                        tally.kept.append(f"python -m benchmarks.fuzz --replay {kept} {' '.join(flags)}  # {outcome}")
                path.unlink()
                if progress and (n + 1) % 250 == 0:
                    progress(f"{n + 1}/{len(cases)} cases, {time.perf_counter() - start:.0f} s: "
                             + ", ".join(f"{o} {sum(v for k, v in tally.counts.items() if k[3] == o)}"
                                         for o in OUTCOMES))
        finally:
            runner.stop()
    tally.seconds = time.perf_counter() - start
    return tally


def totals(tally: Tally, **match) -> collections.Counter:
    """Outcome counts over the rows that match (source=..., variant=..., kind=...)."""
    out = collections.Counter()
    for (source, variant, kind, outcome), n in tally.counts.items():
        row = {"source": source, "variant": variant, "kind": kind}
        if all(row[k] == v for k, v in match.items()):
            out[outcome] += n
    return out


def table(tally: Tally, command: str) -> str:
    lines = ["| file | variant | mutation | cases | rejected | ran | top-1 changed | crash | hang | traceback |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for source in ("tflite", "onnx"):
        for variant in ("sealed", "foreign"):
            for kind in KINDS + ("all",):
                t = totals(tally, source=source, variant=variant, **({} if kind == "all" else {"kind": kind}))
                if not t:
                    continue
                changed = tally.changed[(source, variant)] if kind == "all" else ""
                bold = "**" if kind == "all" else ""
                lines.append(f"| {bold}.{source}{bold} | {variant} | {bold}{kind}{bold} | {sum(t.values())} | "
                             f"{t['rejected']} | {t['ran']} | {changed} | {t['crash']} | {t['hang']} | "
                             f"{t['traceback']} |")
    reasons = ["", "Which check refused them:", "", "| file | variant | check | files | first message of the kind |",
               "| --- | --- | --- | ---: | --- |"]
    reasons += [f"| .{s} | {v} | {r} | {n} | {tally.said.get((s, v, r), '').replace('|', '/')} |"
                for (s, v, r), n in sorted(tally.reasons.items())]
    every = totals(tally)
    summary = (f"{sum(every.values())} cases in {tally.seconds:.0f} s: {every['crash']} crashes, {every['hang']} hangs, "
               f"{every['traceback']} tracebacks; {tally.multi_line} rejections took more than one line.")
    return "\n".join([f"`{command}`", "", summary, "", *lines, *reasons, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tflite", type=Path, help="a kit .tflite artifact to mutate")
    parser.add_argument("--onnx", type=Path, help="a kit .onnx artifact to mutate")
    parser.add_argument("--tflite-cases", type=int, default=10000)
    parser.add_argument("--onnx-cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=Path("fuzz-findings"), help="folder for crashing/hanging files")
    parser.add_argument("--table", type=Path, help="write the outcome table (markdown) here")
    parser.add_argument("--replay", type=Path, metavar="FILE",
                        help="run one file as a campaign's worker does, in this process (a kept crash reproduces)")
    parser.add_argument("--no-structure-check", action="store_true",
                        help="the kit's loading path without its .tflite structure check (what the guard alone catches)")
    parser.add_argument("--bare", action="store_true",
                        help="feed the same files to the runtimes alone (no kit checks), for comparison")
    args = parser.parse_args(argv)
    if args.worker or args.replay:
        worker(args.bare, [args.replay] if args.replay else None, not args.no_structure_check)
        return 0
    if args.tflite is None and args.onnx is None:
        parser.error("give --tflite FILE and/or --onnx FILE (kit artifacts, e.g. from make demo)")
    tally = campaign(args.tflite, args.onnx, args.tflite_cases, args.onnx_cases, args.seed, args.keep,
                     progress=lambda s: print(s, file=sys.stderr, flush=True), bare=args.bare,
                     structure_check=not args.no_structure_check)
    command = "python -m benchmarks.fuzz " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(tally, command)
    print(text)
    for line in tally.kept:
        print(line)
    if args.table:
        args.table.write_text(text)
    bad = totals(tally)
    return 1 if not args.bare and (bad["crash"] or bad["hang"] or bad["traceback"]) else 0


if __name__ == "__main__":
    sys.exit(main())
