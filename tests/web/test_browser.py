"""The web demo in a real browser: headless Chromium (Debian's, driven by playwright-core through
web_demo/scripts/browser_run.mjs) opens the page from a server on 127.0.0.1, loads the reference's int8 .tflite
(LiteRT.js, WASM with XNNPACK) and float32 .onnx (onnxruntime-web, WASM), and the int8 .tflite with uint8 raw-pixel
input (--io uint8 --normalize-in-model: the page quantizes the input itself, as an app feeding camera bytes does),
classifies the bundled photographs, and gets the edge runtime's answers; then it is fed bad input and must say so in
one message and keep working.

The page decodes the photographs itself (the browser's PNG and JPEG decoders, at their own size, no colour conversion)
and preprocesses them with its JavaScript port of the kit's rules, so these tests cover decode, preprocessing, runtime
and postprocessing together. Measured here with Chromium 156, @litertjs/core 2.5.3 and onnxruntime-web 1.30.0 against
Pillow 11, ai-edge-litert 2.3.0 and onnxruntime 1.31.1: Chromium decodes all 11 photographs (8 PNG, 3 JPEG) to exactly
Pillow's pixels; max |browser probability - edge.classify probability| over them is 2.2e-16 for the int8 .tflite and
2.2e-16 for the uint8-input one (the same logits: XNNPACK's int8 kernels on the same input) and 2.6e-7 for the float32 .onnx
(float summation order).
TOLERANCE keeps the int8 file to the same logits (one output quantization step moves a probability by over 1e-5) and
gives the float file 40x its measured difference.

Without Node, web_demo/node_modules or Chromium (`make web-deps`) these tests skip with the reason, except in CI,
where they fail. One browser session runs every step (about 7 s, after the three conversions, which the
converter, edge and Android suites share).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edge.images import image_files
from tests.helpers import relu_tflite
from tests.web.web import ROOT, WEB, require_browser, write_json

SAMPLES = ROOT / "calibration" / "samples"
TOLERANCE = {"tflite": 1e-6, "tflite-uint8": 1e-6, "onnx": 1e-5}   # measured: 2.2e-16, 2.2e-16, 2.6e-7 (docstring)
MODELS = {"tflite": ("int8", "tflite"), "onnx": ("float32", "onnx")}  # and "tflite-uint8": raw_pixel_int8


def _serve(folders: dict[str, Path]):
    import importlib.util

    spec = importlib.util.spec_from_file_location("web_demo_serve", WEB / "serve.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    server = serve.make_server(0, folders)
    serve.serve_in_thread(server)
    return server


def _kit_record(path: Path) -> dict:
    from edge.runtime import load

    return load(path).metadata


def _with_kit_metadata(model, record: dict) -> bytes:
    """A ModelT (litert_schema) with the kit's record embedded as the converters embed it: a named metadata buffer."""
    import flatbuffers

    from edge.tflite_file import METADATA_NAME, litert_schema

    s = litert_schema()
    buffer = s.BufferT()
    buffer.data = np.frombuffer(json.dumps(record).encode(), np.uint8)
    model.buffers.append(buffer)
    entry = s.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [entry]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _rejected_tflite(folder: Path, record: dict) -> bytes:
    """The one-op RELU model asking for a RELU version no runtime has (a file from a converter newer than the runtime),
    with the kit's record: LiteRT.js must refuse it. (A custom op it has not got, it accepts until the model runs.)"""
    from edge.tflite_file import litert_schema

    s = litert_schema()
    data = relu_tflite(folder / "relu_v99.tflite").read_bytes()
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
    model.operatorCodes[0].version = 99
    return _with_kit_metadata(model, record)


