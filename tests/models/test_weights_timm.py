"""timm/pycls state_dicts imported into the paper flavour give timm's logits; bad checkpoints fail cleanly."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import WeightsError
from models.weights import load_weights, read_state_dict
from models.zoo import TIMM_NAMES, build_model, model_spec
from tests.helpers import require_timm

SIZES = ["224x224", "256x192"]
HERE = Path(__file__).parent


@pytest.fixture(autouse=True, scope="module")
def _timm():
    require_timm()


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """references(variant) -> (folder with the state_dict files, timm's inputs and logits), made once each.

    A random-weight timm model, run in a separate process.
    """
    made = {}

    def get(variant):
        if variant not in made:
            out = tmp_path_factory.mktemp(f"timm_{variant}")
            subprocess.run([sys.executable, str(HERE / "timm_reference.py"), TIMM_NAMES[variant], str(out), *SIZES],
                           check=True, capture_output=True, timeout=600)
            made[variant] = out, dict(np.load(out / "reference.npz"))
        return made[variant]

    return get


def weights_of(model):
    return [w.copy() for w in model.get_weights()]


@pytest.mark.parametrize("variant", ["200mf", "800mf"])
@pytest.mark.parametrize("size", SIZES)
def test_imported_weights_reproduce_timm_logits(references, variant, size):
    out, ref = references(variant)
    h, w = (int(v) for v in size.split("x"))
    model = build_model(model_spec(variant, input_size=(h, w)))
    report = load_weights(model, out / "state_dict.safetensors")
    assert report.tensors == len(model.weights) and len(report.sha256) == 64
    logits = model.predict(ref[f"inputs_{size}"], verbose=0)
    expected = ref[f"logits_{size}"]
    logit_range = expected.max() - expected.min()
    assert np.abs(logits - expected).max() <= 1e-4 * logit_range
    assert (logits.argmax(1) == expected.argmax(1)).all()


def test_pth_and_safetensors_give_the_same_weights(references):
    variant = "200mf"
    out, _ = references(variant)
    a = read_state_dict(out / "state_dict.safetensors")
    b = read_state_dict(out / "state_dict.pth")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    model = build_model(model_spec(variant, input_size=64))
    load_weights(model, out / "state_dict.pth")
    conv = model.get_layer("s1_b1_conv2_conv").kernel.numpy()
    np.testing.assert_array_equal(conv, a["s1.b1.conv2.conv.weight"].transpose(2, 3, 1, 0))


# ---- wrong checkpoints: one clear error, model untouched ----------------------------------------

@pytest.fixture(scope="module")
def model200():
    return build_model(model_spec("200mf", input_size=64))


def assert_rejected(model, path, *fragments):
    before = weights_of(model)
    with pytest.raises(WeightsError) as err:
        load_weights(model, path)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    after = model.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(before, after)), "a rejected checkpoint changed the model"
    return message


def save_sd(path, sd):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(path))
    return path


def test_other_variant_is_named(references, model200):
    out, _ = references("800mf")
    assert_rejected(model200, out / "state_dict.safetensors", "800mf", "regnety_200mf")


def test_missing_extra_and_misshapen_keys(references, model200, tmp_path):
    out, _ = references("200mf")
    sd = read_state_dict(out / "state_dict.safetensors")
    missing = {k: v for k, v in sd.items() if k != "s3.b2.se.fc1.bias"}
    assert_rejected(model200, save_sd(tmp_path / "missing.safetensors", missing), "missing keys", "s3.b2.se.fc1.bias")
    extra = dict(sd, **{"s5.b1.conv1.conv.weight": np.zeros((8, 8, 1, 1), np.float32)})
    assert_rejected(model200, save_sd(tmp_path / "extra.safetensors", extra), "unexpected keys", "s5.b1.conv1.conv.weight")
    shape = dict(sd, **{"s2.b1.conv2.conv.weight": np.zeros((56, 4, 3, 3), np.float32)})
    assert_rejected(model200, save_sd(tmp_path / "shape.safetensors", shape), "shape mismatch",
                    "s2.b1.conv2.conv.weight (56, 4, 3, 3)", "(56, 8, 3, 3)")
    head = dict(sd, **{"head.fc.weight": np.zeros((10, 368), np.float32), "head.fc.bias": np.zeros(10, np.float32)})
    assert_rejected(model200, save_sd(tmp_path / "head.safetensors", head), "--classes 10")


def test_broken_files(references, model200, tmp_path):
    out, _ = references("200mf")
    data = (out / "state_dict.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    assert_rejected(model200, tmp_path / "cut.safetensors", "cut.safetensors", "not a readable .safetensors")
    pth = (out / "state_dict.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(pth[: len(pth) // 2])
    assert_rejected(model200, tmp_path / "cut.pth", "could not be read")
    (tmp_path / "notes.pth").write_text("this is not a checkpoint\n")
    assert_rejected(model200, tmp_path / "notes.pth", "notes.pth")
    (tmp_path / "weights.npy").write_bytes(b"\x93NUMPY")
    assert_rejected(model200, tmp_path / "weights.npy", "unknown checkpoint type")
    assert_rejected(model200, tmp_path / "absent.safetensors", "does not exist")


def test_pickled_code_is_never_run(model200, tmp_path):
    script = (
        "import torch, pathlib\n"
        "class Payload:\n"
        "    def __reduce__(self):\n"
        "        return (pathlib.Path.write_text, (pathlib.Path(r'%s'), 'pwned'))\n"
        "torch.save({'state_dict': Payload()}, r'%s')\n"
    ) % (tmp_path / "marker.txt", tmp_path / "evil.pth")
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    assert_rejected(model200, tmp_path / "evil.pth", "evil.pth")
    assert not (tmp_path / "marker.txt").exists()


def test_timm_weights_into_the_seed_flavour_are_refused(references):
    out, _ = references("200mf")
    seed = build_model(model_spec("200mf", "seed", input_size=64))
    assert_rejected(seed, out / "state_dict.safetensors", "--flavour paper")
