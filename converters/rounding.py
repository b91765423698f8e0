"""Per-layer rounding of int8 weights chosen for the layer's output, not weight by weight (`--calibration gptq`).

Rounding each weight to its nearest int8 step (what TFLiteConverter and ONNX Runtime do, per output channel,
symmetric: scale = max |w| / 127) minimizes each weight's own error; what matters is the layer's output error,
|(W - W_q) X|^2 over the calibration inputs X. GPTQ (Frantar et al. 2022, after Optimal Brain Quantization) rounds
the input dimensions one at a time and moves each rounding's error onto the dimensions not yet rounded, through the
inverse of H = X X^T: a closed form per layer, seconds for a RegNetY.

The kit applies it to the float Keras model before conversion: each conv / dense layer's weights (BatchNormalization
folded in, as every converter folds it) are replaced by the int8 values GPTQ chose times the channel's scale, so the
converter's round-to-nearest finds exactly those integers, with the same scales (each channel keeps its largest
weight at +-127; a channel whose largest weight would move is rounded to nearest as before). The layer's bias then
absorbs the mean output shift the new weights cause on the calibration images (as `bias` does for round-to-nearest),
so `gptq` replaces `bias`. This changes the float model on purpose, by less than one int8 step per weight.

Layers it does not handle (dilated or depthwise convs, shared layers) keep round-to-nearest and are named in
`Rounded.skipped`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEVELS = 127           # symmetric int8 weights: [-127, 127]
DAMP = 0.01            # H += DAMP * mean(diag H) * I (GPTQ's dampening: a well-conditioned inverse)
PER_IMAGE = 256        # input positions (patches) sampled per image and layer, at most
HESSIAN_FLOPS = 24e9   # per layer group: wide layers (ConvNeXt's 1536- and 3072-channel Dense) sample fewer positions
HESSIAN_BUDGET = 2**30  # bytes of Hessians GPTQ may hold; a larger model keeps round-to-nearest (said, recorded)


@dataclass
class Rounded:
    model: object
    layers: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    output_error_ratio: float = 1.0   # sum over layers of |(W - W_q) X|^2, GPTQ against round-to-nearest
    too_large: str | None = None      # why nothing was rounded: the Hessians would not fit the memory budget


def hessian_bytes(layer) -> int:
    """Memory of a layer's H = X X^T (float64, one per group)."""
    kernel = layer.kernel.shape
    d = int(np.prod(kernel[:-1]))  # Dense (in, out): in; Conv2D (kh, kw, cin / groups, out): kh * kw * cin / groups
    return getattr(layer, "groups", 1) * d * d * 8


