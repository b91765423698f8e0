"""A small, deterministic sample of the fuzz campaign (benchmarks/fuzz.py; the full one: docs/fuzzing.md)."""

import random

import pytest

from benchmarks import fuzz


def test_mutations_are_deterministic_and_aimed_where_asked(converted):
    data = converted("int8")[0].read_bytes()
    weights = fuzz.weight_ranges(data, ".tflite")
    assert sum(b - a for a, b in weights) > 0.8 * len(data)  # the weights are most of the file
    for kind in fuzz.KINDS:
        one = fuzz.mutate(data, kind, random.Random(5), weights, b"x" * 5000, True)
        assert one == fuzz.mutate(data, kind, random.Random(5), weights, b"x" * 5000, True)
        assert one != data or kind == "zero"  # zeros written over zeros change nothing: the campaign draws again
    flipped = fuzz.mutate(data, "flip1", random.Random(9), weights, b"", structural=True)
    where = next(i for i, (a, b) in enumerate(zip(data, flipped)) if a != b)
    assert not any(a <= where < b for a, b in weights)


def test_a_sample_of_the_campaign_finds_no_crash_hang_or_traceback(converted, tmp_path):
    tflite, onnx = converted("int8")[0], converted("float32", "onnx")[0]
    tally = fuzz.campaign(tflite, onnx, tflite_cases=168, onnx_cases=42, seed=7, keep=tmp_path / "keep")
    every = fuzz.totals(tally)
    assert sum(every.values()) == 210
    assert (every["crash"], every["hang"], every["traceback"]) == (0, 0, 0), tally.examples
    assert tally.multi_line == 0
    for source in ("tflite", "onnx"):  # every changed byte of a kit file is caught before any runtime runs it
        assert fuzz.totals(tally, source=source, variant="sealed")["ran"] == 0
    # without the digest, the structure check and the runtime still refuse most; some load and run
    foreign = fuzz.totals(tally, source="tflite", variant="foreign")
    assert foreign["rejected"] > 40 and foreign["ran"] > 0
    assert tally.reasons[("tflite", "foreign", "structure check")] > 20
    assert not (tmp_path / "keep").exists()


@pytest.mark.parametrize("kind", ["truncate", "offset32"])
def test_the_campaign_table_counts_every_case(kind):
    tally = fuzz.Tally()
    tally.counts[("tflite", "sealed", kind, "rejected")] = 3
    tally.counts[("tflite", "sealed", kind, "crash")] = 1
    text = fuzz.table(tally, "cmd")
    assert f"| .tflite | sealed | {kind} | 4 | 3 | 0 |  | 1 | 0 | 0 |" in text
    assert "4 cases in 0 s: 1 crashes, 0 hangs, 0 tracebacks" in text
