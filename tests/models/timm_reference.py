"""Make a timm RegNetY reference: random weights, its state_dict, inputs and timm's logits.

Runs in its own process (tests call it with subprocess): torchvision, which timm imports, crashes
when loaded after TensorFlow in one process, and the comparison should not depend on import order.

    python tests/models/timm_reference.py regnety_002 OUT_DIR 224x224 256x192
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import save_file


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere, BN statistics included, so every imported tensor matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=g) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.2)
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=g) * 0.2)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=g) + 0.5)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.1)


def main(name: str, out: Path, sizes: list[str], seed: int = 0) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=1000).eval()
    randomize(model, seed)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "state_dict.safetensors"))
    torch.save(state, out / "state_dict.pth")
    arrays = {}
    rng = np.random.default_rng(seed)
    for size in sizes:
        h, w = (int(v) for v in size.split("x"))
        x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
        with torch.no_grad():
            logits = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
        arrays[f"inputs_{size}"] = x
        arrays[f"logits_{size}"] = logits
    np.savez(out / "reference.npz", **arrays)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3:])