def gptq(weights: np.ndarray, hessian: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Integers (out, d) for weights (out, d) with per-row scales, rounded column by column with each column's
    error spread over the later columns through the inverse Hessian's Cholesky factor."""
    w = weights.astype(np.float64).copy()
    h = hessian.astype(np.float64).copy()
    dead = np.diag(h) <= 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h[np.diag_indices_from(h)] += DAMP * np.mean(np.diag(h))
    inverse = np.linalg.cholesky(np.linalg.inv(h)).T  # upper factor
    q = np.zeros_like(w)
    safe = np.where(scale > 0, scale, 1.0)
    for j in range(w.shape[1]):
        q[:, j] = np.clip(np.round(w[:, j] / safe), -LEVELS, LEVELS)
        error = (w[:, j] - q[:, j] * safe) / inverse[j, j]
        w[:, j + 1:] -= np.outer(error, inverse[j, j + 1:])
    return q


def _nearest(w: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.clip(np.round(w / np.where(scale > 0, scale, 1.0)[:, None]), -LEVELS, LEVELS)


def round_layer(w: np.ndarray, hessian: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(new float weights on the int8 grid, output error of GPTQ, of round-to-nearest) for rows (out, d)."""
    scale = np.abs(w).max(axis=1) / LEVELS
    nearest = _nearest(w, scale)
    chosen = gptq(w, hessian, scale)
    keep = np.abs(chosen).max(axis=1) != np.abs(nearest).max(axis=1)  # the scale would change: nearest instead
    chosen[keep] = nearest[keep]
    new = chosen * scale[:, None]

    def error(v):
        d = v - w
        return float(np.sum((d @ hessian) * d))

    return new, error(new), error(nearest * scale[:, None])


def round_weights(model, inputs: np.ndarray, batch: int = 8) -> Rounded:
    """A copy of `model` whose conv / dense weights are GPTQ-rounded int8 values (see the module)."""
    import keras

    from converters.bias_correction import output_shift, target_layers
    from converters.probe import batches
    from converters.equalize import bn_scale

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    targets, skipped = [], []
    for layer, bn, source in target_layers(clone):
        if isinstance(layer, keras.layers.DepthwiseConv2D) or (
                isinstance(layer, keras.layers.Conv2D) and (tuple(layer.dilation_rate) != (1, 1) or
                                                            layer.padding not in ("valid", "same"))):
            skipped.append(layer.name)
            continue
        targets.append((layer, bn, source))
    if not targets:
        return Rounded(clone, [], skipped)
    need = sum(hessian_bytes(layer) for layer, _, _ in targets)
    if need > HESSIAN_BUDGET:
        return Rounded(clone, [], skipped, too_large=f"its {len(targets)} layers need {need / 2**30:.1f} GiB of "
                       f"Hessians (the kit keeps GPTQ within {HESSIAN_BUDGET / 2**30:.0f} GiB)")
    unique = list({s.name: s for _, _, s in targets}.values())
    rng = np.random.default_rng(0)
    hessians: dict[str, list[np.ndarray]] = {}
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for values in batches(clone, [s.output for s in unique], inputs, batch):
        outs = dict(zip([s.name for s in unique], values))
        for layer, _, source in targets:
            x = outs[source.name]
            sums[layer.name] = sums.get(layer.name, 0.0) + x.reshape(-1, x.shape[-1]).sum(axis=0, dtype=np.float64)
            counts[layer.name] = counts.get(layer.name, 0) + int(np.prod(x.shape[:-1]))
            for g, rows in enumerate(_rows(layer, x, rng, positions(layer, len(inputs)))):
                part = rows.T @ rows
                acc = hessians.setdefault(layer.name, [])
                if len(acc) <= g:
                    acc.append(part)
                else:
                    acc[g] += part
    weights = {layer.name: layer.get_weights() for layer in clone.layers}
    done, ours, theirs = [], 0.0, 0.0
    for layer, bn, _ in targets:
        kernel = np.asarray(weights[layer.name][0], np.float64)
        factor = np.ones(kernel.shape[-1])
        if bn is not None:
            gamma, _, _, var = weights[bn.name][:4]
            factor = bn_scale(bn, gamma, var)
        folded = kernel * factor
        groups = getattr(layer, "groups", 1)
        flat = folded.reshape(-1, folded.shape[-1])  # (d, out), d in [kh][kw][cin] order
        out = flat.shape[1] // groups
        new = np.empty_like(flat)
        for g, hessian in enumerate(hessians[layer.name]):
            cols = slice(g * out, (g + 1) * out)
            rounded, e_ours, e_theirs = round_layer(flat[:, cols].T, hessian)
            new[:, cols] = rounded.T
            ours, theirs = ours + e_ours, theirs + e_theirs
        mean_in = sums[layer.name] / counts[layer.name]
        shift = output_shift(layer, (new - flat).reshape(folded.shape), mean_in)
        weights[layer.name][0] = (new.reshape(folded.shape) / factor).astype(weights[layer.name][0].dtype)
        if bn is not None:
            weights[bn.name][1] = (np.asarray(weights[bn.name][1], np.float64) - shift).astype(
                weights[bn.name][1].dtype)
        elif layer.use_bias:
            weights[layer.name][1] = (np.asarray(weights[layer.name][1], np.float64) - shift).astype(
                weights[layer.name][1].dtype)
        done.append(layer.name)
    for layer in clone.layers:
        if weights[layer.name]:
            layer.set_weights(weights[layer.name])
    return Rounded(clone, done, skipped, ours / theirs if theirs > 0 else 1.0)


def positions(layer, images: int) -> int:
    """Input positions sampled per image: PER_IMAGE, fewer where accumulating H = X X^T (2 d^2 per row) over all the
    images would pass HESSIAN_FLOPS (never fewer than 16)."""
    d = int(np.prod(layer.kernel.shape[:-1]))
    return int(min(PER_IMAGE, max(16, HESSIAN_FLOPS // (2 * images * d * d))))


def _rows(layer, x, rng, per_image: int = PER_IMAGE) -> list[np.ndarray]:
    """The layer's input as rows of its weights' input dimension, per group: conv patches ([kh][kw][cin] order) or
    dense inputs, `per_image` sampled positions per image."""
    x = np.asarray(x)
    if not hasattr(layer, "kernel_size"):  # Dense, on (batch, in) or (batch, ..., in): every position is a row
        rows = x.reshape(len(x), -1, x.shape[-1])
        if rows.shape[1] > per_image:
            chosen = np.stack([rng.choice(rows.shape[1], per_image, replace=False) for _ in range(len(x))])
            rows = np.take_along_axis(rows, chosen[..., None], axis=1)
        return [rows.reshape(-1, x.shape[-1]).astype(np.float64)]
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    groups = getattr(layer, "groups", 1)
    gin = x.shape[-1] // groups
    if layer.padding == "same":  # TensorFlow's SAME: the extra row / column of an even total goes at the end
        pads = []
        for size, k, s in zip(x.shape[1:3], (kh, kw), (sh, sw)):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append([total // 2, total - total // 2])
        x = np.pad(x, [[0, 0], *pads, [0, 0]])
    n = x.shape[0]
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    take = min(per_image, oh * ow)
    chosen = np.stack([rng.choice(oh * ow, take, replace=False) for _ in range(n)])
    rows, cols = chosen // ow * sh, chosen % ow * sw  # each sampled output position's top-left input pixel
    x = np.asarray(x, np.float64)
    taps = [x[np.arange(n)[:, None], rows + i, cols + j] for i in range(kh) for j in range(kw)]  # (n, take, cin) each
    patches = np.stack(taps, axis=2)  # (n, take, kh * kw, cin)
    return [patches[..., g * gin:(g + 1) * gin].reshape(n * take, -1) for g in range(groups)]

