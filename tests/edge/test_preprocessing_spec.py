"""The preprocessing spec: JSON round trip and clear errors for malformed specs."""

import json

import pytest

from edge.errors import KitError, PreprocessError
from edge.preprocessing import PreprocessSpec


def test_json_round_trip_keeps_every_field():
    spec = PreprocessSpec(height=256, width=192, resize="stretch", crop_fraction=1.0, interpolation="bilinear",
                          normalize_in_model=True, resize_in_model=True)
    text = spec.to_json()
    assert json.loads(text)["height"] == 256
    assert PreprocessSpec.from_json(text) == spec


def test_timm_resize_rule():
    assert PreprocessSpec().resize_size == 256  # 224 / 0.875


@pytest.mark.parametrize("bad, fragment", [
    ({"resize": "squash"}, "resize must be one of"),
    ({"crop_fraction": 0.0}, "crop_fraction"),
    ({"interpolation": "lanczos9"}, "interpolation"),
    ({"std": [0.2, 0.0, 0.2]}, "std values must be positive"),
    ({"mean": [0.5, 0.5]}, "three values"),
    ({"colour": "RGB"}, "unknown keys ['colour']"),
])
def test_malformed_specs_are_named(bad, fragment):
    with pytest.raises(PreprocessError) as err:
        PreprocessSpec.from_dict(bad)
    assert fragment in str(err.value)
    assert isinstance(err.value, KitError)


def test_not_json():
    with pytest.raises(PreprocessError, match="not valid JSON"):
        PreprocessSpec.from_json("{height: 224")
    with pytest.raises(PreprocessError, match="must be a JSON object"):
        PreprocessSpec.from_json("[224, 224]")
