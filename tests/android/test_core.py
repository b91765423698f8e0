"""The Android app's pure-Java core, compiled with the system JDK and run under junit4 in this test run,
against the committed golden vectors and against vectors written now from freshly converted models."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge import golden

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "android_demo" / "core"
JARS = [os.environ.get("JUNIT_JAR", "/usr/share/java/junit4.jar"),
        os.environ.get("HAMCREST_JAR", "/usr/share/java/hamcrest-core.jar")]
TESTS = ["org.regnetykit.core.GoldenVectorsTest", "org.regnetykit.core.CoreErrorsTest"]


@pytest.fixture(scope="session")
def core_classes(tmp_path_factory):
    """The core and its tests compiled into one folder; the classpath to run them."""
    missing = [tool for tool in ("javac", "java") if shutil.which(tool) is None] + \
              [jar for jar in JARS if not Path(jar).is_file()]
    if missing:
        message = (f"the Android core's JUnit tests need a JDK and junit4, missing: {', '.join(missing)}; "
                   "install them with `apt-get install default-jdk-headless junit4` (make test does)")
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them: their absence there is a broken setup, not a skip
        pytest.skip(message)
    out = tmp_path_factory.mktemp("core_classes")
    sources = sorted(str(p) for p in (CORE / "src").rglob("*.java"))
    classpath = os.pathsep.join(JARS)
    subprocess.run(["javac", "--release", "11", "-Xlint:all", "-Werror", "-d", str(out), "-cp", classpath, *sources],
                   check=True, capture_output=True, text=True)
    return os.pathsep.join([str(out), classpath])


def run_junit(classpath: str, *properties: str) -> str:
    proc = subprocess.run(["java", "-cp", classpath, *properties, "org.junit.runner.JUnitCore", *TESTS],
                          cwd=CORE, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def test_core_agrees_with_the_committed_golden_vectors(core_classes):
    out = run_junit(core_classes)
    assert re.search(r"OK \(13 tests\)", out), out


def test_core_agrees_with_vectors_from_freshly_converted_models(core_classes, converted, raw_pixel_int8, tmp_path):
    """float32 (normalized float input) and full int8 with uint8 raw-pixel I/O, converted in this run."""
    float_model, _ = converted("float32")
    int8_model, _, _ = raw_pixel_int8
    models = tmp_path / "models"
    models.mkdir()
    for model in (float_model, int8_model):
        shutil.copy(model, models / model.name)
    images = golden.source_images(golden.default_images(), shrink=True)
    index = golden.write_golden([models / float_model.name, models / int8_model.name], images, tmp_path / "golden")
    assert [m["input"]["dtype"] for m in index["models"]] == ["float32", "uint8"]
    assert sum(len(m["cases"]) for m in index["models"]) == 6 and len(index["resize_cases"]) == 18
    out = run_junit(core_classes, f"-Dgolden.dir={tmp_path / 'golden'}", f"-Dgolden.models={models}")
    assert re.search(r"OK \(13 tests\)", out), out


def test_committed_vectors_are_what_the_kit_writes_today(tmp_path):
    """The committed resize cases are regenerated from the committed source images: same bytes."""
    committed = CORE / "src" / "test" / "resources" / "golden"
    import json

    from PIL import Image

    index = json.loads((committed / "golden.json").read_text())
    images = []
    for entry in index["images"]:
        raw = (committed / entry["file"]).read_bytes()
        images.append((entry["name"], Image.frombytes("RGB", (entry["width"], entry["height"]), raw)))
    fresh = golden.write_golden([], images, tmp_path / "g")
    assert len(fresh["resize_cases"]) == len(index["resize_cases"]) == 18
    for case in index["resize_cases"]:
        assert (tmp_path / "g" / case["file"]).read_bytes() == (committed / case["file"]).read_bytes(), case["file"]
