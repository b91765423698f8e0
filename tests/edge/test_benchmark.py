"""The benchmark CLI measures what it says (numbers are not asserted: speed lives in benchmarks/)."""

import json

import pytest
from PIL import Image

from edge import benchmark
from edge.errors import run_cli


def test_benchmark_rows_json_and_plot(converted, tmp_path, capsys):
    path, _ = converted("float32")
    report, png = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = ["--model", str(path), "--runs", "3", "--warmup", "1", "--batch", "2", "--kernels", "both",
            "--reference", "--json", str(report), "--plot", str(png)]
    assert run_cli(benchmark.main, argv) == 0
    table = capsys.readouterr().out
    assert table.count(path.name) == 2  # XNNPACK and builtin kernels
    data = json.loads(report.read_text())
    assert data["matmul_peak"][0]["gflops"] > 1
    reference, *rows = data["rows"]
    assert reference["model"].startswith("keras reference") and reference["p50_ms"] > 0
    assert reference["gmacs_per_s"] > 0 and reference["throughput_ips"] > 0
    assert {r["kernels"] for r in rows} == {"xnnpack", "builtin"}
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["throughput_ips"] > 0 and r["batch"] == 2  # the converters keep the batch dimension dynamic
        assert r["gmacs_per_s"] > 0 and 0 < r["peak_fraction"]
        assert r["size_mb"] == pytest.approx(path.stat().st_size / 1e6)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.height > 40


@pytest.mark.parametrize("argv, message", [
    (["--model", "missing.tflite"], "does not exist"),
    (["--model", "README.md"], "unknown model type"),
    (["--threads", "0", "--reference"], "at least 1"),
    (["--kernels", "gpu", "--reference"], "xnnpack, builtin or both"),
    ([], "at least one --model"),
])
def test_benchmark_bad_input(argv, message, capsys):
    assert run_cli(benchmark.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_failed_measurement_is_reported_once(tmp_path):
    # The worker process's own "error: ..." line is relayed without a second "error:" prefix.
    from edge.errors import KitError

    with pytest.raises(KitError) as raised:
        benchmark._in_subprocess(["edge.classify", str(tmp_path), "--model", str(tmp_path / "gone.tflite")], "gone")
    message = str(raised.value)
    assert message.startswith("benchmark of gone failed: ") and "error:" not in message, message
