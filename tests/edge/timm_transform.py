"""timm's own evaluation transform for regnety_002, applied to image files: the preprocessing reference.

Runs in its own process (torchvision must not be imported after TensorFlow).

    python tests/edge/timm_transform.py OUT.npz IMAGE...
"""

import sys

import numpy as np
import timm
from PIL import Image
from timm.data import create_transform, resolve_data_config

model = timm.create_model("regnety_002", pretrained=False)
config = resolve_data_config({}, model=model)
transform = create_transform(**config)
arrays = [transform(Image.open(p).convert("RGB")).permute(1, 2, 0).numpy() for p in sys.argv[2:]]
np.savez(sys.argv[1], inputs=np.stack(arrays), config=np.array(repr(sorted(config.items()))))
