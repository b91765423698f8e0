"""`python -m models.info`: what it prints, and one clear line for a mistake."""

import json
import subprocess
import sys

from edge.errors import run_cli
from models.info import main


def test_text_output_lists_stages_params_macs_and_preprocessing(capsys):
    assert run_cli(main, ["--variant", "200mf"]) == 0
    out = capsys.readouterr().out
    assert "regnety_200mf" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [r[:5] for r in rows[:4]] == [["1", "1", "24", "3", "8"], ["2", "1", "56", "7", "8"],
                                         ["3", "4", "152", "19", "8"], ["4", "7", "368", "46", "8"]]
    assert "3,162,996" in out and "(0.200 G)" in out
    assert '"interpolation": "bicubic"' in out


def test_json_output_for_the_seed_flavour(capsys):
    assert run_cli(main, ["--variant", "400mf", "--flavour", "seed", "--json", "-"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [s["depth"] for s in info["stages"]] == [1, 3, 3, 6]
    assert info["preprocessing"]["normalize_in_model"] is True
    assert 4.03e6 < info["trainable_params"] < 4.04e6


def test_user_mistakes_get_one_line_and_exit_2():
    for args, fragment in [(["--variant", "900mf"], "valid variants: 200mf"),
                           (["--variant", "200mf", "--flavour", "hub"], "valid flavours: paper, seed"),
                           (["--variant", "3.2gf", "--flavour", "seed"], "its variants: 200mf, 400mf, 600mf, 800mf"),
                           (["--variant", "200mf", "--input-size", "8"], "at least 32x32")]:
        proc = subprocess.run([sys.executable, "-m", "models.info", *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and fragment in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