def _onnx_model(op_type: str, record: dict | None) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 224, 224, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 224, 224, 3])
    graph = helper.make_graph([helper.make_node(op_type, ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if record is not None:
        onnx.helper.set_model_props(model, {"regnety_edge_kit": json.dumps(record)})
    return model.SerializeToString()


def _bad_inputs(folder: Path, model: Path) -> list[tuple[str, str, bytes, str]]:
    """(step op, file name, bytes, what the page's message must say), from the kit's int8 .tflite `model`."""
    record = _kit_record(model)
    damaged = []
    if "content_sha256" in record:  # a kit that seals its files (edge/seal.py): one flipped bit is found
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 1
        damaged = [("model", "damaged.tflite", bytes(data), "the file is damaged")]
    # the hand-made files carry the record as an unsealed (older) kit wrote it, so the runtime is what refuses them
    record = {**{k: v for k, v in record.items() if k != "content_sha256"}, "metadata_version": 1}
    return damaged + [
        ("model", "notes.tflite", b"these are notes, not a model\n" * 8, "not an ONNX or TFLite model"),
        ("model", "plain.tflite", relu_tflite(folder / "plain.tflite").read_bytes(), "without the kit's metadata"),
        ("model", "plain.onnx", _onnx_model("Relu", None), "without the kit's metadata"),
        ("model", "rejected.tflite", _rejected_tflite(folder, record), "LiteRT.js refused the model (Didn't find op"),
        ("model", "rejected.onnx", _onnx_model("KitNoSuchOp", record), "onnxruntime-web refused the model"),
        ("image", "broken.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "not a readable image"),
    ]


@pytest.fixture(scope="module")
def browser_run(converted, raw_pixel_int8, tmp_path_factory):
    """One Chromium session over every step; returns (plan, output, photos, model paths)."""
    node, chromium = require_browser()
    folder = tmp_path_factory.mktemp("web")
    models = {kind: converted(*key)[0] for kind, key in MODELS.items()}
    models["tflite-uint8"] = raw_pixel_int8[0]
    photos = image_files(SAMPLES)
    server = _serve({**{f"/models/{kind}/": path.parent for kind, path in models.items()}, "/samples/": SAMPLES})
    try:
        page = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        steps = []
        for kind, path in models.items():
            steps.append({"op": "load", "model": f"/models/{kind}/{path.name}", "accelerator": "wasm"})
            # the first photograph times 10 steady-state runs; the rest one run each
            steps += [{"op": "classify", "image": f"/samples/{p.relative_to(SAMPLES).as_posix()}",
                       "repeats": 10 if i == 0 else 0} for i, p in enumerate(photos)]
        steps += [{"op": "decode", "image": f"/samples/{p.relative_to(SAMPLES).as_posix()}"} for p in photos]
        for op, name, data, _ in _bad_inputs(folder, models["tflite"]):
            steps.append({"op": "loadBytes" if op == "model" else "classifyBytes", "name": name,
                          "base64": base64.b64encode(data).decode()})
            steps.append({"op": "message"})
        steps.append({"op": "classify", "image": f"/samples/{photos[0].relative_to(SAMPLES).as_posix()}", "repeats": 0})
        steps.append({"op": "message"})
        steps.append({"op": "camera"})  # Chromium's fake camera, through the page's buttons
        # the file pickers, then a model and a photograph dropped on the page together
        steps.append({"op": "pick", "input": "#model-file", "files": [str(models["onnx"])]})
        steps.append({"op": "pick", "input": "#image-file", "files": [str(photos[-1])]})
        steps.append({"op": "drop", "files": [str(photos[0]), str(models["tflite"])]})
        plan = {"chromium": chromium, "page": page, "timeout_ms": 60000, "steps": steps}
        started = time.monotonic()
        proc = subprocess.run([node, "scripts/browser_run.mjs", str(write_json(folder / "plan.json", plan))], cwd=WEB,
                              capture_output=True, text=True, timeout=240)
        print(f"browser session: {time.monotonic() - started:.1f} s for {len(steps)} steps")
    finally:
        server.shutdown()
        server.server_close()
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise AssertionError(f"the browser driver exited with {proc.returncode}: {proc.stderr[-3000:]}") from None
    assert out["ok"], out.get("error", "")[:3000] + "\n" + "\n".join(out["console"])[-3000:]
    return plan, out, photos, models


def _results_for(run, kind: str) -> tuple[dict, list[dict]]:
    plan, out, photos, models = run
    start = [i for i, s in enumerate(plan["steps"]) if s["op"] == "load" and s["model"].startswith(f"/models/{kind}/")][0]
    return out["results"][start], out["results"][start + 1:start + 1 + len(photos)]


@pytest.mark.parametrize("kind", ["tflite", "onnx", "tflite-uint8"])
def test_page_classifies_the_photographs_as_the_edge_runtime(browser_run, kind):
    from edge.classifier import Classifier

    _, out, photos, models = browser_run
    loaded, results = _results_for(browser_run, kind)
    assert loaded["ok"], loaded
    model = loaded["model"]
    classifier = Classifier(models[kind])
    assert model["labels"] == classifier.labels and model["format"] == kind.split("-")[0]
    assert model["backend"].startswith("WASM") and model["drift"]["top1_agreement"] > 0.9
    worst = 0.0
    for photo, result in zip(photos, results):
        assert result["ok"], result
        expected = classifier.classify(photo, top=len(classifier.labels))
        assert result["top5"][0]["index"] == expected.top[0].index, (photo.name, result["top5"][0], expected.top[0])
        probs = np.zeros(len(classifier.labels))
        for p in expected.top:
            probs[p.index] = p.probability
        worst = max(worst, float(np.abs(np.asarray(result["probs"]) - probs).max()))
    print(f"{kind}: max |probability difference| {worst:.3g} over {len(photos)} photographs; "
          f"steady-state {results[0]['latencyMs']['steady']:.2f} ms, first run {results[0]['latencyMs']['firstRun']:.2f} ms "
          f"({model['runtime']}, {model['backend']}, {out['browser']})")
    assert worst <= TOLERANCE[kind], f"{kind}: probabilities differ from edge.classify's by {worst:.3g}"
    latency = results[0]["latencyMs"]
    assert latency["repeats"] == 10 and latency["steady"] > 0 and latency["firstRun"] > 0


def test_browser_decodes_the_photographs_to_pillows_pixels(browser_run):
    import hashlib

    from edge.images import load_image

    plan, out, photos, _ = browser_run
    first = next(i for i, s in enumerate(plan["steps"]) if s["op"] == "decode")
    for photo, result in zip(photos, out["results"][first:first + len(photos)]):
        pixels = np.asarray(load_image(photo))
        assert (result["height"], result["width"]) == pixels.shape[:2], photo.name
        assert result["sha256"] == hashlib.sha256(pixels.tobytes()).hexdigest(), f"{photo.name}: other pixels than Pillow's"


def test_bad_input_gives_one_message_and_the_page_keeps_working(browser_run, tmp_path):
    plan, out, photos, models = browser_run
    steps, results = plan["steps"], out["results"]
    first_bad = next(i for i, s in enumerate(steps) if s["op"] in ("loadBytes", "classifyBytes"))
    expected = _bad_inputs(tmp_path, models["tflite"])
    for n, (op, name, _, says) in enumerate(expected):
        result, message = results[first_bad + 2 * n], results[first_bad + 2 * n + 1]
        assert result["ok"] is False, (name, result)
        assert says in message and name in message, (name, message)
        assert message == result["message"] and "\n" not in message, (name, message)
        if op == "model":  # the last good model stays loaded
            assert f"still using {models['tflite-uint8'].name}" in message, message
    final, final_message = results[-6], results[-5]
    assert final["ok"] and final["model"] == models["tflite-uint8"].name, final
    assert final["top5"][0]["label"] == photos[0].parent.name and final_message is None


def test_camera_frame_is_classified(browser_run):
    """getUserMedia on Chromium's fake camera (a test pattern): Camera, Classify frame, Stop, as a person clicks them."""
    _, out, _, _ = browser_run
    camera = out["results"][-4]
    assert camera["message"] is None, camera
    assert camera["caption"].startswith("camera frame") and "(640x480)" in camera["caption"] and camera["rows"] == 5


def test_file_pickers_and_drag_and_drop(browser_run):
    from edge.classifier import Classifier

    _, out, photos, models = browser_run
    model_picked, image_picked, dropped = out["results"][-3:]
    assert model_picked == {"model": models["onnx"].name, "caption": "", "top1": None, "message": None}
    assert image_picked["model"] == models["onnx"].name and image_picked["message"] is None
    assert image_picked["caption"].startswith(f"{photos[-1].name} (") and models["onnx"].name in image_picked["caption"]
    assert image_picked["top1"] == Classifier(models["onnx"]).classify(photos[-1], top=1).top[0].label
    # dropped together, the model is opened first, then the photograph classified with it
    assert dropped["model"] == models["tflite"].name and dropped["message"] is None
    assert dropped["caption"].startswith(f"{photos[0].name} (") and models["tflite"].name in dropped["caption"]
    assert dropped["top1"] == Classifier(models["tflite"]).classify(photos[0], top=1).top[0].label
