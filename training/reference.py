"""Training the kit's reference checkpoint: a RegNetY-200MF that tells the bundled photographs apart.

Offline there are no ImageNet weights, and drift measured on a random network says little. This
module trains one whose predictions mean something (see `calibration.photos` for the task) and stores
it small (float16 safetensors in timm's layout, so the kit's own importer loads it) where
`models.reference` says it lives.

    python -m training.reference --out models/checkpoints/regnety_200mf_photos.safetensors

Training runs through the exact split lowering of the grouped convolutions (Keras's grouped-conv
backward pass crawls on CPU: 2.4 img/s at 112 px here, the split form 49 img/s); the trained
per-group convs are then folded back into the grouped model, and the held-out accuracy is measured
on that grouped model.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.command import parser_for
from edge.errors import run_cli
from models.reference import DEFAULT_CHECKPOINT, VARIANT, card_path
from training.cards import TASK, crop_arrays, heldout_top1, require_bar, require_safetensors, write_card

@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    crops_per_class: int = 256     # fresh crops every epoch at low_size
    epochs_low: int = 5            # at low_size (fast), then
    epochs_full: int = 1           # at the model's 224 (so BN statistics fit the deployed size)
    crops_full: int = 96           # crops per class per epoch at 224
    low_size: int = 112
    batch: int = 32
    lr: float = 2e-3
    label_smoothing: float = 0.1
    heldout_per_class: int = 32


def _spec(size: int, num_classes: int):
    from models.zoo import model_spec

    return model_spec(VARIANT, num_classes=num_classes, input_size=size)


def preprocessing(num_classes: int):
    """The reference's preprocessing at its deployed 224 px (what its held-out top-1 is measured with)."""
    return _spec(224, num_classes).preprocessing


def train(config: TrainConfig, log=print):
    """Train, fold back to grouped convs, return (224-px grouped model, class names, held-out top-1)."""
    import keras

    from calibration.photos import class_names
    from converters.rewrite import lower_grouped_convs, restore_grouped_weights
    from models.zoo import build_model

    keras.utils.set_random_seed(config.seed)
    classes = class_names()
    full = build_model(_spec(224, len(classes)))
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
    weights = None
    epoch = 0
    stages = ((config.low_size, config.epochs_low, config.crops_per_class, config.lr),
              (224, config.epochs_full, config.crops_full, config.lr / 4))
    for size, epochs, per_class, lr in stages:
        if epochs == 0:
            continue
        model = lower_grouped_convs(full if size == 224 else build_model(_spec(size, len(classes))), "split")
        if weights is not None:
            model.set_weights(weights)
        steps = math.ceil(len(classes) * per_class / config.batch) * epochs
        optimizer = keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(lr, steps), weight_decay=1e-4)
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=False)
        spec = _spec(size, len(classes)).preprocessing
        for _ in range(epochs):
            start = time.perf_counter()
            x, y = crop_arrays("train", per_class, config.seed * 1000 + epoch, spec, classes)
            hist = model.fit(x, keras.utils.to_categorical(y, len(classes)), batch_size=config.batch,
                             epochs=1, shuffle=True, verbose=0)
            epoch += 1
            log(f"epoch {epoch}/{config.epochs_low + config.epochs_full} at {size}px: "
                f"loss {hist.history['loss'][0]:.3f}, train top-1 {hist.history['accuracy'][0]:.3f} "
                f"({time.perf_counter() - start:.0f} s)")
        weights = model.get_weights()
        restore_grouped_weights(model, full, "split")
    top1 = heldout_top1(full, classes, config.heldout_per_class, preprocessing(len(classes)), seed=config.seed)
    log(f"held-out top-1 of the grouped model: {top1:.4f} on {config.heldout_per_class * len(classes)} crops")
    return full, classes, top1


def save(model, classes: list[str], config: TrainConfig, out: Path) -> float:
    """float16 safetensors in timm's layout and its JSON card, both written atomically.

    The card's held-out top-1 is measured on the stored (float16-rounded) weights, loaded back into a
    fresh model by the kit's own importer. Returns it.
    """
    from safetensors.numpy import save as save_bytes

    from edge.atomic import atomic_write
    from models.weights import import_timm_state_dict, timm_state_dict
    from models.zoo import build_model

    tensors = {k: v.astype(np.float16) if v.dtype.kind == "f" else v for k, v in timm_state_dict(model).items()}
    stored = build_model(_spec(224, len(classes)))
    import_timm_state_dict(stored, tensors, source="float16 weights")
    top1 = heldout_top1(stored, classes, config.heldout_per_class, preprocessing(len(classes)), seed=config.seed)
    atomic_write(out, save_bytes(dict(sorted(tensors.items()))))
    card = {
        "variant": VARIANT, "flavour": "paper", "num_classes": len(classes), "labels": classes,
        "task": TASK,
        "heldout_top1": round(top1, 4), "heldout_crops": config.heldout_per_class * len(classes),
        "storage": "float16", "train_config": config.__dict__,
        "command": "python -m training.reference" + ("" if out == DEFAULT_CHECKPOINT else f" --out {out}")
                   + ("" if config.seed == 0 else f" --seed {config.seed}"),
    }
    write_card(out, card)
    return top1


def main(argv: Sequence[str] | None = None) -> int:
    parser = parser_for(
        "training.reference",
        description="Train the kit's reference RegNetY-200MF on crops of the bundled photographs "
                    "(about 10-20 minutes on 2 CPU cores) and store it as float16 safetensors with a JSON card.")
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint path (.safetensors)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs-low", type=int, default=TrainConfig.epochs_low)
    parser.add_argument("--epochs-full", type=int, default=TrainConfig.epochs_full)
    parser.add_argument("--crops-per-class", type=int, default=TrainConfig.crops_per_class)
    args = parser.parse_args(argv)
    require_safetensors(args.out)
    config = TrainConfig(seed=args.seed, epochs_low=args.epochs_low, epochs_full=args.epochs_full,
                         crops_per_class=args.crops_per_class)
    model, classes, top1 = train(config, log=lambda m: print(m, flush=True))
    require_bar(top1, "train longer (--epochs-low / --epochs-full)")
    stored_top1 = save(model, classes, config, args.out)
    print(f"wrote {args.out} and {card_path(args.out).name} (held-out top-1 of the stored float16 weights: "
          f"{stored_top1:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
